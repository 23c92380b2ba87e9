"""FFN concepts by PCA of the down-projection (METHODS.md section 6; Wu et al. 2024).

Per layer, ``W`` is the down-projection as a ``d_mlp x d_model`` matrix (one row per neuron: the
value vector it writes). Centre the rows, take the SVD ``W - mean = U S V^T``; the principal components
are the rows of ``V^T`` (d_model-vectors), with explained variance ratio ``S_k^2 / sum_j S_j^2``. Each
component is read through the unembedding: words are ranked by ``|PC . e_w|`` with ``e_w`` the
L2-normalised mean unembedding row of the word's sub-tokens. Components are labelled from their top
words by a labeller: the offline :func:`lexicon_labeller` by default, or any callable.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..checks import check_layer
from ..hooks import is_moe
from ..models import model_facts
from ..results import Result
from .lexicon import Labeller, lexicon_labeller, normalise_label
from .vocabulary import WordVectors, frequent_words, word_vectors

__all__ = ["Concepts", "down_projection", "ffn_concepts", "layer_groups", "layer_label"]

# ------------------------------------------------------------------------------------------------
# Concepts of one layer


def down_projection(model, layer: int) -> Float[Tensor, "d_mlp d_model"]:
    """The layer's MLP down-projection as ``d_mlp x d_model`` (row i = neuron i's value vector).

    For gated MLPs this is ``down_proj`` (the bridge's ``W_out``). MoE blocks have one per expert and
    are not supported here.
    """
    layer = check_layer(model, layer)
    if is_moe(model):
        raise ValueError(
            "ffn_concepts needs a dense MLP; this model routes tokens to experts (one down-projection "
            "per expert). Analyse one expert's matrix yourself, or use a dense model."
        )
    w = model.blocks[layer].mlp.W_out.detach()
    facts = model_facts(model)
    if tuple(w.shape) != (facts.d_mlp, facts.d_model):
        raise ValueError(
            f"Expected the down-projection as ({facts.d_mlp}, {facts.d_model}); got {tuple(w.shape)}."
        )
    return w


def _vocabulary(model, vocabulary) -> WordVectors:
    if isinstance(vocabulary, WordVectors):
        return vocabulary
    words = frequent_words() if vocabulary is None else list(vocabulary)
    return word_vectors(model, words, matrix="unembed")


@dataclass(kw_only=True, repr=False)
class Concepts(Result):
    """Principal components of one layer's down-projection, read through the unembedding."""

    layer: int
    components: Float[Tensor, "component d_model"]
    singular_values: Float[Tensor, " component"]
    explained_variance_ratio: Float[Tensor, " component"]  # of the total variance (all components)
    top_word_ids: Int[Tensor, "component word"]  # indices into ``words``
    top_scores: Float[Tensor, "component word"]  # signed PC . e_w, ranked by |.|
    words: list[str]
    labels: list[dict]
    settings: dict = field(default_factory=dict)

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    def top_words(self, component: int, k: int | None = None) -> list[str]:
        """The component's top words (all kept, or the first ``k``)."""
        ids = self.top_word_ids[component, :k].tolist()
        return [self.words[i] for i in ids]

    def to_frame(self, k: int = 15) -> pd.DataFrame:
        """One row per component: explained variance, labels and its first ``k`` words."""
        rows = []
        for c in range(self.n_components):
            rows.append(
                {
                    "layer": self.layer,
                    "component": c,
                    "explained_variance": float(self.explained_variance_ratio[c]),
                    **{k: ", ".join(v) if isinstance(v, list) else v for k, v in self.labels[c].items()},
                    "top_words": " ".join(self.top_words(c, k)),
                }
            )
        return pd.DataFrame(rows)

    def label_shares(self) -> pd.DataFrame:
        """This layer's label shares (explainable share; task and level shares over explainable components)."""
        from .concept_shares import label_counts

        return label_counts(self.labels).assign(layer=self.layer)

    def plot(self, k: int = 8):
        """Plotly scatter: explained variance per component, coloured by task, top words on hover."""
        import plotly.express as px

        frame = self.to_frame(k)
        color = "task" if "task" in frame else None
        return px.scatter(
            frame,
            x="component",
            y="explained_variance",
            color=color,
            hover_data=["top_words"],
            log_y=True,
            title=f"Layer {self.layer} down-projection components (top words on hover)",
        )

    def _facts(self) -> dict[str, object]:
        tasks = pd.Series([t for lab in self.labels for t in lab.get("tasks", [])]).value_counts()
        return {
            "layer": self.layer,
            "components": f"{self.n_components} of d_model {self.components.shape[1]}, explaining "
            f"{float(self.explained_variance_ratio.sum()):.1%} of the variance",
            "words": f"{len(self.words):,} in the vocabulary, {self.top_word_ids.shape[1]} kept per component",
            "explainable": f"{sum(lab.get('explainable', True) for lab in self.labels)} of {self.n_components}",
            "task labels": ", ".join(f"{k} {v}" for k, v in tasks.items()) or "-",
            "component 0": " ".join(self.top_words(0, 8)) if self.n_components else "-",
        }

    def _saved(self):
        return {
            "components": self.components,
            "singular_values": self.singular_values,
            "explained_variance_ratio": self.explained_variance_ratio,
            "top_word_ids": self.top_word_ids,
            "top_scores": self.top_scores,
        }, {"layer": self.layer, "words": self.words, "labels": self.labels, "settings": self.settings}

    @classmethod
    def _from_saved(cls, tensors, meta, path) -> "Concepts":
        return cls(
            layer=meta["layer"],
            words=meta["words"],
            labels=meta["labels"],
            settings=meta["settings"],
            **tensors,
        )


def ffn_concepts(
    model,
    layer: int,
    *,
    n_components: int = 300,
    top_words: int = 50,
    vocabulary: Sequence[str] | WordVectors | None = None,
    labeller: Labeller | None = None,
    label_words: int = 15,
) -> Concepts:
    """PCA of a layer's down-projection rows, each component read as its top unembedding words.

    Args:
        model: a dense bridge.
        layer: the layer (negative counts from the end).
        n_components: how many leading components to keep (capped at the centred matrix's rank).
        top_words: words kept per component, ranked by ``|PC . e_w|``.
        vocabulary: words (default: ``frequent_words()``, 20,000 frequent English words) or precomputed
            unembedding :class:`WordVectors` (reuse them across layers).
        labeller: a callable ``words -> dict`` (default :func:`lexicon_labeller`).
        label_words: how many top words the labeller sees (paper: 15).

    Returns:
        :class:`Concepts`. Component signs are fixed so that each component's largest-magnitude entry
        is positive.

    Examples:
        >>> from instr_interp import tiny_model
        >>> c = ffn_concepts(tiny_model(), 0, n_components=5, top_words=3, vocabulary=["cat", "dog", "sun", "run"])
        >>> c.components.shape
        torch.Size([5, 64])
    """
    if n_components < 1 or top_words < 1 or label_words < 1:
        raise ValueError("n_components, top_words and label_words must be positive.")
    layer = check_layer(model, layer)
    w = down_projection(model, layer).double()
    centred = w - w.mean(dim=0, keepdim=True)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    tol = s.max() * max(centred.shape) * torch.finfo(s.dtype).eps
    rank = int((s > tol).sum())
    k = min(n_components, rank)
    comps = vh[:k]
    flip = torch.sign(comps.gather(1, comps.abs().argmax(dim=1, keepdim=True)))
    comps = comps * flip
    ratio = s**2 / (s**2).sum()

    vocab = _vocabulary(model, vocabulary)
    unit = vocab.normalized().to(comps.device).double()
    scores = comps @ unit.T  # [k, word]
    n_top = min(top_words, len(vocab.words))
    top_ids = scores.abs().topk(n_top, dim=1).indices
    top_scores = scores.gather(1, top_ids)
    labeller = labeller or lexicon_labeller
    labels = []
    for c in range(k):
        labels.append(normalise_label(labeller([vocab.words[i] for i in top_ids[c, :label_words].tolist()])))
    return Concepts(
        layer=layer,
        components=comps.float().cpu(),
        singular_values=s[:k].float().cpu(),
        explained_variance_ratio=ratio[:k].float().cpu(),
        top_word_ids=top_ids.cpu(),
        top_scores=top_scores.float().cpu(),
        words=list(vocab.words),
        labels=labels,
        settings={
            "n_components": n_components,
            "rank": rank,
            "top_words": top_words,
            "label_words": label_words,
            "labeller": getattr(labeller, "__name__", type(labeller).__name__),
            "n_vocabulary": len(vocab.words),
            "model": model_facts(model).name,
        },
    )


# ------------------------------------------------------------------------------------------------
# Shares per layer group, and comparison of two models


def layer_groups(n_layers: int, *, group: int | None = 8, n_groups: int | None = None) -> list[list[int]]:
    """Split ``range(n_layers)`` into blocks of ``group`` layers, or into ``n_groups`` near-equal blocks.

    ``n_groups`` (e.g. 3: lower / middle / upper) compares models of different depth by relative depth.
    """
    if n_groups is not None:
        if not 1 <= n_groups <= n_layers:
            raise ValueError(f"n_groups must be in [1, {n_layers}], got {n_groups}.")
        return [
            list(range(math.floor(i * n_layers / n_groups), math.floor((i + 1) * n_layers / n_groups)))
            for i in range(n_groups)
        ]
    if group is None or group < 1:
        raise ValueError(f"group must be a positive number of layers (or pass n_groups); got {group}.")
    return [list(range(start, min(start + group, n_layers))) for start in range(0, n_layers, group)]


def layer_label(members: list[int]) -> str:
    """A layer group as text: ``"0-7"``, or ``"5"`` for a group of one layer.

    Examples:
        >>> [layer_label(g) for g in layer_groups(9, group=8)]
        ['0-7', '8']
    """
    return f"{members[0]}-{members[-1]}" if members[-1] != members[0] else str(members[0])


def __getattr__(name: str):
    """The share and comparison functions live in :mod:`~instr_interp.shift.concept_shares` (imported lazily)."""
    if name in _MOVED:
        from . import concept_shares as module

        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_MOVED = ("compare_concepts", "concept_shares", "plot_shares", "task_label_summary")
