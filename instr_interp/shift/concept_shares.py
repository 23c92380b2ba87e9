"""Label shares of FFN concept components, and their comparison between two models (Wu et al. 2024).

As in the authors' analysis: components a labeller cannot explain ("cannot tell") are dropped before any
share is taken; a component may carry several task labels, so task shares need not sum to 1; task shares
are pooled over all layers; linguistic levels are shown per block of 4 layers. Two models' shares are
compared label by label with Fisher's exact test on the 2 x 2 table of counts and a Newcombe (Wilson
score) 95% interval for the difference.
"""

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import fisher_exact, norm
from tqdm.auto import tqdm

from ..checks import check_layers
from ..models import model_facts
from .concepts import _vocabulary, ffn_concepts, layer_groups, layer_label
from .lexicon import LEVELS, TASKS, UNEXPLAINABLE, Labeller, normalise_label
from .vocabulary import WordVectors

__all__ = [
    "POOLED",
    "compare_concepts",
    "concept_shares",
    "label_counts",
    "plot_shares",
    "task_label_summary",
]

POOLED = -1  # the ``group`` of the rows pooled over every analysed layer
_COLUMNS = ["group", "layers", "axis", "label", "count", "n", "share", "n_components"]


def _share(count: int, n: int) -> float:
    return count / n if n > 0 else float("nan")


def label_counts(labels: Sequence[dict]) -> pd.DataFrame:
    """Counts and shares of one set of component labels.

    Rows: axis ``explainable`` (labels ``explainable`` / ``cannot tell``, over all components), axis
    ``task`` (each of :data:`TASKS`; a component counts once for every task it carries, ``none`` when it
    carries none) and axis ``level`` (each of :data:`LEVELS`), both over the explainable components only.
    ``n`` is the denominator of ``share`` (NaN when it is 0).
    """
    labels = [normalise_label(lab) for lab in labels]
    explained = [lab for lab in labels if lab["explainable"]]
    n_all, n_exp = len(labels), len(explained)
    rows = [
        ("explainable", "explainable", n_exp, n_all),
        ("explainable", UNEXPLAINABLE, n_all - n_exp, n_all),
    ]
    for task in TASKS:
        count = sum((task in lab["tasks"]) if task != "none" else not lab["tasks"] for lab in explained)
        rows.append(("task", task, count, n_exp))
    levels = [str(lab.get("level")) for lab in explained]
    for level in list(LEVELS) + sorted(set(levels) - set(LEVELS)):
        rows.append(("level", level, levels.count(level), n_exp))
    frame = pd.DataFrame(rows, columns=["axis", "label", "count", "n"])
    frame["share"] = [_share(c, n) for c, n in zip(frame["count"], frame["n"])]
    frame["n_components"] = n_all
    return frame


