"""Instruction-specific neurons (ISNs): identification and set algebra (METHODS.md sections 2-3).

The sets, their overlap, generality, uniqueness and layer distribution; how the sets are chosen
from firing statistics (top fraction or threshold) is in :mod:`instr_interp.sparcom.selection`.
"""

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ..results import Result
from ..units import unit_starts

__all__ = ["NeuronSets"]


def _pairs(flat: Tensor, d_mlp: int) -> Int[Tensor, "n _"]:
    return torch.stack([flat // d_mlp, flat % d_mlp], dim=1).long()


def _triples(flat: Tensor, widths: list[list[int]]) -> Int[Tensor, "n 3"]:
    starts = unit_starts(widths)
    slot = torch.searchsorted(starts.flatten(), flat, right=True) - 1  # empty slots share the next start
    n_slots = starts.shape[1]
    layer, expert = slot // n_slots, slot % n_slots
    return torch.stack([layer, expert, flat - starts.flatten()[slot]], dim=1).long()


@dataclass(kw_only=True, repr=False)
class NeuronSets(Result):
    """ISN sets per instruction and per category, as ``[n, 2]`` tensors of ``(layer, neuron)``.

    MoE models (``widths`` set): ``[n, 3]`` tensors of ``(layer, expert, neuron)``. ``widths[layer]``
    lists the neurons of each routed expert of the layer, then of its always-on MLP in the last slot
    (``expert == n_experts``: the shared expert, or the whole MLP of a dense layer of a mixed stack;
    width 0 where there is none); ``d_mlp`` is then the width of a routed expert.
    """

    instruction_sets: dict[str, Tensor]
    category_sets: dict[str, Tensor]
    record_categories: dict[str, str]
    n_layers: int
    d_mlp: int
    ties: dict[str, int] = field(default_factory=dict)  # neurons tied at the cut, per record/category
    settings: dict = field(default_factory=dict)
    # share of each set chosen among neurons tied at the cut (by the tie-break key, not by firing)
    tie_decided: dict[str, float] = field(default_factory=dict)
    widths: list[list[int]] | None = None  # MoE layouts: neurons per (layer, expert slot)

    unit: ClassVar[str] = "neuron"  # what a (layer, index) pair names, for titles and readings
    short: ClassVar[str] = "ISNs"

    # ---- basics
    @property
    def categories(self) -> list[str]:
        return list(self.category_sets)

    @property
    def n_neurons(self) -> int:
        if self.widths is not None:
            return int(sum(map(sum, self.widths)))
        return self.n_layers * self.d_mlp

    @property
    def n_experts(self) -> int:
        """Routed experts per layer of an MoE layout (0 for dense sets)."""
        return len(self.widths[0]) - 1 if self.widths is not None else 0

    def flat(self, neurons: Tensor) -> Tensor:
        """(layer, neuron) pairs to flat indices ``layer * d_mlp + neuron``; for an MoE layout,
        (layer, expert, neuron) triples to their position in layer-then-expert order."""
        if self.widths is not None:
            return unit_starts(self.widths)[neurons[:, 0], neurons[:, 1]] + neurons[:, 2]
        return _flat(neurons, self.d_mlp)

    def units(self, flat: Tensor) -> Tensor:
        """Flat indices back to ``(layer, neuron)`` pairs (``(layer, expert, neuron)`` for MoE)."""
        if self.widths is not None:
            return _triples(flat, self.widths)
        return _pairs(flat, self.d_mlp)

    def membership(
        self, kind: Literal["instruction", "category"] = "instruction"
    ) -> Bool[Tensor, "set neuron"]:
        """Boolean matrix: one row per set, one column per flat neuron."""
        sets = self.instruction_sets if kind == "instruction" else self.category_sets
        out = torch.zeros(len(sets), self.n_neurons, dtype=torch.bool)
        for row, neurons in enumerate(sets.values()):
            out[row, self.flat(neurons)] = True
        return out

    # ---- set algebra
    def general(self) -> Int[Tensor, "n _"]:
        """Neurons in every category's set."""
        member = self.membership("category")
        return self.units(member.all(0).nonzero().flatten())

    def unique(self, category: str) -> Int[Tensor, "n _"]:
        """Neurons in ``category``'s set and in no other category's set."""
        if category not in self.category_sets:
            raise KeyError(f"No category {category!r}; have {self.categories}.")
        member = self.membership("category")
        row = self.categories.index(category)
        others = torch.cat([member[:row], member[row + 1 :]]).any(0)
        return self.units((member[row] & ~others).nonzero().flatten())

    def pairwise_jaccard(self) -> Float[Tensor, "record record"]:
        """Jaccard similarity of every pair of instruction sets."""
        member = self.membership("instruction").to(torch.float32)
        inter = member @ member.T
        sizes = member.sum(1)
        union = sizes[:, None] + sizes[None, :] - inter
        return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter)).double()

    def overlap(
        self,
        kind: Literal["pairwise", "category", "min"] = "pairwise",
        *,
        max_per_category: int = 100,
        seed: int = 0,
    ) -> pd.DataFrame:
        """Category x category overlap.

        ``pairwise``: mean Jaccard over instruction pairs (I in row category, I' in column category,
        I != I'), using up to ``max_per_category`` instructions per category (a seeded sample).
        ``category``: Jaccard of the category sets. ``min``: intersection over the smaller set.
        """
        cats = self.categories
        if kind == "pairwise":
            ids = list(self.instruction_sets)
            jac = self.pairwise_jaccard()
            rng = np.random.default_rng(seed)
            groups = {}
            for cat in cats:
                rows = [i for i, rid in enumerate(ids) if self.record_categories[rid] == cat]
                if len(rows) > max_per_category:
                    rows = sorted(rng.choice(rows, size=max_per_category, replace=False).tolist())
                groups[cat] = torch.tensor(rows, dtype=torch.long)
            values = np.zeros((len(cats), len(cats)))
            for a, ca in enumerate(cats):
                for b, cb in enumerate(cats):
                    block = jac[groups[ca]][:, groups[cb]]
                    if ca == cb:
                        n = len(groups[ca])
                        values[a, b] = (block.sum() - block.diagonal().sum()).item() / max(n * (n - 1), 1)
                    else:
                        values[a, b] = block.mean().item()
        elif kind in ("category", "min"):
            member = self.membership("category").to(torch.float32)
            inter = member @ member.T
            sizes = member.sum(1)
            denom = (
                sizes[:, None] + sizes[None, :] - inter
                if kind == "category"
                else torch.minimum(sizes[:, None], sizes[None, :])
            )
            values = (inter / denom.clamp(min=1)).double().numpy()
        else:
            raise ValueError(f"Unknown overlap kind {kind!r}; choose 'pairwise', 'category' or 'min'.")
        return pd.DataFrame(values, index=cats, columns=cats)

    def permutation_test(self, n_permutations: int = 1000, seed: int = 0) -> dict:
        """Is same-category overlap larger than cross-category overlap? Shuffles category labels.

        Statistic: mean pairwise Jaccard over same-category pairs minus over cross-category pairs.
        Returns the observed statistic, the permutation p-value (one-sided), ``n_permutations``,
        per-category diagonal vs mean off-diagonal values, and ``note``. When the test is undefined
        (no category with two instructions, or a single category) the statistic and p-value are NaN
        and ``note`` says why.
        """
        if isinstance(n_permutations, bool) or not isinstance(n_permutations, int) or n_permutations < 1:
            raise ValueError(f"n_permutations must be a positive integer, got {n_permutations!r}.")
        ids = list(self.instruction_sets)
        labels = np.array([self.record_categories[i] for i in ids])
        jac = self.pairwise_jaccard().numpy()
        off = ~np.eye(len(ids), dtype=bool)
        same_pairs = int(((labels[:, None] == labels[None, :]) & off).sum())
        cross_pairs = int((labels[:, None] != labels[None, :]).sum())
        if not same_pairs or not cross_pairs:
            why = (
                "no category has two instructions"
                if not same_pairs
                else "all instructions share one category"
            )
            return {
                "statistic": float("nan"),
                "p_value": float("nan"),
                "n_permutations": n_permutations,
                "per_category": {},
                "note": f"undefined: {why}, so same- and cross-category overlap cannot both be measured",
            }

        def stat(lab):
            same = (lab[:, None] == lab[None, :]) & off
            return jac[same].mean() - jac[~same & off].mean()

        observed = stat(labels)
        rng = np.random.default_rng(seed)
        null = np.array([stat(rng.permutation(labels)) for _ in range(n_permutations)])
        table = self.overlap("pairwise", max_per_category=len(ids))
        per_category = {
            c: {"same": float(table.loc[c, c]), "cross": float(table.loc[c].drop(c).mean())}
            for c in table.index
        }
        return {
            "statistic": float(observed),
            "p_value": float((1 + (null >= observed).sum()) / (1 + n_permutations)),
            "n_permutations": n_permutations,
            "per_category": per_category,
            "note": "",
        }

    def tie_summary(self) -> dict:
        """Over the instruction sets: the median number of neurons tied at the cut (``median_tied``)
        and the median share of a set decided by the tie-break rather than by firing
        (``median_decided``, see :func:`tie_decided_share`); NaN where nothing was recorded.

        Examples:
            >>> s = NeuronSets(instruction_sets={}, category_sets={}, record_categories={}, n_layers=1, d_mlp=8,
            ...                ties={"a": 10, "b": 30, "category:x": 99}, tie_decided={"a": 1.0, "b": 0.5})
            >>> s.tie_summary()
            {'median_tied': 20.0, 'median_decided': 0.75}
        """
        ties = [v for k, v in self.ties.items() if not k.startswith("category:")]
        decided = [v for k, v in self.tie_decided.items() if not k.startswith("category:")]
        return {
            "median_tied": float(np.median(ties)) if ties else float("nan"),
            "median_decided": float(np.median(decided)) if decided else float("nan"),
        }

    def size_summary(self) -> dict:
        """Median, minimum and maximum size of the instruction sets (variable under ``select="threshold"``).

        Examples:
            >>> s = NeuronSets(instruction_sets={"a": torch.zeros(3, 2, dtype=torch.long),
            ...                                  "b": torch.zeros(5, 2, dtype=torch.long)},
            ...                category_sets={}, record_categories={"a": "x", "b": "x"}, n_layers=1, d_mlp=8)
            >>> s.size_summary()
            {'median': 4.0, 'min': 3, 'max': 5}
        """
        sizes = sorted(len(s) for s in self.instruction_sets.values())
        if not sizes:
            return {"median": float("nan"), "min": 0, "max": 0}
        return {"median": float(np.median(sizes)), "min": sizes[0], "max": sizes[-1]}

    def layer_distribution(self) -> pd.DataFrame:
        """ISNs per layer per category: ``count`` and ``share`` (of that category's set)."""
        rows = []
        for cat, neurons in self.category_sets.items():
            counts = torch.bincount(neurons[:, 0], minlength=self.n_layers)
            total = max(int(counts.sum()), 1)
            rows += [
                {"category": cat, "layer": layer, "count": int(c), "share": int(c) / total}
                for layer, c in enumerate(counts.tolist())
            ]
        return pd.DataFrame(rows)

    def depth_distribution(self) -> pd.DataFrame:
        """Units of all category sets together in the first, middle and last third of the layers.

        Layer ``l`` of ``L`` is in the first third when ``l < L // 3``, the middle one when
        ``l < 2 * L // 3``, else the last. Returns one row per third: ``part``, ``first_layer``,
        ``last_layer``, ``count`` and ``share`` (of all counted units; 0 when the sets are empty).
        """
        counts = (
            self.layer_distribution()
            .groupby("layer")["count"]
            .sum()
            .reindex(range(self.n_layers), fill_value=0)
        )
        bounds = [0, self.n_layers // 3, 2 * self.n_layers // 3, self.n_layers]
        parts = [int(counts.iloc[a:b].sum()) for a, b in zip(bounds[:-1], bounds[1:])]
        total = max(sum(parts), 1)
        return pd.DataFrame(
            [
                {"part": name, "first_layer": a, "last_layer": b - 1, "count": n, "share": n / total}
                for name, a, b, n in zip(("first", "middle", "last"), bounds[:-1], bounds[1:], parts)
            ]
        )

    def busiest_layer(self) -> int:
        """The layer holding the most units of all category sets together (the first on ties)."""
        return int(self.layer_distribution().groupby("layer")["count"].sum().idxmax())

    def to_frame(self) -> pd.DataFrame:
        """Long format: one row per (set, unit); columns ``kind``, ``set``, ``layer`` and the unit
        (``neuron``, or ``expert`` for :class:`ExpertSets`; ``expert`` and ``neuron`` for MoE neurons)."""
        rows = []
        for kind, sets in (("category", self.category_sets), ("instruction", self.instruction_sets)):
            for key, neurons in sets.items():
                rows += [(kind, key, *map(int, unit)) for unit in neurons.tolist()]
        unit = ["expert", self.unit] if self.widths is not None else [self.unit]
        return pd.DataFrame(rows, columns=["kind", "set", "layer", *unit])

    # ---- plots
    def plot_overlap(self, kind: Literal["pairwise", "category", "min"] = "pairwise"):
        """Plotly heatmap of :meth:`overlap`."""
        import plotly.express as px

        frame = self.overlap(kind)
        fig = px.imshow(
            frame,
            text_auto=".2f",
            color_continuous_scale="Blues",
            aspect="auto",
            title=f"{self.short[:-1]} overlap between categories ({kind} Jaccard)",
        )
        fig.update_xaxes(side="bottom")
        return fig

    def plot_layers(self, share: bool = False):
        """Plotly lines: units per layer, one line per category."""
        import plotly.express as px

        col = "share" if share else "count"
        return px.line(
            self.layer_distribution(),
            x="layer",
            y=col,
            color="category",
            markers=True,
            title=f"Instruction-specific {self.unit}s per layer ({col})",
        )

    # ---- persistence and display
    def _facts(self) -> dict[str, object]:
        sizes = [len(v) for v in self.instruction_sets.values()]
        per_set = (
            f"{min(sizes)}-{max(sizes)}" if sizes and min(sizes) != max(sizes) else (sizes[0] if sizes else 0)
        )
        top = self.settings.get("top")
        layout = (
            f"{self.n_layers} layers x {self.n_experts} experts x {self.d_mlp} {self.unit}s + always-on"
            if self.widths is not None
            else f"{self.n_layers} layers x {self.d_mlp} {self.unit}s"
        )
        return {
            "units": f"{layout} = {self.n_neurons:,}",
            "sets": f"{len(self.instruction_sets)} instruction sets of {per_set} {self.unit}s"
            + (f" (top {top:.2%})" if isinstance(top, float) else ""),
            "category sets": ", ".join(f"{c} {len(v)}" for c, v in self.category_sets.items()),
            "general": f"{len(self.general())} {self.unit}s in every category's set",
        }

    def _saved(self):
        tensors = {f"instruction/{k}": v for k, v in self.instruction_sets.items()}
        tensors |= {f"category/{k}": v for k, v in self.category_sets.items()}
        return tensors, {
            "instruction_ids": list(self.instruction_sets),
            "categories": self.categories,
            "record_categories": self.record_categories,
            "n_layers": self.n_layers,
            "d_mlp": self.d_mlp,
            "ties": self.ties,
            "tie_decided": self.tie_decided,
            "settings": self.settings,
            "widths": self.widths,
        }

    @classmethod
    def _from_saved(cls, tensors, meta, path) -> "NeuronSets":
        return cls(
            instruction_sets={k: tensors[f"instruction/{k}"] for k in meta["instruction_ids"]},
            category_sets={k: tensors[f"category/{k}"] for k in meta["categories"]},
            record_categories=meta["record_categories"],
            n_layers=meta["n_layers"],
            d_mlp=meta["d_mlp"],
            ties=meta["ties"],
            settings=meta["settings"],
            tie_decided=meta.get("tie_decided", {}),
            widths=meta.get("widths"),
        )


def _flat(neurons: Tensor, d_mlp: int) -> Tensor:
    return neurons[:, 0] * d_mlp + neurons[:, 1]
