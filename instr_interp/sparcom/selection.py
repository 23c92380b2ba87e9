"""Choosing instruction-specific neurons from firing statistics (METHODS.md section 2).

A neuron fires on a token when its gate pre-activation is positive. For an instruction, the firing
frequency of each (layer, neuron) is the share of its counted tokens (instruction + input by default)
on which it fires. ``select="top"`` keeps the top ``top`` fraction of all layers x neurons (ties at the
cut broken by ``tie_break``, a secondary key normalised within each layer, and the share each set owes
to the tie-break recorded); ``select="threshold"`` keeps every neuron at or above a firing frequency;
``select="lape"`` keeps LAPE's low-entropy neurons per category (:mod:`.lape`).
"""

import math
from collections.abc import Sequence
from typing import Literal

import torch
from jaxtyping import Float, Int, Real
from torch import Tensor

from ..checks import check_fraction
from ..engine import run
from ..hooks import is_moe
from .firing import FiringStats, NeuronFiring
from .lape import lape_sets
from .neurons import NeuronSets, _flat, _pairs

__all__ = [
    "TIE_BREAKS",
    "TieBreak",
    "category_sets_from_counts",
    "check_select",
    "check_tie_break",
    "find_isns",
    "sets_from_firing",
    "tie_decided_share",
    "tie_key",
    "top_neurons",
]

TieBreak = Literal["layer_rank", "layer_z", "raw", "index", "all"]
TIE_BREAKS = ("layer_rank", "layer_z", "raw", "index", "all")
_KEYED = ("layer_rank", "layer_z", "raw")  # tie-breaks that read a secondary key (activation, weight)


def check_tie_break(tie_break: str) -> str:
    """``tie_break`` if it is one of :data:`TIE_BREAKS`, else a ValueError naming the choices."""
    if tie_break not in TIE_BREAKS:
        raise ValueError(
            f"Unknown tie_break {tie_break!r}; choose one of {', '.join(map(repr, TIE_BREAKS))}."
        )
    return tie_break


def tie_key(key: Float[Tensor, "layer unit"], tie_break: TieBreak) -> Float[Tensor, " n"]:
    """The flat secondary key that orders units tied on firing, normalised within each layer.

    ``"layer_rank"`` (default of the selections): the unit's rank among the units of its layer by
    ``key`` (average rank for equal values), divided by the layer width — a number in (0, 1] with
    the same uniform distribution in every layer, so a layer whose raw values are larger (deep layers:
    the summed activation grows with depth) gains no advantage. ``"layer_z"``: ``(key - mean) / std``
    within the layer (0 for a layer whose values are all equal). ``"raw"``: ``key`` as it is.

    Examples:
        >>> tie_key(torch.tensor([[1.0, 3.0, 2.0], [10.0, 30.0, 30.0]]), "layer_rank").tolist()
        [0.3333333333333333, 1.0, 0.6666666666666666, 0.3333333333333333, 0.8333333333333334, 0.8333333333333334]
    """
    if key.ndim != 2:
        raise ValueError(f"The tie-break key must be [layer, unit]; got shape {tuple(key.shape)}.")
    key = key.double()
    if tie_break == "raw":
        return key.flatten()
    if tie_break == "layer_rank":
        from scipy.stats import rankdata

        ranks = rankdata(key.numpy(), method="average", axis=1) / key.shape[1]
        return torch.from_numpy(ranks).flatten()
    if tie_break == "layer_z":
        mean, std = key.mean(1, keepdim=True), key.std(1, unbiased=False, keepdim=True)
        z = torch.where(std > 0, (key - mean) / torch.where(std > 0, std, 1.0), torch.zeros_like(key))
        return z.flatten()
    raise ValueError(f"tie_break {tie_break!r} reads no key; choose one of {_KEYED}.")


