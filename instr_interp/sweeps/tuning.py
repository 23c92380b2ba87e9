"""Where did tuning act? Cross-model patching between a base model and its instruction-tuned version.

For each layer and component (attention output, MLP output, and each head's ``z``), two sweeps:

- **restore**: the tuned model's activations patched into the base model — how much of the tuned
  model's instruction behaviour does this one component bring to the base model?
- **remove**: the base model's activations patched into the tuned model — how much does the tuned
  model lose when this one component is put back to the base model's?

Behaviour is scored per record by :mod:`instr_interp.sweeps.metrics`: reference-response NLL,
stopping (probability of an end token right after the reference response) and first-token
accuracy. Every effect is oriented so that positive means "toward the tuned model" (for NLL, lower
is better). The base→tuned gap ``G`` is the mean over records of ``tuned - base`` (oriented). A
fraction ``effect / G`` is formed **only when the gap is clearly positive**: positive in every
bootstrap resample of the records (the same resamples give the fraction's interval, so no resample
ever divides by a gap <= 0). Otherwise the fraction is NaN and ``gap_clear`` is False; the raw
differences and their intervals are reported either way.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..results import Result
from ..stats import percentile_interval, shared_bootstrap_means
from .metrics import LOWER_IS_BETTER, METRICS
from .results import PatchSweep
from .sweep import patch_sweep

__all__ = [
    "TuningEffects",
    "where_tuning_acted",
    "top_effects",
    "plot_effects",
    "layer_relation",
    "COMPONENTS",
]

COMPONENTS = ("attn_out", "mlp_out", "resid_post", "heads")
DIRECTIONS = ("restore", "remove")


@dataclass(repr=False, kw_only=True)
class TuningEffects(Result):
    """Per-record metrics of the cross-model patches of :func:`where_tuning_acted`.

    Attributes:
        base, tuned: ``[metric, record]`` the unpatched models' metrics.
        patched: ``{"restore/<component>": [metric, layer(, head), record], "remove/<component>": ...}``
            — restore: the base model with the tuned model's component; remove: the tuned model with
            the base model's.
        axes: component -> ``{"layer": [...], ("head": [...])}``.
    """

    base: Tensor
    tuned: Tensor
    patched: dict[str, Tensor]
    metrics: list[str]
    axes: dict[str, dict[str, list[int]]]
    ids: list[str]
    categories: list[str]
    settings: dict = field(default_factory=dict)

    def _facts(self) -> dict[str, object]:
        gaps = self.gaps()
        return {
            "base / tuned": f"{self.settings.get('base', '')} / {self.settings.get('tuned', '')}",
            "components": ", ".join(self.axes),
            "records": len(self.ids),
            "gaps": "; ".join(
                f"{r.metric} {r.gap:+.3f} [{r.gap_low:+.3f}, {r.gap_high:+.3f}]"
                + ("" if r.gap_clear else " (not clear)")
                for r in gaps.itertuples()
            ),
        }

    def _model(self) -> str:
        return str(self.settings.get("base", ""))

    def _sign(self, metric: str) -> float:
        return -1.0 if LOWER_IS_BETTER[metric] else 1.0

    def gaps(self, *, confidence: float | None = None) -> pd.DataFrame:
        """Per metric: base and tuned means, the oriented gap ``G`` with its bootstrap interval, and
        whether it is clearly positive (positive in every resample)."""
        confidence = self.settings.get("confidence", 0.95) if confidence is None else confidence
        rows = []
        for m, metric in enumerate(self.metrics):
            g = self._sign(metric) * (self.tuned[m] - self.base[m]).numpy()
            boots = shared_bootstrap_means(g, self.settings.get("n_boot", 1000), self.settings.get("seed", 0))
            lo, hi = percentile_interval(boots, confidence)
            rows.append(
                {
                    "metric": metric,
                    "base": float(self.base[m].mean()),
                    "tuned": float(self.tuned[m].mean()),
                    "gap": float(g.mean()),
                    "gap_low": lo,
                    "gap_high": hi,
                    "gap_clear": bool((boots > 0).all()),
                }
            )
        return pd.DataFrame(rows)

    def to_frame(self, *, confidence: float | None = None) -> pd.DataFrame:
        """One row per direction, component, layer (and head) and metric: the raw oriented effect
        (mean over records, bootstrap interval) and, where the gap is clear, the fraction of the gap
        with its interval (NaN otherwise)."""
        confidence = self.settings.get("confidence", 0.95) if confidence is None else confidence
        n_boot, seed = self.settings.get("n_boot", 1000), self.settings.get("seed", 0)
        gaps = self.gaps(confidence=confidence).set_index("metric")
        frames = []
        for key, values in self.patched.items():
            direction, component = key.split("/")
            axes = self.axes[component]
            grid = np.meshgrid(*[np.asarray(v) for v in axes.values()], indexing="ij")
            for m, metric in enumerate(self.metrics):
                s = self._sign(metric)
                base, tuned = self.base[m].numpy(), self.tuned[m].numpy()
                cells = values[m].numpy().reshape(-1, len(self.ids))
                raw = s * (cells - base) if direction == "restore" else s * (tuned - cells)
                raw_boot = shared_bootstrap_means(raw, n_boot, seed)  # [cells, n_boot]
                gap_boot = shared_bootstrap_means(s * (tuned - base), n_boot, seed)  # the same resamples
                frame = pd.DataFrame({name: g.reshape(-1) for name, g in zip(axes, grid)})
                frame.insert(0, "metric", metric)
                frame.insert(0, "component", component)
                frame.insert(0, "direction", direction)
                frame["effect"] = raw.mean(-1)
                frame["effect_low"], frame["effect_high"] = percentile_interval(raw_boot, confidence, axis=-1)
                clear = bool(gaps.loc[metric, "gap_clear"])
                frame["gap_clear"] = clear
                if clear:  # every resampled gap > 0: the ratio never divides by a gap <= 0
                    ratio = raw_boot / gap_boot[None, :]
                    frame["fraction"] = raw.mean(-1) / gaps.loc[metric, "gap"]
                    frame["fraction_low"], frame["fraction_high"] = percentile_interval(
                        ratio, confidence, axis=-1
                    )
                else:
                    frame["fraction"] = frame["fraction_low"] = frame["fraction_high"] = np.nan
                frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def top(self, k: int = 10, *, metric: str | None = None, direction: str = "restore") -> pd.DataFrame:
        """The ``k`` layer components (heads excluded) with the largest raw effect in ``direction``."""
        return top_effects(self.to_frame(), k, metric=metric or self.metrics[0], direction=direction)

    def plot(self, metric: str | None = None):
        """Per layer: the effect of patching attention and MLP outputs, both directions (fractions
        of the gap where it is clear, raw effects otherwise)."""
        return plot_effects(self.to_frame(), metric or self.metrics[0])

    @classmethod
    def combine(cls, parts: Sequence["TuningEffects"]) -> "TuningEffects":
        """One result from parts run on the same records and models over different components or
        layer blocks (e.g. the units of ``instr-interp study tuning``): layers are concatenated per
        component, in order. Raises if the parts' records, metrics or unpatched scores differ."""
        if not parts:
            raise ValueError("combine needs at least one TuningEffects.")
        first = parts[0]
        for part in parts[1:]:
            if part.ids != first.ids or part.metrics != first.metrics:
                raise ValueError("TuningEffects parts must share their records and metrics.")
            if not (torch.allclose(part.base, first.base) and torch.allclose(part.tuned, first.tuned)):
                raise ValueError("TuningEffects parts disagree on the unpatched models' scores.")
        patched: dict[str, list[Tensor]] = {}
        axes: dict[str, dict[str, list[int]]] = {}
        for part in parts:
            for key, values in part.patched.items():
                patched.setdefault(key, []).append(values)
            for component, ax in part.axes.items():
                if component not in axes:
                    axes[component] = {name: list(v) for name, v in ax.items()}
                else:
                    seen = axes[component]["layer"]
                    if set(seen) & set(ax["layer"]):
                        raise ValueError(f"TuningEffects parts overlap in {component} layers.")
                    seen.extend(ax["layer"])
        return cls(
            base=first.base,
            tuned=first.tuned,
            patched={
                key: torch.cat(values, dim=1) for key, values in patched.items()
            },  # [metric, layer, ...]
            metrics=first.metrics,
            axes=axes,
            ids=first.ids,
            categories=first.categories,
            settings=first.settings,
        )

    def _saved(self):
        tensors = {
            "base": self.base,
            "tuned": self.tuned,
            **{f"patched/{k}": v for k, v in self.patched.items()},
        }
        meta = {
            "metrics": self.metrics,
            "axes": self.axes,
            "ids": self.ids,
            "categories": self.categories,
            "settings": self.settings,
        }
        return tensors, meta

    @classmethod
    def _from_saved(cls, tensors: dict[str, torch.Tensor], meta: dict, path: Path) -> "TuningEffects":
        patched = {k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith("patched/")}
        return cls(
            base=tensors["base"],
            tuned=tensors["tuned"],
            patched=patched,
            metrics=meta["metrics"],
            axes=meta["axes"],
            ids=meta["ids"],
            categories=meta["categories"],
            settings=meta["settings"],
        )


