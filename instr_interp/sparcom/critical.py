"""The result of :func:`~instr_interp.sparcom.ablation.critical_role` (METHODS.md section 3): sets
identified on some records are zeroed on *other* records, and the rise in reference-response NLL is
measured on every category, against control sets matched per layer in count, firing frequency and
mean activation.

Every effect is a difference in nats/token (ablated − baseline) with a bootstrap interval over the
evaluation records. Where categories are averaged, each category's rise is first divided by its own
baseline NLL (a relative rise; baselines are positive); no number is ever divided by a rise.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..results import Result
from ..stats import percentile_interval
from .neurons import NeuronSets

__all__ = ["CriticalRole", "ablation_sets", "plot_matrix", "KINDS"]

KINDS = ("category", "unique", "non-general", "general")
MEAN_RELATIVE = "mean relative rise"
SPECIFICITY = "specificity"


def _interval(values: np.ndarray) -> tuple[float, float]:
    """The 2.5 and 97.5 percentiles of bootstrap values; NaN when they are undefined (NaN)."""
    if not np.isfinite(values).all():
        return float("nan"), float("nan")
    low, high = percentile_interval(values, 0.95)
    return float(low), float(high)


def ablation_sets(sets: NeuronSets, kinds: Sequence[str] = KINDS) -> list[tuple[str, str, str, Tensor]]:
    """The sets to ablate, as ``(name, kind, source category, units)``: per category its set
    (``"category"``, named by the category), its unique units (``"<c> unique"``) and its units outside
    the general set (``"<c> non-general"``); and the ``"general"`` set (in every category's set).
    Empty sets are left out."""
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ValueError(f"kinds must be a non-empty selection of {KINDS}; got {tuple(kinds)}.")
    general = sets.general()
    gen_flat = set(sets.flat(general).tolist())
    out = []
    for cat, units in sets.category_sets.items():
        rest = units[[u not in gen_flat for u in sets.flat(units).tolist()]] if len(units) else units
        for kind, name, chosen in (
            ("category", cat, units),
            ("unique", f"{cat} unique", sets.unique(cat)),
            ("non-general", f"{cat} non-general", rest),
        ):
            if kind in kinds and len(chosen):
                out.append((name, kind, cat, chosen))
    if "general" in kinds and len(general):
        out.append(("general", "general", "", general))
    return out


@dataclass(kw_only=True, repr=False)
class CriticalRole(Result):
    """Per-record NLL of the evaluation records: at baseline, with each set zeroed, and with each of
    its matched control sets zeroed. The frames (:meth:`matrix`, :meth:`null`, :meth:`p_values`,
    :meth:`diagonal`) are computed from these; the bootstrap is seeded by ``settings["seed"]``."""

    names: list[str]  # ablated sets
    kinds: list[str]  # "category", "unique", "non-general" or "general"
    sources: list[str]  # the category a set comes from ("" for the general set)
    units: list[Tensor]  # per set: [n, 2] (layer, unit)
    controls: list[Tensor]  # per set: [draw, n, 2], the matched control sets
    record_ids: list[str]  # evaluation records
    record_categories: list[str]
    categories: list[str]
    baseline: Tensor  # [record] NLL, nats/token
    ablated: Tensor  # [set, record]
    control: Tensor  # [set, draw, record]
    identified_on: list[str]  # ids of the records that identified the sets (disjoint from record_ids)
    unit: str = "neuron"
    settings: dict = field(default_factory=dict)

    @property
    def n_control(self) -> int:
        return int(self.control.shape[1])

    # ---- computation (numpy, float64)
    def _groups(self) -> list[np.ndarray]:
        cats = np.array(self.record_categories)
        return [np.flatnonzero(cats == c) for c in self.categories]

    def _per_category(self, x: np.ndarray) -> np.ndarray:
        return np.stack([x[..., g].mean(-1) for g in self._groups()], -1)

    def _measures(self, rise: np.ndarray, base: np.ndarray, source: str) -> dict[str, np.ndarray]:
        """Per-category rises ``[..., category]`` (and baselines, broadcastable) to the named measures."""
        relative = np.where(base > 0, rise / np.where(base > 0, base, 1.0), np.nan)
        out = {c: rise[..., b] for b, c in enumerate(self.categories)}
        out[MEAN_RELATIVE] = relative.mean(-1)
        if source in self.categories and len(self.categories) > 1:
            b = self.categories.index(source)
            others = np.delete(relative, b, axis=-1)
            out[SPECIFICITY] = relative[..., b] - others.mean(-1)
        return out

    def _computed(self) -> dict:
        if getattr(self, "_cache", None) is not None:
            return self._cache
        base = self.baseline.double().numpy()
        rise = self.ablated.double().numpy() - base
        null = self.control.double().numpy() - base
        base_c = self._per_category(base)
        rng = np.random.default_rng(self.settings.get("seed", 0))
        n_boot = int(self.settings.get("n_boot", 1000))
        picks = [g[rng.integers(0, len(g), (n_boot, len(g)))] for g in self._groups()]
        boot_base = np.stack([base[p].mean(-1) for p in picks], -1)  # [boot category]
        boot = np.stack([rise[:, p].mean(-1) for p in picks], -1)  # [set boot category]
        # one record cannot be resampled into an interval: undefined (NaN) where a category has < 2
        few = np.array([len(g) < 2 for g in self._groups()])
        boot_base[:, few], boot[:, :, few] = np.nan, np.nan
        rows = []
        for s, name in enumerate(self.names):
            obs = self._measures(self._per_category(rise[s]), base_c, self.sources[s])
            resampled = self._measures(boot[s], boot_base, self.sources[s])
            controls = self._measures(self._per_category(null[s]), base_c, self.sources[s])
            for measure, value in obs.items():
                rows.append((s, name, measure, float(value), resampled[measure], controls[measure]))
        self._cache = {"rows": rows, "base": base_c}
        return self._cache

    # ---- frames
    def matrix(self) -> pd.DataFrame:
        """Set x evaluation category: ``baseline`` (mean NLL of the category's records, nats/token),
        ``rise`` (ablated − baseline) with a 95% bootstrap interval over records (``ci_low``,
        ``ci_high``; NaN for a category with fewer than 2 evaluation records), and ``relative`` (rise / baseline)."""
        done = self._computed()
        counts = [len(g) for g in self._groups()]
        out = []
        for s, name, measure, value, boot, _ in done["rows"]:
            if measure not in self.categories:
                continue
            b = self.categories.index(measure)
            low, high = _interval(boot)
            out.append(
                {
                    "set": name,
                    "kind": self.kinds[s],
                    "source": self.sources[s],
                    "category": measure,
                    "n_units": len(self.units[s]),
                    "n_records": counts[b],
                    "baseline": float(done["base"][b]),
                    "rise": value,
                    "ci_low": float(low),
                    "ci_high": float(high),
                    "relative": value / float(done["base"][b]) if done["base"][b] > 0 else float("nan"),
                }
            )
        return pd.DataFrame(out)

    def null(self) -> pd.DataFrame:
        """The control distribution: one row per set, control draw and measure (each category's rise,
        ``mean relative rise``, ``specificity``), column ``value``."""
        rows = [
            {"set": name, "draw": d, "measure": measure, "value": float(v)}
            for _, name, measure, _, _, controls in self._computed()["rows"]
            for d, v in enumerate(controls)
        ]
        return pd.DataFrame(rows, columns=["set", "draw", "measure", "value"])

    def p_values(self) -> pd.DataFrame:
        """Per set and measure: ``observed`` with its bootstrap interval, the matched controls' mean and
        2.5–97.5 percentiles, and the one-sided empirical ``p_value`` = (1 + #{control ≥ observed}) /
        (1 + n_control) (smallest possible 1 / (1 + n_control)).

        Measures: the rise on each evaluation category (nats/token); ``mean relative rise`` (the mean
        over categories of rise / baseline); for a category's sets, ``specificity`` (relative rise on
        that category minus the mean relative rise on the others)."""
        rows = []
        for s, name, measure, value, boot, controls in self._computed()["rows"]:
            low, high = _interval(boot)
            c_low, c_high = percentile_interval(controls, 0.95)
            rows.append(
                {
                    "set": name,
                    "kind": self.kinds[s],
                    "source": self.sources[s],
                    "measure": measure,
                    "observed": value,
                    "ci_low": float(low),
                    "ci_high": float(high),
                    "control_mean": float(controls.mean()),
                    "control_low": float(c_low),
                    "control_high": float(c_high),
                    "p_value": (1 + int((controls >= value).sum())) / (1 + len(controls))
                    if np.isfinite(value)
                    else float("nan"),
                    "n_control": len(controls),
                }
            )
        return pd.DataFrame(rows)

    def diagonal(self) -> pd.DataFrame:
        """One row per category set (kind ``"category"``): its rise on its own category (the matrix
        diagonal) and the specificity, each with interval and matched-control p-value."""
        p = self.p_values()
        own = p[(p["kind"] == "category") & (p["measure"] == p["source"])].set_index("set")
        spec = p[(p["kind"] == "category") & (p["measure"] == SPECIFICITY)].set_index("set")
        out = pd.DataFrame(
            {
                "own rise": own["observed"],
                "own ci_low": own["ci_low"],
                "own ci_high": own["ci_high"],
                "own p": own["p_value"],
                "specificity": spec["observed"],
                "spec ci_low": spec["ci_low"],
                "spec ci_high": spec["ci_high"],
                "spec p": spec["p_value"],
            }
        )
        return out.rename_axis("category").reset_index()

    def summary(self, alpha: float = 0.05) -> dict:
        """Counts over the category sets: ``above_controls`` (own rise beats the matched controls,
        p < ``alpha``), ``specific`` (specificity interval above 0), ``column_max`` (evaluation
        categories whose largest rise among the category sets is their own set's), ``n_sets``,
        ``widest_interval`` (the widest own-category bootstrap interval, nats/token; NaN if undefined),
        ``min_p`` (1 / (1 + n_control): no set can do better) and ``alpha``; and ``parts``: for the
        ``unique`` and ``non-general`` sets ablated, per kind the number of sets, the range of their rises
        over every evaluation category and of those rises' intervals (nats/token), and the sets whose
        mean relative rise beats their matched controls (p < ``alpha``)."""
        diag = self.diagonal()
        m = self.matrix()
        cat_rows = m[m["kind"] == "category"]
        column_max = [
            c
            for c, block in cat_rows.groupby("category", sort=False)
            if c in set(block["set"]) and block.loc[block["rise"].idxmax(), "set"] == c
        ]
        return {
            "n_sets": len(diag),
            "above_controls": diag.loc[(diag["own p"] < alpha) & (diag["own rise"] > 0), "category"].tolist(),
            "specific": diag.loc[diag["spec ci_low"] > 0, "category"].tolist(),
            "column_max": column_max,
            "widest_interval": float((diag["own ci_high"] - diag["own ci_low"]).max())
            if len(diag)
            else float("nan"),
            "min_p": 1 / (1 + self.n_control),
            "alpha": alpha,
            "parts": self._parts_summary(m, alpha),
        }

    def _parts_summary(self, m: pd.DataFrame, alpha: float) -> dict:
        """:meth:`summary`'s ``parts``: the unique and non-general sets, per kind."""
        p = self.p_values()
        mean_rel = p[p["measure"] == MEAN_RELATIVE]
        out = {}
        for kind in ("unique", "non-general"):
            cells = m[m["kind"] == kind]
            if not len(cells):
                continue
            beat = mean_rel[
                (mean_rel["kind"] == kind) & (mean_rel["p_value"] < alpha) & (mean_rel["observed"] > 0)
            ]
            out[kind] = {
                "n_sets": int(cells["set"].nunique()),
                "rise_min": float(cells["rise"].min()),
                "rise_max": float(cells["rise"].max()),
                "ci_low_min": float(cells["ci_low"].min()),
                "ci_high_max": float(cells["ci_high"].max()),
                "above_controls": beat["set"].tolist(),
            }
        return out

    def to_frame(self) -> pd.DataFrame:
        """:meth:`matrix`."""
        return self.matrix()

    def plot(self):
        """Plotly heatmap of the matrix: NLL rise (nats/token) of each evaluation category (columns)
        when each set (rows) is zeroed."""
        return plot_matrix(self.matrix(), self.names, self.categories, self.unit)

    def view(self, alpha: float = 0.05) -> dict:
        """Everything a reader (and the report) needs, JSON-able: the frames :meth:`matrix`,
        :meth:`p_values` and :meth:`diagonal` as records, :meth:`summary`, and the design's sizes."""
        return {
            "unit": self.unit,
            "names": list(self.names),
            "categories": list(self.categories),
            "n_identified": len(self.identified_on),
            "n_records": len(self.record_ids),
            "n_control": self.n_control,
            "set_sizes": {name: len(units) for name, units in zip(self.names, self.units)},
            "matrix": self.matrix().to_dict("records"),
            "p_values": self.p_values().to_dict("records"),
            "diagonal": self.diagonal().to_dict("records"),
            "summary": self.summary(alpha=alpha),
            "settings": self.settings,
        }

    @classmethod
    def combine(cls, parts: Sequence["CriticalRole"]) -> "CriticalRole":
        """One result from parts that ablated different sets on the same records with the same
        baseline (e.g. one part per set, as ``instr-interp study critical`` runs them); each
        set's controls are seeded by its name, so the combination equals a single run."""
        if not parts:
            raise ValueError("combine needs at least one CriticalRole.")
        first = parts[0]
        for part in parts[1:]:
            same = (part.record_ids, part.identified_on, part.unit, part.n_control) == (
                first.record_ids,
                first.identified_on,
                first.unit,
                first.n_control,
            )
            if not same or not torch.equal(part.baseline, first.baseline):
                raise ValueError(
                    "CriticalRole parts must share their records, identification, controls and baseline."
                )
        names = [n for p in parts for n in p.names]
        if len(set(names)) != len(names):
            raise ValueError(f"CriticalRole parts ablate the same set twice: {names}.")
        return cls(
            names=names,
            kinds=[k for p in parts for k in p.kinds],
            sources=[k for p in parts for k in p.sources],
            units=[u for p in parts for u in p.units],
            controls=[c for p in parts for c in p.controls],
            record_ids=first.record_ids,
            record_categories=first.record_categories,
            categories=first.categories,
            baseline=first.baseline,
            ablated=torch.cat([p.ablated for p in parts]),
            control=torch.cat([p.control for p in parts]),
            identified_on=first.identified_on,
            unit=first.unit,
            settings={
                **first.settings,
                "kinds": list(dict.fromkeys(k for p in parts for k in p.kinds)),
                "names": names,
            },
        )

    # ---- persistence and display
    def _facts(self) -> dict[str, object]:
        counts = [len(g) for g in self._groups()]
        by_kind = {k: self.kinds.count(k) for k in KINDS if k in self.kinds}
        facts = {
            "evaluation": f"{len(self.record_ids)} records ({min(counts)}-{max(counts)} per category), disjoint "
            f"from the {len(self.identified_on)} that identified the sets",
            "sets": ", ".join(f"{n} {k}" for k, n in by_kind.items()),
            "controls": f"{self.n_control} per set, matched per layer in count, firing frequency and mean "
            f"activation (k = {self.settings.get('k_nearest')})",
        }
        if "category" in self.kinds:
            s = self.summary()
            diag = self.diagonal()
            facts["diagonal"] = (
                f"own rise {diag['own rise'].min():.3f} to {diag['own rise'].max():.3f} nats/token; above "
                f"controls (p < 0.05) for {len(s['above_controls'])} of {s['n_sets']}, specific for "
                f"{len(s['specific'])}"
            )
        return facts

    def _saved(self):
        tensors = {"baseline": self.baseline, "ablated": self.ablated, "control": self.control}
        for s in range(len(self.names)):
            tensors[f"units/{s}"] = self.units[s]
            tensors[f"controls/{s}"] = self.controls[s]
        meta = {
            k: getattr(self, k)
            for k in (
                "names",
                "kinds",
                "sources",
                "record_ids",
                "record_categories",
                "categories",
                "identified_on",
                "unit",
                "settings",
            )
        }
        return tensors, meta

    @classmethod
    def _from_saved(cls, tensors, meta, path) -> "CriticalRole":
        n = len(meta["names"])
        keep = ("names", "kinds", "sources", "record_ids", "record_categories", "categories", "identified_on")
        return cls(
            **{k: meta[k] for k in keep},
            unit=meta["unit"],
            settings=meta["settings"],
            units=[tensors[f"units/{s}"] for s in range(n)],
            controls=[tensors[f"controls/{s}"] for s in range(n)],
            baseline=tensors["baseline"],
            ablated=tensors["ablated"],
            control=tensors["control"],
        )


def plot_matrix(matrix: pd.DataFrame, names: Sequence[str], categories: Sequence[str], unit: str):
    """Plotly heatmap of a :meth:`CriticalRole.matrix` frame: NLL rise (nats/token) of each evaluation
    category (columns) when each set (rows) is zeroed."""
    import plotly.express as px

    wide = matrix.pivot(index="set", columns="category", values="rise")
    wide = wide.loc[list(names), list(categories)]
    fig = px.imshow(
        wide,
        text_auto=".3f",
        color_continuous_scale="RdBu_r",
        color_continuous_midpoint=0.0,
        aspect="auto",
        labels={"color": "NLL rise (nats/token)", "x": "evaluated on", "y": "zeroed set"},
        title=f"Zeroing a set of {unit}s: rise in reference-response NLL (held-out records)",
    )
    fig.update_xaxes(side="bottom")
    return fig
