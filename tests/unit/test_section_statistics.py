"""The statistics the report's sections state come from public analysis functions; each is checked
here against an independent computation (plain loops over hand-made results)."""

import math

import pandas as pd
import pytest
import torch

import instr_interp as ii
from instr_interp.data.summary import category_summary, record_lengths
from instr_interp.report.paper_numbers import PAPER_NUMBERS
from instr_interp.report.sections_shift import attribution_sections
from instr_interp.report.sections_sparcom import expert_routing_section, isn_sections
from instr_interp.shift.attribution import Attribution
from instr_interp.shift.concepts import task_label_summary
from instr_interp.shift.score_tests import compare_models
from instr_interp.sparcom.compare import compare
from instr_interp.sparcom.experts import ExpertStats
from instr_interp.sparcom.firing import FiringStats
from instr_interp.sparcom.neurons import NeuronSets
from instr_interp.vectors.instruction import InstructionVector
from tests.unit.test_neurons import hand_sets


def test_category_summary_counts_by_hand():
    data = ii.load_instructions(
        [
            {"id": "1", "category": "math", "instruction": "Add two and two.", "source": "handwritten"},
            {
                "id": "2",
                "category": "math",
                "instruction": "Sum these",
                "input": "1 2",
                "source": "templated",
            },
            {"id": "3", "category": "code", "instruction": "Write a loop now please", "input": "python"},
        ]
    )
    lengths = record_lengths(data)
    assert lengths["instruction words"].tolist() == [4, 2, 5] and lengths["input words"].tolist() == [0, 2, 1]
    assert lengths["source"].tolist() == ["handwritten", "templated", "unknown"]
    table = category_summary(data).set_index("category")
    assert list(table.index) == ["math", "code"]  # order of first appearance
    assert table.loc["math", "records"] == 2 and table.loc["math", "handwritten"] == 1
    assert table.loc["math", "templated"] == 1 and table.loc["code", "handwritten"] == 0
    assert table.loc["math", "median_instruction_words"] == 3.0 and table.loc["math", "with_input"] == 1
    encoded = ii.encode(data, ii.tiny_model().tokenizer)
    counted = category_summary(data, encoded).set_index("category")["median_counted_tokens"]
    by_hand = {}
    for e in encoded:
        by_hand.setdefault(e.category, []).append(sum(int(r) in (2, 3) for r in e.regions))
    assert counted["code"] == by_hand["code"][0]
    assert counted["math"] == sum(by_hand["math"]) / 2


def _expert_stats() -> ExpertStats:
    # 3 records x 2 layers x 3 experts, top-2 routing
    counts = torch.tensor([[[2, 1, 1], [0, 2, 2]], [[1, 1, 0], [1, 0, 1]], [[0, 3, 3], [3, 3, 0]]])
    return ExpertStats(
        tokens=torch.tensor([2, 1, 3]),
        expert_counts=counts,
        expert_weights=counts.double() / 2,
        ids=["r0", "r1", "r2"],
        record_categories=["a", "a", "b"],
        categories=["a", "b"],
    )


def test_routing_share_and_lift_by_hand():
    stats = _expert_stats()
    pooled = [[3 / 6, 5 / 6, 4 / 6], [4 / 6, 5 / 6, 3 / 6]]
    torch.testing.assert_close(stats.routing_share(), torch.tensor(pooled, dtype=torch.float64))
    share_a = [[3 / 3, 2 / 3, 1 / 3], [1 / 3, 2 / 3, 3 / 3]]
    share_b = [[0, 1, 1], [1, 1, 0]]
    torch.testing.assert_close(stats.routing_share("a"), torch.tensor(share_a, dtype=torch.float64))
    lift = stats.routing_lift().set_index("category")
    for cat, share in (("a", share_a), ("b", share_b)):
        gains = {(layer, e): share[layer][e] - pooled[layer][e] for layer in range(2) for e in range(3)}
        best = max(gains, key=gains.get)  # first maximum in layer-major order, as argmax
        row = lift.loc[cat]
        assert (row["layer"], row["expert"]) == best
        assert row["share in category"] == pytest.approx(share[best[0]][best[1]])
        assert row["share overall"] == pytest.approx(pooled[best[0]][best[1]])
    assert lift["tokens"].tolist() == [3, 3]
    with pytest.raises(ValueError, match="Unknown category"):
        stats.routing_share("c")
    section = expert_routing_section(stats)
    assert (
        "from 0.500 to 0.833" in section.reading and "a layer 0 expert 0 (1.000 vs 0.500)" in section.reading
    )


def test_layer_rate_summary_by_hand():
    category_counts = torch.tensor([[[1, 0], [2, 2]], [[0, 0], [1, 3]]])  # category x layer x d_mlp
    stats = FiringStats(
        counts=None,
        tokens=torch.tensor([2, 4]),
        category_counts=category_counts,
        category_tokens=torch.tensor([2, 4]),
        ids=["x", "y"],
        record_categories=["p", "q"],
        categories=["p", "q"],
        layers=[0, 1],
    )
    summary = stats.layer_rate_summary()
    p = [(1 / 2 + 0) / 2, (2 / 2 + 2 / 2) / 2]
    q = [0.0, (1 / 4 + 3 / 4) / 2]
    assert summary["p"].tolist() == pytest.approx(p) and summary["q"].tolist() == pytest.approx(q)
    assert summary["mean"].tolist() == pytest.approx([(a + b) / 2 for a, b in zip(p, q)])
    assert summary["spread"].tolist() == pytest.approx([abs(a - b) for a, b in zip(p, q)])
    assert list(summary.index) == [0, 1]


