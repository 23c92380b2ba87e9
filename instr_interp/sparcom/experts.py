"""Instruction-specific experts (ISEs) of MoE models, and removing experts (rerouting or dropping).

Routing and per-expert neuron firing are counted by :class:`ExpertFiring`
(:mod:`instr_interp.sparcom.expert_firing`, re-exported here).
"""

import contextlib
from typing import Literal

import torch
from torch import Tensor

from .. import compat
from ..checks import check_units
from ..hooks import hook_site, moe_layers
from ..models import model_facts
from .expert_firing import ExpertFiring, ExpertStats, expert_gate_weights
from .neurons import NeuronSets

__all__ = [
    "ExpertFiring",
    "ExpertStats",
    "ExpertSets",
    "expert_gate_weights",
    "ablate_experts",
]


class ExpertSets(NeuronSets):
    """ISE sets: the same set algebra as :class:`NeuronSets`, with units ``(layer, expert)``
    (``d_mlp`` holds the number of experts per layer)."""

    unit = "expert"
    short = "ISEs"

    @property
    def n_experts(self) -> int:
        return self.d_mlp


@contextlib.contextmanager
def ablate_experts(
    model, experts, *, mode: Literal["reroute", "drop"] = "reroute", renormalize: bool = False
):
    """Remove experts from an MoE model for the duration of the ``with`` block.

    Args:
        experts: ``[n, 2]`` tensor of ``(layer, expert)``, e.g. ``ise.category_sets["code"]``.
        mode: ``"reroute"`` (default): each token's router recomputes its top-k as if the removed
            experts did not exist (their logits set to -inf before the softmax), renormalised exactly
            as the model's router does (Mixtral always; OLMoE / Qwen2-MoE when ``norm_topk_prob``), so
            every token still gets k experts: expert pruning, which measures what the removed experts
            compute rather than the loss of part of each token's expert budget. ``"drop"``: keep the
            original top-k and zero the removed experts' weights (tokens routed there get fewer than k
            experts; ``renormalize=True`` rescales the remaining weights to the original sum).
        renormalize: with ``mode="drop"`` only.

    Raises:
        ValueError: a layer would keep fewer than k experts under ``"reroute"``, or a router whose
            rule is not softmax-then-top-k (Mixtral, OLMoE, Qwen2-MoE) under ``"reroute"``.
    """
    facts = model_facts(model)
    experts = check_units(
        experts, (facts.n_layers, facts.n_experts), names=("layer", "expert"), what="experts"
    )
    if mode not in ("reroute", "drop"):
        raise ValueError(f"Unknown mode {mode!r}; choose 'reroute' or 'drop'.")
    if renormalize and mode != "drop":
        raise ValueError(
            "renormalize= applies to mode='drop' only (mode='reroute' renormalises as the router does)."
        )
    sparse = set(moe_layers(model))
    layers = experts[:, 0].unique().tolist()
    dense = [layer for layer in layers if layer not in sparse]
    if dense:
        raise ValueError(f"experts names dense layers {dense}; MoE layers are {sorted(sparse)}.")
    fwd = []
    for layer in layers:
        idx = experts[experts[:, 0] == layer, 1].unique()
        if mode == "drop":
            fwd.append((hook_site(model, "expert_weights", layer).name, _drop(idx, renormalize)))
            continue
        if facts.n_experts - len(idx) < facts.experts_per_token:
            raise ValueError(
                f"mode='reroute' cannot remove {len(idx)} of layer {layer}'s {facts.n_experts} experts: "
                f"every token needs {facts.experts_per_token}. Use mode='drop'."
            )
        logits: dict[str, Tensor] = {}
        norm = compat.router_renormalizes(model, layer)
        fwd.append((hook_site(model, "router_logits", layer).name, _keep_logits(logits)))
        fwd.append(
            (
                hook_site(model, "expert_weights", layer).name,
                _reroute(idx, logits, norm, facts.experts_per_token),
            )
        )
    with model.hooks(fwd_hooks=fwd):
        yield model


def _drop(idx: Tensor, renormalize: bool):
    def hook(weights, hook=None):
        out = weights.clone()
        out[:, idx.to(out.device)] = 0
        if renormalize:
            kept = out.sum(-1, keepdim=True)
            out = out * (weights.sum(-1, keepdim=True) / kept.clamp(min=1e-12))
        return out

    return hook


def _keep_logits(store: dict):
    def hook(logits, hook=None):
        store["logits"] = logits
        return logits

    return hook


def _reroute(idx: Tensor, store: dict, renormalize: bool, k: int):
    def hook(weights, hook=None):
        logits = store.pop("logits").float().clone()
        logits[:, idx.to(logits.device)] = float("-inf")
        top, chosen = torch.topk(torch.softmax(logits, dim=-1), k, dim=-1)
        if renormalize:
            top = top / top.sum(-1, keepdim=True)
        out = torch.zeros_like(weights)
        return out.scatter_(-1, chosen, top.to(weights.dtype))

    return hook


_MOVED = ("find_ises", "sets_from_expert_stats", "expert_sets_from_pooled")


def __getattr__(name: str):
    """Selecting ISEs lives in :mod:`instr_interp.sparcom.expert_selection`; its functions are still
    importable from here (loaded on first use, so the two modules do not import each other at load)."""
    if name in _MOVED:
        from . import expert_selection

        return getattr(expert_selection, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
