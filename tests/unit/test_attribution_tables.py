"""Wu et al.'s Tables 1 and 2 from their released matrix format, the authors' defaults, and the
comparisons' tests, intervals and power, each against an independent computation."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

import instr_interp as ii
from instr_interp.shift import attribution as attribution_module
from instr_interp.shift.attribution import (
    Attribution,
    AttributionSet,
    attribute,
    attribute_many,
    empty_attribution,
    score_levels,
    sparsify,
)
from instr_interp.shift.score_tests import (
    FollowedComparison,
    ScoreComparison,
    compare_models,
    followed_vs_not,
)
from instr_interp.stats import detectable_difference, paired_t_power, welch_power

FIXTURE = Path(__file__).parents[1] / "fixtures" / "wu" / "authors_format.json"


# ---- the authors' analysis code, restated in numpy (utils.compute_density, analysis_*.evaluate)
def authors_density(x, eps=7, p=4):
    xmax, xmin = x.max(), x.min()
    if not (xmax == 10.0 and xmin == 0.0):
        x = np.maximum(np.zeros_like(x), x)
        x = x / (x.max(axis=0, keepdims=True) + 1e-9)
        x = np.ceil(x * 10.0)
    x = np.where(x <= eps, 0.0, x)
    l1 = x.sum(axis=-1)
    lp = (x**p).sum(axis=-1) ** (1.0 / p) + 1e-9
    x = l1 / lp
    return x / (1e-9 + x.max())


def authors_score(rec):
    if len(rec["Output"]) == 0:
        return 0.0
    mask = np.array(rec["instruction_mask"])
    dens = authors_density(np.array(rec["Explain"], dtype=np.float32))
    return float((dens * mask * mask).sum() / np.log2(2 + mask.sum()))


@pytest.fixture(scope="module")
def released():
    return json.loads(FIXTURE.read_text())


def _set(records, model):
    items = [
        Attribution.from_matrix(
            np.array(r["Explain"], dtype=np.float32).reshape(len(r["Input"]), len(r["Output"])),
            r["instruction_mask"],
            prompt_tokens=r["Input"],
            response_tokens=r["Output"],
            id=r["ID"],
            source=r["ID"].split("_")[0],
        )
        for r in records
        if r["model"] == model
    ]
    return AttributionSet(items=items, name=model)


def test_scores_of_the_released_format_equal_the_authors_code(released):
    assert any(
        np.array(r["Explain"]).min() == 0 and np.array(r["Explain"]).max() == 10
        for r in released
        if r["Output"]
    )
    for r in released:
        n, m = len(r["Input"]), len(r["Output"])
        levels = torch.tensor(np.array(r["Explain"], dtype=np.float32).reshape(n, m))
        ours = score_levels(levels, torch.tensor(r["instruction_mask"]) > 0)
        assert ours == pytest.approx(authors_score(r), abs=1e-6)  # theirs runs in float32
    assert sum(not r["Output"] for r in released) >= 1  # an empty response: kept, scored 0


def test_table_2_model_comparison_per_source(released):
    """Table 2: LLaMA vs Vicuna per prompt source, the authors' one-sided Welch test."""
    llama, vicuna = _set(released, "llama_7B"), _set(released, "vicuna_7B")
    for source in ("lima", "mtbench", "user"):
        a = llama.to_frame().query("source == @source")
        b = vicuna.to_frame().query("source == @source")
        ours = compare_models(a, b, n_resamples=500)
        sa = [authors_score(r) for r in released if r["model"] == "llama_7B" and r["ID"].startswith(source)]
        sb = [authors_score(r) for r in released if r["model"] == "vicuna_7B" and r["ID"].startswith(source)]
        ref = stats.ttest_ind(sa, sb, equal_var=False, alternative="less")  # their `measurement`
        s = ours.summary
        assert s["mean_a"] == pytest.approx(np.mean(sa), abs=1e-6)
        assert s["mean_b"] == pytest.approx(np.mean(sb), abs=1e-6)
        assert s["welch_p"] == pytest.approx(ref.pvalue, rel=1e-6)
        assert (s["welch_p"] < 0.05) == (ref.pvalue < 0.05)


