"""critical_role: disjoint identification and evaluation, matched controls, the matrix against plain
torch, the empirical p-value, no ratio over a rise, batch-size invariance, save/load."""

import dataclasses
import json
import warnings
from functools import partial

import numpy as np
import pytest
import torch

import instr_interp as ii
from instr_interp.sparcom.ablation import (
    critical_role,
    matched_controls,
    random_like,
    subset_stats,
    unit_features,
)
from instr_interp.sparcom.critical import CriticalRole
from instr_interp.sparcom.selection import sets_from_firing

RULE = partial(sets_from_firing, top=0.05)


@pytest.fixture(scope="module")
def two(small_data):
    """Two categories, 4 records each: small enough for 20 control draws per set."""
    return small_data.filter(category=["code", "math"])


@pytest.fixture(scope="module")
def split(two):
    return two.split(n_eval=1, seed=0)


@pytest.fixture(scope="module")
def stats(tiny, split):
    (probe,) = ii.run(tiny, split[0], [ii.NeuronFiring(activation_sums=True)], progress=False)
    return probe.result()


@pytest.fixture(scope="module")
def role(tiny, split, stats):
    identify, evaluate = split
    return critical_role(
        tiny, identify, RULE, stats=stats, eval_data=evaluate, kinds=("category", "general"), progress=False
    )


def test_overlapping_eval_data_is_refused(tiny, split, stats):
    identify, evaluate = split
    with pytest.raises(ValueError, match="disjoint.*shared ids"):
        critical_role(tiny, identify, RULE, stats=stats, eval_data=identify[:1], progress=False)
    # another id, the same instruction and input
    copy = ii.load_instructions([{**identify[0].to_dict(), "id": "copy"}])
    with pytest.raises(ValueError, match="same instruction and input"):
        critical_role(tiny, identify, RULE, stats=stats, eval_data=copy, progress=False)
    sets = RULE(stats)
    with pytest.raises(ValueError, match="eval_data="):  # sets that saw every record cannot be split
        critical_role(tiny, identify, sets, progress=False)
    with pytest.raises(ValueError, match="not the"):  # sets identified on other records than data
        critical_role(tiny, evaluate, sets, eval_data=identify, progress=False)


def test_evaluation_records_are_disjoint(role, split):
    identify, evaluate = split
    assert role.record_ids == list(evaluate.ids) and role.identified_on == list(identify.ids)
    assert not set(role.record_ids) & set(role.identified_on)
    texts = {(r.instruction, r.input) for r in identify}
    assert not [r for r in evaluate if (r.instruction, r.input) in texts]


def test_split_mode_identifies_on_the_other_side(tiny, two):
    (probe,) = ii.run(tiny, two, [ii.NeuronFiring(activation_sums=True)], progress=False)
    full = probe.result()
    role = critical_role(
        tiny, two, RULE, stats=full, split=1, n_control=20, kinds=("general",), progress=False
    )
    assert not set(role.record_ids) & set(role.identified_on)
    assert set(role.record_ids) | set(role.identified_on) == set(two.ids)
    # the ablated set is the one chosen from the identification records' statistics only
    expected = RULE(subset_stats(full, role.identified_on)).general()
    assert torch.equal(role.units[0], expected)


def test_controls_match_per_layer_and_are_closer_than_random(split, stats):
    sets = RULE(stats)
    units = sets.category_sets["code"]
    features = unit_features(stats)
    controls = matched_controls(units, features, 20, seed=0)
    assert len(controls) == 20 and len({tuple(map(tuple, c.tolist())) for c in controls}) == 20
    counts = torch.bincount(units[:, 0], minlength=sets.n_layers)
    own = set(map(tuple, units.tolist()))
    for c in controls:
        assert torch.equal(torch.bincount(c[:, 0], minlength=sets.n_layers), counts)
        assert not own & set(map(tuple, c.tolist()))

    def gap(chosen):  # per layer, distance between the mean standardised features of set and control
        out = 0.0
        for layer in units[:, 0].unique().tolist():
            f = features[layer].double()
            z = (f - f.mean(0)) / f.std(0, unbiased=False)
            a = z[units[units[:, 0] == layer, 1]].mean(0)
            b = z[chosen[chosen[:, 0] == layer, 1]].mean(0)
            out += float((a - b).norm())
        return out

    matched = np.mean([gap(c) for c in controls])
    rnd = np.mean([gap(random_like(units, sets.d_mlp, seed)) for seed in range(20)])
    assert matched < 0.5 * rnd


def test_unit_features_by_hand(stats):
    f = unit_features(stats)
    assert torch.allclose(f[..., 0], stats.counts.double().sum(0) / stats.tokens.sum())
    assert torch.allclose(f[..., 1], stats.activation_sums.sum(0) / stats.tokens.sum())
    with pytest.raises(ValueError, match="activation_sums=True"):
        unit_features(dataclasses.replace(stats, activation_sums=None))


