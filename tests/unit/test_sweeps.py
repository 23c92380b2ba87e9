"""patch_sweep against TransformerLens's patching functions and one-unit-at-a-time patching."""

import pytest
import torch

import instr_interp as ii
from instr_interp import compat
from instr_interp.engine import tokenize_prompts
from instr_interp.engine.likelihood import response_nll
from instr_interp.interventions import patch
from instr_interp.sweeps import PatchSweep, patch_sweep

PROMPTS = ["cold is", "up to a", "big dog", "one two"]  # equal length under the byte tokenizer
GOOD, BAD = [104, 105, 106, 107], [50, 51, 52, 53]


@pytest.fixture(scope="module")
def pair():
    return ii.tiny_model(seed=0), ii.tiny_model(seed=1)


def logit_diff(logits):
    at = logits[:, -1]
    rows = torch.arange(len(at))
    return at[rows, torch.tensor(GOOD)] - at[rows, torch.tensor(BAD)]


def tl_reference(base, other, fn):
    tokens = torch.tensor(tokenize_prompts(base, PROMPTS))
    with torch.no_grad():
        _, cache = other.run_with_cache(tokens)
        return fn(base, tokens, cache, logit_diff, reduce="none").values


def test_head_sweep_equals_transformer_lens(pair):
    base, other = pair
    want = tl_reference(base, other, compat.tl_patching().get_act_patch_attn_head_out_all_pos)
    got = patch_sweep(
        base, PROMPTS, source=other, over="head", metric="logit_diff", answers=(GOOD, BAD), progress=False
    )
    assert got.values.shape == (1, 2, 4, 4)
    assert torch.allclose(got.values[0].float(), want, atol=1e-4)
    assert torch.allclose(
        got.baseline[0].float(), logit_diff(base(torch.tensor(tokenize_prompts(base, PROMPTS)))), atol=1e-4
    )


def test_layer_pos_sweep_equals_transformer_lens(pair):
    base, other = pair
    want = tl_reference(base, other, compat.tl_patching().get_act_patch_resid_pre)
    got = patch_sweep(
        base,
        PROMPTS,
        source=other,
        over="layer_pos",
        site="resid_pre",
        metric="logit_diff",
        answers=(GOOD, BAD),
        batch_size=3,
        progress=False,
    )
    assert torch.allclose(got.values[0].float(), want, atol=1e-4)
    assert got.axes["pos"] == list(range(want.shape[1]))


def test_layer_sweep_equals_patch_inside_response_nll(pair, small_data):
    base, other = pair
    data = small_data[:3]
    got = patch_sweep(
        base,
        data,
        source=other,
        over="layer",
        site="mlp_out",
        positions="instruction",
        metric="nll",
        progress=False,
    )
    for layer in range(2):
        with patch(base, "mlp_out", other, layers=[layer], positions="instruction"):
            want = response_nll(base, data, progress=False)["nll"].to_numpy()
        assert got.values[0, layer].numpy() == pytest.approx(want, rel=1e-4)
    assert got.baseline[0].numpy() == pytest.approx(
        response_nll(base, data, progress=False)["nll"].to_numpy(), rel=1e-4
    )
    assert got.source_values[0].numpy() == pytest.approx(
        response_nll(other, data, progress=False)["nll"].to_numpy(), rel=1e-4
    )


def test_neuron_sweep_is_batched_and_equals_one_neuron_at_a_time(pair, small_data):
    base, other = pair
    data = small_data[:3]
    units = [0, 5, 17, 64, 127]
    got = patch_sweep(
        base, data, source=other, over="neuron", layer=1, units=units, metric=["nll", "kl"], progress=False
    )
    small = patch_sweep(
        base,
        data,
        source=other,
        over="neuron",
        layer=1,
        units=units,
        metric=["nll", "kl"],
        unit_batch=2,
        progress=False,
    )
    assert torch.allclose(got.values, small.values, atol=1e-6)
    for j, n in enumerate(units):
        with patch(base, "mlp_post", other, layers=[1], units=[n]):
            want = response_nll(base, data, progress=False)["nll"].to_numpy()
        assert got.values[0, j].numpy() == pytest.approx(want, rel=1e-4)
    assert bool((got.values[1] >= 0).all())  # KL to the source


def test_expert_sweep_with_zero_equals_dropping_experts():
    """A zero source sets the expert's routing weight to 0 after top-k: ablate_experts' "drop" mode."""
    moe = ii.tiny_model(seed=0, moe="qwen2_moe")
    data = ii.hexainst()[:2]
    got = patch_sweep(moe, data, source="zero", over="expert", layer=0, metric="nll", progress=False)
    for e in range(4):
        with ii.ablate_experts(moe, torch.tensor([[0, e]]), mode="drop"):
            want = response_nll(moe, data, progress=False)["nll"].to_numpy()
        assert got.values[0, e].numpy() == pytest.approx(want, rel=1e-4)


def test_result_frame_top_plot_and_round_trip(pair, small_data, tmp_path):
    base, other = pair
    sweep = patch_sweep(
        base, small_data[:3], source=other, over="head", metric=["nll", "first_token", "stop"], progress=False
    )
    frame = sweep.to_frame()
    assert list(frame.columns[:3]) == ["metric", "layer", "head"] and len(frame) == 3 * 8
    assert bool((frame.ci_low <= frame.effect).all() and (frame.effect <= frame.ci_high).all())
    top = sweep.top(3, metric="stop")
    assert len(top) == 3 and top.effect.abs().is_monotonic_decreasing
    assert sweep.plot("nll").data[0].type == "heatmap"
    back = ii.load(sweep.save(tmp_path / "sweep"))
    assert isinstance(back, PatchSweep) and torch.equal(back.values, sweep.values) and back.axes == sweep.axes


def test_bad_sweep_input(pair, small_data):
    base, other = pair
    with pytest.raises(ValueError, match="over must be"):
        patch_sweep(base, small_data[:2], source=other, over="block")
    with pytest.raises(ValueError, match="Unknown metric"):
        patch_sweep(base, small_data[:2], source=other, metric="loss")
    with pytest.raises(ValueError, match="needs source=<a model>"):
        patch_sweep(base, small_data[:2], source="zero", metric="kl")
    with pytest.raises(ValueError, match="answers"):
        patch_sweep(base, small_data[:2], source=other, metric="logit_diff")
    with pytest.raises(ValueError, match="raw prompts"):
        patch_sweep(base, PROMPTS, source=other, metric="nll")
    with pytest.raises(ValueError, match="MoE"):
        patch_sweep(base, small_data[:2], source=other, over="expert", layer=0)
    with pytest.raises(ValueError, match="equal token length"):
        patch_sweep(base, PROMPTS + ["longer prompt"], source=other, over="layer_pos", metric="kl")


def test_progress_false_draws_no_bar_not_even_transformer_lens_own(tiny, capsys):
    from transformer_lens import patching

    data = ii.hexainst()[:2]
    original = patching.tqdm
    ii.patch_sweep(tiny, data, source="zero", over="layer", metric="nll", progress=False)
    assert "it/s" not in capsys.readouterr().err and patching.tqdm is original  # restored
    ii.patch_sweep(tiny, data, source="zero", over="layer", metric="nll", progress=True)
    assert "it/s" in capsys.readouterr().err
