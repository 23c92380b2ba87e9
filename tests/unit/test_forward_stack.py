"""The one forward stack: declared last prompt positions, one pad policy, the native path for the
row passes, and data parallelism of every dataset pass (checked against independent computations)."""

import contextlib
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
import torch

import instr_interp as ii
from instr_interp.engine import forward, last_token_logits, pad_id, pad_rows, prompt_positions
from instr_interp.engine.generation import generate_responses
from instr_interp.engine.likelihood import response_nll
from instr_interp.vectors.forgetting import format_accuracy
from instr_interp.vectors.heads import head_effects
from instr_interp.vectors.instruction import add_vector
from instr_interp.vectors.tasks import Task, evaluate_task

TASK = Task(
    name="caps",
    instruction="Capitalise the word.",
    pairs=[(w, w.upper()) for w in "cat dog sun tree moon sky red hat cup pen box car".split()],
)
VEC = 3 * torch.randn(64, generator=torch.Generator().manual_seed(5))


def add_at(position: int):
    def hook(resid, hook=None):
        resid = resid.clone()
        resid[0, position] += VEC
        return resid

    return [("blocks.0.hook_resid_post", hook)]


def test_response_nll_adds_the_vector_at_each_records_last_prompt_token(tiny, small_data):
    data = small_data[:6]
    enc = ii.encode(data, tiny.tokenizer, with_response=True)
    with add_vector(tiny, VEC, layer=0):
        got = response_nll(tiny, data, batch_size=4, progress=False)["nll"].tolist()
    plain = response_nll(tiny, data, batch_size=4, progress=False)["nll"].tolist()
    expected = []
    for rec in enc:  # independent: one unpadded record, the vector added at its known last prompt token
        ids = torch.tensor([rec.tokens])
        with torch.no_grad():
            logits = tiny.run_with_hooks(ids, fwd_hooks=add_at(rec.prompt_length - 1))
        logp = torch.log_softmax(logits[0, :-1].double(), -1)
        resp = torch.tensor(rec.regions[1:]) == ii.Region.RESPONSE
        assert int(resp.nonzero()[0]) == rec.prompt_length - 1  # the token after it starts the response
        expected.append(-logp[torch.arange(ids.shape[1] - 1), ids[0, 1:]][resp].mean().item())
    assert got == pytest.approx(expected, rel=1e-5)
    assert max(abs(a - b) for a, b in zip(got, plain)) > 1e-3  # the check can fail


def test_format_accuracy_scores_with_the_vector_at_the_last_prompt_token(tiny, small_data):
    data = small_data[:4]
    enc = ii.encode(data, tiny.tokenizer, with_response=True)
    with add_vector(tiny, VEC, layer=0):
        got = format_accuracy(tiny, data, batch_size=3, progress=False)
    for i, rec in enumerate(enc):
        last = rec.prompt_length - 1
        with torch.no_grad():
            probs = tiny.run_with_hooks(torch.tensor([rec.tokens]), fwd_hooks=add_at(last))[0, last].softmax(
                -1
            )
        assert got["p_target"][i] == pytest.approx(float(probs[rec.tokens[last + 1]]), abs=1e-6)


def test_attribution_declares_the_last_prompt_token(tiny, small_data):
    rec = small_data[0]
    (enc,) = ii.encode([rec], tiny.tokenizer, format="plain", with_response=True).records  # attribute: plain
    with add_vector(tiny, VEC, layer=0):
        declared = ii.attribute(tiny, rec)
    with add_vector(tiny, VEC, layer=0, last=torch.tensor([enc.prompt_length - 1])):
        explicit = ii.attribute(tiny, rec)
    assert torch.equal(declared.matrix, explicit.matrix)
    assert not torch.equal(declared.matrix, ii.attribute(tiny, rec).matrix)


