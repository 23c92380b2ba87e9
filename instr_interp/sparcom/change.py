"""Before vs after fine-tuning with error bars: bootstrap intervals over records for set sizes,
kept units, Jaccard and per-layer counts, a split-half noise floor of each model with itself, and
which differences exceed the noise (METHODS.md section 4). Re-uses the per-record firing statistics
(:mod:`instr_interp.sparcom.resample`); no forward pass is repeated."""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ..results import Result

__all__ = ["SetChange", "compare_with_intervals"]


# ------------------------------------------------------------------------------------------------
# Before vs after with intervals and a noise floor


@dataclass(kw_only=True, repr=False)
class SetChange(Result):
    """Before vs after with bootstrap intervals (over records) and a split-half noise floor.

    Frames (``*_low``/``*_high``: the percentile interval of the bootstrap, or of the random splits):

    - ``summary``: per category, set sizes ``before``/``after``, ``change`` (after - before), ``kept``
      (units in both) and ``jaccard``, each with an interval;
    - ``layers``: per category and layer, ``before``/``after``/``delta`` with intervals;
    - ``noise``: per category, split-half Jaccard of each model with itself (``floor_before``,
      ``floor_after``) and between the models at the same half size (``between``), mean and interval
      over the splits;
    - ``differences``: per category and measure (``size_change``: after - before; ``jaccard_drop``:
      the mean same-model split-half Jaccard minus the between-model one, per split;
      ``layers_changed``: layers whose delta interval excludes 0), the estimate, its interval and
      ``exceeds`` (the interval excludes 0: the difference is larger than the noise).
    """

    summary: pd.DataFrame
    layers: pd.DataFrame
    noise: pd.DataFrame
    differences: pd.DataFrame
    settings: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """Per category: sizes, kept units and Jaccard with intervals (a copy of ``summary``)."""
        return self.summary.copy()

    def exceeding(self) -> pd.DataFrame:
        """The rows of ``differences`` whose interval excludes 0."""
        return self.differences[self.differences["exceeds"]].reset_index(drop=True)

    def plot_jaccard(self):
        """Plotly: Jaccard before/after per category with its bootstrap interval, and the split-half
        noise floors (same-model) and between-model Jaccard at half size."""
        import plotly.graph_objects as go

        s, n = self.summary, self.noise
        fig = go.Figure()
        fig.add_bar(
            x=s["category"],
            y=s["jaccard"],
            name="before vs after (all records)",
            error_y=dict(
                type="data",
                array=s["jaccard_high"] - s["jaccard"],
                arrayminus=s["jaccard"] - s["jaccard_low"],
            ),
        )
        for col, name in (
            ("floor_before", "before vs itself"),
            ("floor_after", "after vs itself"),
            ("between", "before vs after"),
        ):
            fig.add_scatter(
                x=n["category"],
                y=n[col],
                mode="markers",
                name=f"{name} (split halves)",
                error_y=dict(
                    type="data", array=n[f"{col}_high"] - n[col], arrayminus=n[col] - n[f"{col}_low"]
                ),
            )
        fig.update_layout(
            title=f"Jaccard of category sets, with {self.settings.get('confidence', 0.95):.0%} intervals",
            yaxis_range=[0, 1],
        )
        return fig

    def plot_layers(self):
        """Plotly: per-layer change in set size (after - before) with its bootstrap interval."""
        import plotly.express as px

        frame = self.layers.assign(
            plus=self.layers["delta_high"] - self.layers["delta"],
            minus=self.layers["delta"] - self.layers["delta_low"],
        )
        return px.line(
            frame,
            x="layer",
            y="delta",
            color="category",
            error_y="plus",
            error_y_minus="minus",
            markers=True,
            title="Change in instruction-specific units per layer (after - before), bootstrap intervals",
        )

    def _model(self) -> str:
        return " -> ".join(str(self.settings.get(k, "")) for k in ("before", "after"))

    def _facts(self) -> dict[str, object]:
        s = self.summary
        return {
            "rule": f"{self.settings.get('select')} ({self.settings.get('rule')})",
            "resampling": f"{self.settings.get('n_boot')} bootstraps, {self.settings.get('n_splits')} split-halves",
            "Jaccard": ", ".join(
                f"{c} {j:.2f} [{lo:.2f}, {hi:.2f}]"
                for c, j, lo, hi in zip(s["category"], s["jaccard"], s["jaccard_low"], s["jaccard_high"])
            ),
            "beyond noise": ", ".join(
                f"{c} {m}" for c, m in zip(*(self.exceeding()[k] for k in ("category", "measure")))
            )
            or "none",
        }

    def _saved(self):
        frames = ("summary", "layers", "noise", "differences")
        return {}, {k: getattr(self, k).to_dict("list") for k in frames} | {"settings": self.settings}

    @classmethod
    def _from_saved(cls, tensors, meta, path) -> "SetChange":
        frames = {k: pd.DataFrame(meta[k]) for k in ("summary", "layers", "noise", "differences")}
        return cls(**frames, settings=meta["settings"])


