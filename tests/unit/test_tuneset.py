"""The built-in tuning set: balanced, clean, disjoint from the analysis set, answers that verify."""

import json
import math
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

import instr_interp as ii
from instr_interp.data import CATEGORIES

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tune():
    return ii.tuneset()


@pytest.fixture(scope="module")
def hexa():
    return ii.hexainst()


def _skeleton(text: str) -> str:
    # slots masked: quoted spans, numbers, capitalised words after the first
    text = re.sub(r"'[^']*'|\"[^\"]*\"|`[^`]*`", "Q", text)
    text = re.sub(r"\$?\d[\d,.]*%?", "#", text)
    words = text.split()
    words = [words[0]] + ["X" if w[:1].isupper() and w not in ("Q", "X") else w for w in words[1:]]
    return " ".join(w.lower() for w in words)


def test_balanced_and_clean(tune):
    counts = tune.category_counts()
    assert set(counts) == set(CATEGORIES) and set(counts.values()) == {360}
    assert len(tune) >= 2100
    assert len(set(tune.ids)) == len(tune)
    pairs = [(r.instruction, r.input) for r in tune]
    assert len(set(pairs)) == len(pairs)
    for r in tune:
        assert r.source in ("handwritten", "templated", "programmatic")
        assert r.instruction == r.instruction.strip() and r.response == r.response.strip() and r.response
        assert (r.source == "handwritten") == ("template" not in r.meta)
        if "template" in r.meta:
            assert r.meta["template"].startswith(f"tune/{r.category}/")
    for cat in CATEGORIES:
        recs = tune.filter(category=cat)
        assert len(recs.filter(source="handwritten")) >= 15
        assert len({r.instruction for r in recs}) >= 25  # lexical variety within a category
        families = {r.meta["template"] for r in recs if "template" in r.meta}
        assert len(families) >= 6


def test_mostly_short(tune):
    words = sorted(len(f"{r.instruction} {r.input} {r.response}".split()) for r in tune)
    assert words[len(words) // 2] <= 40 and words[int(0.95 * len(words))] <= 90


def test_disjoint_from_hexainst(tune, hexa):
    h_instr = {r.instruction for r in hexa}
    h_pairs = {(r.instruction, r.input) for r in hexa}
    h_skel = {_skeleton(r.instruction) for r in hexa}
    h_prefix = {" ".join(s.split()[:5]) for s in h_skel}
    h_templates = {str(r.meta["template"]) for r in hexa if r.meta.get("template")}
    for r in tune:
        assert r.instruction not in h_instr, r.id
        assert (r.instruction, r.input) not in h_pairs, r.id
        skel = _skeleton(r.instruction)
        assert skel not in h_skel, (r.id, r.instruction)  # no template instance in both
        assert " ".join(skel.split()[:5]) not in h_prefix, (r.id, r.instruction)  # nor a phrasing family
        assert r.meta.get("template") not in h_templates, r.id
    # the records' content never coincides either
    h_responses = {(r.instruction, r.response) for r in hexa}
    assert not any((r.instruction, r.response) in h_responses for r in tune)


_RUNNER = r"""
import contextlib, io, json, signal, sys

def alarm(*_):
    raise TimeoutError("timed out")

signal.signal(signal.SIGALRM, alarm)
failures = []
for rec in json.load(sys.stdin):
    signal.alarm(5)
    try:
        if rec["check"]["kind"] == "function":
            ns = {"__name__": "check"}
            exec(rec["response"], ns)
            exec(rec["check"]["tests"], ns)
        elif rec["check"]["kind"] == "explained":
            check = rec["check"]
            pieces = check["code"] if isinstance(check["code"], list) else [check["code"]]
            for piece in pieces:
                if piece not in rec["response"] and piece not in rec["input"]:
                    raise AssertionError(f"code not shown: {piece!r}")
            ns = {"__name__": "check", "shown": "\n\n".join(pieces)}
            out = io.StringIO()
            if check["lang"] == "python":
                with contextlib.redirect_stdout(out):
                    exec(check.get("setup", ""), ns)
                    for piece in pieces:
                        exec(piece, ns)
            ns["printed"] = out.getvalue()
            exec(check["tests"], ns)
        else:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(rec["input"], {"__name__": "check"})
            if out.getvalue().rstrip("\n") != rec["response"]:
                raise AssertionError(f"printed {out.getvalue()!r}")
    except BaseException as err:
        failures.append([rec["id"], repr(err)])
    finally:
        signal.alarm(0)
print(json.dumps(failures))
"""


def test_code_records_pass_their_tests(tune):
    code = [r.to_dict() for r in tune.filter(category="code")]
    assert all(r.get("check", {}).get("kind") in ("function", "stdout", "explained") for r in code)
    assert all(r["check"].get("tests") for r in code if r["check"]["kind"] in ("function", "explained"))
    # answers that mix prose and code: their code is shown, run (Python) and their claims tested
    explained = [r for r in code if r["check"]["kind"] == "explained"]
    assert len(explained) >= 30 and all(r["source"] == "handwritten" for r in explained)
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER], input=json.dumps(code), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == []
    # a wrong response is caught
    bad = dict(code[0], response="def nothing():\n    pass")
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER], input=json.dumps([bad]), capture_output=True, text=True, timeout=60
    )
    assert len(json.loads(done.stdout)) == 1
    # a wrong claim in a prose-and-code answer is caught too
    bad = dict(explained[0], check=dict(explained[0]["check"], tests="assert printed == 'something else'"))
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER], input=json.dumps([bad]), capture_output=True, text=True, timeout=60
    )
    assert len(json.loads(done.stdout)) == 1