def top_effects(frame: pd.DataFrame, k: int = 10, *, metric: str, direction: str = "restore") -> pd.DataFrame:
    """The ``k`` layer components (heads excluded) of a :meth:`TuningEffects.to_frame` frame with the
    largest raw effect of ``metric`` in ``direction``."""
    frame = frame[(frame.metric == metric) & (frame.direction == direction) & (frame.component != "heads")]
    return frame.sort_values("effect", ascending=False, kind="stable").head(k).reset_index(drop=True)


def plot_effects(frame: pd.DataFrame, metric: str):
    """Per layer: the effect of patching attention and MLP outputs of a :meth:`TuningEffects.to_frame`
    frame, both directions (fractions of the gap where it is clear, raw effects otherwise)."""
    import plotly.graph_objects as go

    frame = frame[(frame.metric == metric) & (frame.component != "heads")]
    clear = bool(frame.gap_clear.all()) if len(frame) else False
    column = "fraction" if clear else "effect"
    fig = go.Figure()
    for (direction, component), part in frame.groupby(["direction", "component"], sort=False):
        fig.add_trace(
            go.Scatter(
                x=part.layer,
                y=part[column],
                mode="lines+markers",
                name=f"{direction}: {component}",
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=part[f"{column}_high"] - part[column],
                    arrayminus=part[column] - part[f"{column}_low"],
                ),
            )
        )
    label = "fraction of the base→tuned gap" if clear else f"raw change in {metric} (oriented; gap not clear)"
    fig.update_layout(title=f"Where tuning acted: {metric}", xaxis_title="layer", yaxis_title=label)
    return fig