def _aligned(before, after):
    """``after`` reordered to ``before``'s records (the same ids and categories are required)."""
    if before.counts is None or after.counts is None:
        raise ValueError("Per-record counts are needed for both models; run NeuronFiring(per_record=True).")
    if sorted(before.ids) != sorted(after.ids):
        raise ValueError("before and after must be measured on the same records (their ids differ).")
    if before.counts.shape[1:] != after.counts.shape[1:]:
        raise ValueError(
            f"Different shapes: {tuple(before.counts.shape[1:])} vs {tuple(after.counts.shape[1:])}; "
            "compare the same architecture."
        )
    if before.settings.get("format") != after.settings.get("format"):
        raise ValueError(
            f"The models were measured in different prompt formats ({before.settings.get('format')!r} vs "
            f"{after.settings.get('format')!r}); pass one format= to find_isns / run."
        )
    if before.ids == after.ids:
        return after
    from dataclasses import replace

    order = [after.ids.index(i) for i in before.ids]
    pick = lambda t: None if t is None else t[order]  # noqa: E731
    return replace(
        after,
        counts=pick(after.counts),
        tokens=pick(after.tokens),
        activation_sums=pick(after.activation_sums),
        ids=list(before.ids),
        record_categories=[after.record_categories[j] for j in order],
    )


def _jaccard(a: set, b: set) -> float:
    union = a | b
    return len(a & b) / len(union) if union else 1.0


