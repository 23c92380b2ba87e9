"""patch / patch_heads against plain transformers forward hooks, inside every pass, and their cleanup."""

import pytest
import torch

import instr_interp as ii
from instr_interp import compat
from instr_interp.engine.likelihood import response_nll
from instr_interp.interventions import ablate_neurons, patch, patch_heads
from instr_interp.models import tiny_hf_model
from tests.patching_reference import hf_activations, hf_patched_logits

TOKENS = torch.tensor([[1, 5, 9, 4, 7, 3], [2, 8, 6, 4, 1, 9]])


@pytest.fixture(scope="module")
def pair():
    return ii.tiny_model(seed=0), ii.tiny_model(seed=1)


def no_hooks_left(model) -> bool:
    return not compat.has_hooks(model) and not any(compat.has_hooks(h) for h in model.hook_dict.values())


@pytest.mark.parametrize("kind", ["resid_post", "attn_out", "mlp_out", "mlp_post", "attn_z"])
def test_cross_model_patch_equals_plain_transformers_hooks(pair, kind):
    base, other = pair
    mask = torch.tensor([[0, 1, 1, 0, 0, 1], [1, 0, 0, 0, 1, 1]]).bool()
    units = [1, 3] if kind in ("mlp_post", "attn_z") else None
    src = hf_activations(tiny_hf_model(seed=1), TOKENS, [(kind, 0)], n_heads=4)
    want = hf_patched_logits(tiny_hf_model(seed=0), src, TOKENS, mask=mask, units=units, n_heads=4)
    with torch.no_grad(), patch(base, kind, other, layers=[0], positions=mask, units=units):
        got = base(TOKENS)
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(got, base(TOKENS), atol=1e-3)  # the patch changed something
    assert no_hooks_left(base) and no_hooks_left(other)


def test_patch_composes_with_ablate_neurons_like_plain_hooks(pair):
    base, other = pair
    src = hf_activations(tiny_hf_model(seed=1), TOKENS, [("resid_post", 0)], n_heads=4)
    want = hf_patched_logits(tiny_hf_model(seed=0), src, TOKENS, zero_neurons={1: [2, 7]}, n_heads=4)
    with (
        torch.no_grad(),
        ablate_neurons(base, torch.tensor([[1, 2], [1, 7]])),
        patch(base, "resid_post", other, layers=[0]),
    ):
        got = base(TOKENS)
    assert torch.allclose(got, want, atol=1e-5)


def test_every_block_from_the_source_gives_target_norm_and_unembedding_of_source_stream(pair):
    base, other = pair
    with torch.no_grad():
        _, cache = other.run_with_cache(TOKENS)
        want = base.unembed(base.ln_final(cache["blocks.1.hook_resid_post"]))
        with patch(base, "resid_post", other):
            got = base(TOKENS)
    assert torch.equal(got, want)


def test_patching_nothing_reproduces_the_target(pair):
    base, other = pair
    with torch.no_grad():
        want = base(TOKENS)
        with patch(base, ["resid_post", "attn_z"], other, positions=torch.zeros(6, dtype=torch.bool)):
            got = base(TOKENS)
        with patch(base, "mlp_post", other, units=torch.tensor([], dtype=torch.long)):
            got2 = base(TOKENS)
    assert torch.equal(got, want) and torch.equal(got2, want)


def test_stored_cache_and_constant_sources(pair):
    base, other = pair
    with torch.no_grad():
        _, cache = other.run_with_cache(TOKENS)
        with patch(base, "mlp_out", other, layers=[1]):
            cross = base(TOKENS)
        with patch(base, "mlp_out", cache, layers=[1]):
            stored = base(TOKENS)
        with patch(base, "blocks.1.hook_mlp_out", {"blocks.1.hook_mlp_out": cache["blocks.1.hook_mlp_out"]}):
            named = base(TOKENS)
        with patch(base, "mlp_out", "zero", layers=[1]):
            zero = base(TOKENS)
        with patch(base, "mlp_out", torch.zeros(64), layers=[1]):
            zero_vec = base(TOKENS)
        means = torch.zeros(2, 64)
        with patch(base, "mlp_out", "mean", layers=[1], means=means):
            zero_mean = base(TOKENS)
    assert torch.equal(cross, stored) and torch.equal(stored, named)
    assert torch.equal(zero, zero_vec) and torch.equal(zero, zero_mean)


