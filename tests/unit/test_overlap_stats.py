"""Overlap statistics that respect the design (issue 14, item 4): length-stratified and
template-grouped permutation test, bootstrap intervals per category and cell."""

import numpy as np
import pytest
import torch

import instr_interp as ii
from instr_interp.sparcom.neurons import NeuronSets
from instr_interp.sparcom.overlap import OverlapTest, counted_tokens, overlap_test


def make_sets(members: dict[str, list[int]], categories: dict[str, str], n=8):
    t = lambda idx: torch.tensor([[0, i] for i in idx], dtype=torch.long).reshape(-1, 2)  # noqa: E731
    cats = list(dict.fromkeys(categories.values()))
    return NeuronSets(
        instruction_sets={k: t(v) for k, v in members.items()},
        category_sets={c: t([]) for c in cats},
        record_categories=categories,
        n_layers=1,
        d_mlp=n,
    )


def test_hand_computed_statistic_and_per_category_values():
    # the four-record case of test_neurons: A-A 1/3, B-B 1/3, A-B pairs 0, 1/3, 1/3, 0
    sets = make_sets(
        {"a1": [0, 1], "a2": [0, 3], "b1": [2, 3], "b2": [2, 1]}, {"a1": "A", "a2": "A", "b1": "B", "b2": "B"}
    )
    out = overlap_test(sets, dict.fromkeys(sets.instruction_sets, 5), n_bins=1, n_permutations=50, n_boot=20)
    t = out.test.iloc[0]
    assert t["statistic"] == pytest.approx(1 / 3 - 1 / 6) and t["min_p"] == pytest.approx(1 / 51)
    pc = out.per_category.set_index("category")
    assert pc.loc["A", "same"] == pytest.approx(1 / 3) and pc.loc["A", "cross"] == pytest.approx(1 / 6)
    assert pc.loc["B", "excess"] == pytest.approx(1 / 6)
    assert out.table().loc["A", "B"] == pytest.approx(1 / 6)
    # the unstratified, ungrouped statistic is the one of NeuronSets.permutation_test
    assert t["statistic"] == pytest.approx(sets.permutation_test(n_permutations=10)["statistic"])


def confounded():
    """Category A: 4 short records with one set; B: 4 long records with another: all of the overlap
    contrast is carried by length."""
    members = {f"a{i}": [0, 1, 2] for i in range(4)} | {f"b{i}": [4, 5, 6] for i in range(4)}
    cats = {k: k[0].upper() for k in members}
    tokens = {k: (5 + i if k[0] == "a" else 50 + i) for i, k in enumerate(members)}
    return make_sets(members, cats), tokens


def test_length_strata_absorb_a_length_confound():
    sets, tokens = confounded()
    plain = overlap_test(sets, tokens, n_bins=1, n_permutations=300, n_boot=10).test.iloc[0]
    strat = overlap_test(sets, tokens, n_bins=2, n_permutations=300, n_boot=10).test.iloc[0]
    assert plain["statistic"] == strat["statistic"] == pytest.approx(1.0)
    assert plain["p_value"] < 0.05  # labels shuffled freely: the contrast looks significant
    # within length strata every stratum holds one category: the null equals the observation
    assert strat["p_value"] == 1.0 and strat["excess"] == pytest.approx(0.0) and strat["n_strata"] == 2


def test_template_groups_are_permuted_whole_and_their_pairs_left_out():
    # A: a template group {a0, a1} with identical sets, plus a2; B: b0, b1, b2 all different
    members = {"a0": [0, 1], "a1": [0, 1], "a2": [0, 2], "b0": [3, 4], "b1": [3, 5], "b2": [4, 6]}
    cats = {k: k[0].upper() for k in members}
    groups = {"a0": "g", "a1": "g", "a2": "a2", "b0": "b0", "b1": "b1", "b2": "b2"}
    sets, tokens = make_sets(members, cats), dict.fromkeys(members, 7)
    keep = overlap_test(sets, tokens, n_bins=1, n_permutations=20, n_boot=10)
    excl = overlap_test(sets, tokens, groups=groups, n_bins=1, n_permutations=20, n_boot=10)
    # A's same-category pairs: (a0,a1)=1, (a0,a2)=(a1,a2)=1/3; excluding the template pair leaves 1/3
    assert keep.per_category.set_index("category").loc["A", "same"] == pytest.approx((1 + 2 / 3) / 3)
    assert excl.per_category.set_index("category").loc["A", "same"] == pytest.approx(1 / 3)
    assert excl.test.iloc[0]["n_units"] == 5
    with pytest.raises(ValueError, match="several categories"):
        overlap_test(sets, tokens, groups={**groups, "b0": "g"}, n_permutations=5, n_boot=5)


def test_intervals_cover_the_point_values_on_a_model(tiny, data, tmp_path):
    sample = data.sample(per_category=6, seed=0)
    sets, stats = ii.find_isns(tiny, sample, top=0.05, keep_frequencies=True, progress=False)
    out = overlap_test(
        sets, counted_tokens(stats), groups=sample.template_groups(), n_permutations=100, n_boot=100
    )
    pc = out.per_category
    assert ((pc["same_low"] <= pc["same"] + 1e-12) & (pc["same"] <= pc["same_high"] + 1e-12)).all()
    assert (pc["excess_low"] <= pc["excess_high"]).all() and pc["p_value"].between(0, 1).all()
    assert len(out.cells) == 36 and np.isfinite(out.cells["jaccard"]).all()
    out.save(tmp_path / "o")
    back = ii.load(tmp_path / "o")
    assert isinstance(back, OverlapTest) and back.per_category.equals(out.per_category)
    assert out.plot() is not None


def test_bad_input():
    sets, tokens = confounded()
    with pytest.raises(ValueError, match="tokens has no count"):
        overlap_test(sets, {"a0": 3})
    with pytest.raises(ValueError, match="within_group"):
        overlap_test(sets, tokens, within_group="drop")
    with pytest.raises(ValueError, match="n_bins must be a positive integer"):
        overlap_test(sets, tokens, n_bins=0)
    empty = make_sets({}, {})
    with pytest.raises(ValueError, match="no instruction sets"):
        overlap_test(empty, {})
