"""IV-guided fine-tuning: each loss term against an independent computation on tiny models."""

import warnings
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

import instr_interp as ii
from instr_interp.hooks import hook_site
from instr_interp.vectors.training import (
    FinetuneResult,
    _Guidance,
    _guided_loss,
    _vectors_by_layer,
    finetune,
    guidance_kl,
    iv_addition,
    last_prompt_positions,
    progressive_alpha,
)

D_MODEL = 64


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_iv")
    ii.models.tiny_hf_model(seed=0).save_pretrained(path)
    ii.models.tiny_tokenizer().save_pretrained(path)
    return path


def fake_iv(layer=0, seed=5, scale=3.0, top_heads=((1, 2), (0, 1)), task="t"):
    """Anything with .vector, .layer, .top_heads works as guidance (an InstructionVector stand-in)."""
    g = torch.Generator().manual_seed(seed)
    return SimpleNamespace(
        task=task,
        vector=scale * torch.randn(D_MODEL, generator=g),
        layer=layer,
        top_heads=torch.tensor(top_heads),
    )


@pytest.fixture(scope="module")
def batch(small_data):
    enc = ii.encode(small_data[:5], ii.models.tiny_tokenizer(), with_response=True)
    b = enc.batch(list(range(5)), "right")
    labels = torch.where(b.regions == ii.Region.RESPONSE, b.tokens, -100)
    return b, labels


def test_progressive_alpha_schedule():
    assert [progressive_alpha(s, 10) for s in range(10)] == pytest.approx(
        [1, 0.8, 0.6, 0.4, 0.2, 0, 0, 0, 0, 0]
    )
    assert [progressive_alpha(s, 5) for s in range(5)] == pytest.approx([1, 0.6, 0.2, 0, 0])
    assert progressive_alpha(0, 1) == 1.0
    with pytest.raises(ValueError, match="total_steps"):
        progressive_alpha(3, 3)


@pytest.mark.parametrize("side", ["left", "right"])
def test_last_prompt_positions_from_regions(small_data, side):
    enc = ii.encode(small_data[:7], ii.models.tiny_tokenizer(), with_response=True)
    b = enc.batch(list(range(7)), side)
    assert torch.equal(last_prompt_positions(b.regions), b.last_prompt)
    # the next token is the first response token, the position itself is not a response token
    rows = torch.arange(7)
    assert (b.regions[rows, b.last_prompt + 1] == ii.Region.RESPONSE).all()
    assert (b.regions[rows, b.last_prompt] != ii.Region.RESPONSE).all()
    with pytest.raises(ValueError, match="with_response"):
        last_prompt_positions(torch.ones(2, 4, dtype=torch.long))


def test_iv_addition_adds_exactly_the_vector_at_the_last_prompt_token(batch):
    b, _ = batch
    hf = ii.models.tiny_hf_model(seed=0)
    iv = fake_iv(layer=0)
    last = last_prompt_positions(b.regions)
    seen = []  # the input of layer 1 = the residual stream after layer 0 (output_hidden_states is recorded
    # by transformers' own hooks, before ours, so it would not show the addition)

    def grab(module, args, kwargs):
        seen.append((args[0] if args else kwargs["hidden_states"]).clone())

    handle = hf.model.layers[1].register_forward_pre_hook(grab, with_kwargs=True)
    with torch.no_grad():
        plain = hf(input_ids=b.tokens, attention_mask=b.attention_mask.long())
        with iv_addition(hf, {0: iv.vector}, last, scale=0.5):
            added = hf(input_ids=b.tokens, attention_mask=b.attention_mask.long())
        after = hf(input_ids=b.tokens, attention_mask=b.attention_mask.long())
    handle.remove()
    diff = seen[1] - seen[0]
    expected = torch.zeros_like(diff)
    expected[torch.arange(5), last] = 0.5 * iv.vector
    torch.testing.assert_close(diff, expected, atol=1e-5, rtol=0)
    # causal: positions before the last prompt token are untouched in every later layer too
    for row in range(5):
        p = int(last[row])
        torch.testing.assert_close(added.logits[row, :p], plain.logits[row, :p], atol=0, rtol=0)
        assert not torch.allclose(added.logits[row, p], plain.logits[row, p])
    # the hook is gone on exit
    torch.testing.assert_close(after.logits, plain.logits, atol=0, rtol=0)
    assert torch.equal(seen[2], seen[0]) and all(not m._forward_hooks for m in hf.modules())


