import pytest
import torch

import instr_interp as ii
from instr_interp.sparcom.experts import ExpertSets, ablate_experts, find_ises
from tests.typecheck import bad_input


def plain_expert_loop(hf, encoded, regions=(2, 3)):
    """Reference: per record (unpadded), capture each MoE block's flattened input and top-k routing
    from the experts module's own arguments, then loop over tokens and their experts."""
    layers = hf.model.layers
    n_layers, n_exp = (
        len(layers),
        hf.config.num_experts if hasattr(hf.config, "num_experts") else hf.config.num_local_experts,
    )
    got = {}
    handles = [
        layer.mlp.experts.register_forward_pre_hook(
            lambda m, args, i=i: got.__setitem__(i, (args[0].detach(), args[1].detach()))
        )
        for i, layer in enumerate(layers)
    ]
    shared = {}
    if hasattr(layers[0].mlp, "shared_expert"):
        handles += [
            layer.mlp.shared_expert.gate_proj.register_forward_hook(
                lambda m, a, o, i=i: shared.__setitem__(i, o.detach())
            )
            for i, layer in enumerate(layers)
        ]
    d_mlp = layers[0].mlp.experts.gate_up_proj.shape[1] // 2
    counts = torch.zeros(len(encoded), n_layers, n_exp, dtype=torch.int64)
    neurons = torch.zeros(len(encoded), n_layers, n_exp, d_mlp, dtype=torch.int32)
    shared_counts = []
    for r, rec in enumerate(encoded):
        with torch.no_grad():
            hf(input_ids=torch.tensor([rec.tokens]))
        keep = [t for t, reg in enumerate(rec.regions) if reg in regions]
        per_layer = []
        for layer in range(n_layers):
            x, top = got[layer]
            gate_w = layers[layer].mlp.experts.gate_up_proj[:, :d_mlp]
            for t in keep:
                for e in set(top[t].tolist()):
                    counts[r, layer, e] += 1
                    neurons[r, layer, e] += (gate_w[e] @ x[t] > 0).int()
            if shared:
                per_layer.append((shared[layer].reshape(-1, shared[layer].shape[-1])[keep] > 0).sum(0))
        if shared:
            shared_counts.append(torch.stack(per_layer))
    for h in handles:
        h.remove()
    return counts, neurons, (torch.stack(shared_counts) if shared else None)


@pytest.mark.parametrize("arch", ["mixtral", "olmoe", "qwen2_moe"])
def test_expert_firing_equals_plain_loop(arch, small_data):
    model = ii.tiny_model(moe=arch, seed=1)
    sample = small_data[:8]
    sets, stats = find_ises(model, sample, top=0.25, batch_size=3, progress=False, keep_stats=True)
    hf = ii.models.tiny_hf_model(seed=1, moe=arch)
    counts, neurons, shared = plain_expert_loop(hf, ii.encode(sample, model.tokenizer))
    assert torch.equal(stats.expert_counts, counts)
    assert torch.equal(stats.dense_neuron_counts(), neurons)
    if shared is not None:
        assert torch.equal(stats.shared_counts.int(), shared.int())
    # padding is masked: a different batch size (so different padding) changes nothing
    _, again = find_ises(
        model, sample, top=0.25, batch_size=8, padding_side="left", progress=False, keep_stats=True
    )
    assert torch.equal(again.expert_counts, stats.expert_counts)
    assert torch.equal(again.neuron_index, stats.neuron_index)
    assert torch.equal(again.neuron_counts, stats.neuron_counts)
    # the ISE sets rank experts by routing frequency
    k = sets.settings["k"]
    for r, rid in enumerate(stats.ids):
        chosen = sets.instruction_sets[rid]
        assert len(chosen) == k
        freq = stats.expert_counts[r]
        left = torch.ones_like(freq, dtype=torch.bool)
        left[chosen[:, 0], chosen[:, 1]] = False
        assert freq[chosen[:, 0], chosen[:, 1]].min() >= freq[left].max()


def test_expert_sets_algebra_and_save(tmp_path, small_data):
    model = ii.tiny_model(moe="olmoe")
    sets = find_ises(model, small_data, per_layer=1, progress=False, neurons=False)
    assert all(len(v) == 2 for v in sets.instruction_sets.values())  # one per layer
    assert sets.overlap().shape == (6, 6)
    sets.save(tmp_path / "ise")
    back = ExpertSets.load(tmp_path / "ise")
    assert isinstance(back, ExpertSets) and back.n_experts == 4
    for k, v in sets.category_sets.items():
        assert torch.equal(back.category_sets[k], v)
    with pytest.raises(ValueError, match="ExpertSets"):
        ii.NeuronSets.load(tmp_path / "ise")


