"""Instruction-specific experts (ISEs) of MoE models, and removing experts (rerouting or dropping).

Routing and per-expert neuron firing are counted by :class:`ExpertFiring`
(:mod:`instr_interp.sparcom.expert_firing`, re-exported here).
"""

import contextlib
import math
from typing import Literal

import torch
from torch import Tensor

from .. import compat
from ..checks import check_fraction, check_units
from ..engine import run
from ..hooks import hook_site, is_moe, moe_layers
from ..models import model_facts
from .expert_firing import ExpertFiring, ExpertStats, expert_gate_weights
from .neurons import NeuronSets
from .selection import top_neurons

__all__ = [
    "ExpertFiring",
    "ExpertStats",
    "ExpertSets",
    "find_ises",
    "sets_from_expert_stats",
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


def _top_units(values: Tensor, tiebreak: Tensor, k: int, per_layer: int | None) -> Tensor:
    """Flat indices of the top-k (or top ``per_layer`` in each layer) of ``values [layer expert]``."""
    n_layers, width = values.shape
    if per_layer is None:
        return top_neurons(values.flatten(), tiebreak.flatten(), k)[0]
    picks = [
        top_neurons(values[layer], tiebreak[layer], per_layer)[0] + layer * width for layer in range(n_layers)
    ]
    return torch.cat(picks)


def find_ises(
    model,
    data,
    *,
    top: float = 0.1,
    weighting: Literal["binary", "weight"] = "binary",
    per_layer: int | None = None,
    regions=("instruction", "input"),
    batch_size: int = 16,
    padding_side: str = "right",
    neurons: bool = True,
    progress: bool = True,
    keep_stats: bool = False,
):
    """Instruction-specific experts per instruction and per category (pooled counts).

    Experts are ranked by routing frequency over the counted tokens (``weighting="binary"``) or by
    their summed routing weight (``"weight"``); ties by the other quantity, then by index. With few
    experts use a larger ``top`` or ``per_layer=m`` (the top m experts of every layer).

    Returns:
        :class:`ExpertSets`, or ``(ExpertSets, ExpertStats)`` with ``keep_stats``.
    """
    _check_weighting(weighting)  # before the pass, not after it
    check_fraction(top)
    if not is_moe(model):
        raise ValueError(
            f"find_ises needs an MoE model (experts and a router); {model_facts(model).name!r} is "
            "dense. Use find_isns for the neurons of a dense model."
        )
    (probe,) = run(
        model,
        data,
        [ExpertFiring(regions, neurons=neurons)],
        batch_size=batch_size,
        padding_side=padding_side,
        progress=progress,
    )
    stats = probe.result()
    sets = sets_from_expert_stats(stats, top=top, weighting=weighting, per_layer=per_layer)
    return (sets, stats) if keep_stats else sets


def _check_weighting(weighting: str) -> None:
    if weighting not in ("binary", "weight"):
        raise ValueError(f"Unknown weighting {weighting!r}; choose 'binary' or 'weight'.")


def sets_from_expert_stats(
    stats: ExpertStats,
    *,
    top: float = 0.1,
    weighting: Literal["binary", "weight"] = "binary",
    per_layer: int | None = None,
) -> ExpertSets:
    """ISE sets from routing statistics (see :func:`find_ises`).

    Examples:
        >>> from instr_interp import hexainst, run, tiny_model
        >>> (probe,) = run(tiny_model(moe=True), hexainst().sample(per_category=1),
        ...                [ExpertFiring(neurons=False)], progress=False)
        >>> sets_from_expert_stats(probe.result(), top=0.25).category_sets["math"].shape  # 2 of 2 x 4 units
        torch.Size([2, 2])
    """
    _check_weighting(weighting)
    check_fraction(top)
    n_rec, n_layers, n_exp = stats.expert_counts.shape
    k = max(1, math.floor(top * n_layers * n_exp))
    primary = stats.expert_counts if weighting == "binary" else stats.expert_weights
    secondary = stats.expert_weights if weighting == "binary" else stats.expert_counts.double()

    def pairs(flat):
        return torch.stack([flat // n_exp, flat % n_exp], 1)

    inst = {rid: pairs(_top_units(primary[r], secondary[r], k, per_layer)) for r, rid in enumerate(stats.ids)}
    cats = {}
    for cat in stats.categories:
        rows = [r for r, c in enumerate(stats.record_categories) if c == cat]
        cats[cat] = pairs(_top_units(primary[rows].sum(0), secondary[rows].sum(0), k, per_layer))
    return ExpertSets(
        instruction_sets=inst,
        category_sets=cats,
        record_categories=dict(zip(stats.ids, stats.record_categories)),
        n_layers=n_layers,
        d_mlp=n_exp,
        settings={**stats.settings, "top": top, "k": k, "weighting": weighting, "per_layer": per_layer},
    )


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
