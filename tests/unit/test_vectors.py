import re

import pytest
import torch

from instr_interp.report.sections_vectors import vector_section
from instr_interp.vectors.heads import corrupted_prompts, head_effects, random_heads, top_heads
from instr_interp.vectors.instruction import (
    InstructionVector,
    add_vector,
    instruction_vector,
    vector_from_heads,
    vector_scores,
)
from instr_interp.vectors.tasks import Task, evaluate_task

TASK = Task(
    name="caps",
    instruction="Capitalise the word.",
    pairs=[(w, w.upper()) for w in "cat dog sun tree moon sky red hat cup pen box car".split()],
)


@pytest.fixture(scope="module")
def means(tiny):
    # random means with the scale of real z (the random tiny model answers nothing, so no real means)
    return torch.randn(2, 4, 16, generator=torch.Generator().manual_seed(0))


def plain_prob(model, prompt, target, hooks=()):
    ids = torch.tensor([model.tokenizer(prompt)["input_ids"]])
    with torch.no_grad():
        logits = model.run_with_hooks(ids, fwd_hooks=list(hooks))
    return float(logits[0, -1].softmax(-1)[target])


def target_of(model, y):
    return model.tokenizer(" " + y, add_special_tokens=False)["input_ids"][0]


def test_exact_effects_equal_one_head_at_a_time(tiny, means):
    got = head_effects(tiny, TASK, means=means, n_prompts=4, shots=3, batch_size=3, progress=False)
    prompts, pairs = corrupted_prompts(TASK, n_prompts=4, shots=3)
    ref = torch.zeros(2, 4, dtype=torch.float64)
    for prompt, (_, y) in zip(prompts, pairs):
        t = target_of(tiny, y)
        base = plain_prob(tiny, prompt, t)
        for layer in range(2):
            for head in range(4):

                def patch(z, hook=None, layer=layer, head=head):
                    z = z.clone()
                    z[0, -1, head] = means[layer, head]
                    return z

                ref[layer, head] += (
                    plain_prob(tiny, prompt, t, [(f"blocks.{layer}.attn.hook_z", patch)]) - base
                )
    ref /= len(prompts)
    assert ref.abs().max() > 1e-4  # the check can fail
    torch.testing.assert_close(got.double(), ref, atol=1e-5, rtol=0)
    # batch-size invariance and layer selection
    other = head_effects(
        tiny, TASK, means=means, n_prompts=4, shots=3, batch_size=1, layers=[1], progress=False
    )
    assert torch.isnan(other[0]).all()
    torch.testing.assert_close(other[1], got[1], atol=1e-6, rtol=0)


