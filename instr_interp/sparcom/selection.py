"""Choosing instruction-specific neurons from firing statistics (METHODS.md section 2).

A neuron fires on a token when its gate pre-activation is positive. For an instruction, the firing
frequency of each (layer, neuron) is the share of its counted tokens (instruction + input by default)
on which it fires. ``select="top"`` keeps the top ``top`` fraction of all layers x neurons (ties at the
cut broken by ``tie_break``, and the share each set owes to the tie-break recorded);
``select="threshold"`` keeps every neuron at or above a firing frequency.
"""

import math
from collections.abc import Sequence
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..checks import check_fraction
from ..engine import run
from ..hooks import is_moe
from .firing import FiringStats, NeuronFiring
from .neurons import NeuronSets, _flat, _pairs

__all__ = ["TieBreak", "find_isns", "sets_from_firing", "tie_decided_share", "top_neurons"]

TieBreak = Literal["activation", "all", "index"]


def top_neurons(
    counts: Int[Tensor, " neuron"],
    activation: Float[Tensor, " neuron"] | None,
    k: int,
    tie_break: TieBreak = "activation",
) -> tuple[Int[Tensor, " n"], int]:
    """Indices of the ``k`` most frequently firing neurons, and how many tied at the cut.

    Ranking: firing count (descending), then — for ``tie_break="activation"`` — the summed
    activation over the counted tokens (descending), then the index (ascending). ``"index"``
    skips the activation key; ``"all"`` keeps every neuron tied with the k-th (the set may be
    larger than k). Deterministic: no step depends on batching or sort stability of equal floats.

    Returns:
        ``(indices, n_tied)`` where ``n_tied`` counts neurons whose count equals the cut count.
    """
    n = counts.numel()
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}.")
    order = torch.arange(n)
    if tie_break == "activation":
        if activation is None:
            raise ValueError(
                "tie_break='activation' needs activation sums (NeuronFiring(activation_sums=True))."
            )
        order = order[torch.sort(activation[order], descending=True, stable=True).indices]
    elif tie_break not in ("all", "index"):
        raise ValueError(f"Unknown tie_break {tie_break!r}; choose 'activation', 'all' or 'index'.")
    order = order[torch.sort(counts[order], descending=True, stable=True).indices]
    cut = counts[order[k - 1]]
    n_tied = int((counts == cut).sum())
    if tie_break == "all":
        return torch.sort(order[counts[order] >= cut]).values, n_tied
    return torch.sort(order[:k]).values, n_tied


def tie_decided_share(counts: Int[Tensor, " neuron"], chosen: Int[Tensor, " n"]) -> float:
    """Share of a top-k set decided by the tie-break: members at the cut count when some neurons with
    that count were left out (0 when every tied neuron is in the set, or the set is empty).

    Examples:
        >>> counts = torch.tensor([5, 4, 4, 4, 1])
        >>> tie_decided_share(counts, torch.tensor([0, 1]))  # 0 is above the cut; 1 beat 2 and 3 on the key
        0.5
        >>> tie_decided_share(counts, torch.tensor([0, 1, 2, 3]))  # all tied neurons kept
        0.0
    """
    if chosen.numel() == 0:
        return 0.0
    picked = counts[chosen]
    cut = picked.min()
    at_cut = int((picked == cut).sum())
    left_out = int((counts == cut).sum()) - at_cut
    return at_cut / chosen.numel() if left_out > 0 else 0.0


def sets_from_firing(
    stats: FiringStats,
    *,
    top: float = 0.01,
    rule: Literal["pooled", "majority"] = "pooled",
    tie_break: TieBreak = "activation",
    select: Literal["top", "threshold"] = "top",
    threshold: float | None = None,
) -> NeuronSets:
    """ISN sets from firing statistics (see :func:`find_isns`)."""
    if stats.counts is None:
        raise ValueError("Per-record counts are needed; run NeuronFiring(per_record=True).")
    select, threshold = _check_select(select, threshold, top)
    if rule not in ("pooled", "majority"):
        raise ValueError(f"Unknown rule {rule!r}; choose 'pooled' or 'majority'.")
    n_rec, n_layers, d_mlp = stats.counts.shape
    k = max(1, math.floor(top * n_layers * d_mlp)) if select == "top" else None
    acts = stats.activation_sums
    instruction_sets, ties, decided = {}, {}, {}
    for r, rid in enumerate(stats.ids):
        if int(stats.tokens[r]) == 0:
            raise ValueError(
                f"Record {rid!r} has no counted tokens in regions {stats.settings.get('regions')}."
            )
        if select == "threshold":
            flat, n_tied = _at_least(stats.counts[r].flatten(), int(stats.tokens[r]), threshold), 0
        else:
            flat, n_tied = top_neurons(
                stats.counts[r].flatten(), None if acts is None else acts[r].flatten(), k, tie_break
            )
            decided[rid] = tie_decided_share(stats.counts[r].flatten(), flat)
        instruction_sets[rid], ties[rid] = _pairs(flat, d_mlp), n_tied
    category_sets = {}
    for c, cat in enumerate(stats.categories):
        rows = [r for r, rc in enumerate(stats.record_categories) if rc == cat]
        if rule == "pooled" and select == "threshold":
            total = int(sum(int(stats.tokens[r]) for r in rows))
            flat, n_tied = _at_least(stats.category_counts[c].flatten(), total, threshold), 0
        elif rule == "pooled":
            act = None
            if acts is not None:  # summed in record order: deterministic
                act = torch.zeros(n_layers * d_mlp, dtype=torch.float64)
                for r in rows:
                    act += acts[r].flatten()
            flat, n_tied = top_neurons(stats.category_counts[c].flatten(), act, k, tie_break)
            decided[f"category:{cat}"] = tie_decided_share(stats.category_counts[c].flatten(), flat)
        else:
            votes = torch.zeros(n_layers * d_mlp, dtype=torch.int64)
            for r in rows:
                votes[_flat(instruction_sets[stats.ids[r]], d_mlp)] += 1
            flat, n_tied = (votes * 2 >= len(rows)).nonzero().flatten(), 0
        category_sets[cat], ties[f"category:{cat}"] = _pairs(flat, d_mlp), n_tied
    return NeuronSets(
        instruction_sets=instruction_sets,
        category_sets=category_sets,
        record_categories=dict(zip(stats.ids, stats.record_categories)),
        n_layers=n_layers,
        d_mlp=d_mlp,
        ties=ties,
        tie_decided=decided,
        settings={
            **stats.settings,
            "select": select,
            "top": top if select == "top" else None,
            "threshold": threshold,
            "k": k,
            "rule": rule,
            "tie_break": tie_break if select == "top" else None,
        },
    )