def concept_shares(
    model,
    layers: Sequence[int] | None = None,
    *,
    group: int | None = 4,
    n_groups: int | None = None,
    n_components: int = 300,
    top_words: int = 50,
    vocabulary: Sequence[str] | WordVectors | None = None,
    labeller: Labeller | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Label shares of every layer's components: pooled over all layers, and per block of layers.

    Args:
        model: a dense bridge.
        layers: layers to analyse (default all); blocks are formed over all layers and keep these.
        group: layers per block (authors: 4, for the linguistic-level plot); or ``n_groups`` near-equal
            blocks by depth (for models of different depth).
        n_components, top_words, vocabulary, labeller: as in :func:`~instr_interp.shift.concepts.ffn_concepts`
            (authors: the top 300 components per layer).
        progress: show a progress bar over layers.

    Returns:
        DataFrame (:func:`label_counts` rows) with ``group`` (:data:`POOLED` = -1 for all analysed layers
        together, the authors' task shares; 0, 1, ... per block) and ``layers`` (e.g. ``"0-3"``).
    """
    n_layers = model.cfg.n_layers
    chosen = sorted(range(n_layers) if layers is None else check_layers(model, layers))
    vocab = _vocabulary(model, vocabulary)
    by_layer = {}
    for layer in tqdm(chosen, desc="FFN concepts", disable=not progress):
        by_layer[layer] = ffn_concepts(
            model, layer, n_components=n_components, top_words=top_words, vocabulary=vocab, labeller=labeller
        ).labels
    frames = [
        label_counts([lab for m in chosen for lab in by_layer[m]]).assign(
            group=POOLED, layers=layer_label(chosen)
        )
    ]
    for index, members in enumerate(layer_groups(n_layers, group=group, n_groups=n_groups)):
        members = [m for m in members if m in by_layer]
        if members:
            labels = [lab for m in members for lab in by_layer[m]]
            frames.append(label_counts(labels).assign(group=index, layers=layer_label(members)))
    out = pd.concat(frames, ignore_index=True)[_COLUMNS]
    out.attrs["model"] = model_facts(model).name
    out.attrs["n_layers"] = n_layers
    return out


def _wilson(count: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval of a proportion count / n (n > 0)."""
    p = count / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _difference(ca: int, na: int, cb: int, nb: int, level: float) -> tuple[float, float, float]:
    """share_b - share_a with Newcombe's hybrid-score interval, and Fisher's exact two-sided p."""
    if na <= 0 or nb <= 0:
        return float("nan"), float("nan"), float("nan")
    z = float(norm.ppf(0.5 + level / 2))
    pa, pb = ca / na, cb / nb
    (la, ua), (lb, ub) = _wilson(ca, na, z), _wilson(cb, nb, z)
    low = (pb - pa) - np.sqrt((pb - lb) ** 2 + (ua - pa) ** 2)
    high = (pb - pa) + np.sqrt((ub - pb) ** 2 + (pa - la) ** 2)
    p = fisher_exact([[cb, nb - cb], [ca, na - ca]]).pvalue
    return float(low), float(high), float(p)


def compare_concepts(
    a: pd.DataFrame, b: pd.DataFrame, *, names: tuple[str, str] = ("a", "b"), level: float = 0.95
) -> pd.DataFrame:
    """Label shares of two models side by side with ``diff = share_b - share_a``, its interval and a test.

    Args:
        a, b: :func:`concept_shares` frames built with the same blocks (same ``group``, or the same
            ``n_groups`` for models of different depth).
        names: column suffixes for the two models.
        level: confidence level of the interval.

    Returns:
        DataFrame: ``group``, ``axis``, ``label``, per model ``layers_``/``count_``/``n_``/``share_<name>``,
        ``diff``, ``ci_low``/``ci_high`` (Newcombe hybrid score interval of the difference of two
        independent proportions) and ``p_value`` (Fisher's exact test, two-sided, on the 2 x 2 counts). Components
        are treated as independent draws, which they are not quite (they share a layer).
    """
    need = {"group", "layers", "axis", "label", "count", "n", "share"}
    for frame in (a, b):
        missing = need - set(frame.columns)
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
    cols = ["layers", "count", "n", "share"]
    left = a[keys + cols].rename(columns={c: f"{c}_{na}" for c in cols})
    right = b[keys + cols].rename(columns={c: f"{c}_{nb}" for c in cols})
    out = left.merge(right, on=keys, how="outer")
    out["diff"] = out[f"share_{nb}"] - out[f"share_{na}"]
    stats = [
        _difference(int(x), int(y), int(u), int(v), level)
        if not pd.isna(x) and not pd.isna(u)
        else (np.nan,) * 3
        for x, y, u, v in zip(out[f"count_{na}"], out[f"n_{na}"], out[f"count_{nb}"], out[f"n_{nb}"])
    ]
    out[["ci_low", "ci_high", "p_value"]] = pd.DataFrame(stats, index=out.index)
    return out.sort_values(keys, kind="stable").reset_index(drop=True)


def plot_shares(shares: pd.DataFrame, axis: str = "level", title: str | None = None):
    """Plotly bars of one ``axis``: levels per block of layers (stacked), tasks pooled over all layers."""
    import plotly.express as px

    if axis == "task":
        frame = shares[(shares["axis"] == "task") & (shares["group"] == POOLED)]
        return px.bar(
            frame, x="label", y="share", title=title or "Task shares of explainable FFN concepts, all layers"
        )
    frame = shares[(shares["axis"] == axis) & (shares["group"] != POOLED)]
    return px.bar(
        frame,
        x="layers",
        y="share",
        color="label",
        barmode="stack",
        title=title or f"FFN concept {axis} shares per block of layers",
    )


def task_label_summary(shares: pd.DataFrame) -> dict:
    """The pooled numbers of a :func:`concept_shares` frame.

    Returns:
        A dict: ``total`` (components), ``explainable`` (components the labeller could explain),
        ``labelled`` (explainable components with at least one task), ``tasks`` and ``levels`` (label ->
        share of the explainable components, "none" left out of ``tasks``; tasks may sum above the
        labelled share, a component can carry several), and ``by_group`` (block label -> {level: share}).

    Examples:
        >>> from instr_interp.shift.lexicon import lexicon_labeller
        >>> frame = label_counts([lexicon_labeller(["sum", "equation", "python", "loop"]),
        ...                       lexicon_labeller(["cat", "dog", "horse", "cow", "sheep"])]).assign(group=-1, layers="0")
        >>> s = task_label_summary(frame)
        >>> s["total"], s["explainable"], s["labelled"], s["tasks"]["math"], s["tasks"]["coding"]
        (2, 1, 1, 1.0, 1.0)
    """
    need = {"group", "layers", "axis", "label", "count", "n"}
    if not need <= set(shares.columns):
        raise ValueError(
            f"shares needs columns {sorted(need)} (from concept_shares); got {list(shares.columns)}."
        )
    pooled = shares[shares["group"] == POOLED]
    if pooled.empty:
        raise ValueError("shares has no pooled rows (group -1); build it with concept_shares.")

    def counts(axis):
        part = pooled[pooled["axis"] == axis]
        return dict(zip(part["label"], part["count"])), int(part["n"].iloc[0]) if len(part) else 0

    explain, total = counts("explainable")
    task, n_exp = counts("task")
    level, _ = counts("level")
    blocks = shares[(shares["group"] != POOLED) & (shares["axis"] == "level")]
    return {
        "total": total,
        "explainable": int(explain.get("explainable", 0)),
        "labelled": n_exp - int(task.get("none", 0)),
        "tasks": {t: _share(int(task.get(t, 0)), n_exp) for t in TASKS if t != "none"},
        "levels": {lv: _share(int(level.get(lv, 0)), n_exp) for lv in LEVELS},
        "by_group": {
            g: dict(zip(part["label"], part["share"])) for g, part in blocks.groupby("layers", sort=False)
        },
    }
