"""Instruction vectors of a base model and its tune, task by task: where they sit, how much their top
heads and directions agree, and what each does to its own model's held-out zero-shot accuracy."""

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from scipy.stats import binomtest

from .instruction import InstructionVector

__all__ = ["compare_vectors"]


def _accuracy_interval(accuracy: float, n: int) -> tuple[float, float]:
    """Clopper-Pearson 95% interval of an accuracy measured on ``n`` pairs."""
    ci = binomtest(int(round(accuracy * n)), n).proportion_ci(0.95, method="exact")
    return float(ci.low), float(ci.high)


def compare_vectors(
    before: Sequence[InstructionVector],
    after: Sequence[InstructionVector],
    before_scores: pd.DataFrame,
    after_scores: pd.DataFrame,
) -> pd.DataFrame:
    """One row per task: each model's vector layer and scale, the number of shared top heads, the
    cosine similarity of the two vectors (both live in the same residual space when the models share
    an architecture; compare it knowing the layers), and each model's zero-shot / with-vector /
    random-head accuracy from :func:`~instr_interp.vectors.instruction.vector_scores` with an exact
    (Clopper-Pearson) 95% interval for the with-vector accuracy over the ``n`` held-out pairs.

    Examples:
        >>> import torch, pandas as pd
        >>> iv = lambda v, heads: InstructionVector(task="t", head_effects=torch.zeros(2, 2),
        ...     top_heads=torch.tensor(heads), head_means=torch.zeros(2, 2, 1), vector=torch.tensor(v), layer=1)
        >>> s = pd.DataFrame([{"task": "t", "n": 10, "zero_shot": 0.0, "with_vector": 0.5, "random_heads": 0.0}])
        >>> row = compare_vectors([iv([1.0, 0.0], [[0, 1], [1, 1]])], [iv([1.0, 1.0], [[1, 1], [1, 0]])], s, s).iloc[0]
        >>> int(row.shared_top_heads), round(float(row.cosine), 4)
        (1, 0.7071)
    """
    if not (len(before) == len(after) == len(before_scores) == len(after_scores)):
        raise ValueError(
            f"compare_vectors needs one vector and one score row per task for both models; got "
            f"{len(before)} / {len(after)} vectors and {len(before_scores)} / {len(after_scores)} score rows."
        )
    rows = []
    for b, a, (_, sb), (_, sa) in zip(before, after, before_scores.iterrows(), after_scores.iterrows()):
        if not (b.task == a.task == sb["task"] == sa["task"]):
            raise ValueError(f"Tasks do not line up: {b.task!r}, {a.task!r}, {sb['task']!r}, {sa['task']!r}.")
        if b.vector.shape != a.vector.shape:
            raise ValueError(
                f"The {b.task!r} vectors have shapes {tuple(b.vector.shape)} and {tuple(a.vector.shape)}; "
                "compare_vectors needs two models of one architecture."
            )
        heads_b = {tuple(h) for h in b.top_heads.tolist()}
        heads_a = {tuple(h) for h in a.top_heads.tolist()}
        row = {
            "task": b.task,
            "layer_before": b.layer,
            "layer_after": a.layer,
            "scale_before": b.scale,
            "scale_after": a.scale,
            "k": len(heads_b),
            "shared_top_heads": len(heads_b & heads_a),
            "cosine": float(torch.nn.functional.cosine_similarity(b.vector.float(), a.vector.float(), dim=0)),
        }
        for label, s in (("before", sb), ("after", sa)):
            low, high = _accuracy_interval(float(s["with_vector"]), int(s["n"]))
            row |= {
                f"zero_shot_{label}": float(s["zero_shot"]),
                f"with_vector_{label}": float(s["with_vector"]),
                f"with_vector_{label}_low": low,
                f"with_vector_{label}_high": high,
                f"random_heads_{label}": float(s["random_heads"]),
                f"n_{label}": int(s["n"]),
            }
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["cosine"] = frame["cosine"].astype(np.float64)
    return frame
