"""Tests used by the analyses, with their undefined cases made explicit (NaN and a reason, never a
p-value computed from a degenerate sample)."""

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["Interval", "TestResult", "bootstrap_mean", "paired_t", "welch"]


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


@dataclass(frozen=True)
class Interval:
    """An estimate with a percentile-bootstrap confidence interval (``level``, e.g. 0.95)."""

    estimate: float
    low: float
    high: float
    level: float = 0.95
    n: int = 0

    def __str__(self) -> str:
        return f"{self.estimate:.3f} [{self.low:.3f}, {self.high:.3f}]"


def bootstrap_mean(values, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Interval:
    """The mean of ``values`` with a percentile-bootstrap interval over the values (resampled with
    replacement ``n_boot`` times). Paired data: pass the per-record differences.

    NaN values are refused (drop them first and say so); fewer than 2 values give a NaN interval.

    Examples:
        >>> iv = bootstrap_mean([1.0, 2.0, 3.0, 4.0], n_boot=500)
        >>> iv.estimate, iv.low <= 2.5 <= iv.high
        (2.5, True)
    """
    x = np.asarray(values, dtype=float).reshape(-1)
    if not np.isfinite(x).all():
        raise ValueError("bootstrap_mean got NaN or inf values; drop them first (and report how many).")
    if not 0 < level < 1 or n_boot < 1:
        raise ValueError(f"Need 0 < level < 1 and n_boot >= 1; got level={level}, n_boot={n_boot}.")
    if len(x) < 2:
        mean = float(x.mean()) if len(x) else float("nan")
        return Interval(mean, float("nan"), float("nan"), level, len(x))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return Interval(float(x.mean()), float(low), float(high), level, len(x))


def paired_t(a, b) -> TestResult:
    """Paired t-test of mean(a − b) = 0 (``scipy.stats.ttest_rel``), NaN with a note when undefined
    (fewer than 2 pairs, non-finite values, or differences that do not vary)."""
    from scipy.stats import ttest_rel

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    nan = float("nan")
    if a.shape != b.shape:
        raise ValueError(f"paired_t needs pairs: got {a.shape} and {b.shape}.")
    if len(a) < 2:
        return TestResult(nan, nan, f"undefined: fewer than 2 pairs ({len(a)})")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return TestResult(nan, nan, "undefined: a sample holds NaN or inf")
    if np.std(a - b) == 0:
        return TestResult(nan, nan, "undefined: the paired differences do not vary")
    test = ttest_rel(a, b)
    return TestResult(float(test.statistic), float(test.pvalue))