def _solve(kind: str, a: dict):
    """An independent computation of each math family's answer from its stored arguments."""
    if kind == "arith":
        return {"+": a["a"] + a["b"], "-": a["a"] - a["b"], "*": a["a"] * a["b"]}[a["op"]]
    if kind == "divmod":
        return [a["a"] // a["b"], a["a"] % a["b"]]
    if kind == "gcd":
        return math.gcd(a["a"], a["b"])
    if kind == "lcm":
        return math.lcm(a["a"], a["b"])
    if kind == "power":
        return math.prod([a["base"]] * a["exp"])
    if kind == "arith_seq":
        t = a["terms"]
        assert len({y - x for x, y in zip(t, t[1:])}) == 1
        return t[-1] + (t[1] - t[0])
    if kind == "geom_seq":
        t = a["terms"]
        assert len({y / x for x, y in zip(t, t[1:])}) == 1
        return t[-1] * t[1] // t[0]
    if kind == "median":
        s = sorted(a["nums"])
        assert len(s) % 2 == 1
        return s[len(s) // 2]
    if kind == "perimeter":
        return a["w"] + a["w"] + a["h"] + a["h"]
    if kind == "area":
        return a["w"] * a["h"]
    if kind == "distance":
        return a["v"] * a["t"]
    if kind == "multiply":
        return a["a"] * a["b"]
    if kind == "speed":
        assert a["d"] % a["t"] == 0
        return a["d"] // a["t"]
    if kind == "divide":
        assert a["a"] % a["b"] == 0
        return a["a"] // a["b"]
    if kind == "add_sub":
        return a["a"] + a["b"] - a["c"]
    if kind == "discount":
        value = Fraction(a["price"]) * (100 - a["pct"]) / 100
        assert value.denominator == 1
        return int(value)
    if kind == "age":
        return a["younger"] + a["diff"] + a["years"]
    if kind == "fraction_of":
        value = a["n"] * a["num"] / a["den"]
        assert value == int(value)
        return int(value)
    if kind == "sqrt":
        return math.isqrt(a["n"]) if math.isqrt(a["n"]) ** 2 == a["n"] else None
    if kind == "expr":
        return eval(a["expr"], {"__builtins__": {"sum": sum, "range": range, "round": round}})
    raise AssertionError(f"unknown math kind {kind}")


def test_math_answers_verify(tune):
    math_recs = tune.filter(category="math")
    kinds = set()
    for r in math_recs:
        check = r.meta["check"]
        kinds.add(check["kind"])
        expected = _solve(check["kind"], check["args"])
        assert expected == check["answer"], (r.id, expected, check)
        stated = r.response.rsplit("Answer: ", 1)[-1]
        want = " remainder ".join(map(str, expected)) if isinstance(expected, list) else str(expected)
        assert stated == want, (r.id, stated, want)
        if check["kind"] not in ("expr", "power"):
            # the stored arguments are the numbers the question states
            numbers = {int(x) for x in re.findall(r"\d+", f"{r.instruction} {r.input}")}
            flat = [v for x in check["args"].values() for v in (x if isinstance(x, list) else [x])]
            assert {v for v in flat if isinstance(v, int)} <= numbers, (r.id, flat, numbers)
    assert len(kinds) >= 12


def test_generator_reproduces_the_file(tmp_path):
    out = tmp_path / "tuneset.jsonl"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_tuneset.py"), "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert out.read_bytes() == (ROOT / "instr_interp" / "data" / "tuneset.jsonl").read_bytes()
