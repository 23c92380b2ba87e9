"""Gradient input→output attribution: formulas by hand, gradients against plain HF autograd."""

import dataclasses
import math

import numpy as np
import pytest
import torch

import instr_interp as ii
from instr_interp.engine.generation import generate_responses
from instr_interp.models import tiny_hf_model
from instr_interp.report.sections_shift import attribution_sections
from instr_interp.shift.attribution import (
    Attribution,
    AttributionSet,
    attribute,
    attribute_many,
    compare_scores,
    importance_density,
    instruction_score,
    sparsify,
)
from instr_interp.shift.score_tests import compare_models
from tests.typecheck import bad_input

# A 3 x 4 matrix (prompt tokens x response tokens) worked by hand:
#   col 0: clip [1, .75, .25], max 1 -> ceil(10 a) = [10, 8, 3] -> drop <= 7 -> [10, 8, 0]
#   col 1: clip [0, 4, 3],     max 4 -> [0, 10, 8]
#   col 2: [.5, .125, .4375],  max .5 -> ã [1, .25, .875] -> [10, 3, 9] -> [10, 0, 9]
#   col 3: all <= 0 -> zeros
HAND = torch.tensor([[1.0, -2.0, 0.5, 0.0], [0.75, 4.0, 0.125, -1.0], [0.25, 3.0, 0.4375, -0.5]])
HAND_SPARSE = [[10, 0, 10, 0], [8, 10, 0, 0], [0, 8, 9, 0]]
# rho_n = L1 / L4: row 0 = 20 / 20000^(1/4) = 1.6817928, row 1 = 18 / 14096^(1/4) = 1.6519562,
# row 2 = 17 / 10657^(1/4) = 1.6731704; divided by the max (row 0):
HAND_DENSITY = [1.0, 0.9822590, 0.9948731]
# instruction tokens 0 and 2: (1 + 0.9948731) / log2(2 + 2) = 0.9974365
HAND_SCORE = 0.9974365


def test_formulas_hand_computed():
    sparse = sparsify(HAND)
    assert sparse.tolist() == HAND_SPARSE
    density = importance_density(sparse)
    assert density.tolist() == pytest.approx(HAND_DENSITY, abs=1e-6)
    mask = torch.tensor([True, False, True])
    assert instruction_score(density, mask) == pytest.approx(HAND_SCORE, abs=1e-6)
    assert instruction_score(density, torch.zeros(3, dtype=torch.bool)) == 0.0
    assert importance_density(torch.zeros(3, 2, dtype=torch.long)).tolist() == [0.0, 0.0, 0.0]
    with bad_input("same shape"):
        instruction_score(density, torch.ones(2, dtype=torch.bool))


def _plain_per_token(hf, ids, prompt_positions, response_positions, target="prob"):
    """One forward of the plain HF model per response token; d P_m / d inputs_embeds · inputs_embeds."""
    tokens = torch.tensor([ids])
    cols = []
    for m in response_positions.tolist():
        emb = hf.get_input_embeddings()(tokens).detach().requires_grad_(True)
        logits = hf(inputs_embeds=emb).logits[0, m - 1]
        p = torch.softmax(logits.double(), -1)[ids[m]]
        obj = torch.log(p) if target == "logprob" else p
        (grad,) = torch.autograd.grad(obj, emb)
        cols.append((grad[0] * emb[0]).sum(-1)[prompt_positions])
    return torch.stack(cols, 1).detach()


@pytest.fixture(scope="module")
def tiny_pair():
    return ii.tiny_model(seed=3), tiny_hf_model(seed=3)


