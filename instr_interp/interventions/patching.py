"""Activation patching as context managers: replace activations at chosen hook points (and
positions) with values from a source — a TransformerLens ``ActivationCache`` or a dict of stored
activations, a constant (``"zero"``, ``"mean"``, a tensor), or **another model of the same
architecture run on the same tokens inside the forward** (cross-model patching).

Cross-model patching runs the source model first, on the exact input of each forward of the
target (a hook on the target's embedding input sees the token ids), keeping only the patched sites and
stopping the source's forward after the deepest one; then the target's hooks replace its own
activations with the source's. It therefore works inside every toolkit pass (``run``,
``response_nll``, ``evaluate_task``, the head passes) and in ``generate_responses``: a KV-cached
generation step feeds only the new token to the target, so the source is rerun on the whole
sequence so far (prompt and generated tokens) and its activations at the new positions are used.

Positions: ``"all"``; ``"last"`` (each row's last prompt token, from ``last=`` or the positions the
running pass declares, :func:`instr_interp.engine.prompt_positions`); region names
(``"instruction"``, ``("instruction", "input")``, ``"response"``: the running pass over encoded
records declares each token's region); or a boolean ``[batch, pos]`` / ``[pos]`` mask.
"""

import contextlib
from collections.abc import Mapping, Sequence
from typing import get_args

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from .. import compat
from ..checks import check_layers
from ..data.encoding import region_codes, region_names
from ..engine.positions import prompt_positions
from ..hooks import HookSite, SiteKind, hook_site, named_site
from ..models import model_facts
from .sources import (
    _check_value_shape,
    _trailing_shape,
    check_same_architecture,
    constant_value,
    is_model,
    source_activations,
)

__all__ = ["check_positions", "patch", "patch_heads", "position_mask", "replace_units"]

_CONSTANTS = ("zero", "mean")


def _sites(model, sites, layers) -> list[HookSite]:
    """Validated hook sites from a kind (expanded over ``layers``), a hook name, or a list of them."""
    if isinstance(sites, (str, HookSite)):
        sites = [sites]
    if not sites:
        raise ValueError("patch needs at least one site: a site kind such as 'resid_post' or a hook name.")
    out = []
    for site in sites:
        if isinstance(site, HookSite):
            out.append(named_site(model, site.name))
        elif isinstance(site, str) and "." not in site and not site.startswith("hook_"):
            if site not in get_args(SiteKind):
                raise ValueError(
                    f"Unknown hook site kind {site!r}; choose one of {sorted(get_args(SiteKind))}, or give a "
                    "full hook point name."
                )
            chosen = range(model.cfg.n_layers) if layers is None else check_layers(model, layers)
            out += [hook_site(model, site, layer) for layer in chosen]
        else:
            out.append(named_site(model, site))
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise ValueError(
            f"patch got the same hook point twice: {sorted(n for n in names if names.count(n) > 1)}."
        )
    return out


def check_positions(positions) -> None:
    if isinstance(positions, Tensor):
        if positions.dtype != torch.bool or positions.ndim not in (1, 2):
            raise ValueError("A positions mask must be a boolean tensor, [batch, pos] or [pos].")
    elif positions is None or positions in ("all", "last"):
        return
    else:
        try:
            region_names(positions)
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"positions must be 'all', 'last', region name(s) or a boolean mask; got {positions!r} ({err})."
            ) from None


