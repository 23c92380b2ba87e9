import dataclasses
import json
import subprocess
import sys
import textwrap

import pytest
import torch

import instr_interp as ii
from instr_interp.engine import bucket_width, native_forward, plan_batches
from tests.reference import plain_firing


def firing(model, data, **kw):
    (probe,) = ii.run(model, data, [ii.NeuronFiring(activation_sums=True)], progress=False, **kw)
    return probe.result()


@pytest.fixture(scope="module")
def baseline(tiny, data):
    return firing(tiny, data, batch_size=16)


def test_counts_equal_plain_torch(tiny, small_data):
    stats = firing(tiny, small_data, batch_size=5)
    hf = ii.models.tiny_hf_model(seed=0)
    counts, sums, tokens = plain_firing(hf, ii.encode(small_data, tiny.tokenizer))
    assert torch.equal(stats.counts, counts.int())
    assert torch.equal(stats.tokens, tokens)
    torch.testing.assert_close(
        stats.activation_sums, sums, rtol=1e-4, atol=1e-4
    )  # sdpa vs eager attention rounding
    # category pooling is the sum of its records
    for c, cat in enumerate(stats.categories):
        rows = [i for i, rc in enumerate(stats.record_categories) if rc == cat]
        assert torch.equal(stats.category_counts[c], counts[rows].sum(0))


@pytest.mark.parametrize("batch_size, side", [(1, "right"), (7, "left"), (7, "right"), (16, "left")])
def test_identical_across_batch_size_and_padding(tiny, data, baseline, batch_size, side):
    other = firing(tiny, data, batch_size=batch_size, padding_side=side)
    assert torch.equal(other.counts, baseline.counts)
    assert torch.equal(other.category_counts, baseline.category_counts)
    assert torch.equal(other.activation_sums, baseline.activation_sums)


def test_checkpoint_resume_equals_uninterrupted(tiny, data, baseline, tmp_path):
    ckpt = tmp_path / "pass.safetensors"
    firing(tiny, data, batch_size=16, checkpoint=ckpt, checkpoint_every=2, stop_after_batches=5)
    assert ckpt.exists()
    resumed = firing(tiny, data, batch_size=16, checkpoint=ckpt, checkpoint_every=2)
    assert torch.equal(resumed.counts, baseline.counts)
    assert torch.equal(resumed.activation_sums, baseline.activation_sums)
    with pytest.raises(ValueError, match="different pass"):
        firing(tiny, data, batch_size=8, checkpoint=ckpt)


def test_checkpoint_refuses_another_model_and_names_corruption(tiny, data, tmp_path):
    ckpt = tmp_path / "pass.safetensors"
    firing(tiny, data, batch_size=16, checkpoint=ckpt, checkpoint_every=2, stop_after_batches=2)
    other = ii.tiny_model(seed=1)  # same shapes and tokenizer, other weights
    with pytest.raises(ValueError, match=r"different pass: model differ"):
        firing(other, data, batch_size=16, checkpoint=ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[:100])  # truncated, as after a full disk
    with pytest.raises(ValueError, match=r"pass\.safetensors is corrupt.*cannot be read as safetensors"):
        firing(tiny, data, batch_size=16, checkpoint=ckpt)


class Boom(ii.NeuronFiring):
    def update(self, site, act, ctx):
        if site.layer == 1:
            raise RuntimeError("boom")
        super().update(site, act, ctx)


def test_no_hook_left_after_an_exception(tiny, small_data):
    tokens = torch.tensor([[3, 4, 5]])
    before = tiny(tokens)
    with pytest.raises(RuntimeError, match="boom"):
        ii.run(tiny, small_data, [Boom()], progress=False)
    assert not [n for n, hp in tiny.hook_dict.items() if hp.has_hooks()]
    assert torch.equal(tiny(tokens), before)
    assert not [n for n, m in tiny.named_modules() if "forward" in vars(m)]  # native modules undone


