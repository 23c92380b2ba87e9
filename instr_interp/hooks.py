"""Typed hook sites: the one place hook names are built, validated against ``model.hook_dict``.

Examples:
    >>> from instr_interp import tiny_model
    >>> from instr_interp.hooks import hook_site
    >>> hook_site(tiny_model(), "mlp_pre", 1).name
    'blocks.1.mlp.hook_pre'
"""

import difflib
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ATTENTION_INNER_HOOKS",
    "FIRING_ORDER",
    "NORM_INNER_HOOKS",
    "HookSite",
    "TL_ACT_NAMES",
    "SiteKind",
    "hook_site",
    "hook_names",
    "is_moe",
    "moe_layers",
    "named_site",
]

SiteKind = Literal[
    "embed",
    "resid_pre",
    "resid_mid",
    "resid_post",
    "mlp_pre",  # gate pre-activation (dense gated MLP), or the first linear's output
    "mlp_post",  # act(gate) * up: the input of the down projection
    "mlp_in",  # block input of the MLP / MoE block
    "attn_z",  # per-head output before the output projection  [batch pos head d_head]
    "attn_pattern",  # [batch head query key]
    "router_logits",  # MoE: [tokens expert]
    "expert_indices",  # MoE: [tokens k]
    "expert_weights",  # MoE: [tokens expert], top-k weights, zeros elsewhere
    "final_norm",  # output of the final norm [batch pos d_model]
    "unembed_in",  # input of the unembedding [batch pos d_model]
    "logits",  # unembedding output [batch pos d_vocab]
    "shared_expert_pre",  # MoE with a shared expert: its gate pre-activation [tokens d_shared]
    "shared_expert_post",  # MoE with a shared expert: act(gate) * up, input of its down projection
    "attn_out",  # the attention block's output, added to the residual stream [batch pos d_model]
    "mlp_out",  # the MLP (or MoE) block's output, added to the residual stream [batch pos d_model]
    "tokens",  # the input token ids, entering the embedding [batch pos]
]

_TEMPLATES: dict[str, str] = {
    "embed": "hook_embed",
    "resid_pre": "blocks.{layer}.hook_resid_pre",
    "resid_mid": "blocks.{layer}.hook_resid_mid",
    "resid_post": "blocks.{layer}.hook_resid_post",
    "mlp_pre": "blocks.{layer}.mlp.hook_pre",
    "mlp_post": "blocks.{layer}.mlp.hook_post",
    "mlp_in": "blocks.{layer}.mlp.hook_in",
    "attn_z": "blocks.{layer}.attn.hook_z",
    "attn_pattern": "blocks.{layer}.attn.hook_pattern",
    "router_logits": "blocks.{layer}.mlp.gate.hook_out",
    "expert_indices": "blocks.{layer}.mlp.hook_expert_indices",
    "expert_weights": "blocks.{layer}.mlp.hook_expert_weights",
    "final_norm": "ln_final.hook_out",
    "unembed_in": "unembed.hook_in",
    "logits": "unembed.hook_out",
    "shared_expert_pre": "blocks.{layer}.mlp.shared_expert.hook_pre",
    "shared_expert_post": "blocks.{layer}.mlp.shared_expert.hook_post",
    "attn_out": "blocks.{layer}.hook_attn_out",
    "mlp_out": "blocks.{layer}.hook_mlp_out",
    "tokens": "embed.hook_in",
}
# TransformerLens's short activation names (``utils.get_act_name``, used by ``transformer_lens.patching``)
# of the kinds that have one.
TL_ACT_NAMES: dict[str, str] = {
    "resid_pre": "resid_pre",
    "resid_mid": "resid_mid",
    "resid_post": "resid_post",
    "attn_out": "attn_out",
    "mlp_out": "mlp_out",
    "attn_z": "z",
    "mlp_post": "post",
    "mlp_pre": "pre",
}
# The order in which sites fire within a block (the engine stops the forward after the last one).
FIRING_ORDER: dict[str, float] = {
    "tokens": -2,
    "embed": -1,
    "resid_pre": 0,
    "attn_pattern": 1,
    "attn_z": 2,
    "attn_out": 2.5,
    "resid_mid": 3,
    "mlp_in": 4,
    "shared_expert_pre": 5,
    "shared_expert_post": 5,
    "router_logits": 6,
    "expert_weights": 7,
    "expert_indices": 8,
    "mlp_pre": 9,
    "mlp_post": 10,
    "mlp_out": 10.5,
    "resid_post": 11,
    "final_norm": 12,
    "unembed_in": 13,
    "logits": 14,
}
_WHOLE_MODEL_KINDS = ("tokens", "embed", "final_norm", "unembed_in", "logits")  # no layer

# Hook points (attribute names on a bridge component) that only the bridge's step-by-step attention
# fires. hook_q/k/v and hook_z live on the projection bridges and fire on the fused path too, as do
# the attention's own hook_in/hook_out (see engine.native).
ATTENTION_INNER_HOOKS = (
    "hook_attn_scores",
    "hook_pattern",
    "hook_rot_q",
    "hook_rot_k",
    "hook_cos",
    "hook_sin",
    "hook_q_input",
    "hook_k_input",
    "hook_v_input",
    "hook_attn_in",
    "hook_result",
    "hook_hidden_states",
    "hook_q_normed",
    "hook_k_normed",
)
# Hook points inside a normalisation bridge that only its python re-computation fires.
NORM_INNER_HOOKS = ("hook_scale", "hook_normalized")
_NEURON_KINDS = ("mlp_pre", "mlp_post")
_ROUTER_KINDS = ("router_logits", "expert_indices", "expert_weights")


