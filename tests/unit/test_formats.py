"""Loading Alpaca, Dolly, Super-NaturalInstructions, FLAN and chat-messages files; the grouped split."""

import json
from pathlib import Path

import pytest

import instr_interp as ii
from instr_interp.data import CATEGORIES
from instr_interp.data.formats import DOLLY_CATEGORIES, detect_format

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "formats"


def test_alpaca_fields_and_generated_ids():
    data = ii.load_instructions(FIXTURES / "alpaca.json")
    assert data.format == "alpaca" and data.name == "alpaca" and len(data) == 5
    rec = data[1]
    assert rec.id == "alpaca-1" and rec.category == "alpaca" and rec.source == "alpaca"
    assert rec.instruction == "Translate the sentence into French."
    assert rec.input == "The library opens at nine."
    assert rec.response == "La bibliothèque ouvre à neuf heures."
    assert rec.meta == {}
    assert data[0].input == ""
    assert data.ids == tuple(f"alpaca-{i}" for i in range(5))


def test_alpaca_category_callable_and_string_map():
    def by_word(rec):
        return "math" if "area" in rec["instruction"] else None

    data = ii.load_instructions(FIXTURES / "alpaca.json", categories=by_word)
    assert data.category_counts() == {"math": 1, "alpaca": 4}
    dropped = ii.load_instructions(FIXTURES / "alpaca.json", categories=by_word, unmapped="drop")
    assert dropped.ids == ("alpaca-3",)  # ids follow the source position, not the kept order
    assert dropped[0].category == "math" and dropped[0].response == "28 square centimetres"
    with pytest.raises(ValueError, match=r"alpaca\.json: No record left: all 5 were unmapped"):
        ii.load_instructions(FIXTURES / "alpaca.json", unmapped="drop")


def test_dolly_context_goes_to_input_and_categories_map():
    data = ii.load_instructions(FIXTURES / "dolly.jsonl")
    assert data.format == "dolly" and len(data) == 7
    first = data[0]
    assert first.id == "dolly-0" and first.category == "general_qa"
    assert first.instruction == "When did the lighthouse on Gull Point first shine?"
    assert (
        first.input == "The Gull Point lighthouse was lit for the first time in 1871 and automated in 1962."
    )
    assert first.response == "In 1871."
    assert first.meta == {"source_category": "closed_qa"}
    assert [r.category for r in data] == [
        "general_qa",
        "generation",
        "classification",
        "summarization",
        "summarization",
        "general_qa",
        "generation",
    ]
    assert data[2].meta == {}  # classification maps onto itself: no source_category kept
    assert set(DOLLY_CATEGORIES.values()) <= set(CATEGORIES)


def test_dolly_with_ids_still_puts_context_in_input():
    rows = [json.loads(line) for line in (FIXTURES / "dolly.jsonl").read_text().splitlines()]
    rows = [{"id": f"d{i}", **r} for i, r in enumerate(rows)]
    data = ii.load_instructions(rows)
    assert data.format == "dolly" and data[0].id == "d0"
    assert data[0].input.startswith("The Gull Point lighthouse") and "context" not in data[0].meta


def test_user_map_overrides_default_and_unmapped():
    data = ii.load_instructions(
        FIXTURES / "dolly.jsonl",
        categories={"information_extraction": "classification", "brainstorming": None},
    )
    assert data[4].category == "classification"
    assert data[1].category == "brainstorming"  # unmapped by the user, kept under its own label
    assert data[6].category == "generation"  # the default map still applies to the rest
    kept = ii.load_instructions(FIXTURES / "dolly.jsonl", categories={"brainstorming": None}, unmapped="drop")
    assert "dolly-1" not in kept.ids and len(kept) == 6


def test_superni_task_one_record_per_instance():
    data = ii.load_instructions(FIXTURES / "superni_task.json")
    assert data.format == "superni" and data.ids == ("task900-1", "task900-2", "task900-3", "task900-4")
    definition = 'In this task you are given a short restaurant review. Answer "positive" or "negative".'
    assert all(r.instruction == definition for r in data)
    rec = data[2]
    assert rec.input == "Overpriced and noisy." and rec.response == "negative"
    assert rec.category == "classification" and rec.source == "superni"
    assert rec.meta["outputs"] == ["negative", "Negative"] and "outputs" not in data[0].meta
    assert rec.meta["task"] == "superni_task" and rec.meta["source_category"] == "Sentiment Analysis"
    assert rec.meta["positive_examples"][0]["output"] == "positive"


