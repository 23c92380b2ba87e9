"""Tests used by the analyses, with their undefined cases made explicit (NaN and a reason, never a
p-value computed from a degenerate sample)."""

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "Interval",
    "TestResult",
    "bootstrap_mean",
    "bootstrap_seeds_items",
    "bootstrap_stratified_mean",
    "detectable_difference",
    "paired_t",
    "paired_t_power",
    "percentile_interval",
    "welch",
    "welch_power",
]


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
    low, high = percentile_interval(means, level)
    return Interval(float(x.mean()), float(low), float(high), level, len(x))


def shared_bootstrap_means(x, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """Bootstrap means over the last axis (records): ``[..., n_boot]``. Every leading cell uses the
    same resamples (multinomial record counts), so paired quantities (a numerator and its
    denominator) resample together.

    Examples:
        >>> x = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0]])
        >>> m = shared_bootstrap_means(x, n_boot=5)
        >>> m.shape, bool(np.allclose(m[1], 2 * m[0]))  # the same resamples in both rows
        ((2, 5), True)
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)  # [n_boot, n]
    return x @ counts.T / n


def bootstrap_stratified_mean(
    values, groups, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> Interval:
    """The mean over groups of each group's mean of ``values`` (every group weighted equally), with a
    percentile-bootstrap interval that resamples the values within each group (with replacement,
    ``n_boot`` times; groups drawn in sorted order). ``n`` is the number of values.

    NaN values are refused; fewer than 2 values give a NaN interval.

    Examples:
        >>> iv = bootstrap_stratified_mean([1.0, 3.0, 10.0], ["a", "a", "b"], n_boot=500)
        >>> iv.estimate, iv.low <= 6.0 <= iv.high  # (mean(1, 3) + 10) / 2; "b" never varies
        (6.0, True)
    """
    x = np.asarray(values, dtype=float).reshape(-1)
    labels = np.asarray(groups).reshape(-1)
    if len(labels) != len(x):
        raise ValueError(
            f"groups must name one group per value: got {len(labels)} groups for {len(x)} values."
        )
    if not np.isfinite(x).all():
        raise ValueError(
            "bootstrap_stratified_mean got NaN or inf values; drop them first (and report how many)."
        )
    if not 0 < level < 1 or n_boot < 1:
        raise ValueError(f"Need 0 < level < 1 and n_boot >= 1; got level={level}, n_boot={n_boot}.")
    names, which = np.unique(labels, return_inverse=True)
    parts = [x[which == k] for k in range(len(names))]
    estimate = float(np.mean([part.mean() for part in parts])) if parts else float("nan")
    if len(x) < 2:
        return Interval(estimate, float("nan"), float("nan"), level, len(x))
    rng = np.random.default_rng(seed)
    draws = [part[rng.integers(0, len(part), size=(n_boot, len(part)))].mean(1) for part in parts]
    low, high = percentile_interval(np.mean(draws, axis=0), level)
    return Interval(estimate, float(low), float(high), level, len(x))


def percentile_interval(values, confidence: float = 0.95, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval ``(low, high)`` holding ``confidence`` of ``values`` along ``axis``: the
    ``(1 - confidence) / 2`` and ``1 - (1 - confidence) / 2`` quantiles (linear interpolation).

    Examples:
        >>> low, high = percentile_interval(np.arange(101.0), 0.9)
        >>> round(float(low), 6), round(float(high), 6)
        (5.0, 95.0)
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}.")
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail], axis=axis)
    return np.asarray(low), np.asarray(high)


def paired_t(a, b) -> TestResult:
    """Paired t-test of mean(a − b) = 0 (``scipy.stats.ttest_rel``), NaN with a note when undefined
    (fewer than 2 pairs, non-finite values, or differences that do not vary).

    Examples:
        >>> round(paired_t([2.0, 3.0, 5.0], [1.0, 1.0, 2.0]).statistic, 4)  # differences 1, 2, 3: t = 2 / (1 / sqrt(3))
        3.4641
        >>> paired_t([1.0, 2.0], [0.0, 1.0]).note
        'undefined: the paired differences do not vary'
    """
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


def spearman_permutation(x, y, *, n_resamples: int = 9999, seed: int = 0) -> TestResult:
    """Spearman's rank correlation of paired values and a two-sided permutation p-value (the pairing
    shuffled ``n_resamples`` times, ``scipy.stats.permutation_test``; exact when fewer pairings
    exist). NaN with a note when undefined: fewer than 3 pairs, a non-finite value, or a side that
    does not vary.

    Examples:
        >>> r = spearman_permutation([1, 2, 3, 4, 5], [2, 4, 5, 9, 10])
        >>> round(r.statistic, 6), round(r.p_value, 6)  # exact: 2 of the 120 pairings are as extreme
        (1.0, 0.016667)
        >>> spearman_permutation([1, 2, 3], [1, 1, 1]).note
        'undefined: a side does not vary'
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(
            f"spearman_permutation needs two 1-d arrays of one length; got {x.shape} and {y.shape}."
        )
    if len(x) < 3:
        return TestResult(float("nan"), float("nan"), f"undefined: {len(x)} pairs (at least 3 needed)")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return TestResult(float("nan"), float("nan"), "undefined: a value is not finite")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return TestResult(float("nan"), float("nan"), "undefined: a side does not vary")
    from scipy.stats import permutation_test, spearmanr

    exact = math.factorial(len(x)) <= n_resamples  # every pairing can be listed: an exact p-value
    result = permutation_test(
        (x, y),
        lambda a, b: spearmanr(a, b).statistic,
        permutation_type="pairings",
        n_resamples=np.inf if exact else n_resamples,
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    return TestResult(float(result.statistic), float(result.pvalue))


def _t_power(nc: float, df: float, alpha: float) -> float:
    """Power of a one-sided t-test at level ``alpha``: P(T' > t_{1-alpha, df}) for a noncentral T'."""
    from scipy.stats import nct, t

    return float(nct.sf(t.ppf(1 - alpha, df), df, nc))


def paired_t_power(effect: float, sd_diff: float, n: int, *, alpha: float = 0.05) -> float:
    """Power of the one-sided paired t-test to detect a mean difference ``effect`` with ``n`` pairs
    whose differences have standard deviation ``sd_diff``: noncentral t with ``df = n - 1`` and
    noncentrality ``effect / sd_diff · sqrt(n)``. NaN when undefined (``n < 2`` or ``sd_diff <= 0``).

    Examples:
        >>> round(paired_t_power(0.5, 1.0, 27), 3)  # d_z = 0.5 at n = 27: about 80%
        0.812
    """
    if n < 2 or not sd_diff > 0 or not np.isfinite(sd_diff):
        return float("nan")
    return _t_power(effect / sd_diff * np.sqrt(n), n - 1, alpha)


def welch_power(effect: float, sd_a: float, sd_b: float, n_a: int, n_b: int, *, alpha: float = 0.05) -> float:
    """Power of the one-sided Welch t-test to detect a mean difference ``effect`` between samples of
    sizes ``n_a``, ``n_b`` with standard deviations ``sd_a``, ``sd_b``: noncentral t with the
    Welch-Satterthwaite df and noncentrality ``effect / sqrt(sd_a²/n_a + sd_b²/n_b)``. NaN when
    undefined (a sample under 2 values, or no variance).

    Examples:
        >>> round(welch_power(0.5, 1.0, 1.0, 51, 51), 3)  # d = 0.5, 51 per group: about 80%
        0.806
    """
    if n_a < 2 or n_b < 2:
        return float("nan")
    va, vb = sd_a**2 / n_a, sd_b**2 / n_b
    if not va + vb > 0 or not np.isfinite(va + vb):
        return float("nan")
    df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
    return _t_power(effect / np.sqrt(va + vb), df, alpha)


def detectable_difference(power, *, target: float = 0.8, upper: float = 1e3) -> float:
    """The smallest effect ``e >= 0`` with ``power(e) >= target`` (``power`` increasing in ``e``), by
    root finding; NaN when ``power`` is undefined or never reaches ``target`` below ``upper``.

    Examples:
        >>> round(detectable_difference(lambda e: paired_t_power(e, 1.0, 27)), 2)
        0.49
    """
    from scipy.optimize import brentq

    if not np.isfinite(power(0.0)) or power(upper) < target:
        return float("nan")
    return float(brentq(lambda e: power(e) - target, 0.0, upper, xtol=1e-6))


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
    low, high = percentile_interval(means, level)
    return float(table.mean()), float(low), float(high)
