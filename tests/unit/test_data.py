import json
from collections import Counter

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
        handwritten = len(recs.filter(source="handwritten"))
        assert abs(handwritten - len(recs) / 2) <= len(recs) * 0.1
    for r in data:
        assert r.response and r.instruction == r.instruction.strip()
    lengths = sorted(len(r.instruction.split()) for r in data)
    assert lengths[0] <= 6 and lengths[-1] >= 25  # varied phrasing lengths


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"id": "a", "category": "math"}], "missing"),
        ([{"id": "a", "category": "math", "instruction": "   "}], "empty"),
        (
            [
                {"id": "a", "category": "math", "instruction": "x"},
                {"id": "a", "category": "code", "instruction": "y"},
            ],
            "Duplicate",
        ),
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


def test_errors_point_at_the_data(tmp_path):
    good = '{"id": "a", "category": "math", "instruction": "Add 2 and 3."}'
    broken = tmp_path / "broken.jsonl"
    broken.write_text(good + "\n\n" + '{"id": "b", "category": "math", "instruction": }' + "\n")
    with pytest.raises(ValueError, match=r"broken\.jsonl, line 3: not valid JSON"):
        ii.load_instructions(broken)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("[\n" + good + ",\n{oops}\n]")
    with pytest.raises(ValueError, match=r"bad\.json, line 3"):
        ii.load_instructions(bad_json)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("id,category,instruction\na,math,Caf\xe9 au lait?\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.csv is not UTF-8 text: byte 0xe9 at offset \d+ \(line 2\)"):
        ii.load_instructions(latin)
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"id": "a", "category": "math"}\n')
    with pytest.raises(ValueError, match=r"missing\.jsonl: Record 0 \('a'\) is missing \['instruction'\]"):
        ii.load_instructions(missing)


def test_csv_with_bom_as_excel_writes_it(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffid,category,instruction\r\na,math,Add 2 and 3.\r\n".encode("utf-8"))
    data = ii.load_instructions(path)
    assert data[0].id == "a" and data[0].instruction == "Add 2 and 3." and data[0].meta == {}


def test_dataset_save_is_atomic(tmp_path, small_data, monkeypatch):
    path = small_data.save(tmp_path / "d.jsonl")
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("instr_interp.files.os.fsync", fail)
    with pytest.raises(OSError, match="No space left"):
        small_data[:3].save(path)
    assert path.read_bytes() == before  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["d.jsonl"]  # no temporary left behind


def test_hexainst_is_not_dominated_by_templates(data):
    per_instruction = Counter(r.instruction for r in data)
    assert max(per_instruction.values()) <= 3
    for cat in ("classification", "summarization"):
        assert len({r.instruction for r in data.filter(category=cat)}) >= 50
    for r in data:
        assert r.source in ("handwritten", "templated")
        tag = "h" if r.source == "handwritten" else "t"
        assert r.id.split("-")[-2] == tag and len(r.id.split("-")[-1]) == 3
        assert (r.source == "templated") == str(r.meta.get("template", "")).startswith(f"hexa/{r.category}/")