def _hand_reference_logits(hf, tokens, mask, vec, layer, last):
    """The reference with the vector added by an in-place hook written independently here."""

    def hook(module, args, output):
        out = output[0] if isinstance(output, tuple) else output
        for row, pos in enumerate(last.tolist()):
            out[row, pos] += vec
        return output

    handle = hf.model.layers[layer].register_forward_hook(hook)
    try:
        with torch.no_grad():
            return hf(input_ids=tokens, attention_mask=mask).logits
    finally:
        handle.remove()


def test_kl_terms_equal_a_hand_computation(batch):
    b, labels = batch
    mask = b.attention_mask.long()
    new, ref = ii.models.tiny_hf_model(seed=1), ii.models.tiny_hf_model(seed=0).requires_grad_(False)
    iv = fake_iv(layer=0)
    T = 2.0
    g = _Guidance(
        vectors=_vectors_by_layer(iv, 2, D_MODEL),
        heads=[],
        reference=ref,
        kl_weight=3.0,
        seq_kl_weight=0.25,
        temperature=T,
        progressive=False,
        head_consistency=0.0,
        kl_threshold=0.1,
        head_threshold=0.01,
        seq_kl_threshold=0.0,
        kl_t2=True,
        site="resid_post",
    )
    loss, parts = _guided_loss(new, g, b.tokens, mask, labels, b.last_prompt, alpha=1.0)

    last = b.last_prompt
    rows = torch.arange(5)
    new_logits = new(input_ids=b.tokens, attention_mask=mask).logits.detach()
    ref_logits = _hand_reference_logits(ref, b.tokens, mask, iv.vector, 0, last)
    # F.kl_div(input=log q, target=log p, log_target=True) = sum p (log p - log q) = KL(p || q)
    kl = (
        F.kl_div(
            F.log_softmax(ref_logits[rows, last] / T, -1),
            F.log_softmax(new_logits[rows, last] / T, -1),
            log_target=True,
            reduction="batchmean",
        )
        * T**2
    )
    keep = b.attention_mask
    seq = (
        F.kl_div(
            F.log_softmax(ref_logits[keep] / T, -1),
            F.log_softmax(new_logits[keep] / T, -1),
            log_target=True,
            reduction="sum",
        )
        / 5
        * T**2
    )
    ce = F.cross_entropy(new_logits[:, :-1].reshape(-1, new_logits.shape[-1]), labels[:, 1:].reshape(-1))
    assert parts["kl"] == pytest.approx(kl.item(), rel=1e-5) and kl.item() > 0.1
    assert parts["seq_kl"] == pytest.approx(seq.item(), rel=1e-5)
    assert parts["ce"] == pytest.approx(ce.item(), rel=1e-5)
    assert loss.item() == pytest.approx(ce.item() + 3.0 * kl.item() + 0.25 * seq.item(), rel=1e-5)
    # the last-token KL counts only above its threshold
    g.kl_threshold = kl.item() + 1
    loss2, parts2 = _guided_loss(new, g, b.tokens, mask, labels, b.last_prompt, alpha=1.0)
    assert parts2["kl"] == pytest.approx(kl.item(), rel=1e-5)
    assert loss2.item() == pytest.approx(ce.item() + 0.25 * seq.item(), rel=1e-5)
    # the KL function itself against scipy-free numpy-style arithmetic on a hand case
    p, q = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 2.0 * T]])  # softmax(p/T) = (.5,.5)
    q_prob = torch.softmax(q / T, -1)[0]
    hand = 0.5 * (torch.log(0.5 / q_prob[0]) + torch.log(0.5 / q_prob[1])) * T**2
    assert guidance_kl(p, q, T, t2=True).item() == pytest.approx(hand.item(), rel=1e-6)
    assert guidance_kl(p, q, T).item() == pytest.approx(hand.item() / T**2, rel=1e-6)


