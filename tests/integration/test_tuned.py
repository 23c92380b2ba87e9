"""gemma-3-270m-tuned: the shipped adapter merged into the bundled base, offline; its weights moved
where the tune trained (MLP and attention), and it follows unseen instructions better than its base."""

import json
import time

import pytest
import torch
from safetensors.torch import load_file

import instr_interp as ii
from instr_interp.models import TUNED, alias_dir
from tests.integration.test_bundled import _load_offline

pytestmark = pytest.mark.slow

ADAPTER = TUNED["gemma-3-270m-tuned"].folder


@pytest.fixture(scope="module")
def pair():
    _load_offline("gemma-3-270m-tuned")  # merges once if needed
    start = time.perf_counter()
    tuned = _load_offline("gemma-3-270m-tuned")
    seconds = time.perf_counter() - start
    return _load_offline("gemma-3-270m"), tuned, seconds


def test_tuned_loads_offline_in_seconds_after_the_first_build(pair):
    assert pair[2] < 60, f"a cached load took {pair[2]:.0f} s"


def test_merged_weights_are_base_plus_the_adapters_low_rank_update():
    """Independent of peft: W = W0 + (alpha / r) * B @ A from the adapter file, for every module
    the adapter holds, and the MLP and attention matrices (W_in/W_out/W_Q/W_K) all moved."""
    base = load_file(str(alias_dir("gemma-3-270m") / "model.safetensors"))
    merged = load_file(str(alias_dir("gemma-3-270m-tuned") / "model.safetensors"))
    config = json.loads((ADAPTER / "adapter_config.json").read_text())
    scale = config["lora_alpha"] / config["r"]
    adapter = load_file(str(ADAPTER / "adapter_model.safetensors"))
    modules = {k.removesuffix(".lora_A.weight") for k in adapter if k.endswith(".lora_A.weight")}
    assert {m.rsplit(".", 1)[-1] for m in modules} >= {
        "q_proj",
        "k_proj",
        "up_proj",
        "gate_proj",
        "down_proj",
    }
    for module in modules:
        key = module.removeprefix("base_model.model.") + ".weight"
        expected = base[key] + scale * adapter[f"{module}.lora_B.weight"] @ adapter[f"{module}.lora_A.weight"]
        assert torch.allclose(merged[key], expected, atol=1e-6), key
    for kind in ("mlp.up_proj", "mlp.down_proj", "self_attn.q_proj", "self_attn.k_proj"):
        key = f"model.layers.5.{kind}.weight"
        assert (merged[key] - base[key]).abs().max() > 1e-4, key


def test_tuned_has_lower_reference_nll_on_unseen_instructions(pair):
    """Issue 13's target: at least 0.3 nats/token lower on average and lower in at least 5 of 6
    categories, on analysis records (which share no instruction with the tuning set) outside the
    development split that chose the number of steps, one prompt format for both."""
    base, tuned, _ = pair
    log = json.loads((ADAPTER / "training.json").read_text())
    sample = ii.hexainst().split(**log["dev"]["split"])[0].sample(per_category=8, seed=3)
    nll = {
        key: ii.response_nll(model, sample, progress=False).groupby("category").nll.mean()
        for key, model in (("base", base), ("tuned", tuned))
    }
    drop = nll["base"] - nll["tuned"]
    assert drop.mean() >= 0.3, drop
    assert (drop > 0).sum() >= 5, drop


def test_the_training_log_keeps_the_held_out_tenth_out_of_training():
    log = json.loads((ADAPTER / "training.json").read_text())
    train, held_out = ii.tuneset().split(**log["held_out"]["split"])
    assert list(held_out.ids) == log["held_out"]["ids"]
    assert log["train_records"] == len(train) and not set(train.ids) & set(held_out.ids)
    assert log["adapter_sha256"] == TUNED["gemma-3-270m-tuned"].sha256
