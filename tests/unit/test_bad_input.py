"""Bad options are refused up front, before any forward, with messages that say what to do."""

import dataclasses

import pytest

import instr_interp as ii


def test_router_sites_do_not_exist_on_dense_models(tiny):
    with pytest.raises(
        ValueError, match="is a dense model: it has no router, so there is no 'router_logits' site"
    ):
        ii.hook_site(tiny, "router_logits", 0)
    moe = ii.tiny_model(moe="mixtral")
    assert ii.hook_site(moe, "router_logits", 0).name == "blocks.0.mlp.gate.hook_out"


def test_find_ises_on_a_dense_model_says_so(tiny, small_data):
    with pytest.raises(ValueError, match="find_ises needs an MoE model.*Use find_isns"):
        ii.find_ises(tiny, small_data, progress=False)


def test_a_bare_string_is_one_region(tiny, small_data):
    as_string = ii.find_isns(tiny, small_data[:6], regions="instruction", top=0.05, progress=False)
    as_tuple = ii.find_isns(tiny, small_data[:6], regions=("instruction",), top=0.05, progress=False)
    for cat in as_tuple.category_sets:
        assert as_string.category_sets[cat].equal(as_tuple.category_sets[cat])
    with pytest.raises(ValueError, match="Unknown regions"):
        ii.NeuronFiring(regions="instructions")


def test_top_must_be_a_fraction_not_a_bool(tiny, small_data):
    for top in (True, 0, 1.5, -0.1):
        with pytest.raises((TypeError, ValueError)):
            ii.find_isns(tiny, small_data[:6], top=top, progress=False)


def test_permutation_test_is_undefined_with_one_instruction_per_category(tiny, small_data):
    from instr_interp.report.sections_sparcom import isn_sections

    one = ii.find_isns(tiny, small_data.sample(per_category=1, seed=0), top=0.05, progress=False)
    test = one.permutation_test(n_permutations=50)
    assert test["statistic"] != test["statistic"] and test["p_value"] != test["p_value"]  # NaN, not a p-value
    assert test["note"].startswith("undefined: no category has two instructions")
    reading = isn_sections(one, test)[0].reading
    assert (
        "No overlap test: undefined" in reading
        and "p = " not in reading
        and " of 6 categories" not in reading
    )
    with pytest.raises(ValueError, match="n_permutations"):
        one.permutation_test(n_permutations=0)


def test_a_response_truncated_to_nothing_is_an_error_not_nll_zero(tiny, small_data):
    recs = small_data[:3]
    enc = ii.encode(recs, tiny.tokenizer, with_response=True)
    cut = min(e.prompt_length for e in enc)  # every response cut off
    with pytest.warns(UserWarning, match="truncated"):
        short = ii.encode(recs, tiny.tokenizer, with_response=True, max_length=cut)
    with pytest.raises(ValueError, match=r"3 record\(s\) have no response token left to score"):
        ii.response_nll(tiny, short, progress=False)


def test_welch_is_undefined_rather_than_confident_on_degenerate_samples():
    from scipy.stats import ttest_ind

    from instr_interp.stats import welch

    a, b = [0.2, 0.4, 0.9, 0.5], [0.1, 0.3, 0.2]
    ours = welch(a, b, alternative="greater")
    ref = ttest_ind(a, b, equal_var=False, alternative="greater")
    assert ours.statistic == pytest.approx(ref.statistic) and ours.p_value == pytest.approx(ref.pvalue)
    for x, y, why in [
        ([1.0], [0.0, 1.0], "fewer than 2"),
        ([1.0, 1.0], [2.0, 2.0], "neither sample varies"),
        ([1.0, float("nan")], [0.0, 1.0], "NaN or inf"),
    ]:
        r = welch(x, y)
        assert r.p_value != r.p_value and r.statistic != r.statistic and why in r.note


def test_compare_scores_says_when_its_test_is_undefined(tiny, small_data):
    from instr_interp.shift.attribution_results import AttributionSet

    one = ii.attribute(tiny, dataclasses.replace(small_data[0], response="Yes."))
    sa = AttributionSet(items=[one], name="a")
    table = ii.compare_scores(sa, sa, by=None)
    row = table.iloc[0]
    assert row["t"] != row["t"] and row["p_value"] != row["p_value"]
    assert row["note"].startswith("undefined: a sample has fewer than 2 values")


def test_inputs_longer_than_the_context_are_refused_or_truncated_as_asked(tiny):
    n_ctx = tiny.cfg.n_ctx
    long = ii.InstructionRecord(id="long", category="math", instruction="Add these: " + "1 " * n_ctx)
    with pytest.raises(
        ValueError, match=rf"1 record\(s\) are longer than the model's context of {n_ctx} tokens: long"
    ):
        ii.run(tiny, [long], [ii.NeuronFiring()], progress=False)
    with pytest.warns(UserWarning, match="truncated"):
        enc = ii.encode([long], tiny.tokenizer, max_length=n_ctx)
    (probe,) = ii.run(tiny, enc, [ii.NeuronFiring()], progress=False)  # truncated as chosen: runs
    assert int(probe.result().tokens.sum()) > 0
    task = ii.Task(name="t", instruction="Repeat.", pairs=[("x " * n_ctx, "y"), ("a", "b")])
    with pytest.raises(ValueError, match="prompt\\(s\\) are longer than the model's context"):
        ii.evaluate_task(tiny, task, progress=False)
    with pytest.raises(ValueError, match="longer than the model's context"):
        ii.generate_responses(
            tiny,
            [{"id": "g", "category": "math", "instruction": "1 " * (n_ctx - 10)}],
            max_new_tokens=64,
            progress=False,
        )


def test_an_empty_response_to_attribute_is_an_error(tiny, small_data):
    rec = small_data[0]
    for response in ("", "   "):
        with pytest.raises(ValueError, match="is empty: there is nothing to attribute"):
            ii.attribute(tiny, rec, response=response)
    with pytest.raises(ValueError, match="its response is only whitespace"):
        ii.attribute(tiny, dataclasses.replace(rec, response=" \n"))
    with pytest.raises(ValueError, match="is empty"):
        ii.attribute(tiny, "Add 2 and 3.", response="")
