"""Choosing instruction-specific experts (ISEs) from routing statistics (METHODS.md section 2, MoE).

``select="top"`` keeps the top ``top`` fraction of all (layer, expert) units (or the top
``per_layer`` of each layer) by routing frequency, ties broken by the other routing quantity
normalised within the layer; ``select="threshold"`` keeps every expert whose frequency reaches
``threshold``. The statistics come from :class:`~instr_interp.sparcom.experts.ExpertFiring`.
"""

import math
from typing import Literal

import torch
from torch import Tensor

from ..engine import run
from ..hooks import is_moe
from ..models import model_facts
from .experts import ExpertFiring, ExpertSets, ExpertStats
from .selection import TieBreak, check_format, check_select, check_tie_break, tie_decided_share, top_neurons

__all__ = ["expert_sets_from_pooled", "find_ises", "sets_from_expert_stats"]


def _top_units(
    values: Tensor, tiebreak: Tensor, k: int, per_layer: int | None, tie_break: TieBreak
) -> tuple[Tensor, int, float]:
    """Flat indices of the top-k (or top ``per_layer`` in each layer) of ``values [layer expert]``,
    ties by ``tiebreak [layer expert]`` (normalised within the layer per ``tie_break``); with the
    units tied at the cut (summed over layers for ``per_layer``) and the share decided by the tie-break."""
    n_layers, width = values.shape
    if per_layer is None:
        flat, n_tied = top_neurons(values, tiebreak, k, tie_break)
        return flat, n_tied, tie_decided_share(values.flatten(), flat)
    picks, tied, decided = [], 0, 0.0
    for layer in range(n_layers):
        # within one layer every normalisation orders like the raw key
        key = "raw" if tie_break in ("layer_rank", "layer_z") else tie_break
        flat, n_tied = top_neurons(values[layer], tiebreak[layer], per_layer, key)
        picks.append(flat + layer * width)
        tied += n_tied
        decided += tie_decided_share(values[layer], flat) * len(flat)
    flat = torch.cat(picks)
    return flat, tied, decided / max(len(flat), 1)


def find_ises(
    model,
    data,
    *,
    top: float = 0.1,
    weighting: Literal["binary", "weight"] = "binary",
    per_layer: int | None = None,
    select: Literal["top", "threshold"] = "top",
    threshold: float | None = None,
    tie_break: TieBreak = "layer_rank",
    regions=("instruction", "input"),
    format: str = "auto",
    batch_size: int = 16,
    padding_side: str = "right",
    neurons: bool = True,
    progress: bool = True,
    keep_stats: bool = False,
):
    """Instruction-specific experts per instruction and per category (pooled counts).

    ``select="top"`` (default) ranks (layer, expert) units by routing frequency over the counted
    tokens (``weighting="binary"``) or by their summed routing weight (``"weight"``); ties by the
    other quantity normalised within the layer (``tie_break``, as in :func:`find_isns`), then by
    index. With few experts use a larger ``top`` or ``per_layer=m`` (the top m experts of every
    layer). ``select="threshold"`` keeps every expert whose frequency f_ej (share of counted tokens
    routed to it, or its mean routing weight per counted token) is at least ``threshold``
    (variable-size sets). ``format`` is the prompt format used to encode records.

    Returns:
        :class:`ExpertSets`, or ``(ExpertSets, ExpertStats)`` with ``keep_stats``.
    """
    _check_weighting(weighting)  # before the pass, not after it
    _check_expert_select(select, threshold, top, per_layer)
    check_tie_break(tie_break)
    check_format(data, format)
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
        format=format,
        progress=progress,
    )
    stats = probe.result()
    sets = sets_from_expert_stats(
        stats,
        top=top,
        weighting=weighting,
        per_layer=per_layer,
        select=select,
        threshold=threshold,
        tie_break=tie_break,
    )
    return (sets, stats) if keep_stats else sets


def _check_weighting(weighting: str) -> None:
    if weighting not in ("binary", "weight"):
        raise ValueError(f"Unknown weighting {weighting!r}; choose 'binary' or 'weight'.")


def _check_expert_select(select: str, threshold: float | None, top: float, per_layer: int | None) -> None:
    if select == "lape":
        raise ValueError(
            "select='lape' applies to neurons (find_isns); for experts choose 'top' or 'threshold'."
        )
    check_select(select, threshold, top)
    if select == "threshold" and per_layer is not None:
        raise ValueError("per_layer= applies to select='top' only.")


def expert_sets_from_pooled(
    primary: Tensor,
    secondary: Tensor,
    tokens: Tensor,
    *,
    select: Literal["top", "threshold"] = "top",
    top: float = 0.1,
    threshold: float | None = None,
    per_layer: int | None = None,
    tie_break: TieBreak = "layer_rank",
) -> tuple[Tensor, int, float | None]:
    """One set from summed routing statistics: ``primary [layer expert]`` (routed tokens or summed
    weights), ``secondary`` (the other one, the tie-break key) and the counted ``tokens``; returns
    ``(flat indices, units tied at the cut, share decided by the tie-break or None)``."""
    n_layers, n_exp = primary.shape
    if select == "threshold":
        need = threshold * float(tokens) - 1e-9  # f = primary / tokens >= threshold, without dividing
        return (primary.flatten() >= need).nonzero().flatten(), 0, None
    k = max(1, math.floor(top * n_layers * n_exp))
    return _top_units(primary, secondary, k, per_layer, tie_break)


def sets_from_expert_stats(
    stats: ExpertStats,
    *,
    top: float = 0.1,
    weighting: Literal["binary", "weight"] = "binary",
    per_layer: int | None = None,
    select: Literal["top", "threshold"] = "top",
    threshold: float | None = None,
    tie_break: TieBreak = "layer_rank",
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
    _check_expert_select(select, threshold, top, per_layer)
    check_tie_break(tie_break)
    n_rec, n_layers, n_exp = stats.expert_counts.shape
    k = max(1, math.floor(top * n_layers * n_exp)) if select == "top" else None
    primary = stats.expert_counts if weighting == "binary" else stats.expert_weights
    secondary = stats.expert_weights if weighting == "binary" else stats.expert_counts.double()
    options = dict(select=select, top=top, threshold=threshold, per_layer=per_layer, tie_break=tie_break)

    def pairs(flat):
        return torch.stack([flat // n_exp, flat % n_exp], 1)

    inst, ties, decided = {}, {}, {}
    for r, rid in enumerate(stats.ids):
        flat, ties[rid], share = expert_sets_from_pooled(primary[r], secondary[r], stats.tokens[r], **options)
        inst[rid] = pairs(flat)
        if share is not None:
            decided[rid] = share
    cats = {}
    for cat in stats.categories:
        rows = [r for r, c in enumerate(stats.record_categories) if c == cat]
        flat, ties[f"category:{cat}"], share = expert_sets_from_pooled(
            primary[rows].sum(0), secondary[rows].sum(0), stats.tokens[rows].sum(), **options
        )
        cats[cat] = pairs(flat)
        if share is not None:
            decided[f"category:{cat}"] = share
    return ExpertSets(
        instruction_sets=inst,
        category_sets=cats,
        record_categories=dict(zip(stats.ids, stats.record_categories)),
        n_layers=n_layers,
        d_mlp=n_exp,
        ties=ties,
        tie_decided=decided,
        settings={
            **stats.settings,
            "select": select,
            "top": top if select == "top" else None,
            "threshold": threshold,
            "k": k,
            "weighting": weighting,
            "per_layer": per_layer,
            "tie_break": tie_break if select == "top" else None,
        },
    )
