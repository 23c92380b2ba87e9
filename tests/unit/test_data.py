import json

import pytest

import instr_interp as ii
from instr_interp.data import CATEGORIES


def test_hexainst_is_balanced_and_clean(data):
    counts = data.category_counts()
    assert set(counts) == set(CATEGORIES)
    assert len(set(counts.values())) == 1 and min(counts.values()) >= 50
    assert len(set(data.ids)) == len(data)
    pairs = [(r.instruction, r.input) for r in data]
    assert len(set(pairs)) == len(pairs)
    for cat in CATEGORIES:
        recs = data.filter(category=cat)
        human = len(recs.filter(source="human"))
        assert abs(human - len(recs) / 2) <= len(recs) * 0.1
    for r in data:
        assert r.response and r.instruction == r.instruction.strip()
    lengths = sorted(len(r.instruction.split()) for r in data)
    assert lengths[0] <= 6 and lengths[-1] >= 25  # varied phrasing lengths


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"id": "a", "category": "math"}], "missing"),
        ([{"id": "a", "category": "math", "instruction": "   "}], "empty"),
        ([{"id": "a", "category": "math", "instruction": "x"}, {"id": "a", "category": "code", "instruction": "y"}],
         "Duplicate"),
        ([], "at least one"),
    ],
)
def test_validation_errors(rows, message):
    with pytest.raises(ValueError, match=message):
        ii.load_instructions(rows)


def test_unknown_file_type_and_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        ii.load_instructions(tmp_path / "nope.jsonl")
    bad = tmp_path / "x.txt"
    bad.write_text("hi")
    with pytest.raises(ValueError, match=".txt"):
        ii.load_instructions(bad)


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv"])
def test_file_round_trip(tmp_path, small_data, suffix):
    path = small_data.save(tmp_path / f"d{suffix}")
    back = ii.load_instructions(path)
    assert back.to_dicts() == small_data.to_dicts()
    assert back.fingerprint() == small_data.fingerprint()


def test_datasets_round_trip_keeps_metadata():
    rows = [{"id": "q1", "category": "mine", "instruction": "Say hi.", "difficulty": "easy"}]
    data = ii.load_instructions(rows)
    back = ii.load_instructions(data.to_hf())
    assert back[0].meta == {"difficulty": "easy"} and back.categories == ("mine",)
    assert json.loads(json.dumps(back.to_dicts()))[0]["difficulty"] == "easy"


def test_sample_and_filter(data):
    s = data.sample(per_category=3, seed=0)
    assert s.category_counts() == {c: 3 for c in CATEGORIES}
    assert s.to_dicts() == data.sample(per_category=3, seed=0).to_dicts()
    assert all(r.category == "code" for r in data.filter(category="code"))
