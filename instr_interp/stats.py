"""Tests used by the analyses, with their undefined cases made explicit (NaN and a reason, never a
p-value computed from a degenerate sample)."""

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["TestResult", "bootstrap_seeds_items", "welch"]


@dataclass(frozen=True)
class TestResult:
    """A test statistic and its p-value, or NaN for both with ``note`` saying why it is undefined."""

    statistic: float
    p_value: float
    note: str = ""

    @property
    def defined(self) -> bool:
        return not self.note


def welch(a, b, *, alternative: Literal["two-sided", "greater", "less"] = "two-sided") -> TestResult:
    """Welch's t-test of mean(a) vs mean(b) (``scipy.stats.ttest_ind(a, b, equal_var=False)``).

    Undefined, so NaN with a note: a sample with fewer than 2 values, a non-finite value, or both
    samples without variance (the t statistic would be 0/0 or ±inf).

    Examples:
        >>> welch([1.0, 2.0, 3.0], [0.0, 1.0, 0.5], alternative="greater").p_value < 0.1
        True
        >>> welch([1.0], [0.0, 1.0]).note
        'undefined: a sample has fewer than 2 values (1 and 2)'
        >>> welch([1.0, 1.0], [0.0, 0.0]).note
        'undefined: neither sample varies (every value equal within each sample)'
    """
    from scipy.stats import ttest_ind

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    nan = float("nan")
    if len(a) < 2 or len(b) < 2:
        return TestResult(nan, nan, f"undefined: a sample has fewer than 2 values ({len(a)} and {len(b)})")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return TestResult(nan, nan, "undefined: a sample holds NaN or inf")
    if a.std() == 0 and b.std() == 0:
        return TestResult(nan, nan, "undefined: neither sample varies (every value equal within each sample)")
    test = ttest_ind(a, b, equal_var=False, alternative=alternative)
    return TestResult(float(test.statistic), float(test.pvalue))


def bootstrap_seeds_items(
    values, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of a ``[seed, item]`` table and its percentile interval from a two-level bootstrap:
    resample the seeds (independent training runs), then the items within the table (the same
    item draw for every resampled seed, as the items are shared across seeds).

    With one seed only the items are resampled; with one item only the seeds. NaN entries are not
    allowed.

    Examples:
        >>> mean, lo, hi = bootstrap_seeds_items([[1.0, 2.0, 3.0], [2.0, 3.0, 4.0]])
        >>> mean, lo <= mean <= hi
        (2.5, True)
    """
    table = np.asarray(values, dtype=float)
    if table.ndim != 2 or table.size == 0:
        raise ValueError(f"values must be a non-empty [seed, item] table; got shape {table.shape}.")
    if not np.isfinite(table).all():
        raise ValueError("values hold NaN or inf; drop those items first.")
    rng = np.random.default_rng(seed)
    n_seeds, n_items = table.shape
    seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    items = rng.integers(0, n_items, size=(n_boot, n_items))
    means = np.array([table[np.ix_(s, i)].mean() for s, i in zip(seeds, items)])
    tail = (1 - level) / 2
    return float(table.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))
