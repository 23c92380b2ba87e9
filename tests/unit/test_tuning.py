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
    sections = tuning_sections(eff)
    assert len(sections) == 1 + len(eff.metrics)
    gaps = eff.gaps()
    assert f"{gaps.gap.iloc[0]:+.3f}" in sections[0].reading
    for section in sections[1:]:
        assert section.figures and section.tables and "layer" in section.reading
