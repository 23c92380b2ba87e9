import pytest
import torch

import instr_interp as ii
from instr_interp.engine.likelihood import response_nll
from instr_interp.interventions.neurons import ablate_neurons, mean_activations
from instr_interp.sparcom.ablation import random_like


def plain_nll(hf, encoded):
    """Mean response NLL per record from a plain HF forward, one record at a time."""
    out = []
    for rec in encoded:
        ids = torch.tensor([rec.tokens])
        with torch.no_grad():
            logp = torch.log_softmax(hf(input_ids=ids).logits[0, :-1].double(), -1)
        target = ids[0, 1:]
        resp = torch.tensor(rec.regions[1:]) == ii.Region.RESPONSE
        out.append(-logp[torch.arange(len(target)), target][resp].mean().item())
    return out


def test_response_nll_equals_plain_torch(tiny, small_data):
    frame = response_nll(tiny, small_data, batch_size=5, progress=False)
    enc = ii.encode(small_data, tiny.tokenizer, with_response=True)
    expected = plain_nll(ii.models.tiny_hf_model(seed=0), enc)
    assert frame["nll"].tolist() == pytest.approx(expected, rel=1e-4)
    assert (frame["response_tokens"] > 0).all()


def test_ablation_zeroes_post_and_composes(tiny):
    tokens = torch.tensor([[5, 6, 7, 8, 9]])
    name = "blocks.1.mlp.hook_post"
    seen = {}

    def grab(act, hook):
        seen["post"] = act.clone()

    with ablate_neurons(tiny, torch.tensor([[1, 3], [1, 7]])):
        with ablate_neurons(tiny, torch.tensor([[1, 9]])):
            tiny.run_with_hooks(tokens, fwd_hooks=[(name, grab)])
            assert (seen["post"][..., [3, 7, 9]] == 0).all()
        tiny.run_with_hooks(tokens, fwd_hooks=[(name, grab)])
        assert (seen["post"][..., [3, 7]] == 0).all() and (seen["post"][..., 9] != 0).all()
    assert not [n for n, hp in tiny.hook_dict.items() if hp.has_hooks()]
    tiny.run_with_hooks(tokens, fwd_hooks=[(name, grab)])
    assert (seen["post"][..., [3, 7, 9]] != 0).all()


def test_ablation_matches_manual_hook_in_plain_torch(tiny, small_data):
    neurons = torch.tensor([[0, 1], [0, 2], [1, 4]])
    with ablate_neurons(tiny, neurons):
        frame = response_nll(tiny, small_data[:4], progress=False)
    hf = ii.models.tiny_hf_model(seed=0)
    handles = []
    for layer in (0, 1):
        idx = neurons[neurons[:, 0] == layer, 1]

        def pre(module, args, idx=idx):
            x = args[0].clone()
            x[..., idx] = 0
            return (x,)

        handles.append(hf.model.layers[layer].mlp.down_proj.register_forward_pre_hook(pre))
    expected = plain_nll(hf, ii.encode(small_data[:4], tiny.tokenizer, with_response=True))
    for h in handles:
        h.remove()
    assert frame["nll"].tolist() == pytest.approx(expected, rel=1e-4)


def test_mean_ablation_and_errors(tiny, small_data):
    means = mean_activations(tiny, small_data, progress=False)
    assert means.shape == (2, 128)
    with ablate_neurons(tiny, torch.tensor([[0, 0]]), mode="mean", means=means):
        pass
    with pytest.raises(ValueError, match="mean_activations"):
        with ablate_neurons(tiny, torch.tensor([[0, 0]]), mode="mean"):
            pass
    with pytest.raises(ValueError, match="out of range"):
        with ablate_neurons(tiny, torch.tensor([[5, 0]])):
            pass


def test_random_like_keeps_layer_counts():
    neurons = torch.tensor([[0, 1], [0, 5], [2, 3]])
    rnd = random_like(neurons, d_mlp=10, seed=0)
    assert torch.equal(torch.bincount(rnd[:, 0], minlength=3), torch.tensor([2, 0, 1]))
    assert torch.equal(rnd, random_like(neurons, d_mlp=10, seed=0))
