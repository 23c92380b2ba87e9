"""patch on SmolLM2-135M-Instruct equals plain transformers forward hooks on a separately loaded copy."""

import pytest
import torch

import instr_interp as ii
from instr_interp.engine import tokenize_prompts
from instr_interp.interventions import patch, patch_heads
from tests.patching_reference import hf_activations, hf_patched_logits

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smol():
    return ii.load_model("smollm2-135m-instruct", device="cpu")


@pytest.fixture(scope="module")
def plain():
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        ii.cache_dir() / "smollm2-135m-instruct", dtype=torch.float32, local_files_only=True
    ).eval()


def test_patch_from_a_clean_run_equals_plain_transformers_hooks(smol, plain):
    clean, corrupt = tokenize_prompts(smol, ["The capital of France is", "The capital of Spain is"])
    assert len(clean) == len(corrupt)
    clean, corrupt = torch.tensor([clean]), torch.tensor([corrupt])
    with torch.no_grad():
        _, cache = smol.run_with_cache(clean)
    mask = torch.zeros(1, corrupt.shape[1], dtype=torch.bool)
    mask[0, 3:5] = True
    for kind, layer, units in [
        ("resid_post", 12, None),
        ("attn_out", 20, None),
        ("mlp_out", 5, None),
        ("mlp_post", 17, [3, 700, 1500]),
        ("attn_z", 25, [1, 8]),
    ]:
        src = hf_activations(plain, clean, [(kind, layer)], n_heads=9)
        want = hf_patched_logits(plain, src, corrupt, mask=mask, units=units, n_heads=9)
        with torch.no_grad(), patch(smol, kind, cache, layers=[layer], positions=mask, units=units):
            got = smol(corrupt)
        assert torch.allclose(got, want, atol=1e-3), (kind, (got - want).abs().max())
        assert not torch.allclose(got, smol(corrupt), atol=1e-4)
    with torch.no_grad(), patch_heads(smol, torch.tensor([[25, 1], [25, 8]]), cache, positions=mask):
        heads = smol(corrupt)
    src = hf_activations(plain, clean, [("attn_z", 25)], n_heads=9)
    assert torch.allclose(
        heads, hf_patched_logits(plain, src, corrupt, mask=mask, units=[1, 8], n_heads=9), atol=1e-3
    )