def test_fused_attention_matches_the_bridge_and_skips_layers_that_look_inside(tiny):
    """The sdpa path gives the bridge's logits (to fp32 rounding), still fires hook_z, and leaves the
    step-by-step attention in place where a hook reads the pattern."""
    tokens = torch.randint(0, 256, (3, 11))
    reference = tiny(tokens)
    z_seen = []
    hooks = [
        ("blocks.0.attn.hook_pattern", lambda a, hook: None),
        ("blocks.1.attn.hook_z", lambda a, hook: z_seen.append(a.shape)),
    ]
    with tiny.hooks(fwd_hooks=hooks), native_forward(tiny, causal=True):
        assert "forward" not in vars(tiny.blocks[0].attn) and "forward" in vars(tiny.blocks[1].attn)
        fused = tiny(tokens)
    assert z_seen == [torch.Size([3, 11, tiny.cfg.n_heads, tiny.cfg.d_head])]
    assert (fused - reference).abs().max() < 1e-5
    # causal=True drops the mask: the same numbers, as a right-padded row cannot see its padding
    with native_forward(tiny, causal=False):
        masked = tiny(tokens)
    assert (masked - reference).abs().max() < 1e-5
    assert not [n for n, m in tiny.named_modules() if "forward" in vars(m)]


def test_native_norms_are_bit_identical_and_skip_norms_that_are_looked_into(tiny):
    """A norm routed to the wrapped transformers module gives exactly the bridge's output (the
    bridge computes the norm twice and returns the module's own result); hook_in/hook_out still
    fire; a norm with a hook on hook_normalized keeps the bridge's path and its hook fires."""
    tokens = torch.randint(0, 256, (2, 9))
    look = [(f"blocks.{i}.attn.hook_pattern", lambda a, hook: None) for i in range(tiny.cfg.n_layers)]
    seen = []
    watch = [
        ("blocks.0.ln1.hook_normalized", lambda a, hook: seen.append("normalized")),
        ("blocks.1.ln2.hook_out", lambda a, hook: seen.append("out")),
    ]
    with tiny.hooks(fwd_hooks=look):
        reference = tiny(tokens)
    with tiny.hooks(fwd_hooks=look + watch), native_forward(tiny) as n_routed:
        norms = [m for n, m in tiny.named_modules() if "forward" in vars(m)]
        assert len(norms) == n_routed == 2 * tiny.cfg.n_layers  # all but blocks.0.ln1, plus ln_final
        assert "forward" not in vars(tiny.blocks[0].ln1) and "forward" in vars(tiny.ln_final)
        routed = tiny(tokens)
    assert seen == ["normalized", "out"]
    assert torch.equal(routed, reference)


def test_stops_after_the_deepest_layer(tiny, small_data, monkeypatch):
    called = []
    monkeypatch.setattr(type(tiny.unembed), "forward", lambda *a, **k: called.append(1))
    (probe,) = ii.run(tiny, small_data, [ii.NeuronFiring(layers=[0])], progress=False)
    assert not called and probe.result().counts.shape[1] == 1


def test_activation_cache_input_matches_the_pass(tiny, small_data):
    enc = ii.encode(small_data, tiny.tokenizer)
    batch = enc.batch(range(len(enc)))
    names = [s.name for s in ii.hook_names(tiny, "mlp_pre")]
    _, cache = tiny.run_with_cache(
        batch.tokens, attention_mask=batch.attention_mask.long(), names_filter=lambda n: n in names
    )
    probe = ii.NeuronFiring()
    ii.feed_cache([probe], cache, batch, enc, tiny)
    assert torch.equal(probe.result().counts, firing(tiny, enc, batch_size=4).counts)