def layer_relation(
    frame: pd.DataFrame, layer_change, *, metric: str = "nll", n_resamples: int = 9999, seed: int = 0
) -> pd.DataFrame:
    """Do the layers where patching matters hold what tuning changed? For each direction and layer
    component (attention / MLP output) of a :meth:`TuningEffects.to_frame` table: Spearman's rank
    correlation across layers between the raw effect of patching that layer (``metric``) and
    ``layer_change`` (a mapping layer -> value, e.g. how many of the layer's ISNs tuning added or
    removed), with a two-sided permutation p-value over layer pairings
    (:func:`~instr_interp.stats.spearman_permutation`). Only layers present in both are used.

    Returns:
        One row per direction and component: ``layers`` (how many), ``rho``, ``p_value``, ``note``
        (why a correlation is undefined, else empty).
    """
    from ..stats import spearman_permutation

    change = {int(k): float(v) for k, v in dict(layer_change).items()}
    part = frame[(frame.metric == metric) & (frame.component != "heads")]
    rows = []
    for (direction, component), block in part.groupby(["direction", "component"], sort=False):
        block = block[block.layer.isin(list(change))].sort_values("layer")
        test = spearman_permutation(
            block.effect.to_numpy(), [change[int(k)] for k in block.layer], n_resamples=n_resamples, seed=seed
        )
        rows.append(
            {
                "direction": direction,
                "component": component,
                "metric": metric,
                "layers": len(block),
                "rho": test.statistic,
                "p_value": test.p_value,
                "note": test.note,
            }
        )
    return pd.DataFrame(rows)


