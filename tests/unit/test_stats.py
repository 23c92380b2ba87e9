"""The percentile-bootstrap intervals of instr_interp.stats, against plain numpy and hand-checked cases."""

import numpy as np
import pytest

from instr_interp.stats import bootstrap_mean, bootstrap_stratified_mean, percentile_interval


def test_percentile_interval_is_numpys_percentiles_along_an_axis():
    values = np.random.default_rng(0).normal(size=(500, 3))
    low, high = percentile_interval(values, 0.9)
    assert np.allclose(low, np.percentile(values, 5.0, axis=0), rtol=0, atol=1e-12)
    assert np.allclose(high, np.percentile(values, 95.0, axis=0), rtol=0, atol=1e-12)
    assert low.shape == high.shape == (3,)
    with pytest.raises(ValueError, match="confidence"):
        percentile_interval(values, 1.0)


def _stratified_by_hand(values, groups, n_boot, level, seed):
    """Plain loops: groups in sorted order, each drawing an [n_boot, n_group] table of record indices."""
    rng = np.random.default_rng(seed)
    totals = np.zeros(n_boot)
    names = sorted(set(groups))
    for name in names:
        member = np.array([v for v, g in zip(values, groups) if g == name])
        draws = rng.integers(0, len(member), size=(n_boot, len(member)))
        for b in range(n_boot):
            totals[b] += sum(member[i] for i in draws[b]) / len(member)
    means = totals / len(names)
    tail = 100 * (1 - level) / 2
    return np.percentile(means, tail), np.percentile(means, 100 - tail)


def test_stratified_mean_matches_an_independent_computation():
    rng = np.random.default_rng(3)
    groups = list(rng.choice(["math", "code", "qa"], size=23))
    values = rng.normal(size=23)
    interval = bootstrap_stratified_mean(values, groups, n_boot=400, level=0.9, seed=7)
    by_group = [np.mean([v for v, g in zip(values, groups) if g == name]) for name in set(groups)]
    assert interval.estimate == pytest.approx(np.mean(by_group), abs=1e-12)
    low, high = _stratified_by_hand(values, groups, 400, 0.9, 7)
    assert (interval.low, interval.high) == pytest.approx((low, high), abs=1e-12)
    assert (interval.level, interval.n) == (0.9, 23)


def test_stratified_mean_by_hand():
    # group a: {1, 3} -> resampled means 1, 2, 3 (p = 1/4, 1/2, 1/4); group b: {10}, always 10.
    # The mean of group means is 6 (the pooled mean would be 14/3); replicates lie in {5.5, 6, 6.5}.
    interval = bootstrap_stratified_mean([1.0, 3.0, 10.0], ["a", "a", "b"], n_boot=2000, seed=0)
    assert interval.estimate == 6.0
    assert (interval.low, interval.high) == (5.5, 6.5)


def test_stratified_mean_depends_on_group_membership_not_on_interleaving():
    values, groups = [0.5, 2.0, 1.0, 4.0, 3.0], ["x", "y", "x", "y", "x"]
    apart = bootstrap_stratified_mean([0.5, 1.0, 3.0, 2.0, 4.0], ["x", "x", "x", "y", "y"], seed=1)
    assert bootstrap_stratified_mean(values, groups, seed=1) == apart


def test_one_group_is_bootstrap_mean_and_bad_input_is_refused():
    values = np.random.default_rng(1).normal(size=12)
    assert bootstrap_stratified_mean(values, ["g"] * 12, n_boot=300, seed=4) == bootstrap_mean(
        values, n_boot=300, seed=4
    )
    single = bootstrap_stratified_mean([2.0], ["g"])
    assert single.estimate == 2.0 and np.isnan(single.low) and np.isnan(single.high)
    with pytest.raises(ValueError, match="one group per value"):
        bootstrap_stratified_mean([1.0, 2.0], ["a"])
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_stratified_mean([1.0, float("nan")], ["a", "b"])
    with pytest.raises(ValueError, match="level"):
        bootstrap_stratified_mean([1.0, 2.0], ["a", "b"], level=1.5)