def test_superni_unmapped_category():
    task = json.loads((FIXTURES / "superni_task.json").read_text())
    task["Categories"] = ["Wordplay"]
    data = ii.load_instructions([task], name="wordplay")
    assert data.category_counts() == {"Wordplay": 4} and data[0].id == "task900-1"
    for inst in task["Instances"]:
        del inst["id"]
    data = ii.load_instructions([task], name="wordplay", categories={"Wordplay": "generation"})
    assert data.ids == ("wordplay-0", "wordplay-1", "wordplay-2", "wordplay-3")
    assert set(data.categories) == {"generation"}


def test_messages_first_pair_system_and_later_turns():
    data = ii.load_instructions(FIXTURES / "messages.jsonl")
    assert data.format == "messages" and len(data) == 4
    first = data[0]
    assert (first.id, first.category, first.instruction, first.input, first.response) == (
        "messages-0",
        "messages",
        "What is the capital of Portugal?",
        "",
        "Lisbon.",
    )
    assert first.meta == {"system": "You are a concise assistant."}
    second = data[1]
    assert second.category == "code" and second.response == "def square(x):\n    return x * x"
    assert second.meta["later_turns"] == [
        {"role": "user", "content": "Now make it cube."},
        {"role": "assistant", "content": "def cube(x):\n    return x ** 3"},
    ]
    assert data[3].id == "chat-own-id" and data[3].category == "generation"


def test_flan_rows_and_templates():
    data = ii.load_instructions(
        FIXTURES / "flan.jsonl", categories={"shoe_reviews": "classification", "tiny_arithmetic": "math"}
    )
    assert data.format == "flan" and data.category_counts() == {"classification": 3, "math": 1}
    rec = data[3]
    assert (rec.instruction, rec.input, rec.response) == ("What is 7 plus 8?", "", "15")
    assert [r.meta["template"] for r in data] == [
        "shoe_reviews/0",
        "shoe_reviews/0",
        "shoe_reviews/1",
        "tiny_arithmetic/0",
    ]


@pytest.mark.parametrize(
    "file, fmt",
    [
        ("alpaca.json", "alpaca"),
        ("dolly.jsonl", "dolly"),
        ("superni_task.json", "superni"),
        ("messages.jsonl", "messages"),
        ("flan.jsonl", "flan"),
    ],
)
def test_auto_detection_matches_the_explicit_format(file, fmt):
    auto = ii.load_instructions(FIXTURES / file)
    explicit = ii.load_instructions(FIXTURES / file, format=fmt)
    assert auto.format == explicit.format == fmt
    assert auto.to_dicts() == explicit.to_dicts()


def test_native_detection_and_round_trip(tmp_path):
    assert detect_format({"id": "a", "category": "math", "instruction": "x", "input": ""}) == "native"
    data = ii.load_instructions(FIXTURES / "dolly.jsonl")
    back = ii.load_instructions(data.save(tmp_path / "dolly_native.jsonl"))
    assert back.format == "native" and back.to_dicts() == data.to_dicts()


def test_native_category_map():
    rows = [
        {"id": "a", "category": "arith", "instruction": "Add 2 and 3."},
        {"id": "b", "category": "code", "instruction": "Reverse a list."},
        {"id": "c", "category": "chitchat", "instruction": "Say hi."},
    ]
    data = ii.load_instructions(rows, categories={"arith": "math"}, unmapped="drop")
    assert data.ids == ("a", "b") and data[0].category == "math"
    assert data[0].meta == {"source_category": "arith"} and data[1].meta == {}


