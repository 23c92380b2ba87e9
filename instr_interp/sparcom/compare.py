"""Before vs after fine-tuning: how the neuron (or expert) sets of each category moved."""

from dataclasses import dataclass, field

import pandas as pd
import torch

from ..results import Result
from .change import SetChange, compare_with_intervals
from .neurons import NeuronSets

__all__ = ["SetChange", "SetComparison", "compare", "compare_with_intervals"]


@dataclass(kw_only=True, repr=False)
class SetComparison(Result):
    """Per category: set sizes before/after, Jaccard between them; per layer: count deltas."""

    summary: pd.DataFrame  # category, before, after, jaccard, kept
    layers: pd.DataFrame  # category, layer, before, after, delta
    settings: dict = field(default_factory=dict)

    def plot_layers(self):
        """Plotly lines: per-layer change in set size (after - before), one line per category."""
        import plotly.express as px

        return px.line(
            self.layers,
            x="layer",
            y="delta",
            color="category",
            markers=True,
            title="Change in instruction-specific units per layer (after - before)",
        )

    def plot_jaccard(self):
        """Plotly bars: Jaccard between each category's set before and after."""
        import plotly.express as px

        return px.bar(
            self.summary,
            x="category",
            y="jaccard",
            range_y=[0, 1],
            title="How much of each category's set survives fine-tuning (Jaccard before/after)",
        )

    def layer_totals(self) -> pd.DataFrame:
        """Per layer (the index), ``before``, ``after`` and ``delta`` summed over categories."""
        return self.layers.groupby("layer")[["before", "after", "delta"]].sum()

    def to_frame(self) -> pd.DataFrame:
        """Per category: set sizes before and after, units kept, Jaccard (a copy of ``summary``)."""
        return self.summary.copy()

    def _model(self) -> str:
        names = [(self.settings.get(k) or {}).get("model", "") for k in ("before", "after")]
        return " -> ".join(names) if all(names) else ""

    def _facts(self) -> dict[str, object]:
        s = self.summary
        return {
            "sets": self.settings.get("kind", ""),
            "categories": len(s),
            "Jaccard before/after": ", ".join(
                f"{c} {j:.2f}" for c, j in zip(s.get("category", []), s.get("jaccard", []))
            ),
        }

    def _saved(self):
        return {}, {
            "summary": self.summary.to_dict("list"),
            "layers": self.layers.to_dict("list"),
            "settings": self.settings,
        }

    @classmethod
    def _from_saved(cls, tensors, meta, path) -> "SetComparison":
        return cls(
            summary=pd.DataFrame(meta["summary"]),
            layers=pd.DataFrame(meta["layers"]),
            settings=meta["settings"],
        )


def compare(before: NeuronSets, after: NeuronSets) -> SetComparison:
    """Compare the category sets of the same architecture before and after fine-tuning.

    Works for :class:`NeuronSets` and ``ExpertSets`` alike (units are ``(layer, index)`` pairs).
    """
    if (before.n_layers, before.d_mlp, before.widths) != (after.n_layers, after.d_mlp, after.widths):
        raise ValueError(
            f"Different shapes: {before.n_layers}x{before.d_mlp} vs {after.n_layers}x{after.d_mlp}; "
            "compare sets of the same architecture."
        )
    if type(before) is not type(after):
        raise TypeError(f"Cannot compare {type(before).__name__} with {type(after).__name__}.")
    rows, layer_rows = [], []
    for cat in before.categories:
        if cat not in after.category_sets:
            continue
        a = set(before.flat(before.category_sets[cat]).tolist())
        b = set(after.flat(after.category_sets[cat]).tolist())
        union = a | b
        rows.append(
            {
                "category": cat,
                "before": len(a),
                "after": len(b),
                "kept": len(a & b),
                "jaccard": len(a & b) / len(union) if union else 1.0,
            }
        )
        layer_of = {  # flat unit -> layer (MoE layouts have unequal layer widths)
            u: int(layer)
            for u, layer in zip(
                sorted(union), before.units(torch.tensor(sorted(union), dtype=torch.long))[:, 0]
            )
        }
        for layer in range(before.n_layers):
            nb = sum(1 for u in a if layer_of[u] == layer)
            na = sum(1 for u in b if layer_of[u] == layer)
            layer_rows.append({"category": cat, "layer": layer, "before": nb, "after": na, "delta": na - nb})
    return SetComparison(
        summary=pd.DataFrame(rows),
        layers=pd.DataFrame(layer_rows),
        settings={"before": before.settings, "after": after.settings, "kind": type(before).__name__},
    )