def compare_with_intervals(
    before,
    after,
    *,
    select: str = "threshold",
    threshold: float | None = None,
    top: float = 0.01,
    tie_break: str = "layer_rank",
    rule: str = "pooled",
    n_boot: int = 1000,
    n_splits: int = 100,
    confidence: float = 0.95,
    groups=None,
    training_ids=None,
    seed: int = 0,
    progress: bool = True,
) -> SetChange:
    """Category sets of two models on the same records, with intervals and a split-half noise floor.

    Args:
        before, after: :class:`FiringStats` of the two models on the same records, in one prompt
            format (``find_isns(..., keep_frequencies=True, format=...)``; per-record counts, and
            activation sums for a keyed ``top`` tie-break).
        select, threshold, top, tie_break, rule: the selection rule (as :func:`find_isns`; ``threshold``
            is 0.9 when not given for ``select="threshold"``). The default ``threshold`` rule gives sets
            whose size can change, so a change in the number of
            specialised neurons can be seen; fixed-size ``top`` sets make size changes 0.
        n_boot: bootstrap replicates; each resamples records within each category (template groups as
            a whole with ``groups``) and re-applies the rule to both models' re-summed statistics
            (paired: the same records for both). No forward pass is repeated.
        n_splits: random split-halves of each category for the noise floor.
        groups: record id -> group (e.g. ``data.template_groups()``): resample and split whole groups.
        training_ids: ids of the records the after model was tuned on; analysing any of them is an error.

    Examples:
        >>> import instr_interp as ii
        >>> data = ii.hexainst().sample(per_category=4, seed=0)
        >>> runs = [ii.find_isns(ii.tiny_model(seed=s), data, select="threshold", threshold=0.9,
        ...                      keep_frequencies=True, progress=False)[1] for s in (0, 1)]
        >>> change = compare_with_intervals(*runs, n_boot=20, n_splits=10, progress=False)
        >>> list(change.differences["measure"].unique())
        ['size_change', 'jaccard_drop', 'layers_changed']
    """
    from tqdm.auto import tqdm

    from ..stats import percentile_interval
    from .resample import bootstrap_weights, split_weights, weighted_category_sets

    after = _aligned(before, after)
    if select == "threshold" and threshold is None:
        threshold = 0.9
    if training_ids is not None:
        seen = sorted(set(before.ids) & set(training_ids))
        if seen:
            raise ValueError(
                f"{len(seen)} analysed record(s) were training records (e.g. {seen[:3]}); analyse held-out records."
            )
    rule_args = dict(select=select, threshold=threshold, top=top, tie_break=tie_break, rule=rule)
    ids, cats = before.ids, before.record_categories
    n_layers, width = before.counts.shape[1:]
    categories = before.categories
    boot = bootstrap_weights(ids, cats, n_boot, seed=seed, groups=groups)
    halves = split_weights(ids, cats, n_splits, seed=seed + 1, groups=groups)
    weights = np.concatenate([np.ones((1, len(ids))), boot, halves, 1 - halves])
    bar = tqdm(total=2, desc="resampled sets", disable=not progress)
    sets = {}
    for name, stats in (("before", before), ("after", after)):
        sets[name] = weighted_category_sets(stats, weights, **rule_args)
        bar.update()
    bar.close()

    def stat_rows(i):
        """Per category: sizes, kept, Jaccard and per-layer counts of replicate i."""
        out = []
        for c in range(len(categories)):
            a, b = sets["before"][i][c], sets["after"][i][c]
            la = torch.bincount(a // width, minlength=n_layers).numpy()
            lb = torch.bincount(b // width, minlength=n_layers).numpy()
            sa, sb = set(a.tolist()), set(b.tolist())
            out.append((len(sa), len(sb), len(sa & sb), _jaccard(sa, sb), la, lb))
        return out

    reps = [stat_rows(i) for i in range(1 + n_boot)]
    ci = lambda values: percentile_interval(np.asarray(values), confidence)  # noqa: E731
    summary, layer_rows, noise_rows, diff_rows = [], [], [], []
    first, second = 1 + n_boot, 1 + n_boot + n_splits
    for c, cat in enumerate(categories):
        point = reps[0][c]
        draws = [r[c] for r in reps[1:]]
        row = {"category": cat}
        for j, key in enumerate(("before", "after", "kept", "jaccard")):
            low, high = ci([d[j] for d in draws])
            row |= {key: point[j], f"{key}_low": float(low), f"{key}_high": float(high)}
        change = [d[1] - d[0] for d in draws]
        low, high = ci(change)
        row |= {"change": point[1] - point[0], "change_low": float(low), "change_high": float(high)}
        summary.append(row)
        deltas = np.stack([d[5] - d[4] for d in draws])  # [boot layer]
        lb, hb = ci(np.stack([d[4] for d in draws]))
        la, ha = ci(np.stack([d[5] for d in draws]))
        ld, hd = ci(deltas)
        changed = 0
        for layer in range(n_layers):
            exceeds = bool(ld[layer] > 0 or hd[layer] < 0)
            changed += exceeds
            layer_rows.append(
                {
                    "category": cat,
                    "layer": layer,
                    "before": int(point[4][layer]),
                    "before_low": float(lb[layer]),
                    "before_high": float(hb[layer]),
                    "after": int(point[5][layer]),
                    "after_low": float(la[layer]),
                    "after_high": float(ha[layer]),
                    "delta": int(point[5][layer] - point[4][layer]),
                    "delta_low": float(ld[layer]),
                    "delta_high": float(hd[layer]),
                    "exceeds": exceeds,
                }
            )
        # split-halves: sets on half 1 vs half 2, per model and across the models
        fb, fa, bt = [], [], []
        for s in range(n_splits):
            b1, b2 = (set(sets["before"][k + s][c].tolist()) for k in (first, second))
            a1, a2 = (set(sets["after"][k + s][c].tolist()) for k in (first, second))
            fb.append(_jaccard(b1, b2))
            fa.append(_jaccard(a1, a2))
            bt.append((_jaccard(b1, a2) + _jaccard(b2, a1)) / 2)
        fb, fa, bt = map(np.asarray, (fb, fa, bt))
        nrow = {"category": cat}
        for key, values in (("floor_before", fb), ("floor_after", fa), ("between", bt)):
            low, high = ci(values)
            nrow |= {key: float(values.mean()), f"{key}_low": float(low), f"{key}_high": float(high)}
        noise_rows.append(nrow)
        drop = (fb + fa) / 2 - bt
        for measure, estimate, (low, high) in (
            ("size_change", point[1] - point[0], ci(change)),
            ("jaccard_drop", float(drop.mean()), ci(drop)),
        ):
            diff_rows.append(
                {
                    "category": cat,
                    "measure": measure,
                    "estimate": float(estimate),
                    "low": float(low),
                    "high": float(high),
                    "exceeds": bool(low > 0 or high < 0),
                }
            )
        diff_rows.append(
            {
                "category": cat,
                "measure": "layers_changed",
                "estimate": float(changed),
                "low": float("nan"),
                "high": float("nan"),
                "exceeds": changed > 0,
            }
        )
    return SetChange(
        summary=pd.DataFrame(summary),
        layers=pd.DataFrame(layer_rows),
        noise=pd.DataFrame(noise_rows),
        differences=pd.DataFrame(diff_rows),
        settings={
            "before": before.settings.get("model", ""),
            "after": after.settings.get("model", ""),
            "format": before.settings.get("format"),
            "regions": before.settings.get("regions"),
            **rule_args,
            "n_boot": n_boot,
            "n_splits": n_splits,
            "confidence": confidence,
            "grouped": groups is not None,
            "seed": seed,
            "records": len(ids),
        },
    )