def test_a_forward_that_declares_no_positions_is_an_error(tiny):
    tokens = torch.tensor([[5, 6, 7], [8, 9, 10]])
    with add_vector(tiny, VEC, layer=0), pytest.raises(ValueError, match="declared none"):
        tiny(tokens)
    with pytest.raises(ValueError, match="do not match"), prompt_positions(tiny).declare(torch.tensor([1])):
        with add_vector(tiny, VEC, layer=0):
            tiny(tokens)
    with (
        pytest.raises(ValueError, match="non-negative"),
        add_vector(tiny, VEC, layer=0, last=torch.tensor([-1])),
    ):
        pass
    assert prompt_positions(tiny).last is None
    with torch.no_grad(), add_vector(tiny, VEC, layer=0, last=torch.tensor([2, 1])):
        out = tiny(tokens)
    with torch.no_grad():
        torch.testing.assert_close(out[0], tiny.run_with_hooks(tokens[:1], fwd_hooks=add_at(2))[0])


def test_one_pad_policy_raises_without_pad_or_eos(tiny):
    assert pad_id(tiny) == (
        tiny.tokenizer.pad_token_id
        if tiny.tokenizer.pad_token_id is not None
        else tiny.tokenizer.eos_token_id
    )
    bare = types.SimpleNamespace(tokenizer=types.SimpleNamespace(pad_token_id=None, eos_token_id=None))
    with pytest.raises(ValueError, match="neither a pad nor an EOS"):
        pad_id(bare)
    eos_only = types.SimpleNamespace(pad_token_id=None, eos_token_id=7)
    assert pad_id(eos_only) == 7


@contextlib.contextmanager
def bridge_path():
    """The row passes without the native path: the bridge's own attention and norms (as before)."""
    saved = forward.native_forward
    forward.native_forward = lambda model, causal=False: contextlib.nullcontext(0)
    try:
        yield
    finally:
        forward.native_forward = saved


def test_row_passes_run_native_and_equal_the_bridge_path(tiny, monkeypatch):
    entered = []
    real = forward.native_forward

    def spy(model, causal=False):
        entered.append(causal)
        return real(model, causal=causal)

    monkeypatch.setattr(forward, "native_forward", spy)
    fast = evaluate_task(tiny, TASK, shots=2, max_new_tokens=3, batch_size=5, progress=False)
    assert entered and all(entered)
    monkeypatch.setattr(forward, "native_forward", real)
    with bridge_path():
        slow = evaluate_task(tiny, TASK, shots=2, max_new_tokens=3, batch_size=5, progress=False)
    torch.testing.assert_close(
        torch.tensor(fast.frame["p_target"].values),
        torch.tensor(slow.frame["p_target"].values),
        atol=1e-6,
        rtol=0,
    )
    assert list(fast.frame["generation"]) == list(slow.frame["generation"])
    # a hook on hook_pattern keeps its layer on the bridge path (and fires)
    fired = []
    ids = [tiny.tokenizer(p)["input_ids"] for p in ["Q: hot\nA:", "Q: a longer one\nA:"]]
    tokens, last = pad_rows(ids, [0, 1], 32, pad_id(tiny), "cpu")
    with torch.no_grad():
        seen = last_token_logits(
            tiny, tokens, last, [("blocks.0.attn.hook_pattern", lambda a, hook=None: fired.append(1))]
        )
        torch.testing.assert_close(seen, last_token_logits(tiny, tokens, last), atol=1e-5, rtol=1e-5)
    assert fired


def test_generation_adds_the_vector_once_at_the_prompts_last_token(tiny, small_data):
    recs = small_data[:2]
    with add_vector(tiny, VEC, layer=0):
        got = generate_responses(tiny, recs, max_new_tokens=4, progress=False)
    stops = set(ii.engine.generation._stop_ids(tiny))
    for rec, enc in zip(got, ii.encode(recs, tiny.tokenizer)):
        seq = list(enc.tokens)  # independent: greedy by full reruns, the vector at the prompt's last token
        with torch.no_grad():
            for _ in range(4):
                nxt = int(
                    tiny.run_with_hooks(torch.tensor([seq]), fwd_hooks=add_at(len(enc.tokens) - 1))[
                        0, -1
                    ].argmax()
                )
                if nxt in stops:
                    break
                seq.append(nxt)
        assert rec.response == tiny.tokenizer.decode(seq[len(enc.tokens) :], skip_special_tokens=True)