def _check_select(select: str, threshold: float | None, top: float) -> tuple[str, float | None]:
    """Validate the selection rule before any pass: ``top`` needs a fraction ``top`` in (0, 1];
    ``threshold`` needs a firing frequency ``threshold`` in (0, 1]."""
    if select not in ("top", "threshold"):
        raise ValueError(f"Unknown select {select!r}; choose 'top' or 'threshold'.")
    check_fraction(top)
    if select == "threshold":
        if threshold is None:
            raise ValueError("select='threshold' needs threshold= (a firing frequency in (0, 1], e.g. 0.9).")
        check_fraction(threshold, what="threshold")
    elif threshold is not None:
        raise ValueError("threshold= applies to select='threshold' only; with select='top' use top=.")
    return select, threshold


def _at_least(counts: Int[Tensor, " neuron"], tokens: int, threshold: float) -> Int[Tensor, " n"]:
    """Indices of the neurons firing on at least ``threshold`` of ``tokens`` counted tokens, compared
    in integers (``count >= ceil(threshold * tokens)``; the product is nudged down by 1e-9 so that e.g.
    0.9 * 10 = 9.000000000000002 still asks for 9)."""
    need = max(1, math.ceil(threshold * tokens - 1e-9))
    return (counts >= need).nonzero().flatten()


def find_isns(
    model,
    data,
    *,
    top: float = 0.01,
    rule: Literal["pooled", "majority"] = "pooled",
    regions: Sequence[str] = ("instruction", "input"),
    tie_break: TieBreak = "activation",
    select: Literal["top", "threshold"] = "top",
    threshold: float | None = None,
    batch_size: int = 16,
    padding_side: str = "right",
    keep_frequencies: bool = False,
    progress: bool = True,
    expert_denominator: str = "all",
):
    """Find instruction-specific neurons per instruction and per category.

    Args:
        model: a hooked model. MoE models (any router): units ``(layer, expert, neuron)``, see
            :func:`~instr_interp.sparcom.expert_neurons.find_expert_isns`.
        data: records (an :class:`InstructionDataset`, a path, ...) or an encoded dataset.
        top: fraction ε of all layers x neurons kept per set (0.01 keeps 460 of SmolLM2's 46,080).
        rule: category sets by ``"pooled"`` counts over all the category's tokens (default) or
            ``"majority"``: neurons in at least half of the category's instruction sets.
        regions: token regions counted (never template scaffolding or padding).
        tie_break: frequencies are multiples of 1/T so many neurons tie at the cut. ``"activation"``
            (default) ranks ties by their summed activation, ``"index"`` by position (biased to
            early layers), ``"all"`` keeps all tied neurons. ``NeuronSets.ties`` reports the counts.
        select: ``"top"`` (default): the top ``top`` fraction of all units, ties broken by ``tie_break``;
            ``"threshold"``: every neuron firing on at least ``threshold`` of the counted tokens
            (variable-size sets, no ties to break; pooled category sets use the category's pooled
            tokens). Only ``"threshold"`` lets set sizes change between models.
        threshold: the firing frequency of ``select="threshold"``, in (0, 1].
        keep_frequencies: also return the :class:`FiringStats` (``(sets, stats)``; MoE: ExpertStats).
        expert_denominator: MoE only: an expert neuron's firing frequency is over all counted tokens
            (``"all"``, default) or over the tokens routed to its expert (``"routed"``).

    Examples:
        >>> import instr_interp as ii
        >>> isn = find_isns(ii.tiny_model(), ii.hexainst().sample(2), top=0.05, progress=False)
        >>> isn.category_sets["code"].shape
        torch.Size([12, 2])
    """
    if is_moe(model):
        from .expert_neurons import find_expert_isns

        return find_expert_isns(
            model, data, top=top, rule=rule, regions=regions, tie_break=tie_break, select=select,
            threshold=threshold, expert_denominator=expert_denominator, batch_size=batch_size,
            padding_side=padding_side, keep_frequencies=keep_frequencies, progress=progress,
        )  # fmt: skip
    _check_select(select, threshold, top)  # before the pass, not after it
    sums = select == "top" and tie_break == "activation"
    probe = NeuronFiring(regions, per_record=True, activation_sums=sums)
    (probe,) = run(model, data, [probe], batch_size=batch_size, padding_side=padding_side, progress=progress)
    stats = probe.result()
    sets = sets_from_firing(
        stats, top=top, rule=rule, tie_break=tie_break, select=select, threshold=threshold
    )
    return (sets, stats) if keep_frequencies else sets
