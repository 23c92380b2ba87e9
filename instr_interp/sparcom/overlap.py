"""Overlap statistics that respect the design (METHODS.md section 3; issue 14, item 4).

Is the instruction-set overlap of same-category pairs larger than that of cross-category pairs? Two
features of instruction data inflate the plain label-shuffling test: counted-token length (short
instructions fire more neurons at frequency 1, so their top sets look alike, and categories differ
in length) and templates (records sharing an instruction text overlap almost completely).
:func:`overlap_test` therefore

- permutes category labels only within strata of similar length (quantile bins of the counted
  tokens, ``n_bins``), so the null keeps each category's length make-up;
- with ``groups`` (record id -> template group, e.g. ``data.template_groups()``), permutes whole
  groups (every record of a group keeps one label) and leaves pairs inside one group out of the
  statistic (``within_group="exclude"``), since they are near-duplicates, not independent pairs;
- gives per-category same/cross overlap and every cell of the category x category table with a
  bootstrap interval (records, or whole groups, resampled within each category).

Overlap of a pair is the Jaccard of the two instruction sets; a mean "over pairs" pools all
eligible pairs (i != j, and not in one group when excluded).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..results import Result
from ..stats import percentile_interval
from .neurons import NeuronSets
from .resample import _check_count, bootstrap_weights

__all__ = ["OverlapTest", "counted_tokens", "overlap_test"]


def counted_tokens(stats) -> dict[str, int]:
    """Record id -> counted tokens, from :class:`FiringStats` or :class:`ExpertStats`."""
    return {rid: int(t) for rid, t in zip(stats.ids, stats.tokens.tolist())}


@dataclass(kw_only=True, repr=False)
class OverlapTest(Result):
    """A stratified permutation test of same- vs cross-category overlap, with bootstrap intervals.

    ``test``: one row — ``statistic`` (mean same-category minus mean cross-category Jaccard over
    pairs), ``null_mean`` (its mean under the stratified permutations), ``excess`` (statistic -
    null_mean: what length and template structure do not explain), one-sided ``p_value``,
    ``min_p`` (the smallest p-value the permutation count allows), ``n_permutations``, ``n_strata``,
    ``n_units`` (records or groups permuted), ``note`` (why the test is undefined, else empty).
    ``per_category``: ``same``, ``cross``, ``excess`` (same - cross) with bootstrap intervals, the
    permutation ``null_excess`` and ``p_value`` per category. ``cells``: every (row, column) cell
    of the overlap table with its interval.
    """

    test: pd.DataFrame
    per_category: pd.DataFrame
    cells: pd.DataFrame
    settings: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """Per category: same/cross overlap and their difference with intervals, and the p-value."""
        return self.per_category.copy()

    def table(self) -> pd.DataFrame:
        """The category x category overlap table (point values) from ``cells``."""
        return self.cells.pivot(index="row", columns="column", values="jaccard")

    def plot(self):
        """Plotly: same-category minus cross-category overlap per category, with bootstrap intervals."""
        import plotly.express as px

        f = self.per_category.assign(
            plus=self.per_category["excess_high"] - self.per_category["excess"],
            minus=self.per_category["excess"] - self.per_category["excess_low"],
        )
        fig = px.bar(
            f,
            x="category",
            y="excess",
            error_y="plus",
            error_y_minus="minus",
            title="Same- minus cross-category overlap (Jaccard), with bootstrap intervals",
        )
        return fig

    def _facts(self) -> dict[str, object]:
        t = self.test.iloc[0]
        return {
            "statistic": f"{t['statistic']:.3f} (null mean {t['null_mean']:.3f}, p {t['p_value']:.3g})",
            "design": f"{int(t['n_strata'])} length strata, {int(t['n_units'])} units"
            + (", template groups" if self.settings.get("grouped") else ""),
        }

    def _saved(self):
        frames = ("test", "per_category", "cells")
        return {}, {k: getattr(self, k).to_dict("list") for k in frames} | {"settings": self.settings}

    @classmethod
    def _from_saved(cls, tensors, meta, path) -> "OverlapTest":
        return cls(
            **{k: pd.DataFrame(meta[k]) for k in ("test", "per_category", "cells")}, settings=meta["settings"]
        )


def _ratio(num, den) -> np.ndarray:
    """num / den where den > 0, NaN elsewhere (never a division by 0)."""
    out = np.full(np.shape(num), np.nan)
    np.divide(num, den, out=out, where=np.asarray(den) > 0)
    return out


def _sums(jac_pairs: np.ndarray, pairs: np.ndarray, member: np.ndarray):
    """Category x category sums of Jaccard and pair counts for (weighted) membership ``[record cat]``."""
    return member.T @ jac_pairs @ member, member.T @ pairs @ member


def _stats(s: np.ndarray, n: np.ndarray):
    """(overall same - cross, per-category same, cross) from the sums."""
    same_all = _ratio(np.trace(s), np.trace(n))
    cross_all = _ratio(s.sum() - np.trace(s), n.sum() - np.trace(n))
    same = _ratio(np.diag(s), np.diag(n))
    cross = _ratio(s.sum(1) - np.diag(s), n.sum(1) - np.diag(n))
    return float(same_all - cross_all), same, cross


def overlap_test(
    sets: NeuronSets,
    tokens: Mapping[str, int],
    *,
    groups: Mapping[str, object] | None = None,
    n_bins: int = 4,
    within_group: str = "exclude",
    n_permutations: int = 1000,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> OverlapTest:
    """Same- vs cross-category overlap of instruction sets, permuting labels within length strata
    (and whole template groups), with bootstrap intervals per category and per cell.

    Args:
        sets: :class:`NeuronSets` or ``ExpertSets`` with instruction sets.
        tokens: record id -> counted tokens (:func:`counted_tokens` of the firing statistics).
        groups: record id -> template group (``data.template_groups()``); None: every record alone.
        n_bins: quantile bins of counted tokens that labels are permuted within (1: no stratification).
        within_group: ``"exclude"`` (default) leaves pairs of one template group out of every mean;
            ``"keep"`` counts them.
    """
    ids = list(sets.instruction_sets)
    if not ids:
        raise ValueError("The sets have no instruction sets (select='lape' defines category sets only).")
    _check_count(n_bins, "n_bins")
    _check_count(n_permutations, "n_permutations")
    _check_count(n_boot, "n_boot")
    if within_group not in ("exclude", "keep"):
        raise ValueError(f"within_group must be 'exclude' or 'keep', got {within_group!r}.")
    missing = [i for i in ids if i not in tokens]
    if missing:
        raise ValueError(f"tokens has no count for {len(missing)} record(s), e.g. {missing[:3]}.")
    cats = sets.categories
    labels = np.array([cats.index(sets.record_categories[i]) for i in ids])
    group = np.array([i if groups is None else groups.get(i, None) for i in ids], dtype=object)
    if any(g is None for g in group):
        raise ValueError("groups has no entry for some records; give every record a group.")
    # units permuted as a whole: groups (one category each) or records
    units: dict[object, list[int]] = {}
    for r, g in enumerate(group):
        units.setdefault(g, []).append(r)
    unit_members = list(units.values())
    unit_label = []
    for members in unit_members:
        found = set(labels[members].tolist())
        if len(found) > 1:
            raise ValueError(
                f"A group holds records of several categories ({[cats[c] for c in found]}); groups are "
                "permuted as a whole, so each must lie in one category."
            )
        unit_label.append(found.pop())
    unit_label = np.array(unit_label)
    unit_length = np.array([np.median([tokens[ids[r]] for r in m]) for m in unit_members])
    strata = (
        np.zeros(len(unit_members), dtype=int)
        if n_bins == 1
        else pd.qcut(
            pd.Series(unit_length).rank(method="first"), q=min(n_bins, len(unit_members)), labels=False
        )
        .to_numpy()
        .astype(int)
    )
    jac = sets.pairwise_jaccard().numpy()
    pairs = ~np.eye(len(ids), dtype=bool)
    if groups is not None and within_group == "exclude":
        pairs &= group[:, None] != group[None, :]
    pairs = pairs.astype(float)
    jp = jac * pairs

    def onehot(lab, weight=None):
        m = np.zeros((len(ids), len(cats)))
        m[np.arange(len(ids)), lab] = 1 if weight is None else weight
        return m

    s, n = _sums(jp, pairs, onehot(labels))
    observed, same, cross = _stats(s, n)
    note = ""
    if np.isnan(observed):
        note = "undefined: no same-category or no cross-category pair is left to compare"
    rng = np.random.default_rng(seed)
    null, null_cat = np.empty(n_permutations), np.empty((n_permutations, len(cats)))
    for p in range(n_permutations):
        perm = unit_label.copy()
        for stratum in np.unique(strata):
            where = np.flatnonzero(strata == stratum)
            perm[where] = unit_label[rng.permutation(where)]
        lab = np.empty(len(ids), dtype=int)
        for members, c in zip(unit_members, perm):
            lab[members] = c
        null[p], ps, pc = _stats(*_sums(jp, pairs, onehot(lab)))
        null_cat[p] = ps - pc
    excess_cat = same - cross

    def p_of(obs, draws):
        if np.isnan(obs):
            return float("nan")
        return float((1 + np.sum(draws >= obs - 1e-12)) / (1 + len(draws)))

    # bootstrap: records (or whole groups) resampled within each category
    boot = bootstrap_weights(ids, [cats[c] for c in labels], n_boot, seed=seed + 1, groups=groups)
    b_same, b_cross, b_cells = [], [], []
    for w in boot:
        bs, bn = _sums(jp, pairs, onehot(labels, w))
        _, ps, pc = _stats(bs, bn)
        b_same.append(ps)
        b_cross.append(pc)
        b_cells.append(_ratio(bs, bn))
    b_same, b_cross, b_cells = map(np.asarray, (b_same, b_cross, b_cells))
    ci = lambda v: percentile_interval(v, confidence)  # noqa: E731
    rows = []
    for c, cat in enumerate(cats):
        row = {"category": cat, "n_records": int((labels == c).sum())}
        for key, point, draws in (
            ("same", same[c], b_same[:, c]),
            ("cross", cross[c], b_cross[:, c]),
            ("excess", excess_cat[c], b_same[:, c] - b_cross[:, c]),
        ):
            ok = draws[~np.isnan(draws)]
            low, high = ci(ok) if len(ok) else (np.nan, np.nan)
            row |= {key: float(point), f"{key}_low": float(low), f"{key}_high": float(high)}
        row |= {
            "null_excess": float(np.nanmean(null_cat[:, c])),
            "p_value": p_of(excess_cat[c], null_cat[:, c]),
        }
        rows.append(row)
    point_cells = _ratio(s, n)
    cell_rows = []
    for a, ca in enumerate(cats):
        for b, cb in enumerate(cats):
            draws = b_cells[:, a, b]
            ok = draws[~np.isnan(draws)]
            low, high = ci(ok) if len(ok) else (np.nan, np.nan)
            cell_rows.append(
                {
                    "row": ca,
                    "column": cb,
                    "jaccard": float(point_cells[a, b]),
                    "low": float(low),
                    "high": float(high),
                }
            )
    test = {
        "statistic": observed,
        "null_mean": float(np.nanmean(null)) if not note else float("nan"),
        "excess": observed - float(np.nanmean(null)) if not note else float("nan"),
        "p_value": p_of(observed, null),
        "min_p": 1 / (1 + n_permutations),
        "n_permutations": n_permutations,
        "n_strata": int(len(np.unique(strata))),
        "n_units": len(unit_members),
        "note": note,
    }
    return OverlapTest(
        test=pd.DataFrame([test]),
        per_category=pd.DataFrame(rows),
        cells=pd.DataFrame(cell_rows),
        settings={
            **{k: sets.settings.get(k) for k in ("model", "select", "top", "threshold", "tie_break")},
            "kind": type(sets).__name__,
            "n_bins": n_bins,
            "grouped": groups is not None,
            "within_group": within_group,
            "n_boot": n_boot,
            "confidence": confidence,
            "seed": seed,
        },
    )
