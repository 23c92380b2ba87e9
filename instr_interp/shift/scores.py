"""Instruction scores of attributions (METHODS.md section 5; Wu et al.).

The METHODS formulas, as free functions so they can be checked by hand: an attribution matrix is
sparsified (:func:`sparsify`), each prompt token gets an importance density
(:func:`importance_density`) and the instruction tokens' share of it is the instruction score
(:func:`instruction_score`). :func:`compare_scores` tests whether one set of attributions scores
higher than another. The results holding the matrices are in
:mod:`~instr_interp.shift.attribution_results`; the gradient × input computation is in
:mod:`~instr_interp.shift.attribution`.
"""

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ..stats import welch

if TYPE_CHECKING:
    from .attribution_results import AttributionSet

__all__ = [
    "compare_scores",
    "importance_density",
    "instruction_score",
    "sparsify",
    "SPARSIFY_LEVELS",
    "SPARSIFY_THRESHOLD",
]

SPARSIFY_LEVELS = 10  # L of METHODS: scores are quantised to ceil(L * normalised attribution)
SPARSIFY_THRESHOLD = 7  # b of METHODS: quantised scores at or below b are dropped (keeps > 0.7 of the max)


def sparsify(
    matrix: Float[Tensor, "n_prompt n_response"],
    *,
    levels: int = SPARSIFY_LEVELS,
    threshold: int = SPARSIFY_THRESHOLD,
) -> Int[Tensor, "n_prompt n_response"]:
    """Normalise and sparsify an attribution matrix.

    Negative entries are clipped to 0, each column is divided by its maximum over prompt tokens,
    scores are quantised to ``ceil(levels · ã)`` and set to 0 where they are ``<= threshold``.
    A column whose maximum is not positive (no prompt token raises that response token's
    probability) becomes all zeros.

    Args:
        matrix: raw gradient × input, prompt tokens × response tokens.
        levels: L, the number of quantisation levels (10).
        threshold: b, scores at or below it are dropped (7: only > 0.7 of the column max survives).

    Returns:
        Integer scores in ``{0} ∪ (threshold, levels]``.
    """
    clipped = matrix.double().clamp(min=0)
    col_max = clipped.amax(0, keepdim=True) if clipped.shape[0] else clipped.sum(0, keepdim=True)
    normed = torch.where(col_max > 0, clipped / col_max.clamp(min=torch.finfo(torch.float64).tiny), 0.0)
    scores = torch.ceil(levels * normed).long()
    return torch.where(scores <= threshold, 0, scores)


def importance_density(
    sparse: Int[Tensor, "n_prompt n_response"], *, p: int = 4
) -> Float[Tensor, " n_prompt"]:
    """Importance density ``ρ_n = ‖s[n,:]‖₁ / (‖s[n,:]‖_p + 1e-9)``, divided by its maximum.

    Returns all zeros when no prompt token has a non-zero score.
    """
    s = sparse.double()
    rho = s.abs().sum(1) / (s.abs().pow(p).sum(1).pow(1 / p) + 1e-9)
    top = rho.max() if rho.numel() else torch.tensor(0.0, dtype=torch.float64)
    return rho / top if top > 0 else torch.zeros_like(rho)


def instruction_score(
    density: Float[Tensor, " n_prompt"], instruction_mask: Bool[Tensor, " n_prompt"]
) -> float:
    """``Σ_{n ∈ instruction} ρ_n / log₂(2 + #instruction tokens)`` (0 when there are none)."""
    if density.shape != instruction_mask.shape:
        raise ValueError(
            f"density {tuple(density.shape)} and instruction_mask {tuple(instruction_mask.shape)} "
            "must have the same shape (one entry per prompt token)."
        )
    k = int(instruction_mask.sum())
    return float(density.double()[instruction_mask].sum() / math.log2(2 + k))


def compare_scores(a: "AttributionSet", b: "AttributionSet", *, by: str | None = "category") -> pd.DataFrame:
    """Instruction scores of two sets, per group and overall, with a one-sided Welch t-test of b > a.

    Args:
        a: the reference side (e.g. the base model).
        b: the side hypothesised to score higher (e.g. the instruction-tuned model).
        by: a column of :meth:`AttributionSet.to_frame` to group by (``"category"``, ``"source"``), or None.

    Returns:
        One row per group plus ``"overall"``: n, mean and std (ddof=1) of each side, the Welch t
        statistic and the one-sided p-value (``scipy.stats.ttest_ind(b, a, equal_var=False,
        alternative="greater")``), and ``note``: why ``t`` and ``p_value`` are NaN when the test is
        undefined (a side with fewer than 2 records, or neither side varying; :func:`instr_interp.stats.welch`).
    """
    fa, fb = a.to_frame(), b.to_frame()
    if by is not None and (by not in fa.columns or by not in fb.columns):
        raise ValueError(
            f"Cannot group by {by!r}; choose a column of AttributionSet.to_frame(): {list(fa.columns)}."
        )
    groups = [] if by is None else list(dict.fromkeys(list(fa[by]) + list(fb[by])))
    rows = []
    for group in groups + ["overall"]:
        xa = fa if group == "overall" else fa[fa[by] == group]
        xb = fb if group == "overall" else fb[fb[by] == group]
        sa, sb = xa["instruction_score"].to_numpy(float), xb["instruction_score"].to_numpy(float)
        test = welch(sb, sa, alternative="greater")
        rows.append(
            {
                "group": group,
                "n_a": len(sa),
                "mean_a": _mean(sa),
                "std_a": _std(sa),
                "n_b": len(sb),
                "mean_b": _mean(sb),
                "std_b": _std(sb),
                "t": test.statistic,
                "p_value": test.p_value,
                "note": test.note,
            }
        )
    out = pd.DataFrame(rows)
    out.attrs.update(a=a.name, b=b.name, alternative="b > a")
    return out


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else float("nan")


def _std(x: np.ndarray) -> float:
    return float(x.std(ddof=1)) if len(x) >= 2 else float("nan")