def test_results_save_and_load(baseline, tmp_path):
    baseline.save(tmp_path / "firing")
    back = ii.FiringStats.load(tmp_path / "firing")
    assert torch.equal(back.counts, baseline.counts) and back.ids == baseline.ids
    manifest = json.loads((tmp_path / "firing" / "manifest.json").read_text())
    assert manifest["kind"] == "FiringStats" and "torch" in manifest["versions"]
    fig = baseline.plot_layers()
    assert len(fig.data) == len(baseline.categories)


def test_plan_batches_is_a_partition(tiny, data):
    enc = ii.encode(data, tiny.tokenizer)
    plan = plan_batches(enc, 7)
    seen = sorted(i for _, ids in plan for i in ids)
    assert seen == list(range(len(enc)))
    assert all(
        max(len(enc[i].tokens) for i in ids) <= w == bucket_width(len(enc[ids[0]].tokens)) for w, ids in plan
    )
    widths = [w for w, _ in plan]
    assert widths == sorted(widths, reverse=True) and len(set(widths)) > 1  # widest bucket first
    assert [bucket_width(n) for n in (1, 16, 17, 256, 257, 1000, 1100)] == [16, 16, 32, 256, 288, 1024, 1152]


def test_moe_models_have_no_dense_neurons():
    with pytest.raises(ValueError, match="MoE blocks"):
        ii.run(ii.tiny_model(moe=True), ii.hexainst()[:2], [ii.NeuronFiring()], progress=False)


DIST_SCRIPT = textwrap.dedent(
    """
    import sys, torch, torch.distributed as dist
    import instr_interp as ii
    dist.init_process_group("gloo")
    model = ii.tiny_model(seed=0)
    (probe,) = ii.run(model, ii.hexainst().sample(8, seed=2), [ii.NeuronFiring(activation_sums=True)],
                      batch_size=5, progress=False)
    if dist.get_rank() == 0:
        probe.result().save(sys.argv[1])
    dist.barrier()  # no rank tears the group down while another still uses it
    dist.destroy_process_group()
    """
)


@pytest.mark.distributed
def test_two_torchrun_processes_equal_one(tiny, tmp_path):
    script = tmp_path / "dist.py"
    script.write_text(DIST_SCRIPT)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",  # a free port: a fixed one can clash with another job on the machine
        "--nproc_per_node",
        "2",
        str(script),
        str(tmp_path / "out"),
    ]
    out = subprocess.run(cmd, timeout=300, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    two = ii.FiringStats.load(tmp_path / "out")
    one = firing(tiny, ii.hexainst().sample(8, seed=2), batch_size=5)
    assert torch.equal(two.counts, one.counts)
    assert torch.equal(two.category_counts, one.category_counts)
    assert torch.equal(two.activation_sums, one.activation_sums)


def test_non_finite_weights_raise_instead_of_counting(data):
    broken = ii.tiny_model(seed=0)
    with torch.no_grad():  # one NaN weight in layer 0's attention: every later activation is NaN
        next(p for n, p in broken.named_parameters() if "attn" in n and p.dim() == 2)[0, 0] = float("nan")
    with pytest.raises(
        FloatingPointError, match=r"activations at blocks\.1\.mlp\.hook_pre hold \d+ non-finite"
    ):
        ii.run(broken, data[:4], [ii.NeuronFiring()], progress=False)
    with pytest.raises(FloatingPointError, match="non-finite"):
        ii.response_nll(broken, data[:4], progress=False)
    with pytest.raises(FloatingPointError, match="non-finite"):
        ii.evaluate_task(broken, ii.icl_task("antonym"), n=4, progress=False)


def test_non_finite_weights_stop_attribution(data):
    broken = ii.tiny_model(seed=0)
    with torch.no_grad():
        next(p for n, p in broken.named_parameters() if "attn" in n and p.dim() == 2)[0, 0] = float("nan")
    rec = dataclasses.replace(data[0], response="Yes.")
    with pytest.raises(FloatingPointError, match="response-token probabilities hold"):
        ii.attribute(broken, rec, progress=False)