@pytest.mark.parametrize(
    "content, fmt, message",
    [
        (
            '[{"instruction": "A", "input": "", "output": "B"}, {"instruction": "C", "input": "D"}]',
            "auto",
            r"alpaca_bad\.json: Record 1 \(format 'alpaca'\): field 'output' is missing",
        ),
        (
            '[{"instruction": "A", "input": "", "output": "B"}, {"instruction": " ", "output": "D"}]',
            "auto",
            r"Record 1 \(format 'alpaca'\): field 'instruction' is empty",
        ),
        (
            '[{"instruction": "A", "context": "", "response": "B"}, {"context": "x", "response": "y"}]',
            "dolly",
            r"Record 1 \(format 'dolly'\): field 'instruction' is missing",
        ),
        (
            '{"Definition": ["Do it."], "Instances": [{"input": "x", "output": ["y"]}, {"output": ["z"]}]}',
            "auto",
            r"Record 0 \(format 'superni'\), instance 1: field 'input' is missing",
        ),
        (
            '{"Definition": ["Do it."], "Categories": []}',
            "auto",
            r"Record 0 \(format 'superni'\): field 'Instances' is missing",
        ),
        (
            '[{"messages": [{"role": "user", "content": "Hi"}]}, {"messages": [{"role": "user"}]}]',
            "auto",
            r"Record 1 \(format 'messages'\): field 'messages\[0\]\.content' is missing",
        ),
        (
            '[{"messages": [{"role": "system", "content": "Be brief."}]}]',
            "messages",
            r"Record 0 \(format 'messages'\): field 'messages' has no message with role 'user'",
        ),
        (
            '[{"inputs": "Q", "targets": "A"}, {"inputs": "Q2"}]',
            "flan",
            r"Record 1 \(format 'flan'\): field 'targets' is missing",
        ),
    ],
)
def test_missing_field_names_file_record_and_field(tmp_path, content, fmt, message):
    path = tmp_path / "alpaca_bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as err:
        ii.load_instructions(path, format=fmt)
    assert str(path) in str(err.value)


def test_bad_arguments():
    rows = [{"instruction": "A", "output": "B"}]
    with pytest.raises(ValueError, match="Unknown instruction format 'sharegpt'"):
        ii.load_instructions(rows, format="sharegpt")
    with pytest.raises(ValueError, match="unmapped must be 'keep' or 'drop'"):
        ii.load_instructions(rows, unmapped="skip")


# ---- split


def test_split_is_disjoint_balanced_and_keeps_instructions_together(data):
    identify, evaluate = data.split(0.3, seed=1)
    assert len(identify) + len(evaluate) == len(data)
    assert not set(identify.ids) & set(evaluate.ids)
    assert not {r.instruction for r in identify} & {r.instruction for r in evaluate}
    for cat, n in data.category_counts().items():
        assert evaluate.category_counts()[cat] == round(0.3 * n)  # singletons fill in around the groups
    assert identify.name == "hexainst-identify" and evaluate.name == "hexainst-evaluate"
    again = data.split(0.3, seed=1)
    assert again[1].ids == evaluate.ids and data.split(0.3, seed=2)[1].ids != evaluate.ids


def test_split_n_eval_and_ungrouped(data):
    identify, evaluate = data.split(n_eval=5, seed=0)
    assert evaluate.category_counts() == {c: 5 for c in CATEGORIES}
    _, loose = data.split(0.5, seed=0, together=False)
    assert loose.category_counts() == {c: 30 for c in CATEGORIES}


def test_split_keeps_templates_together():
    rows = [
        {"id": f"r{i}", "category": "math", "instruction": f"Add {i} and {i + 1}.", "template": f"t{i % 3}"}
        for i in range(12)
    ] + [{"id": f"s{i}", "category": "code", "instruction": f"Write snippet {i}."} for i in range(6)]
    data = ii.load_instructions(rows)
    identify, evaluate = data.split(0.5, seed=3)
    assert not {r.meta["template"] for r in identify if "template" in r.meta} & {
        r.meta["template"] for r in evaluate if "template" in r.meta
    }
    assert evaluate.category_counts()["code"] == 3
    assert 0 < evaluate.category_counts()["math"] < 12


def test_split_errors():
    one_task = ii.load_instructions(FIXTURES / "superni_task.json")
    with pytest.raises(ValueError, match="Cannot split 4 records in 1 template/instruction groups"):
        one_task.split(0.5)
    assert len(one_task.split(0.5, together=False)[1]) == 2
    with pytest.raises(ValueError, match="fraction must be between 0 and 1"):
        one_task.split(1.5)