def position_mask(model, positions, shape: tuple[int, int], last: Tensor | None = None, who: str = "patch"):
    """The ``[batch, pos]`` boolean mask of the positions to patch in a forward of ``shape``, or
    ``None`` for every position.

    Args:
        positions: ``"all"`` (or None), ``"last"``, region name(s), or a boolean mask.
        last: ``[batch]`` last prompt positions; default the ones the running pass declares.
    """
    batch, pos = shape
    if positions is None or (isinstance(positions, str) and positions == "all"):
        return None
    if isinstance(positions, Tensor):
        mask = positions.expand(batch, -1) if positions.ndim == 1 else positions
        if tuple(mask.shape) != (batch, pos):
            raise ValueError(
                f"{who}: positions mask {tuple(positions.shape)} does not match the batch {shape}."
            )
        return mask
    declared = prompt_positions(model)
    if isinstance(positions, str) and positions == "last":
        where = last if last is not None else declared.require(batch, who)
        where = torch.as_tensor(where)
        if tuple(where.shape) != (batch,):
            raise ValueError(
                f"{who}: last positions {tuple(where.shape)} do not match the batch of {batch} rows."
            )
        if bool((where >= pos).any()):
            raise ValueError(
                f"{who}: last positions {where.tolist()} lie beyond the {pos} positions of the batch."
            )
        mask = torch.zeros(batch, pos, dtype=torch.bool, device=where.device)
        rows = (where >= 0).nonzero().flatten()  # negative: the prompt's last token is in the KV cache
        mask[rows, where[rows]] = True
        return mask
    codes = declared.require_regions(shape, who)
    return torch.isin(codes, torch.tensor(region_codes(positions), device=codes.device))


def replace_units(
    act: Tensor,
    value: Tensor,
    mask: Bool[Tensor, "batch pos"] | None = None,
    units: Int[Tensor, " n"] | None = None,
    rows: Int[Tensor, " n"] | None = None,
) -> Tensor:
    """``act`` with entries replaced by ``value`` (broadcast to ``act``'s shape): at the positions of
    ``mask`` (every position when None), for the units ``units`` along axis 2 (neurons of
    ``[batch, pos, d_mlp]``, heads of ``[batch, pos, head, d_head]``; every unit when None). With
    ``rows``, unit ``units[i]`` is replaced only in batch row ``rows[i]`` (a batch expanded over units).

    Examples:
        >>> act = torch.zeros(2, 3, 4)
        >>> out = replace_units(act, torch.ones(4), torch.tensor([[0, 0, 1], [1, 0, 0]]).bool(), torch.tensor([2]))
        >>> out[:, :, 2].tolist(), float(out.sum())
        ([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], 2.0)
    """
    value = value.to(act.device, act.dtype).expand_as(act)
    if mask is not None:
        mask = mask.to(act.device)
    if units is None:
        if rows is not None:
            raise ValueError("replace_units: rows= pairs with units=; give both.")
        if mask is None:
            return value.clone()
        return torch.where(mask.reshape(mask.shape + (1,) * (act.ndim - 2)), value, act)
    units = units.to(act.device)
    out = act.clone()
    if rows is None:
        if mask is None:
            out[:, :, units] = value[:, :, units]
        else:
            keep = mask.reshape(mask.shape + (1,) * (act.ndim - 2))
            out[:, :, units] = torch.where(keep, value[:, :, units], act[:, :, units])
        return out
    rows = rows.to(act.device)
    if rows.shape != units.shape:
        raise ValueError(
            f"replace_units: rows {tuple(rows.shape)} and units {tuple(units.shape)} must align."
        )
    if mask is None:
        out[rows, :, units] = value[rows, :, units]
    else:
        keep = mask[rows].reshape((len(rows), mask.shape[1]) + (1,) * (act.ndim - 3))
        out[rows, :, units] = torch.where(keep, value[rows, :, units], act[rows, :, units])
    return out