def test_ablate_experts_reroutes():
    model = ii.tiny_model(moe="mixtral")
    tokens = torch.tensor([[3, 4, 5, 6]])
    seen = {}
    grab = lambda act, hook: seen.__setitem__("out", act.clone())  # noqa: E731
    every = torch.tensor([[0, e] for e in range(4)])
    with ablate_experts(model, every, mode="drop"):
        model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.mlp.hook_out", grab)])
    assert seen["out"].abs().max() == 0  # no expert left: the block adds nothing
    with ablate_experts(model, torch.tensor([[0, 1]]), mode="drop", renormalize=True):
        model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.mlp.hook_out", grab)])
    assert seen["out"].abs().max() > 0
    assert not [n for n, hp in model.hook_dict.items() if hp.has_hooks()]
    with pytest.raises(ValueError, match="every token needs 2"):
        with ablate_experts(model, every):  # rerouting needs k experts left
            pass
    with pytest.raises(ValueError, match="out of range"):
        with ablate_experts(model, torch.tensor([[0, 9]])):
            pass


@pytest.mark.parametrize("batch_size, side", [(3, "left"), (8, "right")])
def test_expert_threshold_sets_equal_plain_routing_counts(small_data, batch_size, side):
    """select="threshold": every expert receiving at least that share of the counted tokens, per record
    and on the category's pooled tokens, against the plain per-token loop over HF's own routing."""
    model = ii.tiny_model(moe="mixtral", seed=1)
    sample = small_data[:8]
    sets = find_ises(
        model,
        sample,
        select="threshold",
        threshold=0.3,
        batch_size=batch_size,
        padding_side=side,
        neurons=False,
        progress=False,
    )
    encoded = ii.encode(sample, model.tokenizer)
    counts, _, _ = plain_expert_loop(ii.models.tiny_hf_model(seed=1, moe="mixtral"), encoded, regions=(2, 3))
    tokens = torch.tensor([sum(reg in (2, 3) for reg in rec.regions) for rec in encoded])
    for r, rec in enumerate(sample):
        assert torch.equal(sets.instruction_sets[rec.id], (counts[r].double() / tokens[r] >= 0.3).nonzero())
    for cat in sets.categories:
        rows = [r for r, rec in enumerate(sample) if rec.category == cat]
        pooled = counts[rows].sum(0).double() / tokens[rows].sum()
        assert torch.equal(sets.category_sets[cat], (pooled >= 0.3).nonzero()), cat
    assert len({len(v) for v in sets.instruction_sets.values()}) > 1
    assert sets.settings["select"] == "threshold" and sets.tie_decided == {}


def test_expert_top_sets_record_ties_and_validate(small_data):
    model = ii.tiny_model(moe="olmoe")
    sets = find_ises(model, small_data[:6], top=0.25, neurons=False, progress=False)
    assert sets.settings["tie_break"] == "layer_rank"
    assert set(sets.tie_decided) >= set(sets.instruction_sets)
    assert all(0.0 <= v <= 1.0 for v in sets.tie_decided.values())
    for kwargs, message in [
        ({"select": "lape"}, "applies to neurons"),
        ({"select": "threshold"}, "needs threshold="),
        ({"select": "threshold", "threshold": 0.2, "per_layer": 1}, "per_layer= applies"),
        ({"tie_break": "activation"}, "Unknown tie_break"),
    ]:
        with bad_input(message):
            find_ises(model, small_data[:6], neurons=False, progress=False, **kwargs)


def test_cli_ises_exposes_the_selection_rules(tmp_path, small_data):
    from instr_interp.cli import main

    model_dir = tmp_path / "moe"
    ii.models.tiny_hf_model(seed=1, moe="mixtral").save_pretrained(model_dir)
    ii.models.tiny_tokenizer().save_pretrained(model_dir)
    data = small_data[:6].save(tmp_path / "d.jsonl")
    args = [
        "ises",
        "--model",
        str(model_dir),
        "--data",
        str(data),
        "--out",
        str(tmp_path / "o"),
        "--device",
        "cpu",
    ]
    assert (
        main(
            args
            + [
                "--select",
                "threshold",
                "--threshold",
                "0.3",
                "--weighting",
                "weight",
                "--regions",
                "instruction",
            ]
        )
        == 0
    )
    sets = ii.load(tmp_path / "o")
    assert isinstance(sets, ExpertSets)
    assert (sets.settings["select"], sets.settings["weighting"], sets.settings["regions"]) == (
        "threshold",
        "weight",
        ["instruction"],
    )
    assert main(args + ["--tie-break", "raw", "--format", "plain"]) == 0
    assert ii.load(tmp_path / "o").settings["tie_break"] == "raw"
