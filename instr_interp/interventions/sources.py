"""Where patched values come from: a constant (``"zero"``, ``"mean"``, a number, a tensor), stored
activations checked against the site's shape, or another model of the same architecture run up to
its deepest patched site. Used by :func:`instr_interp.patch`, :func:`instr_interp.patch_heads` and
the patching sweeps.
"""

from collections.abc import Mapping, Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from ..hooks import FIRING_ORDER, HookSite
from ..models import model_facts

__all__ = ["check_same_architecture", "constant_value", "is_model", "source_activations"]


class _SourceDone(Exception):
    """Ends the source model's forward after its deepest patched site."""


def is_model(obj) -> bool:
    return hasattr(obj, "run_with_hooks") and hasattr(obj, "cfg")


def check_same_architecture(model, source) -> None:
    a, b = model_facts(model), model_facts(source)
    fields = ("n_layers", "d_model", "n_heads", "d_head", "d_mlp")
    differ = [f for f in fields if getattr(a, f, None) != getattr(b, f, None)]
    if model.cfg.d_vocab != source.cfg.d_vocab:
        differ.append("d_vocab")
    if differ:
        raise ValueError(
            "Cross-model patching needs two models of the same architecture; they differ in "
            + ", ".join(
                f"{f} ({getattr(a, f, model.cfg.d_vocab)} vs {getattr(b, f, source.cfg.d_vocab)})"
                for f in differ
            )
            + "."
        )


def source_activations(
    source, tokens: Int[Tensor, "batch pos"], sites: Sequence[HookSite]
) -> dict[str, Tensor]:
    """The activations of model ``source`` at ``sites`` on ``tokens`` (keyed by site name), from one
    forward that stops after the deepest site (no gradient)."""
    held: dict[str, Tensor] = {}
    n_layers = source.cfg.n_layers
    deepest = max(
        sites,
        key=lambda s: (
            s.layer if s.layer is not None else -1 if s.kind == "embed" else n_layers,
            FIRING_ORDER.get(s.kind, 99),
        ),
    )

    def grab(act, hook=None, name=""):
        held[name] = act.detach()
        if name == deepest.name:
            raise _SourceDone

    hooks = [(s.name, _bind(grab, name=s.name)) for s in sites]
    with torch.no_grad(), source.hooks(fwd_hooks=hooks):
        try:
            source(tokens, return_type=None)
        except _SourceDone:
            pass
    missing = [s.name for s in sites if s.name not in held]
    if missing:
        raise RuntimeError(f"The source model's hook points {missing[:5]} never fired; choose other sites.")
    return held


def _bind(fn, **kwargs):
    def hook(act, hook=None):
        return fn(act, hook, **kwargs)

    return hook


def constant_value(site: HookSite, source, means) -> Tensor | None:
    """The value patched at ``site`` for a constant source (None: not a constant source)."""
    if isinstance(source, str):
        if source == "zero":
            return torch.zeros(())
        if source == "mean":
            if isinstance(means, Mapping):
                if site.name not in means:
                    raise ValueError(f"means has no entry for {site.name!r}; it has {sorted(means)[:6]}.")
                return torch.as_tensor(means[site.name])
            if isinstance(means, Tensor):
                if site.layer is None:
                    raise ValueError(
                        f"means as a [layer, ...] tensor needs layered sites; {site.name} has no layer."
                    )
                return means[site.layer]
            raise ValueError(
                "source='mean' needs means=: a [layer, ...] tensor (e.g. ii.mean_activations(model, data) for "
                "'mlp_post', head_means(...)[0] for 'attn_z') or a dict {hook name: tensor}."
            )
        raise ValueError(
            f"Unknown source {source!r}; choose 'zero', 'mean', an ActivationCache/dict, a tensor or a model."
        )
    if isinstance(source, (int, float)):
        return torch.tensor(float(source))
    if isinstance(source, Tensor):
        return source
    return None


def _check_value_shape(site: HookSite, value: Tensor, want: tuple | None, who: str) -> None:
    """Up-front check that a stored value fits the site's trailing shape (when known)."""
    if want is None or value.ndim == 0:
        return
    tail = tuple(value.shape[-len(want) :]) if value.ndim >= len(want) else tuple(value.shape)
    if tail != want and not (value.ndim < len(want) and tuple(want[-value.ndim :]) == tuple(value.shape)):
        raise ValueError(
            f"{who}: the value for {site.name} has shape {tuple(value.shape)}; its activations end in {want}."
        )


def _trailing_shape(model, site: HookSite) -> tuple | None:
    facts = model_facts(model)
    if site.kind in (
        "resid_pre",
        "resid_mid",
        "resid_post",
        "attn_out",
        "mlp_out",
        "embed",
        "final_norm",
        "mlp_in",
    ):
        return (facts.d_model,)
    if site.kind in ("mlp_post", "mlp_pre"):
        return (facts.d_mlp,)
    if site.kind == "attn_z":
        return (facts.n_heads, facts.d_head)
    return None
