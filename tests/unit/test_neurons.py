import pytest
import torch

import instr_interp as ii
from instr_interp.sparcom.neurons import NeuronSets
from instr_interp.sparcom.selection import sets_from_firing, top_neurons
from tests.typecheck import bad_input


def test_top_neurons_hand_computed_ties():
    counts = torch.tensor([3, 5, 5, 1, 5, 0])
    acts = torch.tensor([9.0, 1.0, 7.0, 8.0, 7.0, 0.0], dtype=torch.float64)
    # k=2: the three 5s tie; by activation 2 and 4 (7.0 each) beat 1; 2 vs 4 equal -> lower index first
    idx, tied = top_neurons(counts, acts, 2, "raw")
    assert idx.tolist() == [2, 4] and tied == 3
    assert top_neurons(counts, None, 2, "index")[0].tolist() == [1, 2]
    assert top_neurons(counts, None, 2, "all")[0].tolist() == [1, 2, 4]
    assert top_neurons(counts, acts, 4, "raw")[0].tolist() == [0, 1, 2, 4]
    with pytest.raises(ValueError, match="k must be"):
        top_neurons(counts, acts, 0, "raw")
    with pytest.raises(ValueError, match="activation sums"):
        top_neurons(counts, None, 2)
    with pytest.raises(ValueError, match="per layer"):
        top_neurons(counts, acts, 2)  # a flat key cannot be normalised within layers
    with bad_input("Unknown tie_break"):
        top_neurons(counts, acts, 2, "activation")


def test_layer_normalised_tie_break_hand_computed():
    # two layers of 3 neurons, all firing always (one tie); the raw key is 10x larger in layer 1
    counts = torch.full((2, 3), 4)
    acts = torch.tensor([[1.0, 3.0, 2.0], [10.0, 30.0, 20.0]], dtype=torch.float64)
    # raw: the two largest raw sums are both in layer 1 (flat 4 and 5)
    assert top_neurons(counts, acts, 2, "raw")[0].tolist() == [4, 5]
    # within-layer rank: 3.0 and 30.0 are each their layer's maximum (rank 1.0): one per layer
    assert top_neurons(counts, acts, 2, "layer_rank")[0].tolist() == [1, 4]
    # z-scores: the same two (each +1.22 within its layer)
    assert top_neurons(counts, acts, 2, "layer_z")[0].tolist() == [1, 4]
    # ranks are average ranks divided by the layer width; a constant layer has z 0 (no division by 0)
    from instr_interp.sparcom.selection import tie_key

    assert tie_key(torch.tensor([[5.0, 5.0, 1.0]]), "layer_rank").tolist() == pytest.approx(
        [2.5 / 3, 2.5 / 3, 1 / 3]
    )
    assert tie_key(torch.tensor([[5.0, 5.0]]), "layer_z").tolist() == [0.0, 0.0]


def hand_sets():
    t = lambda pairs: torch.tensor(pairs, dtype=torch.long).reshape(-1, 2)  # noqa: E731
    return NeuronSets(
        instruction_sets={
            "a1": t([[0, 0], [0, 1]]),
            "a2": t([[0, 0], [1, 1]]),
            "b1": t([[1, 0], [1, 1]]),
            "b2": t([[1, 0], [0, 1]]),
        },
        category_sets={"A": t([[0, 0], [0, 1], [1, 1]]), "B": t([[1, 0], [1, 1]])},
        record_categories={"a1": "A", "a2": "A", "b1": "B", "b2": "B"},
        n_layers=2,
        d_mlp=2,
    )


def test_set_algebra_hand_computed():
    s = hand_sets()
    assert s.general().tolist() == [[1, 1]]
    assert s.unique("A").tolist() == [[0, 0], [0, 1]]
    assert s.unique("B").tolist() == [[1, 0]]
    pair = s.overlap("pairwise")
    # A-A: J(a1,a2) = 1/3; B-B: J(b1,b2) = 1/3; A-B: J(a1,b1)=0, J(a1,b2)=1/3, J(a2,b1)=1/3, J(a2,b2)=0
    assert pair.loc["A", "A"] == pytest.approx(1 / 3) and pair.loc["B", "B"] == pytest.approx(1 / 3)
    assert pair.loc["A", "B"] == pytest.approx(1 / 6)
    cat = s.overlap("category")
    assert cat.loc["A", "B"] == pytest.approx(1 / 4) and cat.loc["A", "A"] == 1
    assert s.overlap("min").loc["A", "B"] == pytest.approx(1 / 2)
    layers = s.layer_distribution().set_index(["category", "layer"])
    assert layers.loc[("A", 0), "count"] == 2 and layers.loc[("A", 1), "share"] == pytest.approx(1 / 3)
    assert len(s.to_frame()) == 3 + 2 + 8
    test = s.permutation_test(n_permutations=50)
    assert test["statistic"] == pytest.approx(1 / 3 - 1 / 6)
    with pytest.raises(KeyError):
        s.unique("C")


