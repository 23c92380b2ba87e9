"""where_tuning_acted: its patches equal patch() inside response_nll, and fractions of the gap are
formed only when the gap is clearly positive."""

import math

import numpy as np
import pytest
import torch

import instr_interp as ii
from instr_interp.engine.likelihood import response_nll
from instr_interp.interventions import patch
from instr_interp.sweeps import TuningEffects, where_tuning_acted


@pytest.fixture(scope="module")
def effects(small_data):
    base, tuned = ii.tiny_model(seed=0), ii.tiny_model(seed=1)
    return (
        base,
        tuned,
        small_data[:4],
        where_tuning_acted(
            base,
            tuned,
            small_data[:4],
            components=["attn_out", "mlp_out", "heads"],
            n_boot=200,
            progress=False,
        ),
    )


def test_patches_equal_patch_inside_response_nll(effects):
    base, tuned, data, eff = effects
    m = eff.metrics.index("nll")
    with patch(base, "mlp_out", tuned, layers=[1]):
        restored = response_nll(base, data, progress=False)["nll"].to_numpy()
    with patch(tuned, "attn_out", base, layers=[0]):
        removed = response_nll(tuned, data, progress=False)["nll"].to_numpy()
    assert eff.patched["restore/mlp_out"][m, 1].numpy() == pytest.approx(restored, rel=1e-4)
    assert eff.patched["remove/attn_out"][m, 0].numpy() == pytest.approx(removed, rel=1e-4)
    assert eff.base[m].numpy() == pytest.approx(
        response_nll(base, data, progress=False)["nll"].to_numpy(), rel=1e-4
    )
    assert eff.patched["restore/heads"].shape == (3, 2, 4, 4)
    frame = eff.to_frame()
    assert set(frame.direction) == {"restore", "remove"} and set(frame.component) == {
        "attn_out",
        "mlp_out",
        "heads",
    }
    # the raw restore effect on NLL is base minus patched (lower NLL is toward the tuned model)
    row = frame[
        (frame.direction == "restore")
        & (frame.component == "mlp_out")
        & (frame.layer == 1)
        & (frame.metric == "nll")
    ]
    assert float(row.effect.iloc[0]) == pytest.approx(float(eff.base[m].mean()) - restored.mean(), rel=1e-4)


def _hand(base, tuned, patched):
    return TuningEffects(
        base=torch.tensor([base], dtype=torch.float64),
        tuned=torch.tensor([tuned], dtype=torch.float64),
        patched={"restore/mlp_out": torch.tensor([[patched]], dtype=torch.float64)},
        metrics=["first_token"],
        axes={"mlp_out": {"layer": [0]}},
        ids=[f"r{i}" for i in range(len(base))],
        categories=["x"] * len(base),
        settings={"n_boot": 500, "seed": 0, "confidence": 0.95},
    )


