"""Base vs tuned instruction following: NLL, judged answers and stopping, with intervals."""

import numpy as np
import pandas as pd
import pytest

import instr_interp as ii
from instr_interp.data.dataset import InstructionRecord
from instr_interp.engine.likelihood import response_nll
from instr_interp.shift.following import FollowingComparison, compare_following, judge_response
from instr_interp.stats import bootstrap_mean


def test_judge_checks_numbers_labels_and_code_by_running_it():
    math = InstructionRecord(id="m", category="math", instruction="?", meta={"check": {"answer": 1234.5}})
    assert judge_response(math, "3 x 411.5 = 1,234.5. Answer: 1,234.5") == 1.0
    assert judge_response(math, "Answer: 12, or 1234.5") == 0.0  # the number after "Answer:" counts
    assert judge_response(math, "first 7, finally 1234.5") == 1.0  # else the last number
    assert judge_response(math, "no idea") == 0.0
    label = InstructionRecord(id="c", category="classification", instruction="?", response="Not spam")
    assert (judge_response(label, "not spam."), judge_response(label, "Spam")) == (1.0, 0.0)
    tests = "assert double(3) == 6\nassert double(0) == 0"
    code = InstructionRecord(id="k", category="code", instruction="?", meta={"check": {"tests": tests}})
    assert judge_response(code, "```python\ndef double(x):\n    return 2 * x\n```") == 1.0
    assert judge_response(code, "def double(x):\n    return x + 2") == 0.0
    assert judge_response(code, "def double(x):\n    while True: pass", timeout=1.0) == 0.0
    plain = InstructionRecord(id="g", category="generation", instruction="?", response="Hi")
    assert np.isnan(judge_response(plain, "anything"))
    # a prose-and-code answer's tests check the reference's claims: not a judge of other answers
    explained = next(
        r for r in ii.tuneset().filter(category="code") if r.meta["check"]["kind"] == "explained"
    )
    assert np.isnan(judge_response(explained, explained.response))


def test_the_tuning_sets_references_pass_their_own_judge():
    records = ii.tuneset().filter(category=["math", "code"]).sample(per_category=20, seed=0)
    judged = [(r, judge_response(r, r.response)) for r in records]
    verifiable = [(r, v) for r, v in judged if not np.isnan(v)]
    assert len(verifiable) >= 35
    assert all(v == 1.0 for _, v in verifiable), [r.id for r, v in verifiable if v != 1.0][:5]


def test_compare_following_matches_separate_passes_and_its_intervals():
    base, tuned = ii.tiny_model(seed=0), ii.tiny_model(seed=1)
    data = ii.hexainst().sample(per_category=2, seed=0)
    result = compare_following(base, tuned, data, max_new_tokens=3, progress=False)
    for key, model in (("base", base), ("tuned", tuned)):
        expected = response_nll(model, data, progress=False).set_index("id").nll
        got = result.nll.set_index("id")[f"nll_{key}"]
        assert np.allclose(got.loc[expected.index], expected, atol=1e-6)
    table = result.nll_by_category()
    cats = table[table.category != "all"]
    for _, row in cats.iterrows():
        part = result.nll[result.nll.category == row.category]
        interval = bootstrap_mean(part.nll_tuned - part.nll_base, n_boot=2000, seed=0)
        assert row.difference == pytest.approx(interval.estimate)
        assert (row.ci_low, row.ci_high) == pytest.approx((interval.low, interval.high))
    overall = table[table.category == "all"].iloc[0]
    assert overall.difference == pytest.approx(cats.difference.mean())
    assert overall.ci_low <= overall.difference <= overall.ci_high
    # tiny models never emit EOS in 3 tokens here unless they do: the share is what the rows say
    stops = result.rates("stopped")
    assert stops.iloc[-1].base == pytest.approx(result.generations.stopped_base.mean())
    again = FollowingComparison.load(result.save(__import__("tempfile").mkdtemp() + "/f"))
    pd.testing.assert_frame_equal(again.nll_by_category(), table)


def test_models_with_different_tokenizers_are_refused(monkeypatch):
    base, other = ii.tiny_model(seed=0), ii.tiny_model(seed=1)
    monkeypatch.setattr(other.tokenizer, "get_vocab", lambda: {"a": 0})
    with pytest.raises(ValueError, match="same tokenizer"):
        compare_following(base, other, ii.hexainst()[:2], progress=False)