@contextlib.contextmanager
def _patching(model, plan, source, positions, last, who: str):
    """Register the hooks of ``plan`` (``[(site, value_or_None, units, rows)]``; None: from the
    model or stored ``source``) and, for a model source, the pre-forward hook that runs it."""
    check_positions(positions)
    cross = is_model(source)
    if cross:
        if source is model:
            raise ValueError(
                f"{who}: the source is the target model itself; pass an ActivationCache from "
                "model.run_with_cache(...) instead."
            )
        check_same_architecture(model, source)
        source_sites = [named_site(source, site.name) for site, *_ in plan]
    stored = None
    if not cross and any(v is None for _, v, _, _ in plan):
        if not isinstance(source, Mapping) and not hasattr(source, "__getitem__"):
            raise ValueError(f"{who}: unsupported source of type {type(source).__name__}.")
        stored = source
        for site, *_ in plan:
            if site.name not in stored:
                raise ValueError(f"{who}: the source holds no activations for {site.name!r}.")
            _check_value_shape(site, stored[site.name], _trailing_shape(model, site), who)
    held: dict = {}

    def make(site: HookSite, value, units, rows):
        def hook(act, hook=None):
            if value is not None:
                new = value
            elif cross:
                if site.name not in held.get("unused", ()):
                    raise ValueError(
                        f"{who}: the source model did not run for this forward (it starts from token ids: "
                        "a forward from embeddings or with start_at_layer cannot be patched from another model)."
                    )
                held["unused"].discard(site.name)
                new = held["acts"][site.name]
            else:
                new = stored[site.name]
            if value is None and tuple(new.shape) != tuple(act.shape):
                raise ValueError(
                    f"{who}: the source's activations at {site.name} have shape {tuple(new.shape)}, the forward's "
                    f"{tuple(act.shape)}; a stored source must come from the same tokens (batch and positions)."
                )
            mask = position_mask(model, positions, tuple(act.shape[:2]), last, who)
            return replace_units(act, new, mask, units, rows)

        return hook

    def note_call(continuing):
        held["continuing"] = continuing

    def run_source(tokens, hook=None):
        # The input token ids (every forward path embeds them); a KV-cached generation step holds only
        # the new tokens: the source reruns on the whole sequence so far.
        continuing = held.pop("continuing", False)
        history = torch.cat([held["tokens"], tokens], 1) if continuing and "tokens" in held else tokens
        held["tokens"] = history
        acts = source_activations(source, history, source_sites)
        n = tokens.shape[1]
        held["acts"] = {k: v[:, -n:] for k, v in acts.items()}
        held["unused"] = set(held["acts"])

    fwd = [(site.name, make(site, value, units, rows)) for site, value, units, rows in plan]
    if cross:
        fwd.insert(0, (hook_site(model, "tokens").name, run_source))
    with contextlib.ExitStack() as stack:
        if cross:
            stack.enter_context(compat.on_forward_input(model, note_call))
        stack.enter_context(model.hooks(fwd_hooks=fwd))
        try:
            yield model
        finally:
            held.clear()


@contextlib.contextmanager
def patch(
    model,
    sites,
    source,
    *,
    layers: Sequence[int] | None = None,
    positions="all",
    last: Int[Tensor, " batch"] | None = None,
    means=None,
    units: Tensor | Sequence[int] | None = None,
):
    """Replace the activations at ``sites`` with the ``source``'s, inside the ``with`` block.

    Args:
        sites: a site kind (``"resid_post"``, ``"attn_out"``, ``"mlp_out"``, ``"mlp_post"``,
            ``"attn_z"``, ... see :mod:`instr_interp.hooks`) expanded over ``layers`` (default every
            layer), a full hook point name, or a list of them.
        source: another model of the same architecture (cross-model patching: run on the same
            tokens inside each forward); an ``ActivationCache`` or ``{hook name: tensor}`` of
            activations on the same tokens; ``"zero"``; ``"mean"`` (with ``means``); a number or a
            tensor broadcast to the activation (e.g. a stored ``[d_model]`` vector).
        layers: the layers a site kind is expanded over.
        positions: ``"all"``, ``"last"``, region name(s) or a boolean mask (module docstring).
        last: ``[batch]`` last prompt positions for your own forwards (``positions="last"``).
        means: for ``source="mean"``: a ``[layer, ...]`` tensor indexed by the site's layer, or a
            ``{hook name: tensor}`` dict.
        units: only these units along axis 2 (neurons of ``mlp_post``, heads of ``attn_z``).

    Hooks (and the source model's pre-forward hook) are removed when the block ends, also on errors.
    Sites, positions, sources and stored shapes are validated before the block is entered; a
    stored activation whose shape differs from the forward's raises in that forward.

    Examples:
        >>> import instr_interp as ii, torch
        >>> base, other = ii.tiny_model(seed=0), ii.tiny_model(seed=1)
        >>> tokens = torch.tensor([[1, 5, 9, 4]])
        >>> with patch(base, "resid_post", other):  # every block's output from the other model
        ...     patched = base(tokens)
        >>> torch.allclose(patched, base.unembed(base.ln_final(other.run_with_cache(tokens)[1]["blocks.1.hook_resid_post"])), atol=1e-5)
        True
    """
    chosen = _sites(model, sites, layers)
    check_positions(positions)
    if units is not None:
        units = torch.as_tensor(units, dtype=torch.long).flatten()
    plan = []
    for site in chosen:
        value = constant_value(site, source, means)
        if value is not None:
            _check_value_shape(site, value, _trailing_shape(model, site), "patch")
        plan.append((site, value, units, None))
    with _patching(model, plan, source, positions, last, "patch"):
        yield model