def _plain_nll(hf, encoded, ablate: dict[int, torch.Tensor]) -> list[float]:
    """Mean response NLL per record, one record at a time, in plain transformers; the given neurons
    of each layer zeroed at the output of the MLP's activation function (a torch forward hook)."""
    handles = []
    for layer, idx in ablate.items():

        def zero(module, args, output, idx=idx):
            output = output.clone()
            output[..., idx] = 0
            return output

        handles.append(hf.model.layers[layer].mlp.act_fn.register_forward_hook(zero))
    out = []
    try:
        for rec in encoded:
            ids = torch.tensor([rec.tokens])
            with torch.no_grad():
                logp = torch.log_softmax(hf(input_ids=ids).logits[0, :-1].double(), -1)
            target = ids[0, 1:]
            scored = torch.tensor(rec.regions[1:]) == ii.Region.RESPONSE
            out.append(-logp[torch.arange(len(target)), target][scored].mean().item())
    finally:
        for h in handles:
            h.remove()
    return out


def test_matrix_entry_equals_plain_torch(role, tiny, split):
    _, evaluate = split
    hf = ii.models.tiny_hf_model(seed=0)
    encoded = ii.encode(evaluate, tiny.tokenizer, with_response=True)
    cats = np.array([r.category for r in evaluate])
    base = np.array(_plain_nll(hf, encoded, {}))
    matrix = role.matrix().set_index(["set", "category"])
    null = role.null().set_index(["set", "draw", "measure"])["value"]
    for name, units in (("code", role.units[role.names.index("code")]), ("general", role.units[-1])):
        by_layer = {int(layer): units[units[:, 0] == layer, 1] for layer in units[:, 0].unique()}
        rise = np.array(_plain_nll(hf, encoded, by_layer)) - base
        for cat in ("code", "math"):
            assert matrix.loc[(name, cat), "rise"] == pytest.approx(
                rise[cats == cat].mean(), rel=1e-3, abs=1e-6
            )
            assert matrix.loc[(name, cat), "baseline"] == pytest.approx(base[cats == cat].mean(), rel=1e-4)
    # one control draw, the same way
    draw = role.controls[role.names.index("code")][3]
    by_layer = {int(layer): draw[draw[:, 0] == layer, 1] for layer in draw[:, 0].unique()}
    rise = np.array(_plain_nll(hf, encoded, by_layer)) - base
    assert null.loc[("code", 3, "math")] == pytest.approx(rise[cats == "math"].mean(), rel=1e-3, abs=1e-6)


def test_n_control_draws_and_the_p_value_formula(role, stats):
    sets = RULE(stats)
    assert role.n_control == 20 and role.control.shape[:2] == (len(role.names), 20)
    for s, units in enumerate(role.units):
        assert role.controls[s].shape == (20, *units.shape)
        counts = torch.bincount(units[:, 0], minlength=sets.n_layers)
        for c in role.controls[s]:
            assert torch.equal(torch.bincount(c[:, 0], minlength=sets.n_layers), counts)
    null = role.null()
    assert (null.groupby(["set", "measure"]).size() == 20).all()
    for row in role.p_values().to_dict("records"):
        values = null[(null["set"] == row["set"]) & (null["measure"] == row["measure"])]["value"].to_numpy()
        assert row["p_value"] == pytest.approx((1 + (values >= row["observed"]).sum()) / 21)
        assert row["control_mean"] == pytest.approx(values.mean())
    assert role.summary()["min_p"] == pytest.approx(1 / 21)


def _hand_made(ablated: list[list[float]], control, kinds=("category", "category")) -> CriticalRole:
    units = torch.tensor([[0, 1], [1, 2]])
    return CriticalRole(
        names=["a", "b"],
        kinds=list(kinds),
        sources=["a", "b"],
        units=[units, units],
        controls=[units.expand(3, 2, 2).clone()] * 2,
        record_ids=["r1", "r2", "r3", "r4"],
        record_categories=["a", "a", "b", "b"],
        categories=["a", "b"],
        baseline=torch.tensor([1.0, 2.0, 3.0, 5.0], dtype=torch.float64),
        ablated=torch.tensor(ablated, dtype=torch.float64),
        control=torch.tensor(control, dtype=torch.float64),
        identified_on=["i1"],
        settings={"seed": 0, "n_boot": 200},
    )