def test_table_1_followed_vs_not(released):
    """Table 1 on Vicuna: rating > 0, >= 5 response tokens, ratings >= 2 merged as followed."""
    vicuna = _set(released, "vicuna_7B")
    ratings = {r["ID"]: r["rating"] for r in released if r["model"] == "vicuna_7B"}
    table = followed_vs_not(vicuna, ratings, by="source", n_resamples=500)
    assert isinstance(table, FollowedComparison)
    rows = table.to_frame().set_index("group")
    for group in ("lima", "mtbench", "user", "overall"):
        kept = [
            (authors_score(r), min(r["rating"], 2))
            for r in released
            if r["model"] == "vicuna_7B"
            and r["rating"] > 0
            and len(r["Output"]) >= 5
            and (group == "overall" or r["ID"].split("_")[0] == group)
        ]
        no = [s for s, g in kept if g == 1]
        yes = [s for s, g in kept if g == 2]
        row = rows.loc[group]
        assert (row["n_not"], row["n_followed"]) == (len(no), len(yes))
        if len(no) < 2 or len(yes) < 2:  # the test is undefined: NaN with a note, never a p-value
            assert np.isnan(row["p_value"]) and row["note"]
            continue
        ref = stats.ttest_ind(no, yes, equal_var=False, alternative="less")
        assert row["mean_not"] == pytest.approx(np.mean(no), abs=1e-6)
        assert row["mean_followed"] == pytest.approx(np.mean(yes), abs=1e-6)
        assert row["p_value"] == pytest.approx(ref.pvalue, rel=1e-6)
        assert row["ci_low"] <= row["difference"] <= row["ci_high"]
    # the same from a judge callable, and from a column of the frame
    judged = followed_vs_not(vicuna, judge=lambda a: ratings[a.id], n_resamples=500)
    assert judged.to_frame().iloc[-1]["p_value"] == pytest.approx(rows.loc["overall", "p_value"])
    frame = vicuna.to_frame().assign(stars=[ratings[i] for i in vicuna.to_frame()["id"]])
    by_column = followed_vs_not(frame, "stars", n_resamples=500)
    assert by_column.to_frame().iloc[-1]["mean_followed"] == pytest.approx(
        rows.loc["overall", "mean_followed"]
    )
    with pytest.raises(ValueError, match="exactly one"):
        followed_vs_not(vicuna)
    with pytest.raises(ValueError, match="not a column"):
        followed_vs_not(frame, "nope")


def test_compare_models_paired_tests_interval_and_power():
    rng = np.random.default_rng(1)
    sa = rng.normal(1.2, 0.4, 30)
    sb = sa + rng.normal(0.15, 0.3, 30)
    ids = [f"r{i}" for i in range(30)]
    import pandas as pd

    a = pd.DataFrame({"id": ids, "instruction_score": sa})
    b = pd.DataFrame({"id": ids[::-1], "instruction_score": sb[::-1]})  # order does not matter: paired by id
    out = compare_models(a, b, n_resamples=2000)
    s = out.summary
    assert s["paired_p"] == pytest.approx(stats.ttest_rel(sb, sa, alternative="greater").pvalue)
    assert s["wilcoxon_p"] == pytest.approx(stats.wilcoxon(sb - sa, alternative="greater").pvalue)
    assert s["welch_p"] == pytest.approx(
        stats.ttest_ind(sb, sa, equal_var=False, alternative="greater").pvalue
    )
    d = sb - sa
    assert s["ci_low"] < d.mean() < s["ci_high"]
    half = 1.96 * d.std(ddof=1) / np.sqrt(30)  # the bootstrap interval is near the normal one
    assert s["ci_high"] - s["ci_low"] == pytest.approx(2 * half, rel=0.2)
    assert s["power_paired"] == pytest.approx(paired_t_power(s["effect"], d.std(ddof=1), 30))
    assert s["power_paired"] > s["power_welch"]  # pairing removes the between-prompt variance
    with pytest.raises(ValueError, match="same unique ids"):
        compare_models(a, b.iloc[1:])


def test_power_matches_simulation():
    """The noncentral-t power against the rejection rate of simulated designs."""
    rng = np.random.default_rng(0)
    n, sd, effect, sims = 12, 0.5, 0.3, 4000
    d = rng.normal(effect, sd, (sims, n))
    rate = (stats.ttest_1samp(d, 0.0, axis=1, alternative="greater").pvalue < 0.05).mean()
    assert paired_t_power(effect, sd, n) == pytest.approx(rate, abs=0.025)
    x, y = rng.normal(effect, 0.4, (sims, 10)), rng.normal(0.0, 0.6, (sims, 14))
    rate = (stats.ttest_ind(x, y, axis=1, equal_var=False, alternative="greater").pvalue < 0.05).mean()
    assert welch_power(effect, 0.6, 0.4, 14, 10) == pytest.approx(rate, abs=0.025)
    mde = detectable_difference(lambda e: paired_t_power(e, sd, n))
    assert paired_t_power(mde, sd, n) == pytest.approx(0.8, abs=1e-4)
    assert np.isnan(paired_t_power(0.3, 0.0, n)) and np.isnan(welch_power(0.3, 1.0, 1.0, 1, 5))


def test_sparsify_floor_and_idempotence():
    raw = torch.tensor([[1.0, 2e-9, -1.0], [0.5, 1e-9, 0.0]])
    levels = sparsify(raw)
    # column 1's max (2e-9) is tiny against eps = 1e-7: 2e-9 / (2e-9 + 1e-7) -> level 1 -> dropped
    assert levels[:, 1].tolist() == [0, 0] and levels[:, 0].tolist() == [10, 0]
    assert sparsify(raw, eps=0.0)[:, 1].tolist() == [10, 0]  # no floor: blown up to the full level
    assert torch.equal(sparsify(levels), levels)  # idempotent on its own output
    unthresholded = torch.tensor([[10.0, 3.0], [8.0, 10.0], [0.0, 9.0]])  # the released format
    assert sparsify(unthresholded).tolist() == [[10, 0], [8, 10], [0, 9]]
    with pytest.raises(ValueError, match="eps"):
        sparsify(raw, eps=-1.0)