def top_neurons(
    counts: Real[Tensor, "..."],
    activation: Float[Tensor, "..."] | None,
    k: int,
    tie_break: TieBreak = "layer_rank",
) -> tuple[Int[Tensor, " n"], int]:
    """Flat indices of the ``k`` most frequently firing units, and how many tied at the cut.

    Ranking: firing count (descending), then — for ``"layer_rank"``, ``"layer_z"`` or ``"raw"`` —
    the secondary key ``activation`` (``[layer, unit]``, e.g. the summed activation over the counted
    tokens) normalised by :func:`tie_key` (descending), then the flat index (ascending). ``"index"``
    skips the key (biased to early layers); ``"all"`` keeps every unit tied with the k-th (the set
    may be larger than k). Deterministic: no step depends on batching or on the sort order of equal
    floats.

    Returns:
        ``(indices, n_tied)`` where ``n_tied`` counts units whose count equals the cut count.
    """
    check_tie_break(tie_break)
    counts = counts.flatten()
    n = counts.numel()
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}.")
    order = torch.arange(n)
    if tie_break in _KEYED:
        if activation is None:
            raise ValueError(
                f"tie_break={tie_break!r} needs activation sums (NeuronFiring(activation_sums=True))."
            )
        if activation.ndim == 1:
            if tie_break != "raw":
                raise ValueError(
                    f"tie_break={tie_break!r} needs the key as [layer, unit] to normalise it per layer."
                )
            activation = activation[None]
        key = tie_key(activation, tie_break)
        order = order[torch.sort(key, descending=True, stable=True).indices]
    order = order[torch.sort(counts[order], descending=True, stable=True).indices]
    cut = counts[order[k - 1]]
    n_tied = int((counts == cut).sum())
    if tie_break == "all":
        return torch.sort(order[counts[order] >= cut]).values, n_tied
    return torch.sort(order[:k]).values, n_tied


def tie_decided_share(counts: Real[Tensor, " neuron"], chosen: Int[Tensor, " n"]) -> float:
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


Select = Literal["top", "threshold", "lape"]


def category_sets_from_counts(
    counts: Tensor,
    tokens: Tensor,
    activation: Tensor | None,
    *,
    select: Select = "top",
    top: float = 0.01,
    threshold: float | None = None,
    tie_break: TieBreak = "layer_rank",
    lape_filter: float = 0.95,
    lape_bar: float = 0.95,
) -> tuple[list[Int[Tensor, " n"]], list[int], list[float | None]]:
    """Category sets from pooled statistics: ``counts [category layer unit]`` (firing counts summed
    over each category's records; integer-valued floats are fine), ``tokens [category]`` and, for a
    keyed tie-break, ``activation [category layer unit]`` (summed activations).

    The pooled rule of :func:`sets_from_firing`, and what the bootstrap of
    :mod:`instr_interp.sparcom.uncertainty` re-applies to resampled sums.

    Returns:
        ``(sets, n_tied, decided)`` per category: flat unit indices, units tied at the cut, and the
        share decided by the tie-break (``None`` for ``threshold``, which has no cut to tie at).
    """
    n_cat, n_layers, width = counts.shape
    if select == "lape":
        sets, n_tied, decided = lape_sets(
            counts.reshape(n_cat, -1),
            tokens,
            top_rate=top,
            filter_rate=lape_filter,
            activation_bar_ratio=lape_bar,
        )
        return sets, [n_tied] * n_cat, decided
    sets, ties, decided = [], [], []
    for c in range(n_cat):
        flat_counts = counts[c].flatten()
        if select == "threshold":
            sets.append(_at_least(flat_counts, float(tokens[c]), threshold))
            ties.append(0)
            decided.append(None)
            continue
        k = max(1, math.floor(top * n_layers * width))
        flat, n_tied = top_neurons(counts[c], None if activation is None else activation[c], k, tie_break)
        sets.append(flat)
        ties.append(n_tied)
        decided.append(tie_decided_share(flat_counts, flat))
    return sets, ties, decided


