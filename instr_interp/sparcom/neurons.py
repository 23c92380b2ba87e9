"""Instruction-specific neurons (ISNs): identification and set algebra (METHODS.md sections 2-3).

A neuron fires on a token when its gate pre-activation is positive. For an instruction, the
firing frequency of each (layer, neuron) is the share of its counted tokens (instruction + input by
default) on which it fires; the ISNs are the top ``top`` fraction of all layers x neurons.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ..checks import check_fraction
from ..engine import run
from ..results import Result
from .firing import FiringStats, NeuronFiring

__all__ = ["NeuronSets", "find_isns", "top_neurons", "sets_from_firing"]

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


def _pairs(flat: Tensor, d_mlp: int) -> Int[Tensor, "n 2"]:
    return torch.stack([flat // d_mlp, flat % d_mlp], dim=1).long()


@dataclass(kw_only=True, repr=False)
class NeuronSets(Result):
    """ISN sets per instruction and per category, as ``[n, 2]`` tensors of ``(layer, neuron)``."""

    instruction_sets: dict[str, Tensor]
    category_sets: dict[str, Tensor]
    record_categories: dict[str, str]
    n_layers: int
    d_mlp: int
    ties: dict[str, int] = field(default_factory=dict)  # neurons tied at the cut, per record/category
    settings: dict = field(default_factory=dict)
    # share of each set chosen among neurons tied at the cut (by the tie-break key, not by firing)
    tie_decided: dict[str, float] = field(default_factory=dict)

    unit: ClassVar[str] = "neuron"  # what a (layer, index) pair names, for titles and readings
    short: ClassVar[str] = "ISNs"

    # ---- basics
    @property
    def categories(self) -> list[str]:
        return list(self.category_sets)

    @property
    def n_neurons(self) -> int:
        return self.n_layers * self.d_mlp

    def flat(self, neurons: Tensor) -> Tensor:
        """(layer, neuron) pairs to flat indices ``layer * d_mlp + neuron``."""
        return _flat(neurons, self.d_mlp)

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
    def general(self) -> Int[Tensor, "n 2"]:
        """Neurons in every category's set."""
        member = self.membership("category")
        return _pairs(member.all(0).nonzero().flatten(), self.d_mlp)

    def unique(self, category: str) -> Int[Tensor, "n 2"]:
        """Neurons in ``category``'s set and in no other category's set."""
        if category not in self.category_sets:
            raise KeyError(f"No category {category!r}; have {self.categories}.")
        member = self.membership("category")
        row = self.categories.index(category)
        others = torch.cat([member[:row], member[row + 1 :]]).any(0)
        return _pairs((member[row] & ~others).nonzero().flatten(), self.d_mlp)

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
        (``neuron``, or ``expert`` for :class:`ExpertSets`)."""
        rows = []
        for kind, sets in (("category", self.category_sets), ("instruction", self.instruction_sets)):
            for key, neurons in sets.items():
                rows += [(kind, key, int(layer), int(i)) for layer, i in neurons.tolist()]
        return pd.DataFrame(rows, columns=["kind", "set", "layer", self.unit])

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
        return {
            "units": f"{self.n_layers} layers x {self.d_mlp} {self.unit}s = {self.n_neurons:,}",
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
        )


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


def _flat(neurons: Tensor, d_mlp: int) -> Tensor:
    return neurons[:, 0] * d_mlp + neurons[:, 1]


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
):
    """Find instruction-specific neurons per instruction and per category.

    Args:
        model: a hooked dense model (MoE blocks: use ``find_ises``).
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
        keep_frequencies: also return the :class:`FiringStats` (``(sets, stats)``).

    Examples:
        >>> import instr_interp as ii
        >>> isn = find_isns(ii.tiny_model(), ii.hexainst().sample(2), top=0.05, progress=False)
        >>> isn.category_sets["code"].shape
        torch.Size([12, 2])
    """
    _check_select(select, threshold, top)  # before the pass, not after it
    sums = select == "top" and tie_break == "activation"
    probe = NeuronFiring(regions, per_record=True, activation_sums=sums)
    (probe,) = run(model, data, [probe], batch_size=batch_size, padding_side=padding_side, progress=progress)
    stats = probe.result()
    sets = sets_from_firing(
        stats, top=top, rule=rule, tie_break=tie_break, select=select, threshold=threshold
    )
    return (sets, stats) if keep_frequencies else sets
