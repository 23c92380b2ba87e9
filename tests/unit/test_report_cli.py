import re
import subprocess
import sys
from functools import partial

import pytest

import instr_interp as ii
from instr_interp.cli import build_parser, main
from instr_interp.report.page import write_report
from instr_interp.report.sections_sparcom import dataset_section, firing_section, isn_sections
from instr_interp.sparcom.selection import sets_from_firing


def test_report_sections_hold_real_numbers(tiny, small_data, tmp_path):
    (probe,) = ii.run(tiny, small_data, [ii.NeuronFiring(activation_sums=True)], progress=False)
    stats = probe.result()
    sets = sets_from_firing(stats, top=0.05)
    role = ii.critical_role(
        tiny,
        small_data,
        partial(sets_from_firing, top=0.05),
        stats=stats,
        split=1,
        kinds=("category",),
        progress=False,
    )
    from instr_interp.report.sections_sparcom import critical_role_section

    sections = [
        dataset_section(small_data),
        firing_section(stats),
        *isn_sections(sets, sets.permutation_test(n_permutations=50)),
        critical_role_section(role.view()),
    ]
    path = write_report(sections, tmp_path / "r" / "index.html")
    html = path.read_text()
    assert html.count("Plotly.newPlot") == sum(len(s.figures) for s in sections) == 5  # every figure
    assert html.count("<script type='text/javascript'>") == 1  # plotly.js once
    assert "cdn" not in html.lower().split("plotly.newplot")[0][-2000:]
    for sec in sections:
        assert sec.title in html
        assert re.search(r"\d", sec.reading) and not re.search(r"\bnan\b", sec.reading, re.I)
    assert ">NaN<" not in html and ">nan<" not in html  # undefined table cells show as a dash


def test_cli_help_and_errors(capsys):
    assert "report" in build_parser().format_help()
    assert main(["report", "--data", "/nonexistent.jsonl"]) == 2
    assert "No instruction file" in capsys.readouterr().err