def test_save_load_round_trip(tmp_path):
    s = hand_sets()
    s.save(tmp_path / "isn")
    back = NeuronSets.load(tmp_path / "isn")
    for k in s.instruction_sets:
        assert torch.equal(back.instruction_sets[k], s.instruction_sets[k])
    for k in s.category_sets:
        assert torch.equal(back.category_sets[k], s.category_sets[k])
    assert back.record_categories == s.record_categories


@pytest.fixture(scope="module")
def tiny_isns(tiny, data):
    sample = data.sample(per_category=5, seed=3)
    return ii.find_isns(tiny, sample, top=0.05, batch_size=16, progress=False, keep_frequencies=True), sample


def test_find_isns_matches_frequency_ranking(tiny_isns):
    (sets, stats), _ = tiny_isns
    k = sets.settings["k"]
    assert k == int(0.05 * 2 * 128)
    for r, rid in enumerate(stats.ids):
        chosen = sets.instruction_sets[rid]
        assert len(chosen) == k
        freq = stats.frequency()[r]
        picked = freq[chosen[:, 0], chosen[:, 1]]
        mask = torch.ones_like(freq, dtype=torch.bool)
        mask[chosen[:, 0], chosen[:, 1]] = False
        assert picked.min() >= freq[mask].max()  # nothing left out fires more often


@pytest.mark.parametrize("batch_size, side", [(1, "right"), (7, "left")])
def test_find_isns_independent_of_batching(tiny, tiny_isns, batch_size, side):
    (sets, _), sample = tiny_isns
    other = ii.find_isns(tiny, sample, top=0.05, batch_size=batch_size, padding_side=side, progress=False)
    for k in sets.instruction_sets:
        assert torch.equal(sets.instruction_sets[k], other.instruction_sets[k])
    for k in sets.category_sets:
        assert torch.equal(sets.category_sets[k], other.category_sets[k])


def test_majority_rule(tiny, tiny_isns):
    (sets, stats), _ = tiny_isns
    maj = sets_from_firing(stats, top=0.05, rule="majority")
    for cat, neurons in maj.category_sets.items():
        ids = [i for i, c in sets.record_categories.items() if c == cat]
        for layer, n in neurons.tolist():
            votes = sum(
                ((sets.instruction_sets[i] == torch.tensor([layer, n])).all(1)).any().item() for i in ids
            )
            assert 2 * votes >= len(ids)


@pytest.mark.parametrize("batch_size, side", [(16, "right"), (1, "right"), (7, "left")])
def test_threshold_sets_equal_a_plain_transformers_computation(tiny, data, batch_size, side):
    """select="threshold": every neuron firing on >= threshold of the counted tokens, per instruction and
    on the category's pooled tokens, computed independently with forward hooks on the HF gate projections."""
    from tests.reference import plain_firing

    sample, threshold = data.sample(per_category=3, seed=5), 0.6
    sets = ii.find_isns(
        tiny,
        sample,
        select="threshold",
        threshold=threshold,
        batch_size=batch_size,
        padding_side=side,
        progress=False,
    )
    counts, _, tokens = plain_firing(ii.models.tiny_hf_model(seed=0), ii.encode(sample, tiny.tokenizer))
    for r, rec in enumerate(sample):
        expected = (counts[r].double() / tokens[r] >= threshold).nonzero()
        assert torch.equal(sets.instruction_sets[rec.id], expected), rec.id
    for cat in sets.category_sets:
        rows = [r for r, rec in enumerate(sample) if rec.category == cat]
        pooled = counts[rows].sum(0).double() / tokens[rows].sum()
        assert torch.equal(sets.category_sets[cat], (pooled >= threshold).nonzero()), cat
    sizes = {len(s) for s in sets.instruction_sets.values()}
    assert len(sizes) > 1  # variable-size sets
    assert sets.settings["select"] == "threshold" and sets.settings["k"] is None
    assert all(v == 0 for v in sets.ties.values())  # no ties to break


def test_select_is_validated_before_the_pass(tiny, small_data):
    for kwargs, message in [
        ({"select": "threshold"}, "needs threshold="),
        ({"select": "threshold", "threshold": 1.5}, "threshold must be a fraction"),
        ({"threshold": 0.5}, "applies to select='threshold' only"),
    ]:
        with pytest.raises(ValueError, match=message):
            ii.find_isns(tiny, small_data, progress=False, **kwargs)
    with bad_input("Unknown select"):
        ii.find_isns(tiny, small_data, select="bogus", progress=False)
    with pytest.raises(ValueError, match="rule='pooled'"):
        ii.find_isns(tiny, small_data, select="lape", rule="majority", progress=False)
    with bad_input("Unknown tie_break"):
        ii.find_isns(tiny, small_data, tie_break="activation", progress=False)
    encoded = ii.encode(small_data, tiny.tokenizer, format="plain")
    with pytest.raises(ValueError, match="already encoded in format 'plain'"):
        ii.find_isns(tiny, encoded, format="alpaca", progress=False)


