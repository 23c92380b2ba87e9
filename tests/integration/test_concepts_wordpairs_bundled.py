"""FFN concepts and word pairs on the bundled real models, against independent computations."""

import numpy as np
import pytest
import torch

import instr_interp as ii
from instr_interp.shift.concepts import ffn_concepts
from instr_interp.shift.vocabulary import INSTRUCTION_VERBS, frequent_words, word_vectors
from instr_interp.shift.wordpairs import attention_norm_gain, head_qk, head_word_pairs, model_word_pairs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smol():
    return ii.load_model("smollm2-135m-instruct", device="cpu")


@pytest.fixture(scope="module")
def gemma():
    return ii.load_model("gemma-3-270m", device="cpu")


def test_smollm2_concept_svd_matches_numpy(smol):
    layer = 12
    c = ffn_concepts(smol, layer, vocabulary=frequent_words(2000))
    down = smol.original_model.model.layers[layer].mlp.down_proj.weight.detach().numpy().astype(np.float64).T
    assert down.shape == (1536, 576)
    centred = down - down.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    assert c.n_components == 300
    np.testing.assert_allclose(c.singular_values.numpy(), s[:300], rtol=1e-4)
    np.testing.assert_allclose(c.explained_variance_ratio.numpy(), (s**2 / (s**2).sum())[:300], rtol=1e-4)
    signs = np.sign((c.components.numpy() * vt[:300]).sum(1))
    np.testing.assert_allclose(c.components.numpy(), vt[:300] * signs[:, None], atol=2e-4)
    # top words: L2-normalised mean unembedding rows, ranked by |PC . e|
    wv = word_vectors(smol, frequent_words(2000))
    unit = wv.vectors.double() / wv.vectors.double().norm(dim=1, keepdim=True)
    scores = torch.from_numpy(vt[0] * signs[0]) @ unit.T
    assert c.top_words(0) == [wv.words[i] for i in scores.abs().argsort(descending=True)[:50].tolist()]


def test_word_vectors_use_the_mid_sentence_token(smol):
    tok = smol.tokenizer
    wv = word_vectors(smol, ["translate", "xylophone"], matrix="embed")
    tid = tok.convert_tokens_to_ids("Ġtranslate")
    assert tok(" translate", add_special_tokens=False)["input_ids"] == [tid]
    torch.testing.assert_close(wv.vectors[0], smol.W_E[tid].detach())
    ids = tok(" xylophone", add_special_tokens=False)["input_ids"]
    assert len(ids) == 2 and wv.n_tokens.tolist() == [1, 2]
    torch.testing.assert_close(wv.vectors[1], smol.W_E[ids].mean(0).detach())


def _linearised(module, x):
    eps = float(getattr(module, "variance_epsilon", getattr(module, "eps", 1e-6)))
    with torch.no_grad():
        return module(x) * torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def test_gemma_folding_matches_hf_modules(gemma):
    layer = 7
    hf = gemma.original_model.model.layers[layer]
    torch.testing.assert_close(
        attention_norm_gain(gemma, layer), 1.0 + hf.input_layernorm.weight.detach().float()
    )
    w_q, w_k = head_qk(gemma, layer)
    assert w_q.shape == (4, 640, 256) and w_k.shape == (4, 640, 256)
    x = gemma.W_E[:6].detach()
    normed = _linearised(hf.input_layernorm, x)
    with torch.no_grad():
        q = _linearised(hf.self_attn.q_norm, hf.self_attn.q_proj(normed).view(6, 4, 256))
        k = _linearised(hf.self_attn.k_norm, hf.self_attn.k_proj(normed).view(6, 1, 256))
    for h in range(4):
        torch.testing.assert_close(x @ w_q[h], q[:, h], rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(x @ w_k[h], k[:, 0], rtol=1e-3, atol=1e-3)


def test_smollm2_gqa_and_batched_heads(smol):
    hf = smol.original_model.model.layers[3]
    w_q, w_k = head_qk(smol, 3)
    gain = hf.input_layernorm.weight.detach()
    k_w = hf.self_attn.k_proj.weight.detach()  # [3 * 64, 576]
    for h in (0, 2, 3, 8):
        torch.testing.assert_close(w_k[h], (k_w[(h // 3) * 64 : (h // 3 + 1) * 64] * gain).T)
    words = frequent_words(3000) + list(INSTRUCTION_VERBS)
    every = model_word_pairs(smol, layers=[3], vocabulary=words, reference=1000, progress=False)
    one = head_word_pairs(smol, 3, 4, vocabulary=words, reference=1000)
    assert one.to_frame().equals(every.select(3, 4).to_frame())
    assert len(every.head_pairs()) > 0