def test_head_consistency_and_progressive_match_the_bridge(batch):
    """Head outputs at the last prompt token, read independently through TransformerLens hook_z on bridges
    with the same weights, and the vector added at blocks.0.hook_resid_post (= HF layers[0] output)."""
    b, labels = batch
    mask = b.attention_mask.long()
    new, ref = ii.models.tiny_hf_model(seed=1), ii.models.tiny_hf_model(seed=0).requires_grad_(False)
    iv = fake_iv(layer=0, top_heads=((1, 2), (0, 1), (1, 0)))
    g = _Guidance(
        vectors=_vectors_by_layer(iv, 2, D_MODEL),
        heads=[(0, 1), (1, 0), (1, 2)],
        reference=ref,
        kl_weight=0.0,
        seq_kl_weight=0.0,
        temperature=2.0,
        progressive=True,
        head_consistency=2.0,
        kl_threshold=0.1,
        head_threshold=0.01,
        site="resid_post",
    )
    alpha = 0.4
    loss, parts = _guided_loss(new, g, b.tokens, mask, labels, b.last_prompt, alpha=alpha)
    last, rows = b.last_prompt, torch.arange(5)

    def bridge_z(seed, scale):
        bridge = ii.tiny_model(seed=seed)
        zs = {}

        def add(act, hook):
            act = act.clone()
            act[rows, last] += scale * iv.vector
            return act

        def grab(layer):
            def hook(act, hook):
                zs[layer] = act[rows, last].detach().clone()  # [batch head d_head]

            return hook

        hooks = [(hook_site(bridge, "resid_post", 0).name, add)]
        hooks += [(hook_site(bridge, "attn_z", layer).name, grab(layer)) for layer in (0, 1)]
        logits = bridge.run_with_hooks(b.tokens, attention_mask=b.attention_mask, fwd_hooks=hooks)
        return zs, logits

    z_new, logits_new = bridge_z(1, alpha)
    z_ref, _ = bridge_z(0, 0.0)  # the frozen model without the vector
    each = [
        F.mse_loss(z_new[layer][:, head], z_ref[layer][:, head]) for layer, head in [(0, 1), (1, 0), (1, 2)]
    ]
    mse = torch.stack(each).sum()
    assert all(m.item() > 0.01 for m in each)
    assert parts["head"] == pytest.approx(mse.item(), rel=1e-4)
    assert parts["alpha"] == alpha
    ce = F.cross_entropy(logits_new[:, :-1].reshape(-1, logits_new.shape[-1]), labels[:, 1:].reshape(-1))
    assert parts["ce"] == pytest.approx(ce.item(), rel=1e-4)  # CE includes the progressive vector
    assert loss.item() == pytest.approx(ce.item() + 2.0 * mse.item(), rel=1e-4)