def sets_from_firing(
    stats: FiringStats,
    *,
    top: float = 0.01,
    rule: Literal["pooled", "majority"] = "pooled",
    tie_break: TieBreak = "layer_rank",
    select: Select = "top",
    threshold: float | None = None,
    lape_filter: float = 0.95,
    lape_bar: float = 0.95,
) -> NeuronSets:
    """ISN sets from firing statistics (see :func:`find_isns`)."""
    if stats.counts is None:
        raise ValueError("Per-record counts are needed; run NeuronFiring(per_record=True).")
    select, threshold = check_select(select, threshold, top, rule=rule)
    check_tie_break(tie_break)
    n_rec, n_layers, d_mlp = stats.counts.shape
    k = max(1, math.floor(top * n_layers * d_mlp)) if select == "top" else None
    acts = stats.activation_sums
    keyed = select == "top" and tie_break in _KEYED
    if keyed and acts is None:
        raise ValueError(
            f"tie_break={tie_break!r} needs activation sums (NeuronFiring(activation_sums=True))."
        )
    instruction_sets, ties, decided = {}, {}, {}
    for r, rid in enumerate(stats.ids):
        if int(stats.tokens[r]) == 0:
            raise ValueError(
                f"Record {rid!r} has no counted tokens in regions {stats.settings.get('regions')}."
            )
        if select == "lape":
            continue  # LAPE contrasts categories: it defines category sets only
        if select == "threshold":
            flat, n_tied = _at_least(stats.counts[r].flatten(), int(stats.tokens[r]), threshold), 0
        else:
            flat, n_tied = top_neurons(stats.counts[r], acts[r] if keyed else None, k, tie_break)
            decided[rid] = tie_decided_share(stats.counts[r].flatten(), flat)
        instruction_sets[rid], ties[rid] = _pairs(flat, d_mlp), n_tied
    rows = [[r for r, rc in enumerate(stats.record_categories) if rc == cat] for cat in stats.categories]
    if rule == "pooled":
        pooled_acts = None
        if keyed:  # summed in record order: deterministic
            pooled_acts = torch.stack([_ordered_sum(acts, rr) for rr in rows])
        flats, n_ties, shares = category_sets_from_counts(
            stats.category_counts,
            torch.tensor([int(stats.tokens[rr].sum()) for rr in rows]),
            pooled_acts,
            select=select,
            top=top,
            threshold=threshold,
            tie_break=tie_break,
            lape_filter=lape_filter,
            lape_bar=lape_bar,
        )
    else:
        flats, n_ties, shares = [], [], []
        for rr in rows:
            votes = torch.zeros(n_layers * d_mlp, dtype=torch.int64)
            for r in rr:
                votes[_flat(instruction_sets[stats.ids[r]], d_mlp)] += 1
            flats.append((votes * 2 >= len(rr)).nonzero().flatten())
            n_ties.append(0)
            shares.append(None)
    category_sets = {}
    for cat, flat, n_tied, share in zip(stats.categories, flats, n_ties, shares):
        category_sets[cat], ties[f"category:{cat}"] = _pairs(flat, d_mlp), n_tied
        if share is not None:
            decided[f"category:{cat}"] = share
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
            "top": top if select in ("top", "lape") else None,
            "threshold": threshold,
            "k": k,
            "rule": rule,
            "tie_break": tie_break if select == "top" else None,
            "lape_filter": lape_filter if select == "lape" else None,
            "lape_bar": lape_bar if select == "lape" else None,
        },
    )


def _ordered_sum(values: Tensor, rows: list[int]) -> Tensor:
    """``values[rows].sum(0)`` added one record at a time in ``rows`` order (float64; deterministic)."""
    out = torch.zeros(values.shape[1:], dtype=torch.float64)
    for r in rows:
        out += values[r]
    return out


def check_select(
    select: str, threshold: float | None, top: float, *, rule: str = "pooled"
) -> tuple[str, float | None]:
    """Validate the selection rule before any pass: ``top`` and ``lape`` need a fraction ``top`` in
    (0, 1]; ``threshold`` needs a firing frequency ``threshold`` in (0, 1]; ``lape`` defines category
    sets by contrast, so only with ``rule="pooled"``."""
    if select not in ("top", "threshold", "lape"):
        raise ValueError(f"Unknown select {select!r}; choose 'top', 'threshold' or 'lape'.")
    if rule not in ("pooled", "majority"):
        raise ValueError(f"Unknown rule {rule!r}; choose 'pooled' or 'majority'.")
    check_fraction(top)
    if select == "threshold":
        if threshold is None:
            raise ValueError("select='threshold' needs threshold= (a firing frequency in (0, 1], e.g. 0.9).")
        check_fraction(threshold, what="threshold")
    elif threshold is not None:
        raise ValueError(f"threshold= applies to select='threshold' only; with select={select!r} use top=.")
    if select == "lape" and rule != "pooled":
        raise ValueError("select='lape' contrasts the categories' pooled counts: use rule='pooled'.")
    return select, threshold


def _at_least(counts: Tensor, tokens: float, threshold: float) -> Int[Tensor, " n"]:
    """Indices of the units firing on at least ``threshold`` of ``tokens`` counted tokens. For integer
    counts this compares in integers (``count >= ceil(threshold * tokens)``; the product is nudged
    down by 1e-9 so that e.g. 0.9 * 10 = 9.000000000000002 still asks for 9)."""
    need = max(1, math.ceil(threshold * tokens - 1e-9))
    return (counts >= need).nonzero().flatten()