def test_hooks_are_removed_after_an_error_inside_and_inside_the_forward(pair):
    base, other = pair
    want = base(TOKENS)
    with pytest.raises(KeyError):
        with patch(base, "resid_post", other, positions="last", last=torch.tensor([1, 2])):
            raise KeyError("boom")
    assert no_hooks_left(base) and no_hooks_left(other)
    with pytest.raises(ValueError, match="have shape"):
        with patch(base, "mlp_out", {"blocks.0.hook_mlp_out": torch.zeros(1, 3, 64)}, layers=[0]):
            base(TOKENS)  # the stored activations belong to other tokens
    assert no_hooks_left(base) and torch.equal(base(TOKENS), want)


def test_bad_input_is_refused_up_front(pair):
    base, other = pair
    with pytest.raises(ValueError, match="Unknown hook site kind"):
        with patch(base, "resid_middle", other):
            pass
    with pytest.raises(ValueError, match="no hook point"):
        with patch(base, "blocks.0.hook_nothing", other):
            pass
    with pytest.raises(ValueError, match="layer"):
        with patch(base, "resid_post", other, layers=[5]):
            pass
    with pytest.raises(ValueError, match="positions"):
        with patch(base, "resid_post", other, positions="middle"):
            pass
    with pytest.raises(ValueError, match="same architecture"):
        with patch(base, "resid_post", ii.tiny_model(seed=1, d_model=32, n_heads=2, n_kv_heads=1)):
            pass
    with pytest.raises(ValueError, match="itself"):
        with patch(base, "resid_post", base):
            pass
    with pytest.raises(ValueError, match="end in"):
        with patch(base, "resid_post", torch.zeros(7), layers=[0]):
            pass
    with pytest.raises(ValueError, match="means"):
        with patch(base, "mlp_out", "mean"):
            pass
    with pytest.raises(ValueError, match="declared none"):
        with patch(base, "resid_post", other, positions="last"):
            base(TOKENS)
    with pytest.raises(ValueError, match="regions"):
        with patch(base, "resid_post", other, positions="instruction"):
            base(TOKENS)
    assert no_hooks_left(base) and no_hooks_left(other)


def test_patch_inside_response_nll_at_regions_equals_plain_hooks(pair, small_data):
    base, other = pair
    data = small_data[:3]
    with patch(base, "mlp_out", other, layers=[1], positions="instruction"):
        got = response_nll(base, data, batch_size=2, progress=False)
    enc = ii.encode(data, base.tokenizer, with_response=True)
    want = []
    for rec in enc:
        ids = torch.tensor([rec.tokens])
        src = hf_activations(tiny_hf_model(seed=1), ids, [("mlp_out", 1)], n_heads=4)
        mask = torch.tensor([rec.regions]) == ii.Region.INSTRUCTION
        logits = hf_patched_logits(tiny_hf_model(seed=0), src, ids, mask=mask, n_heads=4)
        logp = torch.log_softmax(logits[0, :-1].double(), -1)
        resp = torch.tensor(rec.regions[1:]) == ii.Region.RESPONSE
        want.append(-logp[torch.arange(len(ids[0]) - 1), ids[0, 1:]][resp].mean().item())
    assert got["nll"].tolist() == pytest.approx(want, rel=1e-4)