def _reference_terms(data, iv, heads, *, progressive: bool, T: float = 2.0):
    """Jiang et al.'s loss terms written out independently, one record at a time (no padding), on the
    plain transformers model that finetune starts from: the teacher adds scale * vector to the output
    of o_proj of the vector's layer at the last prompt token; the head reference has no vector."""
    hf = ii.models.tiny_hf_model(seed=0).eval()
    enc = ii.encode(data, ii.models.tiny_tokenizer(), with_response=True)
    vec = iv.scale * iv.vector
    n_heads = hf.config.num_attention_heads

    def forward(tokens, last, add):
        zs = {}
        handles = []
        if add:

            def hook(module, args, output):
                output = output.clone()
                output[0, last] += vec
                return output

            handles.append(hf.model.layers[iv.layer].self_attn.o_proj.register_forward_hook(hook))
        for layer in {h[0] for h in heads}:

            def grab(module, args, layer=layer):
                zs[layer] = args[0][0, last].reshape(n_heads, -1).clone()

            handles.append(hf.model.layers[layer].self_attn.o_proj.register_forward_pre_hook(grab))
        try:
            with torch.no_grad():
                return hf(input_ids=tokens).logits[0], zs
        finally:
            for h in handles:
                h.remove()

    kl = seq = 0.0
    head_sq = {h: 0.0 for h in heads}
    nll, n_tokens = 0.0, 0
    for rec in enc.records:
        tokens, last = torch.tensor([rec.tokens]), rec.prompt_length - 1
        new, z_new = forward(tokens, last, add=progressive)  # the training model (LoRA B = 0: the base)
        teacher, _ = forward(tokens, last, add=True)
        _, z_plain = forward(tokens, last, add=False)
        per_pos = F.kl_div(F.log_softmax(teacher / T, -1), F.softmax(new / T, -1), reduction="none").sum(
            -1
        )  # KL(new || teacher) at each position
        kl += per_pos[last].item()
        seq += per_pos.sum().item()
        for layer, head in heads:
            head_sq[(layer, head)] += ((z_new[layer][head] - z_plain[layer][head]) ** 2).sum().item()
        scored = [t for t in range(1, len(rec.tokens)) if rec.regions[t] == ii.Region.RESPONSE]
        if scored and scored[-1] + 1 < len(rec.tokens):  # and the token that ends the response (the stop)
            scored.append(scored[-1] + 1)
        logp = torch.log_softmax(new, -1)
        nll -= sum(logp[t - 1, rec.tokens[t]].item() for t in scored)
        n_tokens += len(scored)
    b, d_head = len(enc), hf.config.hidden_size // n_heads
    each = {h: v / (b * d_head) for h, v in head_sq.items()}
    return {"ce": nll / n_tokens, "kl": kl / b, "seq_kl": seq / b, "head": sum(each.values())}, each


@pytest.mark.parametrize("progressive", [False, True])
def test_lr0_first_step_terms_equal_an_independent_computation_of_the_reference(
    tiny_dir, small_data, tmp_path, progressive
):
    """Must hold (issue 17): with lr = 0, the logged terms of the first step are Jiang et al.'s terms
    (KL at the last prompt token, summed sequence KL / batch, per-head gated summed MSE against the
    model without the vector) computed independently. Without the progressive intervention the
    training model has no vector, so its heads equal the model without it (head = 0); with it, the
    KL terms vanish and the head term does not."""
    tok = ii.models.tiny_tokenizer()
    data = [r for r in small_data if len(ii.encode([r], tok, with_response=True)[0].tokens) < 200][:6]
    iv = fake_iv(layer=0, scale=2.0, top_heads=((1, 2), (0, 1), (1, 0)))
    iv.scale = 0.5
    heads = [(0, 1), (1, 0), (1, 2)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        result = finetune(
            str(tiny_dir),
            data,
            tmp_path / "z",
            lr=0.0,
            batch_size=6,
            progress=False,
            iv_guidance=iv,
            progressive=progressive,
        )
    assert any("cannot do the task" in str(w.message) for w in caught)
    want, each = _reference_terms(data, iv, heads, progressive=progressive)
    got = {k: v[0] for k, v in result.components.items() if k != "alpha"}
    assert set(got) == {"ce", "kl", "seq_kl", "head"}
    for key in got:
        assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-5), key
    if progressive:
        assert want["kl"] == pytest.approx(0, abs=1e-6) and want["head"] > 0.01
        assert each[(0, 1)] == pytest.approx(0, abs=1e-10)  # a head before the vector: untouched
    else:
        assert want["kl"] > 0.1 and want["seq_kl"] > 0.1 and want["head"] == 0
    # the loss is CE plus each term times the reference's weight while above its gate
    loss = (
        want["ce"]
        + (20 * want["kl"] if want["kl"] > 0.1 else 0)
        + (0.1 * want["seq_kl"] if want["seq_kl"] > 0.1 else 0)
        + sum(v for v in each.values() if v > 0.01)
    )
    assert result.losses[0] == pytest.approx(loss, rel=1e-4)
    s = result.settings
    assert (s["kl_weight"], s["seq_kl_weight"], s["head_consistency"], s["warmup"]) == (20.0, 0.1, 1.0, 0.1)
    assert s["iv_guidance"][0]["scale"] == 0.5 and s["teacher"]["can_do_task"] is False


