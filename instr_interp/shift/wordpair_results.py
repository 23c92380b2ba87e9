"""The result of word-pair extraction: :class:`WordPairs` (per top dimension and head-level pairs).

Computed by :func:`~instr_interp.shift.wordpairs.model_word_pairs` and its one-layer / one-head forms.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..results import Result

__all__ = ["WordPairs"]


@dataclass(kw_only=True, repr=False)
class WordPairs(Result):
    """Word pairs of one or more heads: per analysed dimension, and head-level (seen ``min_dims`` times or more).

    ``counting`` decides what a head-level pair is (see :meth:`head_pairs`): ``"authors"`` (Wu et al.'s
    rule, the default) or ``"ordered"`` (the toolkit's earlier rule).
    """

    words: list[str]
    dim_pairs: Int[Tensor, "pair 5"]  # columns: layer, head, dim, query word, key word (indices into words)
    scores: Float[Tensor, " pair"]  # H_Q[q, d] * H_K[k, d]
    top_dims: Int[Tensor, "unit 3"]  # layer, head, dim of every analysed top dimension
    dim_energy: Float[Tensor, " unit"]  # sum_w H_Q[w,d]^2 + sum_w H_K[w,d]^2 of those dimensions
    min_dims: int = 2
    counting: str = "ordered"  # extraction sets "authors" by default; "ordered" reads results saved before
    settings: dict = field(default_factory=dict)

    @property
    def heads(self) -> list[tuple[int, int]]:
        """(layer, head) of every analysed head, sorted."""
        return sorted({(int(a), int(b)) for a, b in self.top_dims[:, :2].tolist()})

    def to_frame(self) -> pd.DataFrame:
        """One row per per-dimension pair: layer, head, dim, query, key, score."""
        rows = self.dim_pairs.tolist()
        return pd.DataFrame(
            {
                "layer": [r[0] for r in rows],
                "head": [r[1] for r in rows],
                "dim": [r[2] for r in rows],
                "query": [self.words[r[3]] for r in rows],
                "key": [self.words[r[4]] for r in rows],
                "score": self.scores.tolist(),
            },
            columns=["layer", "head", "dim", "query", "key", "score"],
        )

    def _pair_keys(self) -> tuple[Tensor, Tensor]:
        """Per row: the (first word, second word) of its head-level pair (indices into ``words``).

        ``"ordered"``: (query, key) as found. ``"authors"``: both words lower-cased (case variants share
        the first such word's index) and put in alphabetical order, so (q, k) in one dimension and (k, q)
        in another, or both in the same dimension, are one pair seen twice.
        """
        q, k = self.dim_pairs[:, 3], self.dim_pairs[:, 4]
        if self.counting == "ordered":
            return q, k
        if self.counting != "authors":
            raise ValueError(f"counting must be 'authors' or 'ordered', got {self.counting!r}.")
        lower = [w.lower() for w in self.words]
        first: dict[str, int] = {}
        canon = torch.tensor([first.setdefault(w, i) for i, w in enumerate(lower)], dtype=torch.long)
        rank = torch.empty(len(lower), dtype=torch.long)  # alphabetical rank of each word's lower-case form
        rank[torch.tensor(sorted(range(len(lower)), key=lambda i: lower[i]), dtype=torch.long)] = (
            torch.arange(len(lower))
        )
        cq, ck = canon[q], canon[k]
        swap = rank[cq] > rank[ck]
        return torch.where(swap, ck, cq), torch.where(swap, cq, ck)

    def head_pairs(self, dims: bool = False) -> pd.DataFrame:
        """Head-level pairs: (layer, head, query, key) seen at least ``min_dims`` times.

        With ``counting="authors"`` (Wu et al.'s rule) a pair is unordered and lower-cased, ``query`` and
        ``key`` hold its two words in alphabetical order, and ``count`` counts its occurrences over
        (dimension, orientation): a pair found as (q, k) and as (k, q) in one dimension counts twice. With
        ``"ordered"``, (query, key) is the pair as found and ``count`` is its number of dimensions.

        Returns:
            DataFrame: ``layer``, ``head``, ``query``, ``key``, ``count``, ``n_dims`` (distinct dimensions),
            and with ``dims=True`` the sorted list of those dimensions.
        """
        columns = ["layer", "head", "query", "key", "count", "n_dims"]
        if len(self.dim_pairs) == 0:
            return pd.DataFrame(columns=columns + (["dims"] if dims else []))
        first, second = self._pair_keys()
        # one int64 key per (layer, head, first, second), ordered as the tuples are: a 1-D unique is far
        # faster than torch.unique(dim=0) on a million rows
        fields = torch.stack([self.dim_pairs[:, 0], self.dim_pairs[:, 1], first, second], dim=1)
        bases = (fields.max(0).values + 1).tolist()
        keys = fields[:, 0]
        for col, base in zip(range(1, 4), bases[1:]):
            keys = keys * base + fields[:, col]
        unique, inverse, counts = torch.unique(keys, return_inverse=True, return_counts=True)
        keep = counts >= self.min_dims
        decoded, rest = [], unique[keep]
        for base in reversed(bases[1:]):
            decoded.append(rest % base)
            rest = rest // base
        kept = torch.stack([rest, *reversed(decoded)], dim=1).numpy()
        dim = self.dim_pairs[:, 2]
        dim_base = int(dim.max()) + 1
        pair_dims = torch.unique(inverse * dim_base + dim)  # distinct (pair, dimension)
        n_dims = torch.bincount(pair_dims // dim_base, minlength=len(unique))[keep]
        words = np.asarray(self.words, dtype=object)
        out = pd.DataFrame(
            {
                "layer": kept[:, 0],
                "head": kept[:, 1],
                "query": words[kept[:, 2]],
                "key": words[kept[:, 3]],
                "count": counts[keep].numpy(),
                "n_dims": n_dims.numpy(),
            },
            columns=columns,
        )
        if self.counting == "authors":
            out["query"], out["key"] = out["query"].str.lower(), out["key"].str.lower()
        if dims:
            position = torch.full((len(unique),), -1, dtype=torch.long)
            position[keep] = torch.arange(int(keep.sum()))
            lists: list[set[int]] = [set() for _ in kept]
            for row, d in zip(position[pair_dims // dim_base].tolist(), (pair_dims % dim_base).tolist()):
                if row >= 0:
                    lists[row].add(d)
            out["dims"] = [sorted(x) for x in lists]
        return out.sort_values(
            ["layer", "head", "count", "query", "key"],
            ascending=[True, True, False, True, True],
            kind="stable",
        ).reset_index(drop=True)

    def select(self, layer: int, head: int) -> "WordPairs":
        """The pairs of one head."""
        rows = (self.dim_pairs[:, 0] == layer) & (self.dim_pairs[:, 1] == head)
        units = (self.top_dims[:, 0] == layer) & (self.top_dims[:, 1] == head)
        if not units.any():
            raise KeyError(f"Head ({layer}, {head}) was not analysed; have {self.heads[:10]}...")
        return WordPairs(
            words=self.words,
            dim_pairs=self.dim_pairs[rows],
            scores=self.scores[rows],
            top_dims=self.top_dims[units],
            dim_energy=self.dim_energy[units],
            min_dims=self.min_dims,
            counting=self.counting,
            settings=self.settings,
        )

    def word_counts(self, words: Sequence[str]) -> pd.DataFrame:
        """Head-level pairs containing each word (as query or key; a pair (w, w') counts once for each word).

        A pair of a word with itself, possible under ``"authors"`` counting when two case variants pair
        up (``The``/``the``), counts twice, as in the authors' per-word counter.

        Returns:
            DataFrame indexed by word, one column per analysed ``(layer, head)``, zeros included.
        """
        words, heads = list(words), self.heads
        rows: dict[str, list[int]] = {}
        for i, w in enumerate(words):
            rows.setdefault(w, []).append(i)
        column = {h: j for j, h in enumerate(heads)}
        grid = np.zeros((len(words), len(heads)), dtype=np.int64)
        pairs = self.head_pairs()
        pairs = pairs[pairs["query"].isin(rows.keys()) | pairs["key"].isin(rows.keys())]
        authors = self.counting == "authors"
        for layer, head, q, k in pairs[["layer", "head", "query", "key"]].itertuples(index=False):
            for w in [q, k] if authors and q == k else {q, k}:
                if w in rows:
                    grid[rows[w], column[(layer, head)]] += 1
        return pd.DataFrame(
            grid,
            index=pd.Index(words, name="word"),
            columns=pd.MultiIndex.from_tuples(heads, names=["layer", "head"]),
        )

    def plot(self, top: int = 20):
        """Plotly figure: for several heads, a heatmap of head-level pairs per (layer, head); for one head,
        its ``top`` pairs by number of dimensions."""
        import plotly.express as px

        pairs = self.head_pairs()
        if len(self.heads) == 1:
            layer, head = self.heads[0]
            shown = pairs.head(top).assign(pair=lambda f: f["query"] + " → " + f["key"])
            return px.bar(
                shown,
                x="count",
                y="pair",
                orientation="h",
                title=f"Layer {layer} head {head}: word pairs seen most often",
            )
        per = pairs.groupby(["layer", "head"]).size()
        layers = sorted({lay for lay, _ in self.heads})
        n_heads = max(h for _, h in self.heads) + 1
        grid = np.full((len(layers), n_heads), np.nan)
        for lay, h in self.heads:
            grid[layers.index(lay), h] = per.get((lay, h), 0)
        return px.imshow(
            grid,
            x=list(range(n_heads)),
            y=layers,
            aspect="auto",
            color_continuous_scale="Blues",
            labels={"x": "head", "y": "layer", "color": "pairs"},
            title="Head-level word pairs per attention head",
        )

    def _facts(self) -> dict[str, object]:
        heads = self.heads
        layers = sorted({layer for layer, _ in heads})
        span = f"layers {layers[0]}-{layers[-1]}" if layers else "no layers"
        return {
            "heads": f"{len(heads)} ({span}), {len(self.top_dims)} top dimensions",
            "pairs": f"{len(self.dim_pairs):,} per-dimension pairs over {len(self.words):,} words",
            "head-level pairs": f"seen at least {self.min_dims} times; counting {self.counting!r}",
            "judge": str(self.settings.get("similarity", "-")),
        }

    def _saved(self):
        return (
            {
                "dim_pairs": self.dim_pairs,
                "scores": self.scores,
                "top_dims": self.top_dims,
                "dim_energy": self.dim_energy,
            },
            {
                "words": self.words,
                "min_dims": self.min_dims,
                "counting": self.counting,
                "settings": self.settings,
            },
        )

    @classmethod
    def _from_saved(cls, tensors, meta, path) -> "WordPairs":
        return cls(
            words=meta["words"],
            min_dims=meta["min_dims"],
            counting=meta.get("counting", "ordered"),
            settings=meta["settings"],
            **tensors,
        )
