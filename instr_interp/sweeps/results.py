"""The result of a patching sweep: per-record metric values for every patched unit."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from ..results import Result
from ..stats import percentile_interval, shared_bootstrap_means

__all__ = ["PatchSweep"]


@dataclass(repr=False, kw_only=True)
class PatchSweep(Result):
    """Per-record values of each metric after patching each unit (:func:`instr_interp.patch_sweep`).

    Attributes:
        values: ``[metric, *axes, record]`` metric after patching the unit.
        baseline: ``[metric, record]`` the unpatched model's metric.
        source_values: ``[metric, record]`` the source model's own metric (NaN for constant sources).
        metrics: metric names; ``axes``: axis name -> unit labels (``layer``, ``pos``, ``head``,
            ``neuron``, ``expert``); ``ids``/``categories``: the records.
    """

    values: Float[Tensor, "metric ..."]
    baseline: Float[Tensor, "metric record"]
    source_values: Float[Tensor, "metric record"]
    metrics: list[str]
    axes: dict[str, list[int]]
    ids: list[str]
    categories: list[str]
    settings: dict = field(default_factory=dict)

    def _facts(self) -> dict[str, object]:
        return {
            "over": self.settings.get("over"),
            "site": self.settings.get("site"),
            "source": self.settings.get("source"),
            "cells": " x ".join(f"{len(v)} {k}" for k, v in self.axes.items()),
            "records": len(self.ids),
            "metrics": ", ".join(self.metrics),
        }

    def _m(self, metric: str | None) -> int:
        metric = self.metrics[0] if metric is None else metric
        if metric not in self.metrics:
            raise ValueError(f"This sweep has no metric {metric!r}; it has {self.metrics}.")
        return self.metrics.index(metric)

    def effect(self, metric: str | None = None) -> Float[Tensor, "... record"]:
        """Per-record change each patch makes: patched minus unpatched, ``[*axes, record]``."""
        m = self._m(metric)
        base = self.baseline[m].reshape((1,) * len(self.axes) + (-1,))
        return self.values[m] - base

    def mean_effect(self, metric: str | None = None) -> Float[Tensor, "..."]:
        """Mean change over records, ``[*axes]``."""
        return self.effect(metric).mean(-1)

    def to_frame(self, *, confidence: float = 0.95, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
        """One row per metric and cell: its axis labels, the mean patched value, the mean unpatched
        value, the mean effect and its percentile bootstrap interval over records."""
        frames = []
        grids = np.meshgrid(*[np.asarray(v) for v in self.axes.values()], indexing="ij")
        for metric in self.metrics:
            eff = self.effect(metric).numpy()
            flat = eff.reshape(-1, eff.shape[-1])
            boots = shared_bootstrap_means(flat, n_boot, seed)
            lo, hi = percentile_interval(boots, confidence, axis=-1)
            frame = pd.DataFrame({name: g.reshape(-1) for name, g in zip(self.axes, grids)})
            frame.insert(0, "metric", metric)
            frame["patched"] = self.values[self._m(metric)].mean(-1).reshape(-1).numpy()
            frame["unpatched"] = float(self.baseline[self._m(metric)].mean())
            frame["source"] = float(self.source_values[self._m(metric)].mean())
            frame["effect"] = flat.mean(-1)
            frame["ci_low"], frame["ci_high"] = lo, hi
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def top(self, k: int = 10, metric: str | None = None, **kwargs) -> pd.DataFrame:
        """The ``k`` cells with the largest absolute mean effect on ``metric`` (default the first)."""
        frame = self.to_frame(**kwargs)
        frame = frame[frame.metric == self.metrics[self._m(metric)]]
        order = frame.effect.abs().sort_values(ascending=False, kind="stable").index
        return frame.loc[order].head(k).reset_index(drop=True)

    def plot(self, metric: str | None = None):
        """Mean effect per cell: bars over one axis, a heatmap over two (plotly ``Figure``)."""
        import plotly.graph_objects as go

        name = self.metrics[self._m(metric)]
        mean = self.mean_effect(name).numpy()
        labels = list(self.axes)
        title = f"Patching {self.settings.get('site', '')} from {self.settings.get('source', '')}: change in {name}"
        if len(labels) == 1:
            fig = go.Figure(go.Bar(x=self.axes[labels[0]], y=mean))
            fig.update_layout(xaxis_title=labels[0], yaxis_title=f"change in {name}")
        else:
            fig = go.Figure(
                go.Heatmap(z=mean, x=self.axes[labels[1]], y=self.axes[labels[0]], colorscale="RdBu", zmid=0)
            )
            fig.update_layout(xaxis_title=labels[1], yaxis_title=labels[0])
        fig.update_layout(title=title)
        return fig

    def _saved(self):
        tensors = {"values": self.values, "baseline": self.baseline, "source_values": self.source_values}
        meta = {
            "metrics": self.metrics,
            "axes": self.axes,
            "ids": self.ids,
            "categories": self.categories,
            "settings": self.settings,
        }
        return tensors, meta

    @classmethod
    def _from_saved(cls, tensors: dict[str, torch.Tensor], meta: dict, path: Path) -> "PatchSweep":
        return cls(
            values=tensors["values"],
            baseline=tensors["baseline"],
            source_values=tensors["source_values"],
            metrics=meta["metrics"],
            axes={k: list(v) for k, v in meta["axes"].items()},
            ids=meta["ids"],
            categories=meta["categories"],
            settings=meta["settings"],
        )
