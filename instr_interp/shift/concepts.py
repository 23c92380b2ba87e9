"""FFN concepts by PCA of the down-projection (METHODS.md section 6; Wu et al. 2024).

Per layer, ``W`` is the down-projection as a ``d_mlp x d_model`` matrix (one row per neuron: the
value vector it writes). Centre the rows, take the SVD ``W - mean = U S V^T``; the principal components
are the rows of ``V^T`` (d_model-vectors), with explained variance ratio ``S_k^2 / sum_j S_j^2``. Each
component is read through the unembedding: words are ranked by ``|PC . e_w|`` with ``e_w`` the
L2-normalised mean unembedding row of the word's sub-tokens. Components are labelled from their top
words by a labeller: the offline :func:`lexicon_labeller` by default, or any callable.
"""

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from ..checks import check_layer, check_layers
from ..hooks import is_moe
from ..models import model_facts
from ..results import Result
from .lexicon import LEVELS, TASKS, Labeller, lexicon_labeller
from .vocabulary import WordVectors, frequent_words, word_vectors

__all__ = [
    "Concepts",
    "compare_concepts",
    "concept_shares",
    "down_projection",
    "ffn_concepts",
    "layer_groups",
    "plot_shares",
    "task_label_summary",
]

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
                    **self.labels[c],
                    "top_words": " ".join(self.top_words(c, k)),
                }
            )
        return pd.DataFrame(rows)

    def label_shares(self) -> pd.DataFrame:
        """Share of components per label value, for each label key (``task``, ``level``, ...)."""
        return _shares(self.labels, {"layer": self.layer})

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
        tasks = pd.Series([lab.get("task", "-") for lab in self.labels]).value_counts()
        return {
            "layer": self.layer,
            "components": f"{self.n_components} of d_model {self.components.shape[1]}, explaining "
            f"{float(self.explained_variance_ratio.sum()):.1%} of the variance",
            "words": f"{len(self.words):,} in the vocabulary, {self.top_word_ids.shape[1]} kept per component",
            "task labels": ", ".join(f"{k} {v}" for k, v in tasks.items()),
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
        label = labeller([vocab.words[i] for i in top_ids[c, :label_words].tolist()])
        if not isinstance(label, dict):
            raise ValueError(
                f"labeller must return a dict (e.g. {{'task': ..., 'level': ...}}); got {type(label)}."
            )
        labels.append(label)
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


def _shares(labels: list[dict], extra: dict) -> pd.DataFrame:
    rows = []
    for key in sorted({k for label in labels for k in label}):
        values = Counter(str(label.get(key)) for label in labels)
        order = TASKS if key == "task" else LEVELS if key == "level" else sorted(values)
        for value in list(order) + sorted(set(values) - set(order)):
            rows.append(
                {
                    **extra,
                    "axis": key,
                    "label": value,
                    "count": values.get(value, 0),
                    "share": values.get(value, 0) / max(len(labels), 1),
                }
            )
    return pd.DataFrame(rows)


def concept_shares(
    model,
    layers: Sequence[int] | None = None,
    *,
    group: int | None = 8,
    n_groups: int | None = None,
    n_components: int = 300,
    top_words: int = 50,
    vocabulary: Sequence[str] | WordVectors | None = None,
    labeller: Labeller | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Share of components per label, per layer group (paper: blocks of 8 layers).

    Args:
        model: a dense bridge.
        layers: layers to analyse (default all); groups are formed over all layers and keep these.
        group: layers per group; or ``n_groups`` near-equal groups by depth (for models of different depth).
        n_components, top_words, vocabulary, labeller: as in :func:`ffn_concepts`.
        progress: show a progress bar over layers.

    Returns:
        DataFrame with columns ``group`` (index), ``layers`` (e.g. ``"0-7"``), ``axis`` (``task`` /
        ``level``), ``label``, ``count``, ``share`` (of the group's components), ``n_components``.
    """
    n_layers = model.cfg.n_layers
    chosen = sorted(range(n_layers) if layers is None else check_layers(model, layers))
    vocab = _vocabulary(model, vocabulary)
    labels_by_layer = {}
    for layer in tqdm(chosen, desc="FFN concepts", disable=not progress):
        labels_by_layer[layer] = ffn_concepts(
            model, layer, n_components=n_components, top_words=top_words, vocabulary=vocab, labeller=labeller
        ).labels
    frames = []
    for index, members in enumerate(layer_groups(n_layers, group=group, n_groups=n_groups)):
        members = [m for m in members if m in labels_by_layer]
        if not members:
            continue
        labels = [lab for m in members for lab in labels_by_layer[m]]
        frame = _shares(labels, {"group": index, "layers": layer_label(members)})
        frame["n_components"] = len(labels)
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    out.attrs["model"] = model_facts(model).name
    out.attrs["n_layers"] = n_layers
    return out


def compare_concepts(
    a: pd.DataFrame, b: pd.DataFrame, *, names: tuple[str, str] = ("a", "b")
) -> pd.DataFrame:
    """Label shares of two models side by side, per group, with ``diff = share_b - share_a``.

    Args:
        a, b: :func:`concept_shares` frames. Same architecture: use the same ``group``. Different depths:
            build both with the same ``n_groups`` so groups match by relative depth.
        names: column suffixes for the two models.

    Returns:
        DataFrame: ``group``, ``axis``, ``label``, ``layers_<name>``, ``share_<name>`` for both, ``diff``.
    """
    for frame in (a, b):
        missing = {"group", "layers", "axis", "label", "share"} - set(frame.columns)
        if missing:
            raise ValueError(
                f"compare_concepts needs concept_shares() frames; missing columns {sorted(missing)}."
            )
    if set(a["group"]) != set(b["group"]):
        raise ValueError(
            "The two frames have different layer groups; build both with the same group= or n_groups=."
        )
    na, nb = names
    keys = ["group", "axis", "label"]
    left = a[keys + ["layers", "share"]].rename(columns={"layers": f"layers_{na}", "share": f"share_{na}"})
    right = b[keys + ["layers", "share"]].rename(columns={"layers": f"layers_{nb}", "share": f"share_{nb}"})
    out = left.merge(right, on=keys, how="outer")
    out[[f"share_{na}", f"share_{nb}"]] = out[[f"share_{na}", f"share_{nb}"]].fillna(0.0)
    out["diff"] = out[f"share_{nb}"] - out[f"share_{na}"]
    return out.sort_values(keys, kind="stable").reset_index(drop=True)


def plot_shares(shares: pd.DataFrame, axis: str = "task", title: str | None = None):
    """Plotly stacked bars: label shares per layer group for one ``axis`` (``task`` or ``level``)."""
    import plotly.express as px

    frame = shares[shares["axis"] == axis]
    return px.bar(
        frame,
        x="layers",
        y="share",
        color="label",
        barmode="stack",
        title=title or f"FFN concept {axis} shares per layer group",
    )


def task_label_summary(shares: pd.DataFrame) -> dict:
    """Totals of a :func:`concept_shares` frame over all layer groups.

    Returns:
        A dict: ``total`` (components, at least 1), ``labelled`` (components with a task label other
        than "none"), ``tasks`` and ``levels`` (label -> share of ``total``, in :data:`TASKS` /
        :data:`LEVELS` order, "none" left out of ``tasks``), and ``by_group`` (layer-group label ->
        summed share of the task-labelled components in that group).

    Examples:
        >>> import pandas as pd
        >>> frame = pd.DataFrame([
        ...     {"group": 0, "layers": "0-1", "axis": "task", "label": "math", "count": 1, "share": 0.25},
        ...     {"group": 0, "layers": "0-1", "axis": "task", "label": "none", "count": 3, "share": 0.75}])
        >>> s = task_label_summary(frame)
        >>> s["labelled"], s["total"], s["tasks"]["math"], s["by_group"]
        (1, 4, 0.25, {'0-1': 0.25})
    """
    need = {"axis", "label", "count", "layers", "share"}
    if not need <= set(shares.columns):
        raise ValueError(
            f"shares needs columns {sorted(need)} (from concept_shares); got {list(shares.columns)}."
        )
    task = shares[shares["axis"] == "task"].groupby("label")["count"].sum()
    level = shares[shares["axis"] == "level"].groupby("label")["count"].sum()
    total = max(int(task.sum()), 1)
    labelled = shares[(shares["axis"] == "task") & (shares["label"] != "none")]
    return {
        "total": total,
        "labelled": total - int(task.get("none", 0)),
        "tasks": {t: float(task.get(t, 0) / total) for t in TASKS if t != "none"},
        "levels": {lv: float(level.get(lv, 0) / total) for lv in LEVELS},
        "by_group": {g: float(v) for g, v in labelled.groupby("layers", sort=False)["share"].sum().items()},
    }