def test_atp_equals_autograd_first_order(tiny, means):
    got = head_effects(
        tiny, TASK, method="atp", means=means, n_prompts=4, shots=3, batch_size=2, progress=False
    )
    prompts, pairs = corrupted_prompts(TASK, n_prompts=4, shots=3)
    ref = torch.zeros(2, 4, dtype=torch.float64)
    for prompt, (_, y) in zip(prompts, pairs):
        ids = torch.tensor([tiny.tokenizer(prompt)["input_ids"]])
        for layer in range(2):
            leaf = {}

            def take(z, hook=None, leaf=leaf):
                leaf["z"] = z.detach().clone().requires_grad_(True)
                return leaf["z"]

            with torch.enable_grad():
                logits = tiny.run_with_hooks(ids, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", take)])
                p = logits[0, -1].softmax(-1)[target_of(tiny, y)]
                (grad,) = torch.autograd.grad(p, leaf["z"])
            z = leaf["z"].detach()[0, -1]
            ref[layer] += ((means[layer] - z) * grad[0, -1]).sum(-1).double()
    ref /= len(prompts)
    torch.testing.assert_close(got.double(), ref, atol=1e-6, rtol=1e-4)
    assert all(not p.requires_grad or p.grad is None for p in tiny.parameters())


def test_vector_from_heads_equals_output_projection(tiny, means):
    heads = torch.tensor([[0, 1], [1, 3], [1, 0]])
    vec = vector_from_heads(tiny, means, heads)
    ref = torch.zeros(64)
    for layer, head in heads.tolist():
        weight = tiny.blocks[layer].attn.o._original_component.weight  # HF o_proj [d_model, n_heads*d_head]
        concat = torch.zeros(4 * 16)
        concat[head * 16 : (head + 1) * 16] = means[layer, head]
        ref += (weight @ concat).detach()
    torch.testing.assert_close(vec, ref, atol=1e-5, rtol=1e-5)


def test_add_vector_last_positions_and_cleanup(tiny):
    vec = torch.randn(64, generator=torch.Generator().manual_seed(1))
    prompts = ["Q: cat\nA:", "Q: a longer query\nA:"]
    ids = [tiny.tokenizer(p)["input_ids"] for p in prompts]
    refs = []
    for seq in ids:  # independent: unpadded, add at the final position with a plain hook

        def plus(resid, hook=None):
            resid = resid.clone()
            resid[0, -1] += 2.0 * vec
            return resid

        with torch.no_grad():
            refs.append(
                tiny.run_with_hooks(torch.tensor([seq]), fwd_hooks=[("blocks.0.hook_resid_post", plus)])[
                    0, -1
                ]
            )
    width = max(map(len, ids)) + 3
    tokens = torch.zeros(2, width, dtype=torch.long)
    for r, seq in enumerate(ids):
        tokens[r, : len(seq)] = torch.tensor(seq)
    last = torch.tensor([len(s) - 1 for s in ids])
    with torch.no_grad(), add_vector(tiny, vec, layer=0, scale=2.0, last=last):
        out = tiny(tokens)
    for r in range(2):
        torch.testing.assert_close(out[r, last[r]], refs[r], atol=1e-5, rtol=1e-5)
    # mask form equals last form; "all" changes every position
    mask = torch.zeros(2, width, dtype=torch.bool)
    mask[torch.arange(2), last] = True
    with torch.no_grad(), add_vector(tiny, vec, layer=0, scale=2.0, positions=mask):
        torch.testing.assert_close(tiny(tokens), out, atol=1e-6, rtol=0)
    with torch.no_grad():
        plain = tiny(tokens)
        with add_vector(tiny, vec, layer=0, positions="all"):
            moved = tiny(tokens)
    assert (moved - plain).abs().amax(-1).min() > 1e-3
    # hooks removed, also after an exception
    with pytest.raises(RuntimeError, match="boom"), add_vector(tiny, vec, layer=1):
        raise RuntimeError("boom")
    with torch.no_grad():
        torch.testing.assert_close(tiny(tokens), plain, atol=0, rtol=0)
    with pytest.raises(ValueError, match="d_model"):
        with add_vector(tiny, torch.ones(3), layer=0):
            pass
    with pytest.raises(ValueError, match="layer="):
        with add_vector(tiny, vec):
            pass


def test_evaluate_with_vector_is_batch_size_invariant(tiny):
    vec = 3 * torch.randn(64, generator=torch.Generator().manual_seed(2))
    with add_vector(tiny, vec, layer=0):
        a = evaluate_task(tiny, TASK, batch_size=1, progress=False)
        b = evaluate_task(tiny, TASK, batch_size=7, progress=False)
    plain = evaluate_task(tiny, TASK, batch_size=7, progress=False)
    torch.testing.assert_close(
        torch.tensor(a.frame["p_target"].values), torch.tensor(b.frame["p_target"].values), atol=1e-6, rtol=0
    )
    assert not torch.allclose(
        torch.tensor(a.frame["p_target"].values), torch.tensor(plain.frame["p_target"].values)
    )
    # independent: unpadded prompt, vector added at its final position
    x, y = TASK.pairs[0]

    def plus(resid, hook=None):
        resid = resid.clone()
        resid[0, -1] += vec
        return resid

    ref = plain_prob(tiny, TASK.zero_shot(x), target_of(tiny, y), [("blocks.0.hook_resid_post", plus)])
    assert a.frame["p_target"][0] == pytest.approx(ref, abs=1e-6)


def test_top_and_random_heads():
    eff = torch.tensor([[0.1, float("nan"), 0.5], [0.3, -0.2, 0.5]])
    assert top_heads(eff, 3).tolist() == [[0, 2], [1, 2], [1, 0]]
    with pytest.raises(ValueError, match="k must be"):
        top_heads(eff, 6)


def test_random_heads_distinct(tiny):
    heads = random_heads(tiny, 8, seed=3)
    assert len({tuple(h) for h in heads.tolist()}) == 8 and torch.equal(heads, random_heads(tiny, 8, seed=3))
    assert heads[:, 0].max() < 2 and heads[:, 1].max() < 4


def test_instruction_vector_sweep_and_round_trip(tiny, means, tmp_path):
    iv = instruction_vector(
        tiny, TASK, means=means, k=3, n_prompts=4, shots=3, n_val=5, batch_size=4, progress=False
    )
    assert iv.top_heads.shape == (3, 2) and torch.isfinite(iv.head_effects).all()
    torch.testing.assert_close(iv.vector, vector_from_heads(tiny, means, iv.top_heads))
    sweep = iv.sweep
    assert len(sweep) == 4 and set(sweep["scale"]) == {1.0, 2.0} and set(sweep["layer"]) == {0, 1}
    best = sweep.sort_values(
        ["accuracy", "p_target", "scale", "layer"], ascending=[False, False, True, True]
    ).iloc[0]
    assert (iv.layer, iv.scale) == (int(best.layer), float(best.scale))
    # the sweep's numbers for the chosen layer and scale are reproducible on the validation split
    _, val = TASK.split(0, 5)
    with add_vector(tiny, iv):  # uses iv.layer and iv.scale
        score = evaluate_task(tiny, val, progress=False)
    assert score.accuracy == best.accuracy
    assert float(score.frame["p_target"].mean()) == pytest.approx(best.p_target, abs=1e-6)
    iv.save(tmp_path / "iv")
    back = InstructionVector.load(tmp_path / "iv")
    assert back.layer == iv.layer and back.scale == iv.scale and torch.equal(back.vector, iv.vector)
    assert back.sweep.equals(iv.sweep)
    assert iv.plot().data and len(iv.to_frame()) == 3
    given = instruction_vector(
        tiny, TASK, means=means, heads=[[1, 2]], layer=None, sweep=False, progress=False
    )
    assert given.layer == 2 // 3 and given.scale == 1.0 and torch.isnan(given.head_effects).all()
    with pytest.raises(ValueError, match="out of range"):
        instruction_vector(tiny, TASK, means=means, heads=[[5, 0]], layer=0, progress=False)


def test_vector_scores_and_section(tiny, means):
    iv = instruction_vector(tiny, TASK, means=means, k=3, n_prompts=4, shots=3, layer=1, progress=False)
    scores = vector_scores(tiny, [iv], [TASK], n_random=2, progress=False)
    row = scores.iloc[0]
    assert row.zero_shot == evaluate_task(tiny, TASK, progress=False).accuracy
    with add_vector(tiny, iv):
        assert row.with_vector == evaluate_task(tiny, TASK, progress=False).accuracy
    controls = []
    for seed in range(2):
        with add_vector(tiny, vector_from_heads(tiny, means, random_heads(tiny, 3, seed)), layer=1):
            controls.append(evaluate_task(tiny, TASK, progress=False).accuracy)
    assert row.random_heads == pytest.approx(sum(controls) / 2)
    sections = vector_section([iv], scores)
    assert len(sections) == 2 and sections[0].figures and f"{row.zero_shot:.2f}" in sections[1].reading
    with pytest.raises(ValueError, match="columns"):
        vector_section([iv], scores.drop(columns=["random_heads"]))


def test_prompts_draw_demonstrations_from_the_whole_task():
    prompts, pairs = corrupted_prompts(TASK, n_prompts=2, shots=5)
    assert len(prompts) == 2 and len({x for x, _ in pairs}) == 2
    demo_inputs = {line[3:] for p in prompts for line in p.split("\n") if line.startswith("Q: ")}
    assert len(demo_inputs - {x for x, _ in pairs}) >= 5  # demonstrations beyond the two queries
    assert all(x in prompts[i].rsplit("\n\n", 1)[1] for i, (x, _) in enumerate(pairs))


def test_means_of_the_wrong_shape_are_an_error_naming_the_expected_shape(tiny, means):
    with pytest.raises(ValueError, match=r"\[layer, head, d_head\] = \(2, 4, 16\); got \(2, 4, 8\)"):
        head_effects(tiny, TASK, means=means[..., :8], n_prompts=2)
    with pytest.raises(ValueError, match=r"got \(1, 4, 16\)"):
        vector_from_heads(tiny, means[:1], torch.tensor([[0, 1]]))


def test_instruction_form_prompts_means_and_sweep(tiny, means):
    """form='instruction': prompts are the training encoding's prompts (instruction + query in the
    model's own format), the corruption drops the instruction, the sweep scores that same format."""
    import instr_interp as ii
    from instr_interp.vectors.forgetting import format_accuracy
    from instr_interp.vectors.heads import head_means
    from instr_interp.vectors.prompts import instruction_records, query_prompts

    ids, targets, pairs = query_prompts(tiny, TASK, form="instruction", n=4, seed=1)
    enc = ii.encode(TASK.records(), tiny.tokenizer, with_response=True)
    by_x = {x: r for (x, _), r in zip(TASK.pairs, enc.records)}
    for row, (x, _) in enumerate(pairs):
        rec = by_x[x]
        assert (
            ids[row] == list(rec.tokens[: rec.prompt_length])
            and targets[row] == rec.tokens[rec.prompt_length]
        )
        assert TASK.instruction in tiny.tokenizer.decode(ids[row])
    bad, _, same = query_prompts(tiny, TASK, form="instruction", n=4, seed=1, corrupt=True)
    assert same == pairs and all(TASK.instruction not in tiny.tokenizer.decode(b) for b in bad)
    assert all(x in tiny.tokenizer.decode(b) for b, (x, _) in zip(bad, pairs))
    # means over all prompts (only_correct=False) equal hook_z read one prompt at a time
    got, n = head_means(
        tiny, TASK, form="instruction", n_prompts=4, seed=1, only_correct=False, progress=False
    )
    zs = []
    for row in ids:
        _, cache = tiny.run_with_cache(torch.tensor([row]))
        zs.append(torch.stack([cache[f"blocks.{layer}.attn.hook_z"][0, -1] for layer in range(2)]))
    assert n == 4
    torch.testing.assert_close(got, torch.stack(zs).mean(0), atol=1e-5, rtol=1e-4)
    iv = instruction_vector(
        tiny, TASK, form="instruction", means=means, k=3, n_prompts=4, n_val=5, batch_size=4, progress=False
    )
    assert iv.settings["form"] == "instruction" and iv.settings["corruption"] == "drop_instruction"
    assert iv.settings["scale"] == iv.scale
    _, val = TASK.split(0, 5)
    with add_vector(tiny, iv):
        frame = format_accuracy(tiny, instruction_records(val), progress=False)
    best = iv.sweep.set_index(["layer", "scale"]).loc[(iv.layer, iv.scale)]
    assert float(frame["correct"].mean()) == best.accuracy
    assert float(frame["p_target"].mean()) == pytest.approx(best.p_target, abs=1e-6)
    scores = vector_scores(tiny, [iv], [val], n_random=1, form="instruction", progress=False)
    assert scores.iloc[0].with_vector == best.accuracy and scores.iloc[0].scale == iv.scale
    with pytest.raises(ValueError, match="drop_instruction"):
        instruction_vector(tiny, TASK, form="instruction", corruption="shuffle", means=means, progress=False)
    with pytest.raises(ValueError, match="form"):
        instruction_vector(tiny, TASK, form="chat", means=means, progress=False)
    with pytest.raises(ValueError, match="few_shot"):
        instruction_vector(tiny, TASK, form="instruction", protocol="todd", means=means, progress=False)


def test_todd_protocol_filters_queries_and_averages_every_prompt(tiny, monkeypatch):
    """protocol='todd': 10 shots; queries drawn only from the pairs answered right at 10 shots; the
    means average every prompt of those queries (checked against head_means on the same queries)."""
    import pandas as pd

    from instr_interp.vectors import tasks as task_module
    from instr_interp.vectors.heads import head_means
    from instr_interp.vectors.prompts import filtered_queries

    right = {"cat", "sun", "moon", "red"}
    seen = {}

    def fake_eval(model, task, *, shots, seed, batch_size, progress):
        seen["shots"] = shots
        frame = pd.DataFrame({"correct": [x in right for x, _ in task.pairs]})
        return type("Score", (), {"frame": frame})()

    monkeypatch.setattr(task_module, "evaluate_task", fake_eval)
    queries = filtered_queries(tiny, TASK, n=7, seed=3)
    assert seen["shots"] == 10 and len(queries) == 7 and {x for x, _ in queries} <= right
    iv = instruction_vector(tiny, TASK, protocol="todd", k=2, n_means=7, n_prompts=3, layer=1, progress=False)
    assert (
        iv.settings["shots"] == 10 and iv.settings["only_correct"] is False and iv.settings["n_correct"] == 7
    )
    train_queries = filtered_queries(tiny, TASK, n=7, seed=0)
    means, _ = head_means(tiny, TASK, shots=10, queries=train_queries, only_correct=False, progress=False)
    torch.testing.assert_close(iv.head_means, means)
    right.clear()
    with pytest.raises(ValueError, match="none of the"):
        filtered_queries(tiny, TASK, n=3)


def test_compare_vectors_of_two_models_and_its_section(tiny, means):
    """Two models of one architecture: the comparison's heads, cosine and scores equal a direct
    computation; a model compared with itself shares every head at cosine 1."""
    from scipy.stats import binomtest

    from instr_interp.models import tiny_model
    from instr_interp.report.sections_vectors import vector_change_section
    from instr_interp.vectors.compare import compare_vectors

    other = tiny_model(seed=1)
    iv_a = instruction_vector(tiny, TASK, means=means, k=3, n_prompts=4, shots=3, layer=1, progress=False)
    iv_b = instruction_vector(
        other, TASK, means=means * 2, k=3, n_prompts=4, shots=3, layer=1, progress=False
    )
    sa = vector_scores(tiny, [iv_a], [TASK], n_random=1, progress=False)
    sb = vector_scores(other, [iv_b], [TASK], n_random=1, progress=False)
    row = compare_vectors([iv_a], [iv_b], sa, sb).iloc[0]
    shared = {tuple(h) for h in iv_a.top_heads.tolist()} & {tuple(h) for h in iv_b.top_heads.tolist()}
    assert row.shared_top_heads == len(shared) and row.k == 3
    cos = float(iv_a.vector @ iv_b.vector / (iv_a.vector.norm() * iv_b.vector.norm()))
    assert row.cosine == pytest.approx(cos, abs=1e-6)
    assert (row.with_vector_before, row.with_vector_after) == (sa.with_vector[0], sb.with_vector[0])
    ci = binomtest(round(sb.with_vector[0] * len(TASK)), len(TASK)).proportion_ci(method="exact")
    assert (row.with_vector_after_low, row.with_vector_after_high) == pytest.approx((ci.low, ci.high))
    same = compare_vectors([iv_a], [iv_a], sa, sa).iloc[0]
    assert same.shared_top_heads == 3 and same.cosine == pytest.approx(1.0)
    section = vector_change_section(compare_vectors([iv_a], [iv_b], sa, sb), "a", "b")
    assert f"cosine similarity {row.cosine:.2f}" in section.reading
    with pytest.raises(ValueError, match="one vector and one score row"):
        compare_vectors([iv_a], [], sa, sb)


# ---------------------------------------------------------------------------------------------
# The "in_response" score of instruction-form vectors


def test_answer_in_response_is_whole_words_case_and_punctuation_insensitive():
    from instr_interp.vectors.prompts import answer_in_response

    hits = [
        ("cold", 'The opposite of "hot" is "cold."'),
        ("Rome", "The capital city of Italy is ROME!"),
        ("went", "went"),
        ("New York", "I live in new-york, sadly."),
        ("été", "C'est l'Été."),
        ("don't", "I don t know"),
    ]
    misses = [
        ("cold", "It is colder today."),
        ("cold", "scold"),
        ("went", "wentworth"),
        ("New York", "new jersey, york"),
        ("go", "going, gone"),
        ("cold", ""),
    ]
    assert all(answer_in_response(a, r) for a, r in hits)
    assert not any(answer_in_response(a, r) for a, r in misses)
    with pytest.raises(ValueError, match="answer"):
        answer_in_response("?!", "anything ?!")


def _prompt_ids(model, instruction, x):
    """The chat prompt built by hand: one user turn, the instruction and the query joined by a blank line."""
    content = x if instruction is None else f"{instruction}\n\n{x}"
    text = model.tokenizer.apply_chat_template(
        [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
    )
    return model.tokenizer(text, add_special_tokens=False)["input_ids"]


def _manual_greedy(model, ids, n_new, vector=None, layer=None):
    """Greedy decoding by full reruns (no KV cache); with ``vector``, it is added to
    ``blocks.{layer}.hook_resid_post`` at the last prompt position in every rerun, which is what adding
    it once in the prefill of a KV-cached generation computes (later positions read that position's
    keys and values)."""
    from instr_interp.engine.generation import stop_token_ids

    stops, last, new = stop_token_ids(model), len(ids) - 1, []

    def hook(resid, hook=None):
        resid = resid.clone()
        resid[:, last] += vector
        return resid

    hooks = [] if vector is None else [(f"blocks.{layer}.hook_resid_post", hook)]
    with torch.no_grad():
        for _ in range(n_new):
            logits = model.run_with_hooks(torch.tensor([ids + new]), fwd_hooks=hooks)
            token = int(logits[0, -1].argmax())
            if token in stops:
                break
            new.append(token)
    return model.tokenizer.decode(new, skip_special_tokens=True)


def _contains(answer, response):
    """Hand rule for one-word answers: case-insensitive, not preceded or followed by a letter/digit."""
    return re.search(rf"(?<![^\W_]){re.escape(answer)}(?![^\W_])", response, re.I) is not None


@pytest.mark.parametrize("dropped", [False, True])
def test_in_response_accuracy_equals_a_manual_greedy_loop(tiny, dropped):
    """instruction_accuracy(metric='in_response') = the share of pairs whose answer is a whole word of
    the greedy response generated by hand from hand-built prompts (with or without the instruction);
    the answers are chosen from those responses, so the count is known. Same whatever the batch size."""
    from instr_interp.vectors.prompts import instruction_accuracy, response_scores

    sub = Task(name="caps", instruction=TASK.instruction, pairs=TASK.pairs[:6])
    instruction = None if dropped else sub.instruction
    manual = [_manual_greedy(tiny, _prompt_ids(tiny, instruction, x), 8) for x, _ in sub.pairs]
    words = [[w for w in re.split(r"[\W_]+", m) if w] for m in manual]
    # even pairs: a word of the response, upper-cased (case must not matter); odd: a word not in it
    answers = [w[-1].upper() if i % 2 == 0 and w else "qqzzx" for i, w in enumerate(words)]
    known = Task(
        name="caps", instruction=sub.instruction, pairs=list(zip([x for x, _ in sub.pairs], answers))
    )
    expected = [_contains(a, m) for a, m in zip(answers, manual)]
    assert any(expected) and not all(expected)
    frame = response_scores(tiny, known, drop_instruction=dropped, max_new_tokens=8, batch_size=4)
    assert frame["response"].tolist() == manual
    assert frame["correct"].tolist() == expected
    for batch_size in (1, 4):
        acc, p = instruction_accuracy(
            tiny,
            known,
            metric="in_response",
            drop_instruction=dropped,
            max_new_tokens=8,
            batch_size=batch_size,
        )
        assert acc == sum(expected) / len(expected) and p != p  # NaN: no probability


def test_add_vector_in_in_response_scoring_equals_a_manual_steered_loop(tiny):
    """add_vector(positions='last') around the in_response score changes the greedy text exactly as
    adding the vector at the last prompt token by hand does (and does change it)."""
    from instr_interp.vectors.prompts import instruction_accuracy, response_scores

    sub = Task(name="caps", instruction=TASK.instruction, pairs=TASK.pairs[:4])
    vector = 8 * torch.randn(tiny.cfg.d_model, generator=torch.Generator().manual_seed(3))
    ids = [_prompt_ids(tiny, None, x) for x, _ in sub.pairs]
    plain = [_manual_greedy(tiny, i, 8) for i in ids]
    steered = [_manual_greedy(tiny, i, 8, vector=vector, layer=0) for i in ids]
    assert plain != steered
    with add_vector(tiny, vector, layer=0):
        frame = response_scores(tiny, sub, drop_instruction=True, max_new_tokens=8, batch_size=3)
    assert frame["response"].tolist() == steered
    words = [[w for w in re.split(r"[\W_]+", s) if w] for s in steered]
    answers = [w[0] if w else "qqzzx" for w in words]
    known = Task(
        name="caps", instruction=sub.instruction, pairs=list(zip([x for x, _ in sub.pairs], answers))
    )
    with add_vector(tiny, vector, layer=0):
        acc, _ = instruction_accuracy(
            tiny, known, metric="in_response", drop_instruction=True, max_new_tokens=8
        )
    assert acc == sum(_contains(a, s) for a, s in zip(answers, steered)) / 4


def test_in_response_score_threads_through_sweep_vector_and_scores(tiny, means):
    """instruction_vector and vector_scores score with the chosen metric on the chosen prompts, and
    record both; bad values and non-default scores of few-shot vectors are errors."""
    from instr_interp.vectors.prompts import instruction_accuracy

    kw = dict(form="instruction", means=means, k=3, n_prompts=4, n_val=4, batch_size=4, progress=False)
    with pytest.warns(UserWarning, match="tie-breaks, not a choice the data made"):
        iv = instruction_vector(
            tiny, TASK, candidate_layers=[0, 1], score="in_response", score_dropped=True, **kw
        )
    # the random tiny model never answers: every cell is 0, so layer and scale fall to the tie-breaks
    assert (iv.sweep.accuracy == 0).all() and (iv.layer, iv.scale) == (0, float(iv.sweep.scale.min()))
    assert iv.settings["score"] == "in_response" and iv.settings["score_dropped"] is True
    assert iv.settings["score_max_new_tokens"] == 16
    assert iv.sweep["p_target"].isna().all() and len(iv.sweep) == 4
    _, val = TASK.split(0, 4)
    for _, row in iv.sweep.iterrows():
        with add_vector(tiny, iv.vector, layer=int(row.layer), scale=row.scale):
            acc, _ = instruction_accuracy(tiny, val, metric="in_response", drop_instruction=True)
        assert acc == row.accuracy
    scores = vector_scores(
        tiny,
        [iv],
        [val],
        n_random=1,
        form="instruction",
        score="in_response",
        score_dropped=True,
        progress=False,
    )
    row = scores.iloc[0]
    assert row.score == "in_response" and row.score_dropped
    assert row.zero_shot == instruction_accuracy(tiny, val, metric="in_response", drop_instruction=True)[0]
    with add_vector(tiny, iv):
        assert (
            row.with_vector == instruction_accuracy(tiny, val, metric="in_response", drop_instruction=True)[0]
        )
    default = vector_scores(tiny, [iv], [val], n_random=0, form="instruction", progress=False).iloc[0]
    assert default.score == "first_token" and not default.score_dropped
    with pytest.raises(ValueError, match="score must be one of"):
        instruction_vector(tiny, TASK, score="exact", **kw)
    with pytest.raises(ValueError, match="form='instruction'"):
        vector_scores(tiny, [iv], [val], score="in_response", progress=False)
    with pytest.raises(ValueError, match="form='instruction'"):
        instruction_vector(tiny, TASK, means=means, k=3, n_prompts=4, score_dropped=True, progress=False)
    with pytest.raises(ValueError, match="metric must be one of"):
        instruction_accuracy(tiny, val, metric="in_reply")
    with pytest.raises(ValueError, match="no letter or digit"):
        instruction_accuracy(
            tiny, Task(name="p", instruction="x", pairs=[("a", "...")]), metric="in_response"
        )