def test_top_sets_report_the_share_decided_by_the_tie_break(tiny_isns):
    from instr_interp.sparcom.selection import tie_decided_share

    (sets, stats), _ = tiny_isns
    for r, rid in enumerate(stats.ids):
        counts = stats.counts[r].flatten()
        chosen = sets.instruction_sets[rid]
        picked = counts[chosen[:, 0] * stats.counts.shape[2] + chosen[:, 1]]
        cut = int(picked.min())
        at_cut, total_at_cut = int((picked == cut).sum()), int((counts == cut).sum())
        expected = at_cut / len(chosen) if total_at_cut > at_cut else 0.0
        assert sets.tie_decided[rid] == pytest.approx(expected)
        assert tie_decided_share(counts, torch.tensor([], dtype=torch.long)) == 0.0
    summary = sets.tie_summary()
    assert 0.0 <= summary["median_decided"] <= 1.0 and summary["median_tied"] >= 1


def reference_lape(counts, tokens, top_rate, filter_rate=0.95, bar_ratio=0.95):
    """LAPE as RUCAIBox/Language-Specific-Neurons identify.py writes it, categories for languages, in
    plain Python over a [unit, category] probability table (ties at the entropy cut: larger maximum
    probability first, then lower index)."""
    import math

    probs = (counts.double() / tokens.double()[:, None]).T.tolist()
    flat_all = sorted(p for row in probs for p in row)
    kth = lambda ratio: flat_all[round(len(flat_all) * ratio) - 1]  # noqa: E731
    floor, bar = kth(filter_rate), kth(bar_ratio)
    entropy = []
    for row in probs:
        total = sum(row)
        q = [p / total if total > 0 else 0.0 for p in row]
        h = -sum(x * math.log(x) for x in q if x > 0)
        entropy.append(h if any(p > floor for p in row) else math.inf)
    order = sorted(range(len(probs)), key=lambda i: (entropy[i], -max(probs[i]), i))
    kept = order[: round(len(probs) * top_rate)]
    return [sorted(i for i in kept if probs[i][c] > bar) for c in range(len(tokens))]


@pytest.mark.parametrize("batch_size, side", [(16, "right"), (5, "left")])
def test_lape_category_sets_equal_the_reference_rule_on_plain_counts(tiny, data, batch_size, side):
    from tests.reference import plain_firing

    sample = data.sample(per_category=3, seed=5)
    sets = ii.find_isns(
        tiny, sample, select="lape", top=0.1, batch_size=batch_size, padding_side=side, progress=False
    )
    counts, _, tokens = plain_firing(ii.models.tiny_hf_model(seed=0), ii.encode(sample, tiny.tokenizer))
    cats = sets.categories
    rows = [[r for r, rec in enumerate(sample) if rec.category == c] for c in cats]
    pooled = torch.stack([counts[rr].sum(0).flatten() for rr in rows])
    expected = reference_lape(pooled, torch.stack([tokens[rr].sum() for rr in rows]), 0.1)
    for cat, want in zip(cats, expected):
        assert sets.flat(sets.category_sets[cat]).tolist() == want, cat
    assert sum(len(v) for v in sets.category_sets.values()) > 0
    assert sets.instruction_sets == {} and sets.settings["select"] == "lape"
    assert sets.settings["lape_filter"] == 0.95 and sets.settings["lape_bar"] == 0.95


def test_format_is_passed_to_encoding(tiny, data):
    from tests.reference import plain_firing

    sample = data.sample(per_category=2, seed=1)
    sets = ii.find_isns(tiny, sample, select="threshold", threshold=0.5, format="plain", progress=False)
    assert sets.settings["format"] == "plain"
    counts, _, tokens = plain_firing(
        ii.models.tiny_hf_model(seed=0), ii.encode(sample, tiny.tokenizer, format="plain")
    )
    for r, rec in enumerate(sample):
        assert torch.equal(sets.instruction_sets[rec.id], (counts[r].double() / tokens[r] >= 0.5).nonzero())


def test_default_tie_break_normalises_within_layers(tiny_isns):
    """Independent check of the default: among neurons tied at the cut, the chosen ones have the
    highest within-layer percentile of their summed activation (computed here with numpy)."""
    import numpy as np

    (sets, stats), _ = tiny_isns
    assert sets.settings["tie_break"] == "layer_rank"
    for r, rid in enumerate(stats.ids[:6]):
        counts = stats.counts[r].flatten().numpy()
        acts = stats.activation_sums[r].numpy()
        pct = np.stack([[(row < v).sum() + ((row == v).sum() + 1) / 2 for v in row] for row in acts])
        pct = (pct / acts.shape[1]).flatten()
        chosen = set(sets.flat(sets.instruction_sets[rid]).tolist())
        cut = counts[list(chosen)].min()
        tied = [i for i in range(len(counts)) if counts[i] == cut]
        won = [i for i in tied if i in chosen]
        lost = [i for i in tied if i not in chosen]
        if won and lost:
            assert min(pct[won]) >= max(pct[lost])
