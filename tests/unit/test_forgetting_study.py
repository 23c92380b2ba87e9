"""The forgetting study at tiny size: its numbers against the stored units and an independent
likelihood, its multi-token tasks, the seed x item bootstrap, and the report section."""

import json

import numpy as np
import pytest
import torch

import instr_interp as ii
from instr_interp import studies
from instr_interp.stats import bootstrap_seeds_items
from instr_interp.vectors.long_tasks import LONG_TASKS, long_task
from instr_interp.vectors.tasks import icl_task


def test_long_tasks_are_built_from_the_word_tasks():
    assert set(LONG_TASKS) == {"past_sentence", "capital_sentence", "plural_list", "antonym_explain"}
    capitals = dict(icl_task("country_capital").pairs)
    assert all(y == f"The capital of {x} is {capitals[x]}." for x, y in long_task("capital_sentence").pairs)
    plurals = dict(icl_task("singular_plural").pairs)
    for x, y in long_task("plural_list").pairs:
        assert y.split(", ") == [plurals[w] for w in x.split(", ")] and len(y.split(", ")) == 3
    past = dict(icl_task("present_past").pairs)
    assert all(y == f"Yesterday I {past[x[8:-1]]}." for x, y in long_task("past_sentence").pairs)
    with pytest.raises(ValueError, match="choose one of"):
        long_task("poems")


def test_two_level_bootstrap():
    table = np.array([[1.0, 2.0, 3.0, 4.0], [3.0, 4.0, 5.0, 6.0], [2.0, 3.0, 4.0, 5.0]])
    mean, lo, hi = bootstrap_seeds_items(table, n_boot=4000)
    assert mean == pytest.approx(3.5) and lo < 3.5 < hi and hi - lo < 3.0
    assert bootstrap_seeds_items(np.full((3, 5), 2.0)) == (2.0, 2.0, 2.0)  # no spread, no interval
    wide = bootstrap_seeds_items(table * 10)
    assert (wide[2] - wide[1]) == pytest.approx(10 * (hi - lo), rel=0.05)
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_seeds_items([[1.0, float("nan")]])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_tiny_forgetting_study(tmp_path):
    from instr_interp.report.sections_vectors import forgetting_study_section
    from instr_interp.studies.forgetting import ARMS, SIZES
    from instr_interp.vectors.prompts import instruction_records

    work = tmp_path / "work"
    path = studies.run_study("forgetting", size="tiny", out=tmp_path, work=work, progress=False)
    summary = json.loads(path.read_text())
    cfg = SIZES["tiny"]
    sets = ["new:past_sentence", *cfg["old"], "general"]
    rows = summary["forgetting"]
    assert len(rows) == len(ARMS) * (1 + 2 * (len(sets) - 1))
    m0 = json.loads((work / "m0.json").read_text())
    # the summary's change = mean over seeds and items of (tuned - base), from the stored units
    for row in rows:
        after = np.array(
            [
                json.loads((work / f"{row['arm']}-seed{s}.json").read_text())["scores"][row["set"]][
                    row["metric"]
                ]
                for s in cfg["seeds"]
            ]
        )
        change = after - np.array(m0[row["set"]][row["metric"]])
        assert row["change"] == pytest.approx(change.mean(), abs=1e-12)
        assert row["low"] <= row["change"] <= row["high"]
    # the base scores against an independent plain transformers likelihood (first item of an old set)
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(work / "tiny-model", dtype=torch.float32)
    tok = ii.load_model(
        str(work / "tiny-model"), device="cpu"
    ).tokenizer  # the tokenizer the study scores with
    task = long_task(cfg["old"][0])
    rec = ii.encode(instruction_records(task, task.pairs[:1]), tok, with_response=True).records[0]
    with torch.no_grad():
        logp = torch.log_softmax(hf(input_ids=torch.tensor([rec.tokens])).logits[0].double(), -1)
    scored = [t for t in range(1, len(rec.tokens)) if rec.regions[t] == ii.Region.RESPONSE]
    nll = -sum(logp[t - 1, rec.tokens[t]].item() for t in scored) / len(scored)
    assert m0[cfg["old"][0]]["instruction_nll"][0] == pytest.approx(nll, rel=1e-4)
    # guided runs log the reference's terms; the vector was built from instruction prompts
    unit = json.loads((work / f"guided-seed{cfg['seeds'][0]}.json").read_text())
    assert (
        set(unit["components"]) == {"ce", "kl", "seq_kl", "head"} and unit["teacher"]["n"] == cfg["n_train"]
    )
    assert summary["vector"]["settings"]["form"] == "instruction"
    assert {d["arm"] for d in summary["guided_minus_plain"]} == set(ARMS) - {"plain"}
    assert not (work / "models").exists() or not any((work / "models").iterdir())  # tuned models removed
    sections = forgetting_study_section(path)
    assert len(sections) == 1 and "guided" in sections[0].reading and sections[0].figures
    new_diff = next(
        d for d in summary["guided_minus_plain"] if d["arm"] == "guided" and d["set"].startswith("new:")
    )
    assert f"Guided minus plain on the new task: {new_diff['set']} {new_diff['minus_plain']:+.3f}" in (
        sections[0].reading
    )
    assert forgetting_study_section(tmp_path / "absent.json") == []