def find_isns(
    model,
    data,
    *,
    top: float = 0.01,
    rule: Literal["pooled", "majority"] = "pooled",
    regions: Sequence[str] = ("instruction", "input"),
    tie_break: TieBreak = "layer_rank",
    select: Select = "top",
    threshold: float | None = None,
    lape_filter: float = 0.95,
    lape_bar: float = 0.95,
    format: str = "auto",
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
        top: fraction ε of all layers x neurons kept per set (0.01 keeps 460 of SmolLM2's 46,080);
            for ``select="lape"`` the share kept by lowest entropy (LAPE's ``top_rate``, 0.01).
        rule: category sets by ``"pooled"`` counts over all the category's tokens (default) or
            ``"majority"``: neurons in at least half of the category's instruction sets.
        regions: token regions counted (never template scaffolding or padding).
        tie_break: frequencies are multiples of 1/T so many neurons tie at the ``top`` cut. Ties are
            ranked by the summed activation over the counted tokens, normalised within each layer:
            ``"layer_rank"`` (default) its rank among the layer's neurons divided by the layer
            width, ``"layer_z"`` its z-score within the layer, ``"raw"`` unnormalised (favours deep
            layers, whose activations are larger); ``"index"`` by position (favours early layers);
            ``"all"`` keeps all tied neurons. ``NeuronSets.ties`` and ``tie_decided`` report them.
        select: ``"top"`` (default): the top ``top`` fraction of all units, ties broken by ``tie_break``;
            ``"threshold"``: every neuron firing on at least ``threshold`` of the counted tokens
            (variable-size sets, no ties to break; pooled category sets use the category's pooled
            tokens); ``"lape"``: LAPE's low-entropy rule over the categories' pooled firing
            probabilities (:mod:`instr_interp.sparcom.lape`; category sets only, the instruction sets
            are empty). Only ``"threshold"`` and ``"lape"`` let set sizes change between models.
        threshold: the firing frequency of ``select="threshold"``, in (0, 1].
        lape_filter, lape_bar: LAPE's ``filter_rate`` and ``activation_bar_ratio`` (0.95 each).
        format: the prompt format used to encode records (``"auto"``, ``"chat"``, ``"alpaca"``,
            ``"plain"``): pass one format to compare two models on the same prompts.
        keep_frequencies: also return the :class:`FiringStats` (``(sets, stats)``; MoE: ExpertStats).
        expert_denominator: MoE only: an expert neuron's firing frequency is over all counted tokens
            (``"all"``, default) or over the tokens routed to its expert (``"routed"``).

    Examples:
        >>> import instr_interp as ii
        >>> isn = find_isns(ii.tiny_model(), ii.hexainst().sample(2), top=0.05, progress=False)
        >>> isn.category_sets["code"].shape
        torch.Size([12, 2])
    """
    check_select(select, threshold, top, rule=rule)  # before the pass, not after it
    check_tie_break(tie_break)
    check_format(data, format)
    if is_moe(model):
        if select == "lape" or format != "auto":
            raise ValueError(
                "On an MoE model, find_isns supports select='top' or 'threshold' with format='auto'."
            )
        from .expert_neurons import find_expert_isns

        return find_expert_isns(
            model, data, top=top, rule=rule, regions=regions, tie_break=tie_break, select=select,
            threshold=threshold, expert_denominator=expert_denominator, batch_size=batch_size,
            padding_side=padding_side, keep_frequencies=keep_frequencies, progress=progress,
        )  # fmt: skip
    sums = select == "top" and tie_break in _KEYED
    probe = NeuronFiring(regions, per_record=True, activation_sums=sums)
    (probe,) = run(
        model,
        data,
        [probe],
        batch_size=batch_size,
        padding_side=padding_side,
        format=format,
        progress=progress,
    )
    stats = probe.result()
    sets = sets_from_firing(
        stats,
        top=top,
        rule=rule,
        tie_break=tie_break,
        select=select,
        threshold=threshold,
        lape_filter=lape_filter,
        lape_bar=lape_bar,
    )
    return (sets, stats) if keep_frequencies else sets


def check_format(data, format: str) -> None:
    """An already encoded dataset keeps its format: asking for another one is an error, not ignored."""
    from ..data.encoding import EncodedDataset

    if isinstance(data, EncodedDataset) and format != "auto" and format != data.format:
        raise ValueError(
            f"data is already encoded in format {data.format!r}; format={format!r} cannot apply. "
            "Pass the records instead, or encode them in the format wanted."
        )