def test_warmup_is_linear_then_constant(tiny_dir, small_data, tmp_path):
    """With warm-up the first step has learning rate 0 (transformers' constant-with-warm-up schedule):
    the second step's loss equals the first's; without it they differ."""
    data = small_data[:8]
    kw = dict(batch_size=8, epochs=3, lr=5e-3, progress=False)
    warm = finetune(str(tiny_dir), data, tmp_path / "w", warmup=0.5, **kw)
    flat = finetune(str(tiny_dir), data, tmp_path / "f", **kw)
    assert warm.settings["warmup_steps"] == 2 and flat.settings["warmup"] == 0.0
    assert warm.losses[1] == pytest.approx(warm.losses[0], rel=1e-6)
    assert flat.losses[1] != pytest.approx(flat.losses[0], rel=1e-6)


def test_on_step_sees_each_step_with_the_weights_it_produced(tiny_dir, small_data, tmp_path):
    """on_step(step, model) runs after every optimiser step: step counts 1..n, the model is in training
    mode, and the loss it computes at step k equals the loss the loop logs at step k + 1 (same batch,
    as each epoch here is one batch of all records)."""
    from instr_interp.data.encoding import encode
    from instr_interp.vectors.training import response_labels, response_loss

    data = small_data[:8]
    seen = []

    def on_step(step, model):
        assert model.training
        tok = ii.models.tiny_tokenizer()
        batch = encode(data, tok, format="alpaca", with_response=True, max_length=256).batch(
            list(range(8)), "right"
        )
        labels = response_labels(batch.tokens, batch.regions, batch.attention_mask)
        with torch.no_grad():
            seen.append(
                (step, response_loss(model, batch.tokens, batch.attention_mask.long(), labels).item())
            )

    result = finetune(
        str(tiny_dir), data, tmp_path / "o", batch_size=8, epochs=3, lr=5e-3, format="alpaca",
        on_step=on_step, progress=False,
    )  # fmt: skip
    assert [s for s, _ in seen] == [1, 2, 3]
    for (_, after_k), logged in zip(seen[:-1], result.losses[1:]):
        assert after_k == pytest.approx(logged, rel=1e-5)


def test_without_kl_and_progressive_equals_plain_finetune(tiny_dir, small_data, tmp_path):
    from safetensors.torch import load_file

    data = small_data[:8]
    plain = finetune(str(tiny_dir), data, tmp_path / "plain", epochs=2, batch_size=4, lr=5e-3, progress=False)
    same = finetune(
        str(tiny_dir),
        data,
        tmp_path / "same",
        epochs=2,
        batch_size=4,
        lr=5e-3,
        progress=False,
        iv_guidance=fake_iv(),
        kl_weight=0.0,
        seq_kl_weight=0.0,
        head_consistency=0.0,
        warmup=0.0,
        progressive=False,
    )
    assert same.losses == plain.losses
    a = load_file(str(plain.path / "model.safetensors"))
    c = load_file(str(same.path / "model.safetensors"))
    assert a.keys() == c.keys() and all(torch.equal(a[k], c[k]) for k in a)
    guided = finetune(
        str(tiny_dir),
        data,
        tmp_path / "guided",
        epochs=2,
        batch_size=4,
        lr=5e-3,
        progress=False,
        iv_guidance=fake_iv(),
        kl_weight=0.0,
        seq_kl_weight=0.0,
        head_consistency=0.0,
        warmup=0.0,
        progressive=True,
    )
    assert guided.losses[0] != plain.losses[0]  # step 0 runs with the full vector added