@pytest.mark.parametrize("target", ["prob", "logprob"])
def test_matrix_equals_plain_per_token_autograd(tiny_pair, data, target):
    model, hf = tiny_pair
    rec = data[7]
    attr = attribute(model, rec, "Yes, it is 42.", target=target, chunk=4)
    ref = _plain_per_token(
        hf, attr.input_ids.tolist(), attr.prompt_positions, attr.response_positions, target
    )
    rel = (attr.matrix.double() - ref).norm() / ref.norm()
    assert rel < 1e-3
    assert attr.matrix.shape == (len(attr.prompt_positions), len(attr.response_positions)) == ref.shape
    # P_m recorded alongside
    assert bool((attr.probs > (0 if target == "prob" else -1e9)).all())
    # chunking does not change the values (up to summation order in the batched backward)
    whole = attribute(model, rec, "Yes, it is 42.", target=target, chunk=None)
    assert torch.allclose(whole.matrix, attr.matrix, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("target", ["prob", "logprob"])
def test_forward_mode_equals_plain_per_token_autograd(tiny_pair, data, target):
    model, hf = tiny_pair
    rec = data[7]
    fwd = attribute(model, rec, "Yes, it is 42.", target=target, mode="forward", chunk=3)
    ref = _plain_per_token(hf, fwd.input_ids.tolist(), fwd.prompt_positions, fwd.response_positions, target)
    assert fwd.matrix.shape == ref.shape and (fwd.matrix.double() - ref).norm() / ref.norm() < 1e-3
    rev = attribute(model, rec, "Yes, it is 42.", target=target)
    assert torch.allclose(fwd.matrix, rev.matrix, rtol=1e-4, atol=1e-6)
    assert torch.allclose(fwd.probs, rev.probs, rtol=1e-5)
    whole = attribute(model, rec, "Yes, it is 42.", target=target, mode="forward")  # one chunk
    assert torch.allclose(whole.matrix, fwd.matrix, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="mode"):
        attribute(model, rec, "Yes.", mode="sideways")


def test_positions_regions_and_derived(tiny_pair, data):
    model, _ = tiny_pair
    rec = data[0]
    attr = attribute(model, rec, "Positive.", format="chat")
    enc = ii.encode(
        [dataclasses.replace(rec, response="Positive.")],
        model.tokenizer,
        with_response=True,
    )[0]
    regions = torch.tensor(enc.regions)
    # prompt = every token before the response (the tiny chat template has no BOS token)
    assert attr.prompt_positions.tolist() == list(range(enc.prompt_length))
    assert attr.response_positions.tolist() == (regions == ii.Region.RESPONSE).nonzero().flatten().tolist()
    assert len(attr.response_positions) == len("Positive.")  # byte-level tokenizer
    instr = regions[attr.prompt_positions] == ii.Region.INSTRUCTION
    assert torch.equal(attr.instruction_mask, instr)
    assert torch.equal(attr.prompt_regions, regions[attr.prompt_positions])
    assert (
        model.tokenizer.decode(attr.input_ids[attr.prompt_positions[attr.instruction_mask]])
        == rec.instruction
    )
    assert attr.sparse.tolist() == sparsify(attr.matrix).tolist()
    # density and score by the METHODS formulas written out with numpy
    s = attr.sparse.numpy().astype(float)
    rho = s.sum(1) / ((s**4).sum(1) ** 0.25 + 1e-9)
    rho = rho / rho.max()
    assert np.allclose(attr.density.numpy(), rho, atol=1e-6)
    k = int(instr.sum())
    assert attr.instruction_score == pytest.approx(rho[instr.numpy()].sum() / math.log2(2 + k), abs=1e-6)
    assert attr.top_tokens(3)["density"].iloc[0] == pytest.approx(1.0)


def test_bos_excluded_and_raw_prompt(tiny_pair):
    model, hf = tiny_pair
    bos = model.tokenizer.bos_token
    prompt = bos + "Translate to French: the cat sleeps.\n"
    attr = attribute(model, prompt, "le chat", instruction="Translate to French")
    assert attr.input_ids[0].item() == model.tokenizer.bos_token_id
    assert attr.prompt_positions[0].item() == 1  # BOS dropped
    assert attr.settings["bos_excluded"]
    marked = model.tokenizer.decode(attr.input_ids[attr.prompt_positions[attr.instruction_mask]])
    assert marked == "Translate to French"
    ref = _plain_per_token(hf, attr.input_ids.tolist(), attr.prompt_positions, attr.response_positions)
    assert (attr.matrix.double() - ref).norm() / ref.norm() < 1e-3
    # no instruction given: no instruction region, score 0
    plain = attribute(model, prompt, "le chat")
    assert not plain.instruction_mask.any() and plain.instruction_score == 0.0
    with pytest.raises(ValueError, match="does not occur"):
        attribute(model, prompt, "x", instruction="Summarise")
    with pytest.raises(ValueError, match="needs response"):
        attribute(model, prompt)
    with bad_input("target"):
        attribute(model, prompt, "x", target="logit")
    with pytest.raises(ValueError, match="is empty: there is nothing to attribute"):
        attribute(model, prompt, "")


def test_no_parameter_grads_and_flags_restored(tiny_pair, data):
    model, _ = tiny_pair
    params = list(model.parameters())
    before = [p.requires_grad for p in params]
    attribute(model, data[1], "ok")
    assert [p.requires_grad for p in params] == before
    assert all(p.grad is None for p in params)


def _plain_greedy(hf, ids, n, stops):
    out = list(ids)
    with torch.no_grad():
        for _ in range(n):
            nxt = int(hf(torch.tensor([out])).logits[0, -1].argmax())
            if nxt in stops:
                break
            out.append(nxt)
    return out[len(ids) :]


def test_generate_batch_invariant_and_greedy(tiny_pair, data):
    model, hf = tiny_pair
    # four prompts of equal token length (byte-level tokens) and two others
    recs = [{"id": f"r{i}", "category": "math", "instruction": f"Add {i} and {i + 1}."} for i in range(4)]
    recs += [{"id": "long", "category": "math", "instruction": "Multiply 12 by 13."}, data[2].to_dict()]
    one = generate_responses(model, recs, max_new_tokens=5, batch_size=1, progress=False)
    four = generate_responses(model, recs, max_new_tokens=5, batch_size=4, progress=False)
    assert [r.response for r in one] == [r.response for r in four]
    assert [r.id for r in four] == [r["id"] for r in recs]
    enc = ii.encode(recs, model.tokenizer)
    stops = {0, 2}  # <|endoftext|> (EOS) and the template's <|im_end|>
    for r, e in zip(four, enc):
        new = _plain_greedy(hf, list(e.tokens), 5, stops)
        assert r.meta["generated_tokens"] == len(new)
        assert r.response == model.tokenizer.decode(new, skip_special_tokens=True)


def test_attribute_generates_when_no_response(tiny_pair, data):
    model, _ = tiny_pair
    rec = dataclasses.replace(data[3], response="")
    attr = attribute(model, rec, max_new_tokens=4)
    gen = generate_responses(model, [rec], max_new_tokens=4, format="plain", progress=False)[0]
    assert model.tokenizer.decode(attr.input_ids[attr.response_positions]) == gen.response


def _hand_attr(rid, category, matrix):
    """An Attribution over a given matrix; the first two prompt tokens are the instruction."""
    n, r = matrix.shape
    return Attribution(
        input_ids=torch.arange(n + r),
        tokens=[str(i) for i in range(n + r)],
        prompt_positions=torch.arange(n),
        response_positions=torch.arange(n, n + r),
        matrix=matrix.float(),
        instruction_mask=torch.arange(n) < 2,
        probs=torch.full((r,), 0.5),
        id=rid,
        category=category,
        source="hand",
    )


def _hand_set(name, n=6, boost=0.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        m = torch.randn(5, 6, generator=gen)
        m[:2] += boost  # more attribution on the instruction tokens
        items.append(_hand_attr(f"{name}{i}", "a" if i % 2 else "b", m))
    return AttributionSet(items=items, name=name)


def test_compare_scores_welch_by_hand():
    a = _hand_set("base", seed=0)
    b = _hand_set("tuned", boost=0.7, seed=1)
    table = compare_scores(a, b).set_index("group")
    sa, sb = a.to_frame()["instruction_score"].to_numpy(), b.to_frame()["instruction_score"].to_numpy()
    assert len(set(sa.round(6))) == len(sa) and len(set(sb.round(6))) == len(sb)  # varied scores
    # Welch t and one-sided p written out: t = (mb - ma) / sqrt(va/na + vb/nb), Welch-Satterthwaite df
    va, vb, na, nb = sa.var(ddof=1), sb.var(ddof=1), len(sa), len(sb)
    t = (sb.mean() - sa.mean()) / math.sqrt(va / na + vb / nb)
    df = (va / na + vb / nb) ** 2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    from scipy.special import stdtr

    p = 1 - stdtr(df, t)
    row = table.loc["overall"]
    assert row["t"] == pytest.approx(t, rel=1e-9) and row["p_value"] == pytest.approx(p, rel=1e-6)
    assert row["mean_a"] == pytest.approx(sa.mean()) and row["std_b"] == pytest.approx(sb.std(ddof=1))
    assert list(table.index) == ["b", "a", "overall"] and table.loc["a", "n_a"] == 3
    from scipy import stats

    per_a = stats.ttest_ind(sb[1::2], sa[1::2], equal_var=False, alternative="greater")
    assert 0 < row["p_value"] < 1 and table.loc["a", "p_value"] == pytest.approx(float(per_a.pvalue))
    with pytest.raises(ValueError, match="group by"):
        compare_scores(a, b, by="nope")


def test_save_load_round_trip(tiny_pair, data, tmp_path):
    model, _ = tiny_pair
    attr = attribute(model, data[5], "Done.")
    attr.save(tmp_path / "one")
    back = Attribution.load(tmp_path / "one")
    assert torch.equal(back.matrix, attr.matrix) and back.tokens == attr.tokens and back.id == attr.id
    assert torch.equal(back.instruction_mask, attr.instruction_mask)
    assert back.instruction_score == attr.instruction_score
    s = _hand_set("x", n=3)
    s.save(tmp_path / "set")
    again = AttributionSet.load(tmp_path / "set")
    assert again.to_frame().equals(s.to_frame()) and again.name == "x"
    with pytest.raises(ValueError, match="holds a"):
        AttributionSet.load(tmp_path / "one")


def test_attribute_many_views_and_sections(tiny_pair, data):
    model, _ = tiny_pair
    # a record whose 4-token greedy response is not empty (an empty one is kept and scored 0)
    subset = next(
        sub
        for sub in (data.sample(1, seed=seed) for seed in range(20))
        if generate_responses(model, sub, max_new_tokens=4, format="plain", progress=False)[0].response
    )
    s = attribute_many(model, subset, max_new_tokens=4, progress=False)
    assert list(s.to_frame().columns) == [
        "id",
        "category",
        "source",
        "n_prompt",
        "n_instruction",
        "n_response",
        "instruction_score",
    ]
    assert len(s) + len(s.skipped) == len(subset)
    first = s[0]
    single = attribute(
        model,
        subset[0],
        generate_responses(model, subset[:1], max_new_tokens=4, format="plain", progress=False)[0].response,
    )
    assert torch.equal(first.matrix, single.matrix)
    ref = attribute_many(
        model, [{**r.to_dict(), "response": "A."} for r in subset], use_reference=True, progress=False
    )
    assert (ref.to_frame()["n_response"] == 2).all()
    fig = first.plot()
    assert fig.data[0].z.shape == tuple(first.matrix.shape)
    assert "colored" in first.html().lower() or len(first.html()) > 1000
    test = compare_models(ref, s, n_resamples=200)
    sections = attribution_sections(first, {"base": ref, "tuned": s}, {"tuned": test})
    assert len(sections) == 2
    summary = test.summary
    reading = sections[1].reading
    assert f"{summary['mean_b']:.3f}" in reading and f"{first.instruction_score:.3f}" in sections[0].reading
    assert "one format (plain)" in reading
    if summary["difference"] > 0 and summary["paired_p"] < 0.05:
        assert "holds here" in reading
    else:  # a non-significant result is read with its power (tested in test_attribution_tables)
        assert f"power {summary['power_paired']:.0%}" in reading
    assert sections[1].tables[0].loc[0, "power_paired"] == summary["power_paired"]


def test_fp32_required(data):
    model = ii.tiny_model(seed=1)
    model.to(torch.float64)
    with pytest.raises(ValueError, match="fp32"):
        attribute(model, data[0], "x")