def test_depth_distribution_and_busiest_layer_by_hand():
    t = lambda pairs: torch.tensor(pairs, dtype=torch.long).reshape(-1, 2)  # noqa: E731
    # 7 layers: thirds are layers 0-1, 2-3, 4-6 (7 // 3 = 2, 14 // 3 = 4)
    sets = NeuronSets(
        instruction_sets={"i": t([[0, 0]])},
        record_categories={"i": "A"},
        n_layers=7,
        d_mlp=3,
        category_sets={"A": t([[0, 0], [1, 2], [4, 1], [6, 0]]), "B": t([[6, 1], [6, 2], [3, 0]])},
    )
    depth = sets.depth_distribution().set_index("part")
    assert depth["count"].tolist() == [2, 1, 4]
    assert depth["share"].tolist() == pytest.approx([2 / 7, 1 / 7, 4 / 7])
    assert depth["first_layer"].tolist() == [0, 2, 4] and depth["last_layer"].tolist() == [1, 3, 6]
    assert sets.busiest_layer() == 6


def test_layer_totals_by_hand():
    after = hand_sets()
    after.category_sets["A"] = after.category_sets["B"]  # A: {(0,0),(0,1),(1,1)} -> {(1,0),(1,1)}
    totals = compare(hand_sets(), after).layer_totals()
    # before: A has 2 units in layer 0 and 1 in layer 1, B has 2 in layer 1; after: layer 1 holds 2 + 2
    assert totals.loc[0].tolist() == [2, 0, -2] and totals.loc[1].tolist() == [3, 4, 1]


def test_instruction_share_by_hand():
    hand = torch.tensor([[1.0, -2.0, 0.5, 0.0], [0.75, 4.0, 0.125, -1.0], [0.25, 3.0, 0.4375, -0.5]])
    # sparsified (see test_attribution): rows [10, 0, 10, 0], [8, 10, 0, 0], [0, 8, 9, 0]
    rows = [[10, 0, 10, 0], [8, 10, 0, 0], [0, 8, 9, 0]]
    rho = [sum(r) / sum(x**4 for x in r) ** 0.25 for r in rows]
    att = Attribution(
        input_ids=torch.arange(7),
        tokens=list("abcdefg"),
        prompt_positions=torch.arange(3),
        response_positions=torch.arange(3, 7),
        matrix=hand,
        instruction_mask=torch.tensor([True, False, True]),
        probs=torch.ones(4),
    )
    assert att.instruction_share == pytest.approx((rho[0] + rho[2]) / sum(rho))


def test_top_share_by_hand():
    effects = torch.tensor([[0.5, -0.25, float("nan")], [0.25, 0.125, 0.0]])
    iv = InstructionVector(
        task="t",
        head_effects=effects,
        top_heads=torch.tensor([[0, 0], [1, 0]]),
        head_means=torch.zeros(2, 3, 4),
        vector=torch.zeros(8),
        layer=1,
    )
    assert iv.top_share() == pytest.approx((0.5 + 0.25) / (0.5 + 0.25 + 0.125))
    none = InstructionVector(
        task="t",
        head_effects=torch.full((2, 3), float("nan")),
        top_heads=iv.top_heads,
        head_means=iv.head_means,
        vector=iv.vector,
        layer=1,
    )
    assert math.isnan(none.top_share())


def test_task_label_summary_by_hand():
    from instr_interp.shift.concept_shares import label_counts

    labels = (
        [{"explainable": True, "tasks": ["math"], "level": "syntax"}] * 2
        + [{"explainable": True, "tasks": ["coding", "math"], "level": "semantics"}] * 3
        + [{"explainable": True, "tasks": [], "level": "semantics"}] * 5
        + [{"explainable": False, "tasks": [], "level": "cannot tell"}] * 10
    )
    frame = pd.concat(
        [
            label_counts(labels).assign(group=-1, layers="0-7"),
            label_counts(labels[:10]).assign(group=0, layers="0-3"),
            label_counts(labels[10:]).assign(group=1, layers="4-7"),
        ]
    )
    s = task_label_summary(frame)
    assert (s["total"], s["explainable"], s["labelled"]) == (20, 10, 5)
    assert s["tasks"] == {"writing": 0, "coding": 3 / 10, "math": 5 / 10, "translation": 0}
    assert s["levels"] == {"phonology": 0, "morphology": 0, "syntax": 0.2, "semantics": 0.8}
    assert s["by_group"]["0-3"]["syntax"] == pytest.approx(0.2)
    assert math.isnan(s["by_group"]["4-7"]["syntax"])  # no explainable component there: no share
    with pytest.raises(ValueError, match="concept_shares"):
        task_label_summary(frame.drop(columns=["count"]))


def test_sections_take_the_tests_run_by_the_stage(tiny, small_data):
    sets = hand_sets()
    with pytest.raises(ValueError, match="permutation_test"):
        isn_sections(sets, {"p_value": 0.5})
    test = sets.permutation_test(n_permutations=10)
    assert f"p = {test['p_value']:.3g}" in isn_sections(sets, test)[0].reading
    example = ii.attribute(tiny, small_data[0], response="Four.")
    many = ii.attribute_many(tiny, small_data[:3], use_reference=True, progress=False)
    with pytest.raises(ValueError, match="No test for"):
        attribution_sections(example, {"base": many, "tuned": many})
    paper = PAPER_NUMBERS["instruction_score_lima"]
    reading = attribution_sections(
        example, {"base": many, "tuned": many}, {"tuned": compare_models(many, many, n_resamples=100)}
    )[1].reading
    assert f"{paper['tuned']} {paper['tuned_mean']:.3f} ± .484 vs {paper['base']} 1.266 ± .429" in reading