def test_guided_run_saves_a_hook_free_model_equal_to_the_trained_weights(tiny_dir, small_data, tmp_path):
    data = small_data[:12]
    iv = fake_iv(layer=1)
    result = finetune(
        str(tiny_dir),
        data,
        tmp_path / "g",
        epochs=1,
        batch_size=4,
        lr=5e-3,
        progress=False,
        iv_guidance=[iv, fake_iv(layer=1, seed=6, task="u")],
        kl_weight=5.0,
        seq_kl_weight=0.2,
        head_consistency=1.0,
        progressive=True,
        keep_model=True,
    )
    assert result.steps == 3
    assert result.components["alpha"] == pytest.approx([progressive_alpha(s, 3) for s in range(3)])
    assert set(result.components) == {"ce", "alpha", "kl", "seq_kl", "head"}
    trained = result.model
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in trained.modules())
    from transformers import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(result.path, dtype=torch.float32)
    ref_state = trained.state_dict()
    for key, value in saved.state_dict().items():
        assert torch.equal(value, ref_state[key]), key
    tokens = ii.encode(data[:2], ii.models.tiny_tokenizer(), with_response=True).batch([0, 1], "right").tokens
    with torch.no_grad():
        torch.testing.assert_close(
            saved(input_ids=tokens).logits, trained(input_ids=tokens).logits, atol=0, rtol=0
        )
    bridge = ii.load_model(str(result.path), device="cpu")  # reloads as a hooked model, no vector inside
    torch.testing.assert_close(bridge(tokens), saved(input_ids=tokens).logits, atol=1e-4, rtol=1e-4)
    back = FinetuneResult.load(result.path)
    assert back.components == result.components
    s = back.settings
    assert (
        s["kl_weight"],
        s["seq_kl_weight"],
        s["temperature"],
        s["progressive"],
        s["head_consistency"],
    ) == (5.0, 0.2, 2.0, True, 1.0)
    assert s["kl_scaled_by_t2"] is False and s["site"] == "attn_out" and s["warmup"] == 0.1
    assert set(s["teacher"]) >= {"accuracy", "p_answer", "nll", "accuracy_without", "can_do_task"}
    assert [v["task"] for v in s["iv_guidance"]] == ["t", "u"]
    assert s["iv_guidance"][0]["norm"] == pytest.approx(iv.vector.norm().item(), rel=1e-6)
    assert s["head_consistency_heads"] == [[0, 1], [1, 2]]


def test_kl_guidance_keeps_the_last_token_distribution_closer_to_the_reference(
    tiny_dir, small_data, tmp_path
):
    """Behaviour, not just arithmetic: a heavy KL weight leaves the tuned model's last-prompt-token
    distribution nearer the vector-steered reference than plain tuning does."""
    data = small_data[:16]
    iv = fake_iv(layer=1, scale=1.0)
    kwargs = dict(epochs=3, batch_size=8, lr=2e-2, progress=False, keep_model=True)
    plain = finetune(str(tiny_dir), data, tmp_path / "p", **kwargs)
    guided = finetune(
        str(tiny_dir),
        data,
        tmp_path / "k",
        iv_guidance=iv,
        kl_weight=20.0,
        seq_kl_weight=0.0,
        head_consistency=0.0,
        kl_threshold=0.0,
        site="resid_post",
        **kwargs,
    )
    enc = ii.encode(data, ii.models.tiny_tokenizer(), with_response=True)
    b = enc.batch(list(range(len(data))), "right")
    ref = ii.models.tiny_hf_model(seed=0)
    ref_logits = _hand_reference_logits(ref, b.tokens, b.attention_mask.long(), iv.vector, 1, b.last_prompt)
    rows = torch.arange(len(data))

    def kl_to_ref(model):
        with torch.no_grad():
            logits = model(input_ids=b.tokens, attention_mask=b.attention_mask.long()).logits
        return guidance_kl(logits[rows, b.last_prompt], ref_logits[rows, b.last_prompt]).item()

    assert kl_to_ref(guided.model) < 0.5 * kl_to_ref(plain.model)


