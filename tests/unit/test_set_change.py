"""Before/after with intervals (issue 14, item 3): resampled sets re-sum per-record statistics, and
the intervals and noise floor behave as they must on known cases."""

from dataclasses import replace

import numpy as np
import pytest
import torch

import instr_interp as ii
from instr_interp.sparcom.change import SetChange, compare_with_intervals
from instr_interp.sparcom.resample import bootstrap_weights, split_weights, weighted_category_sets
from instr_interp.sparcom.selection import sets_from_firing


@pytest.fixture(scope="module")
def two_models(data):
    sample = data.sample(per_category=5, seed=2)
    stats = []
    for seed in (0, 1):
        _, s = ii.find_isns(
            ii.tiny_model(seed=seed),
            sample,
            select="threshold",
            threshold=0.6,
            keep_frequencies=True,
            progress=False,
        )
        stats.append(s)
    # activation sums for keyed top rules
    _, keyed = ii.find_isns(ii.tiny_model(seed=0), sample, top=0.05, keep_frequencies=True, progress=False)
    return sample, stats[0], stats[1], keyed


def subset(stats, rows):
    """FiringStats of the records ``rows`` (repeats allowed), category counts re-summed from scratch."""
    counts = stats.counts[rows]
    cats = [stats.record_categories[r] for r in rows]
    category_counts = torch.stack(
        [counts[[i for i, c in enumerate(cats) if c == cat]].sum(0).long() for cat in stats.categories]
    )
    tokens = stats.tokens[rows]
    return replace(
        stats,
        counts=counts,
        tokens=tokens,
        activation_sums=None if stats.activation_sums is None else stats.activation_sums[rows],
        ids=[f"{stats.ids[r]}#{i}" for i, r in enumerate(rows)],
        record_categories=cats,
        category_counts=category_counts,
        category_tokens=torch.stack(
            [tokens[[i for i, c in enumerate(cats) if c == cat]].sum() for cat in stats.categories]
        ),
    )


RULES = [
    dict(select="threshold", threshold=0.6),
    dict(select="top", top=0.05, tie_break="index"),
    dict(select="top", top=0.05, tie_break="layer_rank"),
    dict(select="lape", top=0.1),
    dict(select="threshold", threshold=0.6, rule="majority"),
]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: "-".join(map(str, r.values())))
def test_resampled_sets_equal_sets_from_the_resampled_records(two_models, rule):
    _, stats, _, keyed = two_models
    stats = keyed if rule.get("tie_break") == "layer_rank" else stats
    ones = weighted_category_sets(stats, np.ones((1, len(stats.ids))), **rule)[0]
    full = sets_from_firing(stats, **rule)
    for cat, got in zip(stats.categories, ones):
        assert got.tolist() == full.flat(full.category_sets[cat]).tolist(), cat
    weights = bootstrap_weights(stats.ids, stats.record_categories, 3, seed=4)
    replicates = weighted_category_sets(stats, weights, **rule)
    for w, sets in zip(weights, replicates):
        rows = [r for r in range(len(w)) for _ in range(int(w[r]))]
        direct = sets_from_firing(subset(stats, rows), **rule)
        for cat, got in zip(stats.categories, sets):
            assert got.tolist() == direct.flat(direct.category_sets[cat]).tolist(), cat


def test_bootstrap_and_split_weights_keep_categories_and_groups():
    ids = [f"r{i}" for i in range(8)]
    cats = ["a"] * 4 + ["b"] * 4
    groups = {"r0": 0, "r1": 0, "r2": 1, "r3": 2, "r4": 3, "r5": 4, "r6": 5, "r7": 6}
    boot = bootstrap_weights(ids, cats, 50, seed=0, groups=groups)
    assert (boot[:, :4].sum(1) >= 3).all() and (boot[:, 4:].sum(1) == 4).all()
    assert (boot[:, 0] == boot[:, 1]).all()  # one template group, drawn as a whole
    halves = split_weights(ids, cats, 30, seed=0, groups=groups)
    assert (halves[:, 0] == halves[:, 1]).all()
    for rows in (slice(0, 4), slice(4, 8)):
        size = halves[:, rows].sum(1)
        assert (size >= 1).all() and (size <= 3).all()
    with pytest.raises(ValueError, match="split-half needs 2"):
        split_weights(["x", "y"], ["a", "b"], 2)
    with pytest.raises(ValueError, match="n_boot must be a positive integer"):
        bootstrap_weights(ids, cats, 0)