def test_fraction_only_when_the_gap_is_clearly_positive():
    n = 20
    clear = _hand([0.0] * n, [1.0] * n, [1.0] * (n // 2) + [0.0] * (n // 2))
    gaps = clear.gaps()
    assert bool(gaps.gap_clear.iloc[0]) and gaps.gap.iloc[0] == 1.0
    row = clear.to_frame().iloc[0]
    assert row.effect == pytest.approx(0.5) and row.fraction == pytest.approx(0.5)
    assert row.fraction_low <= 0.5 <= row.fraction_high
    # tuned worse than base: no fraction, the raw difference is still there
    negative = _hand([1.0] * n, [0.0] * n, [0.5] * n)
    row = negative.to_frame().iloc[0]
    assert not bool(row.gap_clear) and math.isnan(row.fraction) and row.effect == pytest.approx(-0.5)
    # a positive mean gap that some resample loses (one record of twenty carries it): not clear
    fragile = _hand([0.0] * n, [0.0] * (n - 1) + [1.0], [0.0] * n)
    assert fragile.gaps().gap.iloc[0] > 0 and not bool(fragile.gaps().gap_clear.iloc[0])
    assert np.isnan(fragile.to_frame().fraction.iloc[0])


def test_round_trip_top_plot_and_bad_input(effects, tmp_path):
    base, tuned, data, eff = effects
    back = ii.load(eff.save(tmp_path / "tuning"))
    assert isinstance(back, TuningEffects) and back.axes == eff.axes
    assert torch.equal(back.patched["remove/heads"], eff.patched["remove/heads"])
    top = eff.top(2, metric="stop")
    assert len(top) == 2 and top.effect.is_monotonic_decreasing
    assert len(eff.plot("nll").data) == 4
    with pytest.raises(ValueError, match="components"):
        where_tuning_acted(base, tuned, data, components=["mlp"])
    with pytest.raises(ValueError, match="metrics"):
        where_tuning_acted(base, tuned, data, metrics=["logit_diff"])


def test_report_sections_render_the_result(effects):
    from instr_interp.report.sections_patching import tuning_sections

    _, _, _, eff = effects
    sections = tuning_sections(
        eff.gaps(), eff.to_frame(), records=len(eff.ids), base="b", tuned="t", origin="a test run"
    )
    assert len(sections) == 1 + len(eff.metrics)
    gaps = eff.gaps()
    assert f"{gaps.gap.iloc[0]:+.3f}" in sections[0].reading
    for section in sections[1:]:
        assert section.figures and section.tables and "layer" in section.reading


def test_combining_layer_blocks_equals_one_run(effects):
    base, tuned, data, eff = effects
    parts = [
        where_tuning_acted(base, tuned, data, components=[c], layers=[layer], n_boot=200, progress=False)
        for c in ("mlp_out", "heads")
        for layer in (0, 1)
    ]
    combined = TuningEffects.combine(parts)
    assert combined.axes["mlp_out"]["layer"] == [0, 1] and combined.axes["heads"]["layer"] == [0, 1]
    for key in ("restore/mlp_out", "remove/heads"):
        torch.testing.assert_close(combined.patched[key], eff.patched[key], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="overlap"):
        TuningEffects.combine([parts[0], parts[0]])
    other = where_tuning_acted(base, tuned, data[:3], components=["mlp_out"], n_boot=200, progress=False)
    with pytest.raises(ValueError, match="records"):
        TuningEffects.combine([parts[0], other])


def test_the_tuning_study_runs_tiny_resumes_and_matches_a_direct_run(tmp_path):
    import json

    from instr_interp import studies
    from instr_interp.data.dataset import hexainst
    from instr_interp.studies.following import splits

    path = studies.run_study("tuning", size="tiny", out=tmp_path, work=tmp_path / "work", progress=False)
    summary = json.loads(path.read_text())
    assert summary["records"] == 6 and summary["components"] == ["attn_out", "heads"]
    units = sorted(p.name for p in (tmp_path / "work").iterdir())
    assert len(units) == 3  # attn_out per layer (2), heads in one block of 2 layers
    data = hexainst().split(**splits()["dev"])[0].sample(per_category=1, seed=0)
    direct = where_tuning_acted(
        ii.tiny_model(seed=0),
        ii.tiny_model(seed=1),
        data,
        components=["attn_out", "heads"],
        n_boot=200,
        progress=False,
    )
    frame = direct.to_frame()
    got = __import__("pandas").DataFrame(summary["effects"])
    assert len(got) == len(frame)
    np.testing.assert_allclose(got.effect.to_numpy(), frame.effect.to_numpy(), rtol=1e-4, atol=1e-6)
    assert got.layer.tolist() == frame.layer.tolist()
    # a second run reads every unit back instead of recomputing
    mtimes = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "work").iterdir()}
    studies.run_study("tuning", size="tiny", out=tmp_path, work=tmp_path / "work", progress=False)
    assert mtimes == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "work").iterdir()}