def test_bad_guidance_is_rejected(tiny_dir, small_data, tmp_path):
    with pytest.raises(ValueError, match="need iv_guidance"):
        finetune(str(tiny_dir), small_data[:4], tmp_path / "x", kl_weight=1.0, progress=False)
    with pytest.raises(ValueError, match="d_model"):
        finetune(
            str(tiny_dir),
            small_data[:4],
            tmp_path / "x",
            progress=False,
            iv_guidance=SimpleNamespace(vector=torch.ones(3), layer=0, top_heads=None),
        )
    with pytest.raises(ValueError, match="outside"):
        finetune(str(tiny_dir), small_data[:4], tmp_path / "x", progress=False, iv_guidance=fake_iv(layer=7))
    with pytest.raises(TypeError, match="InstructionVector"):
        finetune(str(tiny_dir), small_data[:4], tmp_path / "x", progress=False, iv_guidance=[torch.ones(64)])
    with pytest.raises(ValueError, match="does not exist"):
        finetune(
            str(tiny_dir),
            small_data[:4],
            tmp_path / "x",
            progress=False,
            head_consistency=1.0,
            iv_guidance=fake_iv(top_heads=((0, 9),)),
        )
    with pytest.raises(ValueError, match="site"):
        finetune(
            str(tiny_dir), small_data[:4], tmp_path / "x", progress=False, iv_guidance=fake_iv(), site="mlp"
        )
    with pytest.raises(ValueError, match="warmup"):
        finetune(str(tiny_dir), small_data[:4], tmp_path / "x", progress=False, warmup=1.5)


# ---------------------------------------------------------------------------------------------
# Forgetting report


def test_first_response_token_accuracy_matches_per_record_hf_forwards(small_data):
    from instr_interp.vectors.forgetting import format_accuracy

    data = small_data[:7]
    tiny = ii.tiny_model(seed=3)
    hf = ii.models.tiny_hf_model(seed=3)
    enc = ii.encode(data, tiny.tokenizer, with_response=True)
    one = format_accuracy(tiny, enc, batch_size=1, progress=False)
    many = format_accuracy(tiny, enc, batch_size=7, progress=False)
    for i, rec in enumerate(enc.records):
        with torch.no_grad():
            logits = hf(input_ids=torch.tensor([rec.tokens])).logits[0, rec.prompt_length - 1]
        target = rec.tokens[rec.prompt_length]
        assert bool(one["correct"][i]) == (int(logits.argmax()) == target)
        assert one["p_target"][i] == pytest.approx(
            torch.softmax(logits.double(), -1)[target].item(), rel=1e-4
        )
    assert one["correct"].tolist() == many["correct"].tolist()
    assert one["p_target"].to_numpy() == pytest.approx(many["p_target"].to_numpy(), rel=1e-5)