def test_a_model_against_itself_shows_no_difference(two_models):
    _, stats, _, _ = two_models
    change = compare_with_intervals(stats, stats, threshold=0.6, n_boot=30, n_splits=20, progress=False)
    s = change.summary
    assert (s["jaccard"] == 1).all() and (s["jaccard_low"] == 1).all() and (s["change"] == 0).all()
    n = change.noise
    assert np.allclose(n["floor_before"], n["floor_after"]) and np.allclose(n["between"], n["floor_before"])
    assert not change.differences["exceeds"].any() and change.exceeding().empty


def test_two_models_point_values_intervals_and_round_trip(two_models, tmp_path):
    sample, before, after, _ = two_models
    change = compare_with_intervals(
        before,
        after,
        threshold=0.6,
        n_boot=40,
        n_splits=20,
        groups=sample.template_groups(),
        progress=False,
    )
    b = sets_from_firing(before, select="threshold", threshold=0.6)
    a = sets_from_firing(after, select="threshold", threshold=0.6)
    for row in change.summary.itertuples():
        sb, sa = (set(x.flat(x.category_sets[row.category]).tolist()) for x in (b, a))
        assert (row.before, row.after, row.kept) == (len(sb), len(sa), len(sb & sa))
        assert row.jaccard == pytest.approx(len(sb & sa) / len(sb | sa))
        assert row.jaccard_low <= row.jaccard_high and row.change_low <= row.change_high
    layers = change.layers
    assert len(layers) == len(before.categories) * 2
    first = layers[layers["category"] == before.categories[0]]
    assert first["before"].sum() == change.summary.iloc[0]["before"]
    # two unrelated random models: their sets differ far beyond the split-half noise
    drops = change.differences[change.differences["measure"] == "jaccard_drop"]
    assert (drops["estimate"] > 0).all() and drops["exceeds"].all()
    change.save(tmp_path / "c")
    back = ii.load(tmp_path / "c")
    assert isinstance(back, SetChange) and back.differences.equals(change.differences)
    assert change.plot_jaccard() is not None and change.plot_layers() is not None


def test_checks_on_records_and_formats(two_models):
    _, before, after, _ = two_models
    with pytest.raises(ValueError, match="training records"):
        compare_with_intervals(
            before, after, n_boot=2, n_splits=2, training_ids=[before.ids[0]], progress=False
        )
    other = replace(after, settings={**after.settings, "format": "plain"})
    with pytest.raises(ValueError, match="different prompt formats"):
        compare_with_intervals(before, other, n_boot=2, n_splits=2, progress=False)
    shuffled = replace(
        after,
        counts=after.counts.flip(0),
        tokens=after.tokens.flip(0),
        ids=after.ids[::-1],
        record_categories=after.record_categories[::-1],
    )
    one = compare_with_intervals(before, after, threshold=0.6, n_boot=5, n_splits=3, progress=False)
    two = compare_with_intervals(before, shuffled, threshold=0.6, n_boot=5, n_splits=3, progress=False)
    assert one.summary.equals(two.summary)  # aligned by record id


def test_top_sets_have_fixed_sizes(two_models):
    _, _, _, keyed = two_models
    change = compare_with_intervals(
        keyed, keyed, select="top", top=0.05, n_boot=5, n_splits=3, progress=False
    )
    assert (change.summary["change"] == 0).all() and (change.summary["change_high"] == 0).all()
    assert change.settings["threshold"] is None and change.settings["select"] == "top"
