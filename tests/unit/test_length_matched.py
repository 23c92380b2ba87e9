"""Length-matched subsets, checked on a hand-computed case."""

from collections import Counter

import pytest

import instr_interp as ii
from instr_interp.data.matching import counted_lengths, length_matched

A = [3, 5, 12, 13, 20]
B = [4, 11, 14, 15, 30]


@pytest.fixture()
def two():
    rows = [{"id": f"a{n}", "category": "a", "instruction": "x"} for n in A]
    rows += [{"id": f"b{n}", "category": "b", "instruction": "x"} for n in B]
    return ii.load_instructions(rows), A + B


def test_width_bins_by_hand(two):
    data, lengths = two
    # bins of 10: a -> {0: 3, 5; 1: 12, 13; 2: 20}, b -> {0: 4; 1: 11, 14, 15; 3: 30}
    # bin 0 keeps 1 per category, bin 1 keeps 2, bins 2 and 3 lack a category
    out = data.length_matched(lengths=lengths, width=10, seed=0)
    ids = set(out.ids)
    assert len(out) == 6 and out.category_counts() == {"a": 3, "b": 3}
    assert (
        {"a12", "a13", "b4"} <= ids and len(ids & {"a3", "a5"}) == 1 and len(ids & {"b11", "b14", "b15"}) == 2
    )
    assert not ids & {"a20", "b30"}
    assert list(out.ids) == [i for i in data.ids if i in ids]  # original order
    assert out.name == "instructions-length-matched"
    assert out.ids == data.length_matched(lengths=lengths, width=10, seed=0).ids  # reproducible
    picks = {data.length_matched(lengths=lengths, width=10, seed=s).ids for s in range(20)}
    assert len(picks) > 1  # the seed chooses which records a bin keeps


def test_edges_by_hand(two):
    data, lengths = two
    # [0, 5): a3, b4; [5, 15): a5, a12, a13 | b11, b14; 15, 20 and 30 fall outside
    out = length_matched(data, lengths=lengths, edges=[0, 5, 15], seed=1)
    ids = set(out.ids)
    assert {"a3", "b4", "b11", "b14"} <= ids and len(ids & {"a5", "a12", "a13"}) == 2 and len(out) == 6


def test_tokenizer_counts_the_instruction_and_input_tokens():
    tok = ii.tiny_model().tokenizer
    data = ii.hexainst().sample(8, seed=0).filter(category=["code", "generation", "math"])
    enc = ii.encode(data, tok)
    counted = {int(ii.Region.INSTRUCTION), int(ii.Region.INPUT)}
    by_hand = [sum(r in counted for r in e.regions) for e in enc]
    assert all(0 < n < len(e.tokens) for n, e in zip(by_hand, enc))
    assert counted_lengths(data, tok) == by_hand
    out = data.length_matched(tok, width=16, seed=3)
    assert 0 < len(out) < len(data)
    assert out.ids == data.length_matched(lengths=by_hand, width=16, seed=3).ids
    length = dict(zip(data.ids, by_hand))
    hist = {c: Counter(length[r.id] // 16 for r in out.filter(category=c)) for c in out.categories}
    assert len({tuple(sorted(h.items())) for h in hist.values()}) == 1  # the same in every category


def test_bad_input(two):
    data, lengths = two
    with pytest.raises(ValueError, match="tokenizer"):
        data.length_matched()
    with pytest.raises(ValueError, match="10 records"):
        data.length_matched(lengths=[1, 2])
    with pytest.raises(ValueError, match="width"):
        data.length_matched(lengths=lengths, width=0)
    with pytest.raises(ValueError, match="edges"):
        data.length_matched(lengths=lengths, edges=[5, 5])
    with pytest.raises(ValueError, match="No length bin"):
        data.length_matched(lengths=[1] * 5 + [100] * 5, width=10)
