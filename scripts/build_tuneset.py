#!/usr/bin/env python3
"""Build the instruction-TUNING set shipped with ``instr_interp`` (``instr_interp/data/tuneset.jsonl``).

The tuning set trains the "after" model (issue 13). It is disjoint from the analysis set
(``hexainst.jsonl``): no shared instruction text, no shared (instruction, input) pair, no shared
template family, and every instruction's masked skeleton (digits, capitalised names and quoted
words masked) and five-word skeleton prefix differ from every HexaInst instruction's. ``main``
checks all of that against the HexaInst file present when it runs.

Six categories, 360 records each: 16 to 100 written one by one (``source="handwritten"``; 256 in
all, among them open-ended writing of 20-90 words, prose-and-code answers and explanatory answers),
the rest from templates with several paraphrases per instruction (``"templated"``) or from programs
whose answers are computed here and verified (``"programmatic"``):

- math: arithmetic, division with remainder, GCD/LCM, powers, sequences, medians and word problems;
  each record stores ``check = {"kind", "args", "answer"}`` and its response ends in ``Answer: N``.
- code: functions whose responses are executed against stored tests (``check = {"kind": "function",
  "tests": ...}``), bug fixes, and "predict the output" programs whose stdout is recorded
  (``check = {"kind": "stdout"}``; the program is the input and the output is the response), and
  answers that mix prose and code (explain a snippet or an error, compare approaches, complexity,
  docstrings; ``check = {"kind": "explained", "lang", "code", "tests"}``): every piece of ``code``
  appears verbatim in the response or the input; Python pieces are run (after the optional
  ``setup``) with their printed output in ``printed``, then ``tests`` run with the code text in
  ``shown``. SQL, JavaScript and shell pieces are not run by the builder: their ``tests`` check the
  claims in Python (SQL through ``sqlite3``), and the JavaScript and shell commands were run by hand
  with node and bash when written.
- classification, general_qa, generation, summarization: sentences and paragraphs built from word
  banks whose labels / answers / key facts are known by construction.

Every templated or programmatic record names its family in ``template`` (``tune/<category>/<family>``).

Usage (from the repository root):

    python scripts/build_tuneset.py [--out PATH]

The output is fully deterministic (seeded); re-running reproduces the file byte for byte.
Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tuneset_code import code_families  # noqa: E402
from tuneset_handwritten import HANDWRITTEN  # noqa: E402
from tuneset_math import math_families  # noqa: E402
from tuneset_prose import generation_families, summarization_families  # noqa: E402
from tuneset_text import classification_families, qa_families  # noqa: E402

SEED = 20261206
ROOT = Path(__file__).resolve().parent.parent
OUT_PATH = ROOT / "instr_interp" / "data" / "tuneset.jsonl"
HEXA_PATH = ROOT / "instr_interp" / "data" / "hexainst.jsonl"
CATEGORIES = ["classification", "code", "general_qa", "generation", "math", "summarization"]
PER_CATEGORY = 360
ID_PREFIX = {
    "classification": "cls",
    "code": "code",
    "general_qa": "qa",
    "generation": "gen",
    "math": "math",
    "summarization": "sum",
}
FAMILIES = {
    "classification": classification_families,
    "code": code_families,
    "general_qa": qa_families,
    "generation": generation_families,
    "math": math_families,
    "summarization": summarization_families,
}


def skeleton(text: str) -> str:
    """An instruction with its slots masked: quoted spans -> Q, numbers -> #, capitalised words
    after the first -> X, lower case, single spaces."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"|`[^`]*`", "Q", text)
    text = re.sub(r"\$?\d[\d,.]*%?", "#", text)
    words = text.split()
    words = [words[0]] + [("X" if w[:1].isupper() and w not in ("Q", "X") else w) for w in words[1:]]
    return " ".join(w.lower() for w in words)


def prefix(text: str, n: int = 5) -> str:
    return " ".join(skeleton(text).split()[:n])


def run_function_check(code: str, tests: str) -> None:
    """Execute ``code`` then ``tests`` in a fresh namespace (raises on failure)."""
    ns: dict = {"__name__": "tuneset_check"}
    exec(compile(code, "<response>", "exec"), ns)
    exec(compile(tests, "<tests>", "exec"), ns)


def run_explained_check(check: dict, response: str, input_text: str) -> None:
    """Run an ``explained`` check (raises on failure): see the module docstring."""
    assert check["lang"] in ("python", "sql", "javascript", "shell"), check["lang"]
    pieces = check["code"] if isinstance(check["code"], list) else [check["code"]]
    for piece in pieces:
        assert piece and (piece in response or piece in input_text), f"code not shown: {piece!r}"
    ns: dict = {"__name__": "tuneset_check", "shown": "\n\n".join(pieces)}
    buffer = io.StringIO()
    if check["lang"] == "python":
        with contextlib.redirect_stdout(buffer):
            exec(compile(check.get("setup", ""), "<setup>", "exec"), ns)
            for piece in pieces:
                exec(compile(piece, "<shown>", "exec"), ns)
    ns["printed"] = buffer.getvalue()
    exec(compile(check["tests"], "<tests>", "exec"), ns)


def program_stdout(program: str) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(compile(program, "<program>", "exec"), {"__name__": "tuneset_check"})
    return buffer.getvalue().rstrip("\n")


def fill(families, quota: int, rng: random.Random, seen: set) -> list[tuple]:
    """Draw records round-robin from ``families`` (each ``(name, source, make)``) until ``quota``,
    skipping any (instruction, input) already seen; each family's instances are unique."""
    out: list[tuple] = []
    exhausted: set[str] = set()
    tries = 0
    while len(out) < quota:
        progressed = False
        for name, source, make in families:
            if len(out) >= quota:
                break
            if name in exhausted:
                continue
            for _ in range(60):
                tries += 1
                item = make(rng)
                key = (item[0], item[1])
                if key not in seen:
                    seen.add(key)
                    out.append((name, source, *item))
                    progressed = True
                    break
            else:
                exhausted.add(name)
        if not progressed:
            raise RuntimeError(f"families ran out of distinct records at {len(out)}/{quota}")
    return out


def build_records() -> list[dict]:
    records = []
    seen: set = set()
    for category in CATEGORIES:
        hand = HANDWRITTEN[category]
        for item in hand:
            seen.add((item[0], item[1]))
        rng = random.Random(f"{SEED}-{category}")
        generated = fill(FAMILIES[category](), PER_CATEGORY - len(hand), rng, seen)
        rows = [("", "handwritten", *item) for item in hand] + generated
        for i, (family, source, instruction, input_text, response, *extra) in enumerate(rows, start=1):
            rec = {
                "id": f"tune-{ID_PREFIX[category]}-{i:04d}",
                "category": category,
                "instruction": instruction,
                "input": input_text,
                "response": response,
                "source": source,
            }
            if family:
                rec["template"] = f"tune/{category}/{family}"
            if extra and extra[0]:
                rec["check"] = extra[0]
            records.append(rec)
    return records


def verify(records: list[dict]) -> None:
    """Every code record's tests pass; every stdout record reproduces; every math record's stated
    answer is its ``check['answer']``."""
    for rec in records:
        check = rec.get("check")
        if rec["category"] == "code":
            assert check, f"{rec['id']}: code record without a check"
            if check["kind"] == "function":
                run_function_check(rec["response"], check["tests"])
            elif check["kind"] == "explained":
                run_explained_check(check, rec["response"], rec["input"])
            elif check["kind"] == "stdout":
                got = program_stdout(rec["input"])
                assert got == rec["response"], (rec["id"], got, rec["response"])
            else:
                raise AssertionError(f"{rec['id']}: unknown check kind {check['kind']}")
        if rec["category"] == "math":
            stated = rec["response"].rsplit("Answer: ", 1)[-1]
            assert stated == str(check["answer"]) or (
                isinstance(check["answer"], list) and stated == " remainder ".join(map(str, check["answer"]))
            ), (rec["id"], stated, check)


def validate(records: list[dict], hexa: list[dict]) -> None:
    keys = {"id", "category", "instruction", "input", "response", "source"}
    ids, pairs = set(), set()
    for rec in records:
        assert keys <= set(rec) <= keys | {"template", "check"}, rec
        assert rec["source"] in ("handwritten", "templated", "programmatic"), rec["id"]
        assert rec["id"] not in ids, rec["id"]
        ids.add(rec["id"])
        for field in keys:
            value = rec[field]
            assert isinstance(value, str) and value == value.strip(), (rec["id"], field)
            assert "\r" not in value and "\t" not in value, (rec["id"], field)
        assert rec["instruction"] and rec["response"], rec["id"]
        pair = (rec["instruction"], rec["input"])
        assert pair not in pairs, f"{rec['id']}: duplicate (instruction, input) {pair}"
        pairs.add(pair)
        assert (rec["source"] == "handwritten") == ("template" not in rec), rec["id"]
    for category in CATEGORIES:
        assert sum(r["category"] == category for r in records) == PER_CATEGORY, category
    # disjointness from the analysis set
    h_instr = {r["instruction"] for r in hexa}
    h_pairs = {(r["instruction"], r["input"]) for r in hexa}
    h_skel = {skeleton(r["instruction"]) for r in hexa}
    h_prefix = {prefix(r["instruction"]) for r in hexa}
    h_templates = {r.get("template") for r in hexa} - {None, ""}
    bad = []
    for rec in records:
        ins = rec["instruction"]
        if ins in h_instr or (ins, rec["input"]) in h_pairs or skeleton(ins) in h_skel:
            bad.append((rec["id"], "text", ins))
        elif prefix(ins) in h_prefix:
            bad.append((rec["id"], "prefix", ins))
        elif rec.get("template") in h_templates:
            bad.append((rec["id"], "template", ins))
    assert not bad, f"{len(bad)} records overlap HexaInst, e.g. {bad[:8]}"


def write_jsonl(records: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(rec, sort_keys=True, ensure_ascii=False) for rec in records]
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")


def summarize(records: list[dict], path: Path) -> None:
    print(f"wrote {len(records)} records to {path}")
    print(f"{'category':<15}{'n':>5}{'hand':>6}{'tmpl':>6}{'prog':>6}{'instr':>7}{'words med':>10}{'max':>5}")
    for category in CATEGORIES:
        cat = [r for r in records if r["category"] == category]
        counts = {s: sum(r["source"] == s for r in cat) for s in ("handwritten", "templated", "programmatic")}
        words = [len((r["instruction"] + " " + r["input"] + " " + r["response"]).split()) for r in cat]
        print(
            f"{category:<15}{len(cat):>5}{counts['handwritten']:>6}{counts['templated']:>6}"
            f"{counts['programmatic']:>6}{len({r['instruction'] for r in cat}):>7}"
            f"{statistics.median(words):>10.0f}{max(words):>5}"
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_PATH)
    args = parser.parse_args(argv)
    records = build_records()
    verify(records)
    hexa = [json.loads(line) for line in HEXA_PATH.read_text(encoding="utf-8").splitlines() if line.strip()]
    validate(records, hexa)
    write_jsonl(records, args.out)
    summarize(records, args.out)


if __name__ == "__main__":
    main()
