"""The bundled real checkpoints: offline loading, fidelity to plain transformers, exact statistics."""

import socket
import time

import pytest
import torch

import instr_interp as ii
from instr_interp.engine import bucket_width
from instr_interp.models import BUNDLED, _gguf_file, cache_dir
from tests.reference import assert_tokenizer_as_transformer_lens_builds_it, plain_firing

pytestmark = pytest.mark.slow

PROMPTS = ["Classify the sentiment: I loved this film.", "Write a haiku about the sea.\n\nMake it calm."]


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access refused by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _load_offline(alias):
    with pytest.MonkeyPatch.context() as mp:

        def refuse(*args, **kwargs):
            raise OSError("network access refused by the test")

        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket, "getaddrinfo", refuse)
        return ii.load_model(alias, device="cpu")


@pytest.fixture(scope="module")
def smol():
    return _load_offline("smollm2-135m-instruct")


def _gguf_reference(alias, attn):
    from transformers import AutoConfig, AutoModelForCausalLM

    gguf = _gguf_file(BUNDLED[alias])
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if BUNDLED[alias].architecture:
        config.architectures = [BUNDLED[alias].architecture]
    return AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, config=config, dtype=torch.float32, attn_implementation=attn
    ).eval()


def _max_logit_diff(model, hf):
    tok = model.tokenizer
    worst = 0.0
    for prompt in PROMPTS:
        ids = tok(prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            worst = max(worst, (model(ids) - hf(input_ids=ids).logits).abs().max().item())
    return worst


def test_cached_reload_is_fast_and_offline(smol, no_network):
    start = time.perf_counter()
    again = ii.load_model("smollm2-135m-instruct", device="cpu")
    assert time.perf_counter() - start < 10
    assert (cache_dir() / "smollm2-135m-instruct" / "model.safetensors").exists()
    facts = ii.model_facts(again)
    assert (facts.n_layers, facts.d_mlp, facts.n_heads, facts.n_kv_heads) == (30, 1536, 9, 3)
    assert facts.chat_template and not facts.moe
    assert_tokenizer_as_transformer_lens_builds_it(again.tokenizer, cache_dir() / "smollm2-135m-instruct")


def test_smollm2_logits_equal_plain_transformers_gguf_load(smol):
    assert _max_logit_diff(smol, _gguf_reference("smollm2-135m-instruct", "eager")) <= 1e-4
    # transformers' default attention kernel (sdpa) rounds differently from the eager path the bridge uses
    assert _max_logit_diff(smol, _gguf_reference("smollm2-135m-instruct", "sdpa")) <= 1e-4


def test_smollm2_firing_equals_plain_torch(smol, data):
    sample = data.sample(per_category=3, seed=5)
    (probe,) = ii.run(smol, sample, [ii.NeuronFiring()], batch_size=6, progress=False)
    from transformers import AutoModelForCausalLM

    stats = probe.result()
    encoded = ii.encode(sample, smol.tokenizer)
    path = cache_dir() / "smollm2-135m-instruct"
    # The engine runs attention through transformers' sdpa kernel (engine.native_forward), each record
    # right-padded to its bucket width: the same computation as this plain load with the default
    # kernel and the same padding, so the counts are identical.
    hf = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa").eval()
    counts, _, tokens = plain_firing(hf, encoded, width=bucket_width)
    assert torch.equal(stats.tokens, tokens)
    assert torch.equal(stats.counts, counts.int())
    # Unpadded, the kernel blocks the key positions of the last rows differently: measured 1 of
    # 829,440 counts differs by 1. The eager kernel (what the bridge computes when a hook needs the
    # attention pattern) rounds differently again (6 counts).
    for kernel in ("sdpa", "eager"):
        hf = AutoModelForCausalLM.from_pretrained(
            path, dtype=torch.float32, attn_implementation=kernel
        ).eval()
        counts, _, _ = plain_firing(hf, encoded)
        differ = stats.counts != counts.int()
        assert differ.float().mean() < 1e-4 and (stats.counts - counts.int()).abs().max() <= 1


def test_smollm2_firing_identical_across_batching(smol, data):
    sample = data.sample(per_category=4, seed=7)
    results = []
    for batch_size, side in [(1, "right"), (7, "left"), (16, "right"), (16, "left")]:
        (probe,) = ii.run(
            smol, sample, [ii.NeuronFiring()], batch_size=batch_size, padding_side=side, progress=False
        )
        results.append(probe.result())
    for other in results[1:]:
        assert torch.equal(other.counts, results[0].counts)
        assert torch.equal(other.category_counts, results[0].category_counts)


def test_gemma_loads_offline_and_matches_plain_transformers():
    gemma = _load_offline("gemma-3-270m")
    facts = ii.model_facts(gemma)
    assert (facts.n_layers, facts.d_mlp, facts.n_heads, facts.n_kv_heads) == (18, 2048, 4, 1)
    assert not facts.chat_template
    assert_tokenizer_as_transformer_lens_builds_it(gemma.tokenizer, cache_dir() / "gemma-3-270m")
    assert _max_logit_diff(gemma, _gguf_reference("gemma-3-270m", "eager")) <= 1e-4


def test_smollm2_isn_sets_equal_independent_top_one_percent(smol, data):
    """ISNs from find_isns equal an independent plain-transformers computation: gate_proj(x) > 0 over
    the instruction + input tokens of the chat-formatted prompt, top 1% by frequency, ties by the
    summed activation (raw, or its average rank within the layer divided by the width: the default),
    then index, ranked here with pandas and numpy's lexsort."""
    import numpy as np
    import pandas as pd
    from transformers import AutoModelForCausalLM

    sample = data.sample(per_category=2, seed=9)
    hf = AutoModelForCausalLM.from_pretrained(
        cache_dir() / "smollm2-135m-instruct", dtype=torch.float32, attn_implementation="sdpa"
    ).eval()
    counts, sums, _ = plain_firing(hf, ii.encode(sample, smol.tokenizer), width=bucket_width)
    k = int(0.01 * counts[0].numel())
    for tie_break in ("raw", "layer_rank"):
        sets = ii.find_isns(smol, sample, top=0.01, tie_break=tie_break, batch_size=5, progress=False)
        for r, rec in enumerate(sample):
            c = counts[r].flatten().numpy()
            if tie_break == "raw":
                key = sums[r].flatten().numpy()
            else:
                key = pd.DataFrame(sums[r].numpy()).rank(axis=1, method="average").to_numpy().flatten() / 1536
            order = np.lexsort((np.arange(len(c)), -key, -c))[:k]
            expected = sorted((int(i) // 1536, int(i) % 1536) for i in order)
            assert sorted(map(tuple, sets.instruction_sets[rec.id].tolist())) == expected, (tie_break, rec.id)