def test_forgetting_report_values_and_round_trip(small_data, tmp_path):
    from instr_interp.vectors.forgetting import (
        ForgettingReport,
        forgetting_report,
        knowledge_records,
        measure_forgetting,
    )
    from instr_interp.vectors.tasks import Task, evaluate_task

    task = Task(
        name="caps",
        instruction="Write the word in capitals.",
        pairs=[("cat", "CAT"), ("dog", "DOG"), ("sun", "SUN"), ("map", "MAP"), ("pen", "PEN")],
    )
    before, after = ii.tiny_model(seed=0), ii.tiny_model(seed=1)
    general = small_data
    report = forgetting_report(before, after, [task], general=general, shots=2, general_n=5, progress=False)
    f = report.to_frame().set_index(["set", "metric"])
    # independent: the NLLs straight from response_nll on hand-built records
    inst = ii.load_instructions(
        [
            {"id": f"i{k}", "category": "caps", "instruction": task.instruction, "input": x, "response": y}
            for k, (x, y) in enumerate(task.pairs)
        ]
    )
    know = ii.load_instructions(
        [
            {"id": f"k{k}", "category": "caps", "instruction": x, "response": y}
            for k, (x, y) in enumerate(task.pairs)
        ]
    )
    for model, col in ((before, "before"), (after, "after")):
        assert f.loc[("caps", "instruction_nll"), col] == pytest.approx(
            ii.response_nll(model, inst, progress=False)["nll"].mean(), rel=1e-6
        )
        assert f.loc[("caps", "knowledge_nll"), col] == pytest.approx(
            ii.response_nll(model, know, progress=False)["nll"].mean(), rel=1e-6
        )
        assert (
            f.loc[("caps", "accuracy"), col] == evaluate_task(model, task, shots=2, progress=False).accuracy
        )
    with_input = [r for r in general if r.input.strip()][:5]
    assert f.loc[("general", "knowledge_nll"), "n"] == 5
    assert f.loc[("general", "knowledge_nll"), "after"] == pytest.approx(
        ii.response_nll(after, knowledge_records(with_input), progress=False)["nll"].mean(), rel=1e-6
    )
    assert (report.frame["change"] == report.frame["after"] - report.frame["before"]).all()
    drops = report.forgetting().set_index("set")
    assert drops.loc["caps", "instruction_nll rise"] == pytest.approx(
        f.loc[("caps", "instruction_nll"), "change"]
    )
    # a model against itself forgets nothing; precomputed scores are reused
    scores = measure_forgetting(before, [task], shots=2, progress=False)
    same = forgetting_report(scores, before, [task], shots=2, progress=False)
    assert (same.to_frame()["change"] == 0).all()
    report.save(tmp_path / "fr")
    back = ForgettingReport.load(tmp_path / "fr")
    pd_equal = back.to_frame().reset_index(drop=True).equals(report.to_frame().reset_index(drop=True))
    assert pd_equal and back.settings == report.settings
    assert len(report.plot().data) == 4
    with pytest.raises(ValueError, match="same tasks"):
        forgetting_report(scores, before, [task], general=general, shots=2, general_n=5, progress=False)
    with pytest.raises(ValueError, match="No record has an input"):
        knowledge_records([{"id": "a", "category": "x", "instruction": "Say hi.", "response": "hi"}])


def test_forgetting_section_reads_demo_results():
    from instr_interp.report.sections_vectors import forgetting_section

    rows = []
    for run, drop in (("plain", 0.4), ("iv-guided", 0.1)):
        for s in ("antonym", "general"):
            for m, before in (
                ("accuracy", 0.8),
                ("format_accuracy", 0.9),
                ("instruction_nll", 1.0),
                ("knowledge_nll", 2.0),
            ):
                after = before - drop if "accuracy" in m else before + drop
                rows.append(
                    {
                        "run": run,
                        "set": s,
                        "kind": "task",
                        "metric": m,
                        "before": before,
                        "after": after,
                        "change": after - before,
                    }
                )
    results = {
        "model": "m",
        "tasks": ["antonym", "synonym"],
        "settings": {"steps_per_task": 5, "kl_weight": 5.0},
        "forgetting": rows,
        "vector_layer": 3,
        "verdict": "IV guidance reduced it.",
        "suppressed": [{"run": "plain", "form": "zero_shot", "original": 0.5, "without": 0.1, "with": 0.4}],
    }
    sections = forgetting_section(results)
    assert len(sections) == 2
    assert "plain: task-1 (antonym) format accuracy -0.40" in sections[0].reading
    assert "iv-guided: task-1 (antonym) format accuracy -0.10" in sections[0].reading
    assert "accuracy 0.10 without, 0.40 with the vector" in sections[1].reading
    table = sections[0].tables[0].set_index(["set", "metric"])
    assert table.loc[("antonym", "knowledge_nll"), "plain"] == pytest.approx(2.4)
    assert table.loc[("antonym", "knowledge_nll"), "before"] == pytest.approx(2.0)