def where_tuning_acted(
    base,
    tuned,
    data,
    *,
    components: Sequence[str] = ("attn_out", "mlp_out", "heads"),
    metrics: Sequence[str] = ("nll", "stop", "first_token"),
    positions="all",
    layers: Sequence[int] | None = None,
    batch_size: int = 4,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    progress: bool = True,
) -> TuningEffects:
    """Patch each layer's components between ``base`` and ``tuned`` (same architecture) in both
    directions and score the instruction behaviour on ``data`` (records with reference responses).

    Args:
        components: any of ``"attn_out"``, ``"mlp_out"``, ``"resid_post"`` (one sweep over layers
            each) and ``"heads"`` (each head's ``z``).
        metrics: any of ``"nll"``, ``"stop"``, ``"first_token"`` (and ``"kl"``).
        positions: where to patch: ``"all"``, ``"last"``, or region name(s) (e.g. ``"instruction"``).
        n_boot, confidence, seed: the bootstrap over records.

    Returns:
        A :class:`TuningEffects`; ``.gaps()`` the base→tuned gaps, ``.to_frame()`` raw effects and
        (clear gaps only) fractions of the gap, with intervals.

    Examples:
        >>> import instr_interp as ii
        >>> eff = where_tuning_acted(ii.tiny_model(seed=0), ii.tiny_model(seed=1), ii.hexainst()[:2],
        ...                          components=["mlp_out"], metrics=["nll"], n_boot=200, progress=False)
        >>> sorted(eff.patched)
        ['remove/mlp_out', 'restore/mlp_out']
    """
    bad = [c for c in components if c not in COMPONENTS]
    if bad or not components:
        raise ValueError(f"components must be a non-empty selection of {COMPONENTS}; got {list(components)}.")
    bad = [m for m in metrics if m not in METRICS or m == "logit_diff"]
    if bad or not metrics:
        raise ValueError(
            f"metrics must be a non-empty selection of {tuple(m for m in METRICS if m != 'logit_diff')}; got {list(metrics)}."
        )
    if not 0 < confidence < 1 or n_boot < 100:
        raise ValueError(f"confidence must lie in (0, 1) and n_boot be >= 100; got {confidence}, {n_boot}.")
    patched, axes = {}, {}
    first = None
    for component in components:
        over, site = ("head", "attn_z") if component == "heads" else ("layer", component)
        kwargs = dict(
            over=over,
            metric=list(metrics),
            positions=positions,
            layers=layers,
            batch_size=batch_size,
            progress=progress,
        )
        if over == "layer":
            kwargs["site"] = site
        restore: PatchSweep = patch_sweep(base, data, source=tuned, **kwargs)
        remove: PatchSweep = patch_sweep(tuned, data, source=base, **kwargs)
        patched[f"restore/{component}"] = restore.values
        patched[f"remove/{component}"] = remove.values
        axes[component] = restore.axes
        first = first or restore
    settings = {
        "base": first.settings["model"],
        "tuned": first.settings["source"],
        "positions": first.settings["positions"],
        "n_boot": n_boot,
        "confidence": confidence,
        "seed": seed,
        "batch_size": batch_size,
    }
    return TuningEffects(
        base=first.baseline,
        tuned=first.source_values,
        patched=patched,
        metrics=list(metrics),
        axes=axes,
        ids=first.ids,
        categories=first.categories,
        settings=settings,
    )