@dataclass(frozen=True)
class HookSite:
    """A validated hook point: its registered ``name``, the ``kind`` of activation and its ``layer``."""

    name: str
    kind: str
    layer: int | None


def is_moe(model) -> bool:
    """True when any of the model's MLP blocks routes tokens to experts (router hooks exist)."""
    return bool(moe_layers(model))


def moe_layers(model) -> list[int]:
    """The layers whose MLP block is an MoE block (all of them, or the sparse layers of a mixed
    stack whose first layers are dense, e.g. Qwen2-MoE's ``mlp_only_layers``)."""
    return [
        layer
        for layer in range(model.cfg.n_layers)
        if f"blocks.{layer}.mlp.hook_expert_indices" in model.hook_dict
    ]


def _architecture(model) -> str:
    cfg = model.cfg
    return str(getattr(cfg, "architecture", None) or getattr(cfg, "model_name", type(model).__name__))


def hook_site(model, kind: SiteKind, layer: int | None = None) -> HookSite:
    """Build and validate the hook point of ``kind`` at ``layer``.

    Raises:
        ValueError: unknown kind, a layer out of range, neurons asked of an MoE block, or a hook
            point the model does not have (the message names the architecture and what exists).
    """
    if kind not in _TEMPLATES:
        raise ValueError(f"Unknown hook site kind {kind!r}; choose one of {sorted(_TEMPLATES)}.")
    n_layers = model.cfg.n_layers
    if kind in _WHOLE_MODEL_KINDS:
        layer = None
    elif layer is None or not (-n_layers <= layer < n_layers):
        raise ValueError(f"Hook site {kind!r} needs a layer in [0, {n_layers}); got {layer!r}.")
    elif layer < 0:
        layer += n_layers
    sparse = layer is not None and f"blocks.{layer}.mlp.hook_expert_indices" in model.hook_dict
    if kind in _ROUTER_KINDS and not is_moe(model):
        raise ValueError(
            f"{_architecture(model)} is a dense model: it has no router, so there is no {kind!r} site "
            "(on dense MLPs 'blocks.L.mlp.gate' is the gate projection, not a router). Router sites exist "
            "only on MoE models."
        )
    if kind in _NEURON_KINDS and sparse:
        raise ValueError(
            f"{_architecture(model)} has MoE blocks: blocks.L.mlp.hook_pre/hook_post carry the d_model-wide "
            "block input/output, not neurons. Per-expert neuron activations are recomputed from the "
            "block input ('mlp_in') and the routing ('expert_indices'); use the expert probes instead."
        )
    name = _TEMPLATES[kind].format(layer=layer)
    if name not in model.hook_dict:
        prefix = name.rsplit(".", 1)[0]
        nearby = [n for n in model.hook_dict if n.startswith(prefix + ".")] or difflib.get_close_matches(
            name, list(model.hook_dict), n=8
        )
        hint = " (router hooks exist only on MoE models)" if kind in _ROUTER_KINDS else ""
        raise ValueError(
            f"{_architecture(model)} has no hook point {name!r}{hint}. Hook points near it: "
            f"{sorted(nearby)[:12]}."
        )
    return HookSite(name=name, kind=kind, layer=layer)


def hook_names(model, kind: SiteKind, layers=None) -> list[HookSite]:
    """:func:`hook_site` for each layer in ``layers`` (default: all layers)."""
    if kind in _WHOLE_MODEL_KINDS:
        return [hook_site(model, kind)]
    layers = range(model.cfg.n_layers) if layers is None else layers
    return [hook_site(model, kind, layer) for layer in layers]


def named_site(model, name: str) -> HookSite:
    """A hook point given by its full name (``"blocks.3.hook_resid_post"``), validated against the
    model; its ``kind`` and ``layer`` are filled in when the name is one :func:`hook_site` builds
    (else ``kind`` is ``"other"``, with the layer read from a ``blocks.L.`` prefix).

    Examples:
        >>> from instr_interp import tiny_model
        >>> named_site(tiny_model(), "blocks.1.hook_mlp_out")
        HookSite(name='blocks.1.hook_mlp_out', kind='mlp_out', layer=1)
    """
    if not isinstance(name, str):
        raise ValueError(f"A hook point name must be a string; got {type(name).__name__}.")
    if name not in model.hook_dict:
        nearby = difflib.get_close_matches(name, list(model.hook_dict), n=8)
        raise ValueError(
            f"{_architecture(model)} has no hook point {name!r}. Hook points near it: {sorted(nearby)}. "
            f"Or give a site kind: one of {sorted(_TEMPLATES)}."
        )
    parts = name.split(".")
    layer = int(parts[1]) if len(parts) > 2 and parts[0] == "blocks" and parts[1].isdigit() else None
    for kind, template in _TEMPLATES.items():
        if template.format(layer=layer) == name:
            return HookSite(name=name, kind=kind, layer=layer)
    return HookSite(name=name, kind="other", layer=layer)
