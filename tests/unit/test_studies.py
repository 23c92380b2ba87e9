"""The study runner: resumable units, summary JSON, and clear errors."""

import json
import sys
import types

import pytest

from instr_interp import studies
from instr_interp.cli import main


@pytest.fixture
def counting_study(monkeypatch):
    calls = []

    def run(store, size, progress):
        values = [store.unit(f"u{i}", lambda i=i: calls.append(i) or {"x": i * i}) for i in range(3)]
        return {"total": sum(v["x"] for v in values), "size_seen": size}

    module = types.ModuleType("fake_study")
    module.run = run
    monkeypatch.setitem(sys.modules, "fake_study", module)
    monkeypatch.setitem(studies.STUDIES, "fake", "fake_study:run")
    return calls


def test_a_study_resumes_from_its_units_and_writes_its_summary(tmp_path, counting_study):
    path = studies.run_study("fake", size="tiny", out=tmp_path, work=tmp_path / "work", progress=False)
    assert path == tmp_path / "study_fake-tiny.json"
    summary = json.loads(path.read_text())
    assert (summary["study"], summary["size"], summary["total"]) == ("fake", "tiny", 0 + 1 + 4)
    assert counting_study == [0, 1, 2]
    assert summary["units"] == {"computed": 3, "read": 0}
    (tmp_path / "work" / "u1.json").unlink()  # as if interrupted after two units
    studies.run_study("fake", size="tiny", out=tmp_path, work=tmp_path / "work", progress=False)
    assert counting_study == [0, 1, 2, 1]
    assert json.loads(path.read_text())["units"] == {"computed": 1, "read": 2}


def test_full_runs_keep_their_units_beside_the_committed_summary(monkeypatch, tmp_path):
    assert studies.work_path("critical", "full") == studies.RESULTS / "study_units" / "critical"
    monkeypatch.setenv("INSTR_INTERP_CACHE", str(tmp_path))
    assert studies.work_path("critical", "tiny") == tmp_path / "studies" / "critical-tiny"


def test_the_command_line_runs_a_study(tmp_path, counting_study):
    assert (
        main(["study", "fake", "--size", "tiny", "--out", str(tmp_path), "--work", str(tmp_path / "w")]) == 0
    )
    assert json.loads((tmp_path / "study_fake-tiny.json").read_text())["total"] == 5


def test_bad_study_names_sizes_and_keys_are_refused(tmp_path, counting_study):
    with pytest.raises(ValueError, match="Unknown study 'nope'.*fake"):
        studies.run_study("nope", out=tmp_path)
    with pytest.raises(ValueError, match="Unknown size 'big'"):
        studies.run_study("fake", size="big", out=tmp_path)
    with pytest.raises(ValueError, match="plain file name"):
        studies.Store(tmp_path).unit("../x", dict)


def test_the_following_study_runs_tiny_and_resumes(tmp_path):
    path = studies.run_study("following", size="tiny", out=tmp_path, work=tmp_path / "w", progress=False)
    summary = json.loads(path.read_text())
    assert summary["nll_records"] == 12 and summary["generated_records"] >= 5
    overall = [row for row in summary["nll"] if row["category"] == "all"][0]
    assert overall["ci_low"] <= overall["difference"] <= overall["ci_high"]
    assert len(list((tmp_path / "w").glob("category-*.json"))) == 6
    again = json.loads(
        studies.run_study("following", size="tiny", out=tmp_path, work=tmp_path / "w").read_text()
    )
    assert again["nll"] == summary["nll"]
    from instr_interp.report.sections_tuning import following_section

    section = following_section(summary, "instr-interp study following")
    assert f"{overall['difference']:+.2f} nats/token" in section.reading and len(section.tables) == 4
    assert "has not been run" in following_section(None, "instr-interp study following").reading
