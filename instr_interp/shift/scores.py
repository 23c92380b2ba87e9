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
from jaxtyping import Bool, Float, Int, Real
from torch import Tensor

from ..stats import welch

if TYPE_CHECKING:
    from .attribution_results import AttributionSet

__all__ = [
    "compare_scores",
    "importance_density",
    "instruction_score",
    "is_level_matrix",
    "score_levels",
    "sparsify",
    "SPARSIFY_EPS",
    "SPARSIFY_LEVELS",
    "SPARSIFY_THRESHOLD",
]

SPARSIFY_LEVELS = 10  # L of METHODS: scores are quantised to ceil(L * normalised attribution)
SPARSIFY_THRESHOLD = 7  # b of METHODS: quantised scores at or below b are dropped (keeps > 0.7 of the max)
SPARSIFY_EPS = 1e-7  # the authors' column floor: x / (colmax + 1e-7) (generator.py input_explain)


def is_level_matrix(matrix: Tensor, *, levels: int = SPARSIFY_LEVELS) -> bool:
    """Whether ``matrix`` is already quantised to levels ``0..levels`` (so :func:`sparsify` must not
    normalise it again): an integer matrix with entries in ``0..levels``, or a float matrix of whole
    numbers whose minimum is 0 and maximum is ``levels`` (the authors' test in ``compute_density``:
    ``x.max() == 10 and x.min() == 0``; their released matrices are such float level matrices)."""
    if matrix.numel() == 0:
        return False
    lo, hi = matrix.min(), matrix.max()
    if not matrix.is_floating_point():
        return bool(lo >= 0 and hi <= levels)
    whole = bool((matrix == matrix.round()).all())
    return whole and float(lo) == 0.0 and float(hi) == float(levels)


def sparsify(
    matrix: Real[Tensor, "n_prompt n_response"],
    *,
    levels: int = SPARSIFY_LEVELS,
    threshold: int = SPARSIFY_THRESHOLD,
    eps: float = SPARSIFY_EPS,
) -> Int[Tensor, "n_prompt n_response"]:
    """Normalise and sparsify an attribution matrix (idempotent on level matrices).

    Negative entries are clipped to 0, each column is divided by ``its maximum + eps`` over prompt
    tokens (the authors' floor: a column whose maximum is tiny against ``eps`` quantises to low levels
    and is dropped, instead of being blown up to 10), scores are quantised to ``ceil(levels · ã)``
    and set to 0 where they are ``<= threshold``. A column whose maximum is not positive becomes all
    zeros. A matrix that is already quantised (:func:`is_level_matrix`, e.g. the authors' released
    matrices or the output of this function) is only thresholded, never re-normalised.

    Args:
        matrix: raw gradient × input, prompt tokens × response tokens, or a level matrix.
        levels: L, the number of quantisation levels (10).
        threshold: b, scores at or below it are dropped (7: only > 0.7 of the column max survives).
        eps: added to each column's maximum before dividing (the authors' ``1e-7``; 0 divides by
            the maximum itself).

    Returns:
        Integer scores in ``{0} ∪ (threshold, levels]``.
    """
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}.")
    if is_level_matrix(matrix, levels=levels):
        scores = matrix.round().long()
        return torch.where(scores <= threshold, 0, scores)
    clipped = matrix.double().clamp(min=0)
    col_max = clipped.amax(0, keepdim=True) if clipped.shape[0] else clipped.sum(0, keepdim=True)
    normed = torch.where(
        col_max > 0, clipped / (col_max + eps).clamp(min=torch.finfo(torch.float64).tiny), 0.0
    )
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


def score_levels(
    matrix: Real[Tensor, "n_prompt n_response"],
    instruction_mask: Bool[Tensor, " n_prompt"],
    *,
    keep: Bool[Tensor, " n_prompt"] | None = None,
    levels: int = SPARSIFY_LEVELS,
    threshold: int = SPARSIFY_THRESHOLD,
    eps: float = SPARSIFY_EPS,
) -> float:
    """The instruction score of one matrix: raw gradient × input or a precomputed level matrix.

    ``sparsify`` (a level matrix such as the authors' released ``Explain`` arrays is only
    thresholded) → :func:`importance_density` over the kept prompt tokens → :func:`instruction_score`.
    A response with no tokens (an empty matrix) scores 0, as in the authors' ``evaluate``.

    Args:
        matrix: prompt tokens × response tokens.
        instruction_mask: which prompt tokens are the instruction.
        keep: prompt tokens that take part (e.g. not the chat template's tokens); the density is
            normalised over these only. Default: all.
        levels, threshold, eps: as in :func:`sparsify`.

    Examples:
        >>> levels = torch.tensor([[10.0, 9.0], [0.0, 10.0], [8.0, 0.0]])
        >>> round(score_levels(levels, torch.tensor([True, False, False])), 4)
        0.6309
    """
    mask = torch.as_tensor(instruction_mask, dtype=torch.bool)
    if matrix.ndim != 2 or mask.shape != (matrix.shape[0],):
        raise ValueError(
            f"matrix {tuple(matrix.shape)} must be 2-d with one row per entry of instruction_mask "
            f"{tuple(mask.shape)}."
        )
    if keep is not None:
        keep = torch.as_tensor(keep, dtype=torch.bool)
        if keep.shape != mask.shape:
            raise ValueError(f"keep {tuple(keep.shape)} must match instruction_mask {tuple(mask.shape)}.")
        matrix, mask = matrix[keep], mask[keep]
    if matrix.shape[1] == 0 or matrix.shape[0] == 0:
        return 0.0
    sparse = sparsify(matrix, levels=levels, threshold=threshold, eps=eps)
    return instruction_score(importance_density(sparse), mask)


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