def test_patch_heads_mean_and_source_and_per_row(pair):
    base, other = pair
    last = torch.tensor([3, 5])
    means = torch.randn(2, 4, 16, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[0, 3] = mask[1, 5] = True
    src = hf_activations(tiny_hf_model(seed=1), TOKENS, [("attn_z", 1)], n_heads=4)
    want = hf_patched_logits(tiny_hf_model(seed=0), src, TOKENS, mask=mask, units=[2], n_heads=4)
    with torch.no_grad(), patch_heads(base, torch.tensor([[1, 2]]), other, last=last):
        got = base(TOKENS)
    assert torch.allclose(got, want, atol=1e-5)
    const = {("attn_z", 0): means[0].expand(2, 6, 4, 16)}
    want = hf_patched_logits(tiny_hf_model(seed=0), const, TOKENS, mask=mask, units=[0, 3], n_heads=4)
    with torch.no_grad(), patch_heads(base, torch.tensor([[0, 0], [0, 3]]), "mean", means=means, last=last):
        got = base(TOKENS)
    assert torch.allclose(got, want, atol=1e-5)
    # rows: head 0 in row 0 only, head 3 in row 1 only == each row patched on its own
    with (
        torch.no_grad(),
        patch_heads(
            base, torch.tensor([[0, 0], [0, 3]]), "mean", means=means, last=last, rows=torch.tensor([0, 1])
        ),
    ):
        got = base(TOKENS)
    with torch.no_grad(), patch_heads(base, torch.tensor([[0, 0]]), "mean", means=means, last=last[:1]):
        row0 = base(TOKENS[:1])
    with torch.no_grad(), patch_heads(base, torch.tensor([[0, 3]]), "mean", means=means, last=last[1:]):
        row1 = base(TOKENS[1:])
    assert torch.allclose(got, torch.cat([row0, row1]), atol=1e-5)
    with pytest.raises(ValueError, match="means"):
        with patch_heads(base, torch.tensor([[0, 0]]), "mean"):
            pass
    with pytest.raises(ValueError, match="heads must hold"):
        with patch_heads(base, torch.tensor([[0, 4]]), "zero"):
            pass


def test_cross_model_patch_in_kv_cached_generation_equals_rerunning_rows(pair):
    base, other = pair
    data = ii.hexainst()[:2]
    with patch(base, "resid_post", other, layers=[0], positions="all"):
        out = ii.generate_responses(base, data, max_new_tokens=5, progress=False)
    enc = ii.encode(data, base.tokenizer)
    for rec, got in zip(enc, out):
        seq = list(rec.tokens)
        new = []
        for _ in range(5):
            ids = torch.tensor([seq])
            with torch.no_grad(), patch(base, "resid_post", other, layers=[0]):
                nxt = int(base(ids)[0, -1].argmax())
            if nxt in ii.engine.generation.stop_token_ids(base):
                break
            new.append(nxt)
            seq.append(nxt)
        assert got.meta["generated_tokens"] == len(new)
        assert got.response == base.tokenizer.decode(new, skip_special_tokens=True)
    assert no_hooks_left(base) and no_hooks_left(other)


def test_patch_last_inside_evaluate_task(pair):
    base, other = pair
    task = ii.icl_task("antonym")
    a = ii.evaluate_task(base, task, shots=0, n=6, progress=False)
    with patch(base, "resid_post", other, positions="last"):
        b = ii.evaluate_task(base, task, shots=0, n=6, progress=False)
    assert a is not None and b is not None  # runs: 'last' is declared by the row pass


def test_cross_model_patch_under_run_with_hooks_and_run_with_cache(pair):
    base, other = pair
    with torch.no_grad():
        with patch(base, "mlp_out", other, layers=[0]):
            want = base(TOKENS)
            hooked = base.run_with_hooks(TOKENS)
            cached, _ = base.run_with_cache(TOKENS)
        _, cache = base.run_with_cache(TOKENS)
        with patch(base, "resid_post", other, layers=[1]), pytest.raises(ValueError, match="did not run"):
            base(cache["blocks.1.hook_resid_pre"], start_at_layer=1)
    assert torch.equal(hooked, want) and torch.equal(cached, want)
    assert no_hooks_left(base)