def test_console_script_installed():
    out = subprocess.run(
        [sys.executable, "-m", "instr_interp.cli", "report", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "--quick" in out.stdout


def test_comparison_section(tmp_path):
    from instr_interp.report.sections_sparcom import comparison_section
    from instr_interp.sparcom.compare import compare
    from tests.unit.test_neurons import hand_sets

    after = hand_sets()
    after.category_sets["A"] = after.category_sets["B"]
    sec = comparison_section(compare(hand_sets(), after), "base", "tuned", "Trained briefly.")
    assert "Jaccard" in sec.reading and "0.25 to 1.00" in sec.reading and len(sec.figures) == 2


def test_cli_isns_and_compare_on_a_local_model(tmp_path, small_data):
    model_dir = tmp_path / "tiny"
    ii.models.tiny_hf_model(seed=0).save_pretrained(model_dir)
    ii.models.tiny_tokenizer().save_pretrained(model_dir)
    data = small_data.save(tmp_path / "d.jsonl")
    for name in ("a", "b"):
        assert (
            main(
                [
                    "isns",
                    "--model",
                    str(model_dir),
                    "--data",
                    str(data),
                    "--top",
                    "0.05",
                    "--out",
                    str(tmp_path / name),
                    "--device",
                    "cpu",
                ]
            )
            == 0
        )
    assert (tmp_path / "a" / "overlap.csv").exists()
    args = [
        "isns",
        "--model",
        str(model_dir),
        "--data",
        str(data),
        "--out",
        str(tmp_path / "t"),
        "--device",
        "cpu",
    ]
    assert main(args + ["--select", "threshold", "--threshold", "0.7", "--regions", "instruction"]) == 0
    sets = ii.load(tmp_path / "t")
    assert sets.settings["select"] == "threshold" and sets.settings["threshold"] == 0.7
    assert sets.settings["regions"] == ["instruction"]
    assert main(args + ["--select", "lape", "--top", "0.1", "--format", "plain"]) == 0
    sets = ii.load(tmp_path / "t")
    assert sets.settings["select"] == "lape" and sets.settings["format"] == "plain"
    assert main(args + ["--tie-break", "layer_z"]) == 0
    assert ii.load(tmp_path / "t").settings["tie_break"] == "layer_z"
    assert (
        main(
            [
                "compare",
                "--before",
                str(tmp_path / "a"),
                "--after",
                str(tmp_path / "b"),
                "--out",
                str(tmp_path / "c"),
            ]
        )
        == 0
    )
    summary = (tmp_path / "c" / "summary.csv").read_text()
    assert summary.count("1.0") >= 6  # identical runs: every category's Jaccard is 1
    assert (
        main(
            [
                "compare",
                "--before",
                str(tmp_path / "nope"),
                "--after",
                str(tmp_path / "b"),
                "--out",
                str(tmp_path / "d"),
            ]
        )
        == 2
    )


def test_cli_attribute_concepts_wordpairs_on_a_local_model(tmp_path, small_data):
    import pandas as pd

    model_dir = tmp_path / "tiny"
    ii.models.tiny_hf_model(seed=0).save_pretrained(model_dir)
    ii.models.tiny_tokenizer().save_pretrained(model_dir)
    data = small_data.save(tmp_path / "d.jsonl")
    common = ["--model", str(model_dir), "--device", "cpu"]
    assert (
        main(
            [
                "attribute",
                *common,
                "--data",
                str(data),
                "--per-category",
                "1",
                "--max-new-tokens",
                "4",
                "--out",
                str(tmp_path / "att"),
            ]
        )
        == 0
    )
    scores = pd.read_csv(tmp_path / "att" / "scores.csv")
    reloaded = ii.AttributionSet.load(tmp_path / "att")
    assert len(scores) == len(reloaded.to_frame()) and scores["instruction_score"].notna().all()
    assert (
        main(
            [
                "concepts",
                *common,
                "--components",
                "8",
                "--n-groups",
                "2",
                "--layers",
                "0",
                "--out",
                str(tmp_path / "con"),
            ]
        )
        == 0
    )
    assert ii.Concepts.load(tmp_path / "con" / "layer0").components.shape[0] == 8
    assert (
        main(
            [
                "wordpairs",
                *common,
                "--vocab-size",
                "300",
                "--top-dims",
                "4",
                "--judge",
                "own",
                "--out",
                str(tmp_path / "wp"),
            ]
        )
        == 0
    )
    assert (tmp_path / "wp" / "verb_pairs.csv").exists()


def test_cli_iv_refuses_unknown_tasks(capsys):
    assert main(["iv", "--tasks", "no_such_task", "--out", "/tmp/x", "--model", "smollm2-135m-instruct"]) == 2
    assert "no_such_task" in capsys.readouterr().err


def test_report_on_an_moe_model_shows_experts(tmp_path, small_data):
    """The report's first stage on a local MoE model: routing, ISE sections and the ISE ablation,
    with numbers that match an independent count of the routing hook."""
    import torch

    from instr_interp.report.stages import Plan, neurons_stage

    model_dir = tmp_path / "tiny-moe"
    ii.models.tiny_hf_model(seed=0, moe=True).save_pretrained(model_dir)
    ii.models.tiny_tokenizer().save_pretrained(model_dir)
    small_data = small_data.sample(per_category=2, seed=0)
    plan = Plan(model=str(model_dir), data=small_data, out=tmp_path / "report", quick=True, finetune=False)
    sections = neurons_stage(plan)
    titles = [s.title for s in sections]
    assert titles == [
        "Dataset",
        "Expert routing by layer",
        "Instruction-specific experts: overlap between categories",
        "Instruction-specific experts by layer",
        "General and unique experts",
        "Critical role of ISEs (ablation): live run, 1 held-out record(s) per category",
    ]
    assert not [t for t in titles if "neuron" in t.lower()]
    for sec in sections:
        assert re.search(r"\d", sec.reading) and "neuron" not in sec.reading

    # Independent count: route each record alone with run_with_cache and count the top-k indices
    # over its instruction and input tokens.
    model = plan.load(plan.model)
    facts = ii.model_facts(model)
    encoded = ii.encode(small_data, model.tokenizer)
    counts = torch.zeros(facts.n_layers, facts.n_experts)
    for i in range(len(encoded)):
        batch = encoded.batch([i], "right")
        mask = batch.mask()[0]
        names = [f"blocks.{layer}.mlp.hook_expert_indices" for layer in range(facts.n_layers)]
        _, cache = model.run_with_cache(batch.tokens, names_filter=names)
        for layer, name in enumerate(names):
            picked = cache[name].reshape(batch.tokens.shape[1], -1)[mask]
            counts[layer] += torch.bincount(picked.flatten(), minlength=facts.n_experts)
    table = sections[1].tables[0]
    stats_tokens = int(sum(table["tokens"]))
    assert stats_tokens == sum(int(encoded.batch([i], "right").mask().sum()) for i in range(len(encoded)))
    shares = counts / stats_tokens
    html = write_report(sections, tmp_path / "r" / "index.html").read_text()
    assert f"from {float(shares.min()):.3f} to {float(shares.max()):.3f}" in sections[1].reading
    assert html.count("Plotly.newPlot") == sum(len(s.figures) for s in sections)

    frame = sections[-1].tables[0]  # the diagonal: each category's ISEs zeroed on its own held-out records
    # the ablation zeroes routing weights: the own-category NLL must move
    assert len(frame) and (frame["own rise"].abs() > 0).all()
    assert "20 control sets" in sections[-1].reading


def test_stage_cache_counts_only_results_with_a_completion_marker(tmp_path):
    import pandas as pd

    from instr_interp.report.stages import _csv, _to_csv, cached, done_marker

    path = tmp_path / "cache" / "table.csv"
    calls = []

    def compute():
        calls.append(1)
        return pd.DataFrame({"x": range(3000)})

    path.parent.mkdir(parents=True)
    path.write_text("x\n0\n1\n")  # a truncated file from an interrupted run, no marker
    first = cached(path, compute, _to_csv, _csv, "table")
    assert len(calls) == 1 and len(first) == 3000 and done_marker(path).exists()
    again = cached(path, compute, _to_csv, _csv, "table")
    assert len(calls) == 1 and again.equals(first)

    def failing_save(value, p):
        p.write_text("x\n0\n")
        raise OSError(28, "No space left on device")

    other = tmp_path / "cache" / "other.csv"
    with pytest.raises(OSError):
        cached(other, compute, failing_save, _csv, "other")
    assert not done_marker(other).exists()  # the half-written file is not taken for a result next time
    assert len(cached(other, compute, _to_csv, _csv, "other")) == 3000