DIST_SCRIPT = textwrap.dedent(
    """
    import sys, torch, torch.distributed as dist
    import instr_interp as ii
    from tests.unit.test_forward_stack import single_process_results
    dist.init_process_group("gloo")
    torch.save(single_process_results(ii.tiny_model(seed=0)), f"{sys.argv[1]}.{dist.get_rank()}")
    dist.barrier()  # no rank tears the group down while another still uses it
    dist.destroy_process_group()
    """
)


def single_process_results(model) -> dict:
    means = torch.randn(2, 4, 16, generator=torch.Generator().manual_seed(0))
    data = ii.hexainst().sample(7, seed=3)
    with add_vector(model, VEC, layer=0):
        score = evaluate_task(model, TASK, shots=2, max_new_tokens=2, batch_size=3, progress=False)
        nll = response_nll(model, data, batch_size=3, progress=False)
    return {
        "p_target": torch.tensor(score.frame["p_target"].values),
        "generation": list(score.frame["generation"]),
        "effects": head_effects(model, TASK, means=means, n_prompts=5, shots=3, batch_size=2, progress=False),
        "atp": head_effects(
            model, TASK, method="atp", means=means, n_prompts=5, shots=3, batch_size=2, progress=False
        ),
        "nll": torch.tensor(nll["nll"].values),
        "responses": [
            r.response
            for r in generate_responses(model, data[:3], max_new_tokens=3, batch_size=1, progress=False)
        ],
    }


@pytest.mark.distributed
def test_two_torchrun_processes_equal_one_for_every_row_pass(tiny, tmp_path):
    script = tmp_path / "dist.py"
    script.write_text(DIST_SCRIPT)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",  # a free port
        str(script),
        str(tmp_path / "out"),
    ]
    root = str(Path(__file__).parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    subprocess.run(cmd, check=True, timeout=300, capture_output=True, cwd=root, env=env)
    one = single_process_results(tiny)
    for rank in (0, 1):
        two = torch.load(tmp_path / f"out.{rank}")
        for key, value in one.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(two[key], value), key
            else:
                assert two[key] == value, key


def test_head_means_equal_plain_caches_of_the_correctly_answered_prompts(tiny, monkeypatch):
    from instr_interp.vectors import heads

    prompts, pairs = heads.clean_prompts(TASK, n_prompts=7, shots=2)
    zs, answers = [], {}
    for i, (prompt, (_, y)) in enumerate(zip(prompts, pairs)):  # independent: one unpadded prompt at a time
        with torch.no_grad():
            logits, cache = tiny.run_with_cache(torch.tensor([tiny.tokenizer(prompt)["input_ids"]]))
        best = int(logits[0, -1].argmax())
        answers[y] = best if i % 3 else best + 1  # every third prompt answered wrongly
        zs.append(torch.stack([cache[f"blocks.{layer}.attn.hook_z"][0, -1] for layer in range(2)]))
    from instr_interp.vectors import prompts as prompt_forms  # where the query targets are made

    monkeypatch.setattr(prompt_forms, "answer_token", lambda model, y: answers[y])
    right = [i for i in range(len(prompts)) if i % 3]
    expected = torch.stack([zs[i] for i in right]).double().mean(0)
    for batch_size in (1, 4):
        means, n_correct = heads.head_means(
            tiny, TASK, n_prompts=7, shots=2, batch_size=batch_size, progress=False
        )
        assert n_correct == len(right)
        torch.testing.assert_close(means.double(), expected, atol=1e-5, rtol=1e-5)
