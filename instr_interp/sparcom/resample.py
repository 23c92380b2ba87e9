"""Resampling records for intervals and noise floors, without re-running the model.

Firing statistics are sums over records (:class:`FiringStats` keeps per-record counts, tokens and
activation sums), so a bootstrap replicate or a half of the records is a vector of record weights
(how often each record is drawn, or 0/1), and a replicate's category sets are the selection rule
re-applied to weighted sums (:func:`weighted_category_sets`). Records that share a template (an
instruction text, see :func:`instr_interp.data.dataset.template_groups`) can be resampled as one
cluster (``groups=``), so near-duplicates never land on both sides of a split.
"""

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from .firing import FiringStats
from .selection import _KEYED, category_sets_from_counts, check_select, check_tie_break, sets_from_firing

__all__ = ["bootstrap_weights", "split_weights", "weighted_category_sets"]


def _clusters(ids: Sequence[str], categories: Sequence[str], groups: Mapping[str, object] | None):
    """Per category (in first-seen order): a list of clusters, each a list of record indices."""
    out: dict[str, dict[object, list[int]]] = {}
    for r, (rid, cat) in enumerate(zip(ids, categories)):
        key = rid if groups is None else groups.get(rid)
        if key is None:
            raise ValueError(f"groups has no entry for record {rid!r}; give every record a group.")
        out.setdefault(cat, {}).setdefault(key, []).append(r)
    return {cat: list(by_key.values()) for cat, by_key in out.items()}


def bootstrap_weights(
    ids: Sequence[str],
    categories: Sequence[str],
    n_boot: int,
    *,
    seed: int = 0,
    groups: Mapping[str, object] | None = None,
) -> np.ndarray:
    """``[n_boot, record]`` multiplicities of a bootstrap stratified by category: each category draws as
    many clusters (records, or template groups with ``groups``) as it has, with replacement.

    Examples:
        >>> w = bootstrap_weights(["a", "b", "c"], ["x", "x", "y"], 4, seed=0)
        >>> w.shape, w[:, :2].sum(1).tolist(), w[:, 2].tolist()
        ((4, 3), [2.0, 2.0, 2.0, 2.0], [1.0, 1.0, 1.0, 1.0])
    """
    _check_count(n_boot, "n_boot")
    rng = np.random.default_rng(seed)
    out = np.zeros((n_boot, len(ids)))
    for clusters in _clusters(ids, categories, groups).values():
        draws = rng.integers(0, len(clusters), size=(n_boot, len(clusters)))
        for j, members in enumerate(clusters):
            out[:, members] += (draws == j).sum(1)[:, None]
    return out


def split_weights(
    ids: Sequence[str],
    categories: Sequence[str],
    n_splits: int,
    *,
    seed: int = 0,
    groups: Mapping[str, object] | None = None,
) -> np.ndarray:
    """``[n_splits, record]`` 0/1 membership of the first half of random split-halves: within each
    category the clusters are shuffled and the first ones (up to half the records) go to the first
    half, the rest to the second (both halves are non-empty); the complement ``1 - w`` is the second half.

    Raises:
        ValueError: a category with fewer than 2 clusters cannot be split.
    """
    _check_count(n_splits, "n_splits")
    rng = np.random.default_rng(seed)
    out = np.zeros((n_splits, len(ids)))
    for cat, clusters in _clusters(ids, categories, groups).items():
        if len(clusters) < 2:
            raise ValueError(f"Category {cat!r} has {len(clusters)} record group(s); a split-half needs 2.")
        total = sum(len(c) for c in clusters)
        for s in range(n_splits):
            count = 0
            for j in rng.permutation(len(clusters)):
                if count == 0 or count + len(clusters[j]) <= total / 2:
                    out[s, clusters[j]] = 1
                    count += len(clusters[j])
    return out


def _check_count(n, what: str) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{what} must be a positive integer, got {n!r}.")


def weighted_category_sets(
    stats: FiringStats,
    weights: np.ndarray,
    *,
    select: str = "top",
    top: float = 0.01,
    threshold: float | None = None,
    tie_break: str = "layer_rank",
    rule: str = "pooled",
    lape_filter: float = 0.95,
    lape_bar: float = 0.95,
    chunk: int = 32,
) -> list[list[Tensor]]:
    """For each row of ``weights [replicate, record]``: the category sets (flat unit indices, in
    ``stats.categories`` order) that the rule gives on the records weighted so (``rule="pooled"``:
    weighted sums of counts, tokens and activation sums; ``"majority"``: weighted votes of the
    instruction sets). With all weights 1 this is :func:`sets_from_firing`'s category sets.
    """
    if stats.counts is None:
        raise ValueError("Per-record counts are needed; run NeuronFiring(per_record=True).")
    check_select(select, threshold, top, rule=rule)
    check_tie_break(tie_break)
    weights = np.asarray(weights, dtype=np.float64)
    n_rec, n_layers, width = stats.counts.shape
    if weights.ndim != 2 or weights.shape[1] != n_rec:
        raise ValueError(f"weights must be [replicate, {n_rec}]; got {weights.shape}.")
    rows = [[r for r, c in enumerate(stats.record_categories) if c == cat] for cat in stats.categories]
    rule_args = dict(select=select, top=top, threshold=threshold, tie_break=tie_break)
    if rule == "majority":
        sets = sets_from_firing(stats, rule="pooled", **rule_args)  # its instruction sets
        member = torch.zeros(n_rec, n_layers * width, dtype=torch.float32)
        for r, rid in enumerate(stats.ids):
            member[r, sets.flat(sets.instruction_sets[rid])] = 1
        out = []
        for w in torch.from_numpy(weights).float():
            out.append([(2 * (w[rr] @ member[rr]) >= w[rr].sum()).nonzero().flatten() for rr in rows])
        return out
    keyed = select == "top" and tie_break in _KEYED
    if keyed and stats.activation_sums is None:
        raise ValueError(
            f"tie_break={tie_break!r} needs activation sums (NeuronFiring(activation_sums=True))."
        )
    counts = [stats.counts[rr].reshape(len(rr), -1).float() for rr in rows]  # exact integer sums < 2**24
    acts = [stats.activation_sums[rr].reshape(len(rr), -1) for rr in rows] if keyed else None
    tokens = stats.tokens.double()
    out = []
    for start in range(0, len(weights), chunk):
        w64 = torch.from_numpy(weights[start : start + chunk])
        pooled = torch.stack([w64[:, rr].float() @ c for rr, c in zip(rows, counts)], 1)  # [b cat unit]
        pooled_tokens = torch.stack([w64[:, rr] @ tokens[rr] for rr in rows], 1)
        pooled_acts = torch.stack([w64[:, rr] @ a for rr, a in zip(rows, acts)], 1) if keyed else None
        for b in range(len(w64)):
            if bool((pooled_tokens[b] <= 0).any()):
                raise ValueError("A category has no counted tokens in a resample (all its weights are 0).")
            sets, _, _ = category_sets_from_counts(
                pooled[b].double().reshape(-1, n_layers, width),
                pooled_tokens[b],
                None if pooled_acts is None else pooled_acts[b].reshape(-1, n_layers, width),
                lape_filter=lape_filter,
                lape_bar=lape_bar,
                **rule_args,
            )
            out.append(sets)
    return out