def test_template_tokens_can_be_excluded(tiny_model_fixture, data):
    attr = attribute(tiny_model_fixture, data[0], "Positive.", format="chat")
    keep = (attr.prompt_regions != ii.Region.TEMPLATE).numpy()
    assert not keep.all()  # the chat template's role markers are prompt tokens
    m = attr.matrix.double().numpy()[keep]
    x = np.maximum(m, 0)
    x = np.ceil(10 * x / (x.max(0, keepdims=True) + 1e-7))
    x = np.where(x <= 7, 0, x)
    rho = x.sum(1) / ((x**4).sum(1) ** 0.25 + 1e-9)
    rho = rho / rho.max()
    mask = attr.instruction_mask.numpy()[keep]
    assert attr.score(exclude_template=True) == pytest.approx(
        rho[mask].sum() / np.log2(2 + mask.sum()), abs=1e-9
    )
    assert attr.score() == pytest.approx(attr.instruction_score)
    plain = attribute(tiny_model_fixture, data[0], "Positive.")  # the default: the raw (plain) prompt
    assert plain.settings["format"] == "plain"
    text = tiny_model_fixture.tokenizer.decode(plain.input_ids[plain.prompt_positions])
    assert "<|im_start|>" not in text and text.startswith(data[0].instruction)


def test_empty_responses_are_kept_as_zero(tiny_model_fixture, data, monkeypatch, tmp_path):
    subset = data.sample(1)[:3]
    real = attribution_module.generate_responses

    def with_one_empty(model, records, **kw):
        out = real(model, records, **kw)
        return ii.load_instructions(
            [{**r.to_dict(), "response": "" if i == 1 else (r.response or "A")} for i, r in enumerate(out)]
        )

    monkeypatch.setattr(attribution_module, "generate_responses", with_one_empty)
    s = attribute_many(tiny_model_fixture, subset, max_new_tokens=3, progress=False)
    assert len(s) == 3 and s.empty == [subset[1].id] and not s.skipped
    assert s.to_frame().set_index("id").loc[subset[1].id, "instruction_score"] == 0.0
    with pytest.warns(UserWarning, match="empty greedy response"):
        skipping = attribute_many(tiny_model_fixture, subset, max_new_tokens=3, empty="skip", progress=False)
    assert skipping.skipped == [subset[1].id] and len(skipping) == 2
    e = empty_attribution(tiny_model_fixture, subset[1])
    assert e.matrix.shape == (len(e.prompt_positions), 0) and e.score() == 0.0
    s.save(tmp_path / "s")
    assert AttributionSet.load(tmp_path / "s").to_frame().equals(s.to_frame())


def test_comparison_results_save_and_load(released, tmp_path):
    llama, vicuna = _set(released, "llama_7B"), _set(released, "vicuna_7B")
    out = compare_models(llama, vicuna, n_resamples=200)
    out.save(tmp_path / "c")
    back = ii.load(tmp_path / "c")
    assert isinstance(back, ScoreComparison) and back.summary == out.summary and back.ids == out.ids
    assert "paired" in repr(out)
    table = followed_vs_not(vicuna, {r["ID"]: r["rating"] for r in released}, n_resamples=200)
    table.save(tmp_path / "t")
    assert ii.load(tmp_path / "t").to_frame().equals(table.to_frame())


@pytest.fixture(scope="module")
def tiny_model_fixture():
    return ii.tiny_model(seed=3)


def test_the_section_reads_a_small_null_result_with_its_power(released):
    from instr_interp.report.sections_shift import attribution_sections

    llama, vicuna = _set(released, "llama_7B"), _set(released, "vicuna_7B")
    few = [AttributionSet(items=s.items[:4], name=s.name) for s in (llama, vicuna)]
    import pandas as pd

    ids = ["p1", "p2", "p3", "p4"]
    a = pd.DataFrame({"id": ids, "instruction_score": [1.0, 1.2, 0.9, 1.1]})
    b = pd.DataFrame({"id": ids, "instruction_score": [1.3, 0.8, 1.15, 1.05]})
    test = compare_models(a, b, n_resamples=200)
    s = test.summary
    assert s["paired_p"] >= 0.05 and s["power_paired"] < 0.8  # 4 prompts: a null result, low power
    reading = attribution_sections(few[0][0], {"base": few[0], "tuned": few[1]}, {"tuned": test})[1].reading
    assert f"power {s['power_paired']:.0%}" in reading and "too small to tell either way" in reading
    assert "not a finding" in reading and "holds here" not in reading