def test_zero_and_negative_rises_are_never_a_denominator():
    # set a: no rise at all; set b: negative rises (NLL falls when it is zeroed)
    ablated = [[1.0, 2.0, 3.0, 5.0], [0.5, 1.0, 2.0, 4.0]]
    control = [[[1.0, 2.0, 3.0, 5.0]] * 3, [[1.5, 2.0, 3.0, 5.5]] * 3]
    role = _hand_made(ablated, control)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        m, p = role.matrix().set_index(["set", "category"]), role.p_values().set_index(["set", "measure"])
        role.diagonal(), role.summary(), repr(role), role.null()
    assert m.loc[("a", "a"), "rise"] == 0 and m.loc[("a", "b"), "relative"] == 0
    assert m.loc[("b", "a"), "rise"] == pytest.approx(-0.75) and m.loc[("b", "b"), "rise"] == pytest.approx(
        -1.0
    )
    # relative rises divide by the baseline (1.5 and 4.0), never by a rise
    assert m.loc[("b", "a"), "relative"] == pytest.approx(-0.75 / 1.5)
    assert p.loc[("b", "mean relative rise"), "observed"] == pytest.approx((-0.75 / 1.5 - 1.0 / 4.0) / 2)
    assert p.loc[("b", "specificity"), "observed"] == pytest.approx(-1.0 / 4.0 - (-0.75 / 1.5))
    assert p.loc[("a", "a"), "p_value"] == pytest.approx(1.0)  # every control rise (0) >= observed (0)
    assert p.loc[("b", "b"), "p_value"] == pytest.approx(1.0)  # controls rise 0.25 on b; observed -1
    assert np.isfinite(p[["observed", "ci_low", "ci_high", "p_value"]].to_numpy()).all()
    # a rise with a bootstrap interval: the interval lies within the per-record rises
    assert -1.0 <= m.loc[("b", "b"), "ci_low"] <= m.loc[("b", "b"), "ci_high"] <= -1.0


def test_the_summary_states_the_parts_by_kind():
    # set b is "unique": rises -0.75 (category a) and -1.0 (b), below its controls (+0.25 on a and b)
    ablated = [[2.0, 3.0, 3.0, 5.0], [0.5, 1.0, 2.0, 4.0]]
    control = [[[1.0, 2.0, 3.0, 5.0]] * 3, [[1.5, 2.0, 3.0, 5.5]] * 3]
    parts = _hand_made(ablated, control, kinds=("category", "unique")).summary()["parts"]
    assert set(parts) == {"unique"}
    unique = parts["unique"]
    assert (unique["n_sets"], unique["above_controls"]) == (1, [])
    assert (unique["rise_min"], unique["rise_max"]) == (pytest.approx(-1.0), pytest.approx(-0.75))
    assert unique["ci_low_min"] <= -1.0 and unique["ci_high_max"] >= -0.75
    # b's rises above all 3 controls: p = 1/4, listed at alpha 0.5, not at 0.05
    ablated[1] = [3.0, 4.0, 5.0, 7.0]
    role = _hand_made(ablated, control, kinds=("category", "unique"))
    assert role.summary(alpha=0.5)["parts"]["unique"]["above_controls"] == ["b"]
    assert role.summary()["parts"]["unique"]["above_controls"] == []


def test_batch_size_invariance(tiny, split, stats):
    identify, evaluate = split
    kw = dict(stats=stats, eval_data=evaluate, kinds=("general",), n_control=20, progress=False)
    a = critical_role(tiny, identify, RULE, batch_size=1, **kw)
    b = critical_role(tiny, identify, RULE, batch_size=5, **kw)
    assert torch.allclose(a.baseline, b.baseline, rtol=1e-5)
    assert torch.allclose(a.ablated, b.ablated, rtol=1e-5) and torch.allclose(a.control, b.control, rtol=1e-5)
    assert all(torch.equal(x, y) for x, y in zip(a.controls, b.controls))


def test_round_trip_repr_and_plot(role, tmp_path):
    back = ii.load(role.save(tmp_path / "cr"))
    assert isinstance(back, CriticalRole)
    assert back.names == role.names and torch.equal(back.control, role.control)
    assert all(torch.equal(x, y) for x, y in zip(back.controls, role.controls))
    assert back.matrix().equals(role.matrix()) and back.p_values().equals(role.p_values())
    text = repr(role)
    assert text.startswith("CriticalRole") and "tensor(" not in text and len(text.splitlines()) <= 10
    assert "disjoint" in text
    fig = role.plot()
    assert fig.data[0].z.shape == (len(role.names), len(role.categories))


def test_bad_arguments(tiny, two):
    with pytest.raises(ValueError, match="kinds"):
        critical_role(tiny, two, RULE, kinds=("everything",), progress=False)
    with pytest.raises(ValueError, match="split"):
        critical_role(tiny, two, RULE, split=1.5, progress=False)
    with pytest.raises(ValueError, match="split"):
        critical_role(tiny, two, RULE, split=0, progress=False)
    with pytest.raises(ValueError, match="n_control"):
        critical_role(tiny, two, RULE, n_control=5, progress=False)
    with pytest.raises(ValueError, match="n_control"):
        matched_controls(torch.tensor([[0, 1]]), torch.zeros(1, 4, 2), 0)