@contextlib.contextmanager
def patch_heads(
    model,
    heads,
    source="mean",
    *,
    means=None,
    positions="last",
    last: Int[Tensor, " batch"] | None = None,
    rows: Tensor | Sequence[int] | None = None,
):
    """Patch the per-head outputs ``z`` (``blocks.L.attn.hook_z``, per query head) of ``heads``.

    Args:
        heads: ``[n, 2]`` ``(layer, head)`` rows, e.g. ``iv.top_heads``.
        source: ``"mean"`` (with ``means`` ``[layer, head, d_head]`` from
            :func:`instr_interp.vectors.heads.head_means`), ``"zero"``, another model of the same
            architecture, or an ``ActivationCache`` / dict of activations on the same tokens.
        positions: default ``"last"`` (each row's last prompt token), or as :func:`patch`.
        rows: ``[n]`` batch rows: head ``i`` is patched only in row ``rows[i]`` (a batch expanded
            over heads, as the head-effect pass does); default every row.

    Examples:
        >>> import instr_interp as ii, torch
        >>> model = ii.tiny_model()
        >>> with patch_heads(model, torch.tensor([[0, 1], [1, 3]]), "zero", last=torch.tensor([2])):
        ...     logits = model(torch.tensor([[5, 6, 7]]))
    """
    facts = model_facts(model)
    heads = torch.as_tensor(heads, dtype=torch.long)
    if heads.ndim != 2 or heads.shape[1] != 2:
        raise ValueError(f"heads must be an [n, 2] tensor of (layer, head); got shape {tuple(heads.shape)}.")
    if len(heads) and (
        bool(((heads[:, 0] < 0) | (heads[:, 0] >= facts.n_layers)).any())
        or bool(((heads[:, 1] < 0) | (heads[:, 1] >= facts.n_heads)).any())
    ):
        raise ValueError(
            f"heads must hold layers in [0, {facts.n_layers}) and heads in [0, {facts.n_heads})."
        )
    if rows is not None:
        rows = torch.as_tensor(rows, dtype=torch.long)
        if rows.shape != (len(heads),):
            raise ValueError(
                f"rows must have one entry per head ({len(heads)}); got shape {tuple(rows.shape)}."
            )
    if isinstance(source, str) and source == "mean":
        if means is None or tuple(means.shape) != (facts.n_layers, facts.n_heads, facts.d_head):
            raise ValueError(
                f"source='mean' needs means of shape [layer, head, d_head] = "
                f"({facts.n_layers}, {facts.n_heads}, {facts.d_head}); compute them with head_means(model, task)."
            )
    elif isinstance(source, str) and source not in _CONSTANTS:
        raise ValueError(
            f"Unknown source {source!r}; choose 'mean', 'zero', another model or an ActivationCache."
        )
    plan = []
    for layer in heads[:, 0].unique().tolist():
        pick = heads[:, 0] == layer
        site = hook_site(model, "attn_z", layer)
        value = constant_value(site, source, means)
        plan.append((site, value, heads[pick, 1], None if rows is None else rows[pick]))
    with _patching(model, plan, source, positions, last, "patch_heads"):
        yield model