def test_the_report_renders_the_committed_tuning_study(tmp_path, monkeypatch):
    """The full report shows the study's summary (no model is loaded); without one it says how to run it."""
    from instr_interp import studies
    from instr_interp.report.stages import Plan, patching_stage

    plan = Plan(model="smollm2-135m-instruct", data=ii.hexainst()[:6], out=tmp_path / "r", quick=False)
    monkeypatch.setattr(studies, "RESULTS", tmp_path / "none")
    (missing,) = patching_stage(plan)
    assert "instr-interp study tuning" in missing.reading
    path = studies.run_study("tuning", size="tiny", out=tmp_path / "res", work=tmp_path / "w", progress=False)
    path.rename(tmp_path / "res" / "study_tuning.json")
    monkeypatch.setattr(studies, "RESULTS", tmp_path / "res")
    sections = patching_stage(plan)
    summary = __import__("json").loads((tmp_path / "res" / "study_tuning.json").read_text())
    assert len(sections) == 1 + len(summary["gaps"])
    # with the committed ISN change of the pair beside it, a section relates the two across layers
    layers = [
        {"category": c, "layer": layer, "before": 5, "after": 5 + layer * (c == "code")}
        for c in ("code", "math")
        for layer in range(2)
    ]
    (tmp_path / "res" / "isn_change_gemma.json").write_text(__import__("json").dumps({"layers": layers}))
    *_, relation = patching_stage(plan)
    assert relation.title == "Where tuning acted vs where the ISNs changed"
    assert "2 pairs (at least 3 needed)" in relation.reading  # the tiny models have 2 layers
    assert len(relation.tables[0]) == 2  # restore and remove of attn_out
    assert "committed `instr-interp study tuning`" in sections[0].title
    assert f"{summary['gaps'][0]['gap']:+.3f}" in sections[0].reading


def test_layer_relation_is_spearman_with_a_permutation_p_value():
    import pandas as pd
    from scipy.stats import spearmanr

    from instr_interp.sweeps.tuning import layer_relation

    rng = np.random.default_rng(0)
    effect = rng.normal(size=8)
    frame = pd.DataFrame(
        {
            "direction": "restore",
            "component": "mlp_out",
            "metric": "nll",
            "layer": np.arange(8),
            "effect": effect,
        }
    )
    change = {
        layer: float(2 * effect[layer] + rng.normal(scale=0.5)) for layer in range(7)
    }  # layer 7 missing
    (row,) = layer_relation(frame, change, n_resamples=999).to_dict("records")
    assert row["layers"] == 7 and row["note"] == ""
    assert row["rho"] == pytest.approx(spearmanr(effect[:7], [change[k] for k in range(7)]).statistic)
    # 7! = 5040 > 999 pairings: a Monte Carlo p-value, between 1/1000 and 1
    assert 0 < row["p_value"] <= 1
    flat = layer_relation(frame, dict.fromkeys(range(8), 1.0)).iloc[0]
    assert math.isnan(flat.rho) and "does not vary" in flat.note


def test_layer_relation_p_value_is_exact_over_all_pairings_for_few_layers():
    import itertools

    import pandas as pd
    from scipy.stats import spearmanr

    from instr_interp.sweeps.tuning import layer_relation

    effect = np.array([0.3, -0.1, 0.5, 0.2, 0.0])
    change = {0: 4.0, 1: 1.0, 2: 3.0, 3: 5.0, 4: 0.0}
    frame = pd.DataFrame(
        {"direction": "remove", "component": "attn_out", "metric": "nll", "layer": range(5), "effect": effect}
    )
    row = layer_relation(frame, change).iloc[0]
    y = np.array([change[k] for k in range(5)])
    observed = spearmanr(effect, y).statistic
    null = np.array([spearmanr(effect, y[list(p)]).statistic for p in itertools.permutations(range(5))])
    eps = 1e-12
    expected = min(1.0, 2 * min((null >= observed - eps).mean(), (null <= observed + eps).mean()))
    assert row.rho == pytest.approx(observed) and row.p_value == pytest.approx(expected)
