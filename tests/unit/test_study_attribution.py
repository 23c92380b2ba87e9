"""The attribution study at tiny size: its units equal a direct computation, its summary equals the
comparison of those units, and an interrupted run resumes."""

import json

import pandas as pd
import pytest

from instr_interp.data.dataset import hexainst
from instr_interp.engine.generation import generate_responses
from instr_interp.shift.attribution import attribute
from instr_interp.shift.score_tests import compare_models
from instr_interp.studies import run_study
from instr_interp.studies.attribution import DESIGNS, _load


def test_tiny_attribution_study(tmp_path):
    path = run_study("attribution", size="tiny", out=tmp_path, work=tmp_path / "w", progress=False)
    summary = json.loads(path.read_text())
    design = DESIGNS["tiny"]
    assert summary["design"]["format"] == "plain" and summary["design"]["n_prompts"] == 6
    units = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "w").glob("*.json")}
    assert len(units) == 12  # one unit per prompt per model
    # one unit recomputed directly: the model's own greedy response on the plain prompt, attributed by it
    rec = hexainst().sample(per_category=1, seed=0)[2]
    model = _load("tiny-perturbed")
    (filled,) = generate_responses(
        model, [rec], max_new_tokens=design["max_new_tokens"], format="plain", progress=False
    )
    unit = units[f"tuned-{rec.id}"]
    assert unit["response"] == filled.response
    if filled.response.strip():
        assert unit["instruction_score"] == pytest.approx(
            attribute(model, filled).instruction_score, abs=1e-9
        )
    # the summary is compare_models over the units, paired by prompt
    ids = [r.id for r in hexainst().sample(per_category=1, seed=0)]  # the study's order (the bootstrap's too)
    frames = [pd.DataFrame([units[f"{label}-{i}"] for i in ids]) for label in ("base", "tuned")]
    direct = compare_models(frames[0], frames[1]).summary
    got = summary["comparison"]["all_prompt_tokens"]
    for key in ("mean_a", "mean_b", "paired_p", "welch_p", "power_paired", "ci_low"):
        assert got[key] == pytest.approx(direct[key], nan_ok=True)
    assert 0 <= got["power_paired"] <= 1
    # per category: tuned minus base over that category's prompts (one each at this size)
    assert len(summary["per_category"]) == 6
    for row in summary["per_category"]:
        mine = [i for i in ids if units[f"base-{i}"]["category"] == row["category"]]
        diff = sum(
            units[f"tuned-{i}"]["instruction_score"] - units[f"base-{i}"]["instruction_score"] for i in mine
        )
        assert row["n"] == len(mine) and row["difference"] == pytest.approx(diff / len(mine), abs=1e-12)
    # the report renders it, reading the numbers (never computing them)
    from instr_interp.report.sections_shift import attribution_study_section

    section = attribution_study_section(summary, "instr-interp study attribution --size tiny")
    assert f"(difference {got['difference']:+.3f}" in section.reading
    assert "one format (plain, for both)" in section.reading and len(section.tables[0]) == 6
    # resuming: a lost unit is recomputed, the summary is the same
    (tmp_path / "w" / f"base-{rec.id}.json").unlink()
    again = json.loads(
        run_study("attribution", size="tiny", out=tmp_path, work=tmp_path / "w", progress=False).read_text()
    )
    assert again["comparison"] == summary["comparison"]