def test_one_record_gives_no_interval():
    role = _hand_made([[1.0, 2.5, 3.0, 5.5]] * 2, [[[1.0, 2.0, 3.0, 5.0]] * 3] * 2)
    role = dataclasses.replace(role, record_categories=["a", "b", "b", "b"])
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        m = role.matrix().set_index(["set", "category"])
        p = role.p_values().set_index(["set", "measure"])
    assert np.isnan(m.loc[("a", "a"), "ci_low"]) and np.isfinite(m.loc[("a", "b"), "ci_low"])
    assert np.isnan(p.loc[("a", "mean relative rise"), "ci_low"])  # averages a category without one
    assert np.isfinite(p.loc[("a", "mean relative rise"), "observed"])


def test_parts_by_kind_combine_into_the_single_run(role, tiny, split, stats, tmp_path):
    """Controls are seeded by the set's name, so running the kinds separately and combining them
    (as ``instr-interp study critical`` does) gives exactly the one-call result; JSON round trip is exact."""
    identify, evaluate = split
    parts = [
        critical_role(tiny, identify, RULE, stats=stats, eval_data=evaluate, kinds=(kind,), progress=False)
        for kind in ("category", "general")
    ]
    parts = [CriticalRole.from_json(p.to_json(), tmp_path) for p in parts]
    combined = CriticalRole.combine(parts)
    assert combined.names == role.names
    assert torch.equal(combined.control, role.control) and torch.equal(combined.ablated, role.ablated)
    assert combined.baseline.dtype == role.baseline.dtype
    assert combined.p_values().equals(role.p_values()) and combined.matrix().equals(role.matrix())
    assert json.dumps(combined.view()["summary"]) == json.dumps(role.view()["summary"])  # NaN-aware
    by_name = CriticalRole.combine(
        [
            critical_role(tiny, identify, RULE, stats=stats, eval_data=evaluate, names=[name], progress=False)
            for name in role.names
        ]
    )
    assert torch.equal(by_name.control, role.control) and by_name.p_values().equals(role.p_values())
    with pytest.raises(ValueError, match="No set named"):
        critical_role(tiny, identify, RULE, stats=stats, eval_data=evaluate, names=["nope"], progress=False)
    with pytest.raises(ValueError, match="twice"):
        CriticalRole.combine([parts[0], parts[0]])
    with pytest.raises(ValueError, match="Expected a CriticalRole"):
        CriticalRole.from_json({**parts[0].to_json(), "kind": "TuningEffects"}, tmp_path)


def test_the_critical_study_runs_tiny_and_resumes(tmp_path):
    from instr_interp import studies
    from instr_interp.report.sections_sparcom import critical_role_section

    path = studies.run_study("critical", size="tiny", out=tmp_path, work=tmp_path / "w", progress=False)
    summary = json.loads(path.read_text())
    view = summary["view"]
    assert view["n_records"] == 2 and view["n_control"] == 20 and view["categories"] == ["code", "math"]
    assert {r["kind"] for r in view["matrix"]} <= {"category", "unique", "non-general", "general"}
    assert len({p.name for p in (tmp_path / "w").iterdir()}) == 1 + len(
        view["names"]
    )  # the names, one unit per set
    section = critical_role_section(view, origin="tiny study")
    assert "tiny study" in section.title and section.figures
    # resuming reads the units back: same summary without recomputing
    mtimes = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "w").iterdir()}
    studies.run_study("critical", size="tiny", out=tmp_path, work=tmp_path / "w", progress=False)
    assert mtimes == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "w").iterdir()}
    assert path.read_text().split('"view"')[1].rstrip() == json.dumps(summary, indent=1).split('"view"')[1]


def test_the_report_adds_the_committed_critical_study_for_its_model(tmp_path, monkeypatch):
    from instr_interp import studies
    from instr_interp.report.stages import Plan, _critical_study

    path = studies.run_study("critical", size="tiny", out=tmp_path, work=tmp_path / "w", progress=False)
    path.rename(tmp_path / "study_critical.json")
    monkeypatch.setattr(studies, "RESULTS", tmp_path)
    plan = Plan(model="smollm2-135m-instruct", data=ii.hexainst()[:6], out=tmp_path / "r", quick=True)
    (section,) = _critical_study(plan, "ISNs")
    assert "committed `instr-interp study critical`" in section.title
    assert _critical_study(plan, "ISEs") == []
    other = Plan(model="gemma-3-270m", data=ii.hexainst()[:6], out=tmp_path / "r", quick=True)
    assert _critical_study(other, "ISNs") == []
