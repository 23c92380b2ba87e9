"""Tasks and head effects on the bundled SmolLM2-135M-Instruct (slow)."""

import pytest
import torch

import instr_interp as ii
from instr_interp.vectors.heads import corrupted_prompts, head_effects
from instr_interp.vectors.tasks import ICL_TASKS, answer_token, evaluate_task, icl_task

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smol():
    return ii.load_model("smollm2-135m-instruct", device="cpu")


def test_answers_start_with_a_space_prefixed_token(smol):
    tok = smol.tokenizer
    for name in ICL_TASKS:
        for _, y in icl_task(name).pairs:
            first = tok.decode([answer_token(smol, y)])
            assert first.startswith(" ") and len(first) > 1, (name, y, first)


def test_no_built_in_task_has_answers_sharing_a_first_token():
    """First-token accuracy counts a wrong answer with the same first token as right; the built-in
    tasks avoid such pairs for both bundled tokenizers (Gemma's is read from the converted cache)."""
    from transformers import AutoTokenizer

    from instr_interp.vectors.tasks import shared_first_tokens

    ii.load_model("gemma-3-270m", device="cpu")  # converts once if needed
    tokenizers = {
        "smollm2": AutoTokenizer.from_pretrained(ii.cache_dir() / "smollm2-135m-instruct"),
        "gemma": AutoTokenizer.from_pretrained(ii.cache_dir() / "gemma-3-270m"),
    }
    for label, tok in tokenizers.items():
        for name in ICL_TASKS:
            assert not shared_first_tokens(tok, icl_task(name)), (label, name)


def test_gqa_z_shape_and_few_shot_beats_zero_shot(smol):
    seen = {}
    smol.run_with_hooks(
        torch.tensor([[1, 2, 3]]),
        fwd_hooks=[("blocks.0.attn.hook_z", lambda z, hook: seen.update(z=z.shape))],
    )
    assert tuple(seen["z"]) == (1, 3, 9, 64)  # per query head: 9 heads although 3 KV heads
    task = icl_task("present_past")
    assert evaluate_task(smol, task, shots=5, n=20, progress=False).accuracy >= 0.8
    assert evaluate_task(smol, task, n=20, progress=False).accuracy <= 0.2


def test_exact_effects_equal_plain_patching_on_two_layers(smol):
    task = icl_task("antonym")
    means = torch.randn(30, 9, 64, generator=torch.Generator().manual_seed(0))
    got = head_effects(
        smol, task, means=means, n_prompts=3, shots=3, layers=[4, 11], batch_size=2, progress=False
    )
    prompts, pairs = corrupted_prompts(task, n_prompts=3, shots=3)
    for layer in (4, 11):
        ref = torch.zeros(9, dtype=torch.float64)
        for prompt, (_, y) in zip(prompts, pairs):
            ids = torch.tensor([smol.tokenizer(prompt)["input_ids"]])
            target = smol.tokenizer(" " + y, add_special_tokens=False)["input_ids"][0]
            with torch.no_grad():
                base = float(smol(ids)[0, -1].softmax(-1)[target])
                for head in range(9):

                    def patch(z, hook=None, head=head, layer=layer):
                        z = z.clone()
                        z[0, -1, head] = means[layer, head]
                        return z

                    logits = smol.run_with_hooks(ids, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", patch)])
                    ref[head] += float(logits[0, -1].softmax(-1)[target]) - base
        ref /= len(prompts)
        assert ref.abs().max() > 1e-4
        torch.testing.assert_close(got[layer].double(), ref, atol=1e-5, rtol=0)


def test_instruction_vector_restores_zero_shot_past_tense(smol):
    from instr_interp.vectors.instruction import instruction_vector, vector_scores

    train, test = icl_task("present_past").split(seed=0, n_val=20)
    iv = instruction_vector(smol, train, progress=False)
    row = vector_scores(smol, [iv], [test], n_random=2, progress=False).iloc[0]
    assert row.zero_shot <= 0.1
    assert row.with_vector >= row.zero_shot + 0.2 and row.with_vector > row.random_heads
