"""MoE instruction-specific neurons, units (layer, expert, neuron): against a plain per-expert loop over
the HF module's own gate activations, against sets planted by construction, and ablation against
independently edited (pruned / zeroed) Hugging Face models."""

import copy
import string
from fractions import Fraction

import pytest
import torch
from transformers import PreTrainedModel

import instr_interp as ii
from instr_interp import compat
from instr_interp.data.dataset import InstructionDataset, InstructionRecord
from instr_interp.sparcom.expert_firing import ExpertFiring
from instr_interp.sparcom.expert_neurons import sets_from_expert_neurons
from instr_interp.sparcom.experts import ablate_experts
from instr_interp.sparcom.selection import find_isns

ARCHS = ["mixtral", "olmoe", "qwen2_moe"]


# ---------------------------------------------------------------------------------------------
# reference: the HF experts' own gate activations, read off their act_fn during the HF forward


def hf_expert_loop(hf, encoded, regions=(2, 3)):
    """Per record (unpadded, alone): for every MoE layer, the gate tensor HF's experts feed to their
    act_fn, one call per expert hit, in HF's loop order (experts ascending; tokens by top-k slot, then
    position); dense layers and shared experts from their gate_proj outputs. Returns per record a dict
    {(layer, slot): (fired counts [d], act sums [d], routed tokens)} and the counted token totals."""
    hf.set_experts_implementation("eager")  # HF's per-expert loop: one act_fn call per expert hit
    layers = hf.model.layers
    n_exp = getattr(hf.config, "num_local_experts", None) or hf.config.num_experts
    calls, routing, always = {}, {}, {}
    handles = []
    for i, layer in enumerate(layers):
        mlp = layer.mlp
        if hasattr(mlp, "experts"):
            handles.append(
                mlp.experts.register_forward_pre_hook(lambda m, a, i=i: routing.__setitem__(i, a[1]))
            )
            handles.append(
                mlp.experts.act_fn.register_forward_pre_hook(
                    lambda m, a, i=i: calls.setdefault(i, []).append(a[0])
                )
            )
            if hasattr(mlp, "shared_expert"):
                handles.append(
                    mlp.shared_expert.gate_proj.register_forward_hook(
                        lambda m, a, o, i=i: always.__setitem__(i, o)
                    )
                )
        else:
            handles.append(mlp.gate_proj.register_forward_hook(lambda m, a, o, i=i: always.__setitem__(i, o)))
    out = []
    try:
        for rec in encoded:
            calls.clear()
            with torch.no_grad():
                hf(input_ids=torch.tensor([rec.tokens]))
            keep = torch.tensor([r in regions for r in rec.regions])
            units = {}
            for i in range(len(layers)):
                if i in routing and i in calls:
                    top = routing[i]  # [tokens k]
                    hit = sorted(set(top.flatten().tolist()))
                    for e, gate in zip(hit, calls[i]):
                        _, tokens = torch.where((top == e).T)  # HF's order: top-k slot, then token
                        counted = keep[tokens]
                        g = gate[counted]
                        if counted.any():
                            units[(i, e)] = (
                                (g > 0).sum(0),
                                torch.nn.functional.silu(g).double().sum(0),
                                int(counted.sum()),
                            )
                if i in always:
                    g = always[i].reshape(-1, always[i].shape[-1])[keep]
                    units[(i, n_exp)] = (
                        (g > 0).sum(0),
                        torch.nn.functional.silu(g).double().sum(0),
                        int(keep.sum()),
                    )
            out.append((units, int(keep.sum())))
    finally:
        for h in handles:
            h.remove()
        routing.clear()
    return out


def reference_sets(ref, widths, top, denominator):
    """Top-k by exact fractions, ties by unit order (tie_break='index'); a plain sort."""
    n_exp = len(widths[0]) - 1
    n_units = sum(map(sum, widths))
    k = max(1, int(top * n_units))
    sets = []
    for units, total in ref:
        scored = []
        for layer, w in enumerate(widths):
            for slot, width in enumerate(w):
                counts, _, routed = units.get((layer, slot), (torch.zeros(width, dtype=torch.long), None, 0))
                denom = total if (denominator == "all" or slot == n_exp) else routed
                for i in range(width):
                    freq = Fraction(int(counts[i]), denom) if denom else Fraction(0)
                    scored.append((-freq, layer, slot, i))
        sets.append(sorted(u[1:] for u in sorted(scored)[:k]))
    return sets


def _moe(arch, **sizes):
    return ii.tiny_model(moe=arch, seed=1, **sizes), ii.models.tiny_hf_model(seed=1, moe=arch, **sizes)


@pytest.mark.parametrize("arch", ARCHS + ["mixed"])
@pytest.mark.parametrize("denominator", ["all", "routed"])
def test_moe_sets_equal_plain_per_expert_loop(arch, denominator, small_data):
    sizes = {"dense_layers": (0,), "n_layers": 3} if arch == "mixed" else {}
    model, hf = _moe("qwen2_moe" if arch == "mixed" else arch, **sizes)
    sample = small_data[:6]
    sets, stats = find_isns(
        model, sample, top=0.03, tie_break="index", expert_denominator=denominator,
        batch_size=4, progress=False, keep_frequencies=True,
    )  # fmt: skip
    ref = hf_expert_loop(hf, ii.encode(sample, model.tokenizer))
    n_exp = len(stats.widths[0]) - 1
    for r, (units, total) in enumerate(ref):
        assert int(stats.tokens[r]) == total
        flat_counts = stats.unit_values([r])
        for (layer, slot), (counts, _, routed) in units.items():
            start = sets.flat(torch.tensor([[layer, slot, 0]]))[0]
            assert torch.equal(flat_counts[start : start + len(counts)], counts.long()), (r, layer, slot)
            if slot < n_exp:
                assert int(stats.expert_counts[r, layer, slot]) == routed
        assert int(flat_counts.sum()) == sum(int(c.sum()) for c, _, _ in units.values())  # nothing else
    expected = reference_sets(ref, stats.widths, 0.03, denominator)
    for r, rid in enumerate(stats.ids):
        assert sorted(map(tuple, sets.instruction_sets[rid].tolist())) == expected[r]
    if arch == "mixed":  # the dense layer's neurons sit in the always-on slot of layer 0
        assert stats.widths[0] == [0] * n_exp + [128] and int(stats.expert_counts[:, 0].sum()) == 0


@pytest.mark.parametrize("arch", ARCHS)
def test_activation_sums_and_padding(arch, small_data):
    model, hf = _moe(arch)
    sample = small_data[:5]
    sets, stats = find_isns(model, sample, top=0.02, batch_size=2, progress=False, keep_frequencies=True)
    ref = hf_expert_loop(hf, ii.encode(sample, model.tokenizer))
    for r, (units, _) in enumerate(ref):
        sums = stats.unit_values([r], "activation")
        for (layer, slot), (_, act, _) in units.items():
            start = sets.flat(torch.tensor([[layer, slot, 0]]))[0]
            torch.testing.assert_close(sums[start : start + len(act)], act, atol=1e-4, rtol=1e-5)
    # padding is masked: other batch sizes and padding sides give the same counts and sets
    for batch_size, side in ((1, "right"), (5, "left"), (3, "left")):
        again_sets, again = find_isns(
            model,
            sample,
            top=0.02,
            batch_size=batch_size,
            padding_side=side,
            progress=False,
            keep_frequencies=True,
        )
        assert torch.equal(again.neuron_index, stats.neuron_index)
        assert torch.equal(again.neuron_counts, stats.neuron_counts)
        assert (
            torch.equal(again.shared_counts, stats.shared_counts) if stats.shared_counts is not None else True
        )
        for rid, units in sets.instruction_sets.items():
            assert torch.equal(again_sets.instruction_sets[rid], units)


# ---------------------------------------------------------------------------------------------
# planted routing: token group g = token id % 4 goes to experts g and g+1; neuron i of expert e in
# layer l fires on group g iff i < 12 and (i + l + e) % 4 == g (the always-on MLP: (i + l) % 4 == g)

N_GROUPS, D = 4, 16


def _fires(layer, slot, g):
    return [i for i in range(12) if (i + layer + slot) % N_GROUPS == g]


def _gate_rows(layer, slot):
    """Gate rows of one expert slot: +1 on the group dimensions the neuron fires on, -1 on the others."""
    rows = -torch.ones(D, N_GROUPS)
    for g in range(N_GROUPS):
        rows[_fires(layer, slot, g), g] = 1.0
    rows[12:] = -1.0
    return rows


def planted_model(arch):
    sizes = dict(d_model=16, d_mlp=D, n_heads=4, n_kv_heads=2, n_layers=3 if arch == "mixed" else 2)
    if arch == "mixed":
        sizes["dense_layers"] = (0,)
    model = ii.tiny_model(moe="qwen2_moe" if arch == "mixed" else arch, **sizes)
    hf = compat.hf_model(model)  # the bridge wraps these modules in place
    n_exp = 4
    with torch.no_grad():
        emb = hf.model.embed_tokens.weight
        emb.zero_()
        emb[torch.arange(emb.shape[0]), torch.arange(emb.shape[0]) % N_GROUPS] = 1.0
        for layer, block in enumerate(hf.model.layers):
            block.self_attn.o_proj.weight.zero_()  # the residual stays the token's embedding
            mlp = block.mlp

            if hasattr(mlp, "experts"):
                mlp.gate.weight.zero_()
                for g in range(N_GROUPS):
                    mlp.gate.weight[g, g], mlp.gate.weight[(g + 1) % n_exp, g] = 4.0, 3.0
                mlp.experts.down_proj.zero_()
                mlp.experts.gate_up_proj[:, :D] = 0.0
                for e in range(n_exp):
                    mlp.experts.gate_up_proj[e, :D, :N_GROUPS] = _gate_rows(layer, e)
                shared = getattr(mlp, "shared_expert", None)
            else:
                shared = mlp
            if shared is not None:
                shared.down_proj.weight.zero_()
                shared.gate_proj.weight.zero_()
                shared.gate_proj.weight[:, :N_GROUPS] = _gate_rows(layer, n_exp)
    return model


def planted_data(tokenizer):
    cats = ["code", "math", "classification", "summarization"]
    letters = {
        g: [c for c in string.ascii_letters if tokenizer.convert_tokens_to_ids(c) % N_GROUPS == g]
        for g in range(4)
    }
    records = [
        InstructionRecord(id=f"{cats[g]}-{j}", category=cats[g], instruction="".join(letters[g][j : j + 6]))
        for g in range(N_GROUPS)
        for j in (0, 3)
    ]
    return InstructionDataset(records), {f"{cats[g]}-{j}": g for g in range(4) for j in (0, 3)}, cats


def planted_set(group, widths):
    n_exp = len(widths[0]) - 1
    units = []
    for layer, w in enumerate(widths):
        for slot in (group, (group + 1) % n_exp, n_exp):
            if w[slot]:
                units += [(layer, slot, i) for i in _fires(layer, slot, group)]
    return sorted(units)


@pytest.mark.parametrize("arch", ARCHS + ["mixed"])
def test_planted_sets_are_recovered_exactly(arch):
    model = planted_model(arch)
    data, group_of, cats = planted_data(model.tokenizer)
    encoded = ii.encode(data, model.tokenizer)
    for rec in encoded:  # construction check: every counted token belongs to the record's group
        counted = {t % N_GROUPS for t, reg in zip(rec.tokens, rec.regions) if reg in (2, 3)}
        assert counted == {group_of[rec.id]}
    runs = [
        dict(select="threshold", threshold=1.0, expert_denominator="all"),
        dict(select="threshold", threshold=1.0, expert_denominator="routed"),
    ]
    _, stats = find_isns(model, data, progress=False, keep_frequencies=True, **runs[0])
    size = len(planted_set(0, stats.widths))
    n_units = sum(map(sum, stats.widths))
    runs.append(dict(top=(size + 0.5) / n_units, expert_denominator="all"))  # k = the planted size
    runs.append(dict(top=(size + 0.5) / n_units, expert_denominator="routed", tie_break="index"))
    for kwargs in runs:
        sets = find_isns(model, data, progress=False, batch_size=3, padding_side="left", **kwargs)
        for rid, units in sets.instruction_sets.items():
            assert sorted(map(tuple, units.tolist())) == planted_set(group_of[rid], stats.widths), (
                kwargs,
                rid,
            )
        for g, cat in enumerate(cats):
            assert sorted(map(tuple, sets.category_sets[cat].tolist())) == planted_set(g, stats.widths)
    # routing went where it was planted: group g to experts g and g+1 only
    for r, rid in enumerate(stats.ids):
        g = group_of[rid]
        for layer in range(len(stats.widths)):
            routed = stats.expert_counts[r, layer]
            if routed.sum():
                assert set(routed.nonzero().flatten().tolist()) == {g, (g + 1) % 4}


# ---------------------------------------------------------------------------------------------
# set algebra, save / load, validation


def test_moe_sets_algebra_plots_and_save(tmp_path, small_data):
    model, _ = _moe("qwen2_moe")
    sets = find_isns(model, small_data[:8], top=0.02, progress=False)
    assert sets.widths is not None and sets.n_experts == 4
    cat = sets.categories[0]
    member = sets.membership("category")
    assert torch.equal(sets.flat(sets.units(torch.arange(sets.n_neurons))), torch.arange(sets.n_neurons))
    general = {tuple(u) for u in sets.general().tolist()}
    assert general == set.intersection(*({tuple(u) for u in s.tolist()} for s in sets.category_sets.values()))
    assert sets.unique(cat).shape[1] == 3 and member.shape == (len(sets.categories), sets.n_neurons)
    frame = sets.to_frame()
    assert list(frame.columns) == ["kind", "set", "layer", "expert", "neuron"]
    assert sets.layer_distribution()["count"].sum() == sum(len(v) for v in sets.category_sets.values())
    sets.plot_layers(), sets.plot_overlap()
    sets.save(tmp_path / "moe_isn")
    back = ii.NeuronSets.load(tmp_path / "moe_isn")
    assert back.widths == sets.widths
    for k, v in sets.instruction_sets.items():
        assert torch.equal(back.instruction_sets[k], v)
    assert back.overlap().equals(sets.overlap())
    comparison = ii.compare(sets, back)  # before/after: layers counted from (layer, expert, neuron) units
    assert (comparison.summary["jaccard"] == 1.0).all()
    per_cat = comparison.layers.groupby("category")["before"].sum()
    for cat, units in sets.category_sets.items():
        assert per_cat[cat] == len(units)
        layer_counts = comparison.layers[comparison.layers.category == cat].set_index("layer")["before"]
        assert layer_counts.tolist() == torch.bincount(units[:, 0], minlength=sets.n_layers).tolist()


def test_moe_selection_errors(small_data, tmp_path):
    model, _ = _moe("olmoe")
    with pytest.raises(ValueError, match="expert_denominator"):
        find_isns(model, small_data[:2], expert_denominator="tokens", progress=False)
    _, stats = find_isns(
        model, small_data[:2], top=0.02, tie_break="index", progress=False, keep_frequencies=True
    )
    with pytest.raises(ValueError, match="activation sums"):
        sets_from_expert_neurons(stats, tie_break="layer_rank")
    with pytest.raises(ValueError, match="checkpoint"):  # per-record rows live outside the summed state
        ii.run(model, small_data[:2], [ExpertFiring()], checkpoint=tmp_path / "ckpt", progress=False)


# ---------------------------------------------------------------------------------------------
# ablation: against Hugging Face models edited by hand


def _logits(model_or_hf, tokens):
    with torch.no_grad():
        plain = isinstance(model_or_hf, PreTrainedModel)
        out = model_or_hf(input_ids=tokens).logits if plain else model_or_hf(tokens)
    return out


TOKENS = torch.tensor([[5, 17, 40, 33, 8, 71, 12, 90, 23]])


@pytest.mark.parametrize("arch", ARCHS)
def test_zero_ablating_expert_neurons_equals_zeroed_down_columns(arch):
    model, hf = _moe(arch)
    units = torch.tensor(
        [[0, 1, 3], [0, 1, 77], [1, 2, 5], [1, 0, 100]] + ([[0, 4, 9]] if arch == "qwen2_moe" else [])
    )
    edited = copy.deepcopy(hf)
    with torch.no_grad():
        for layer, e, i in units.tolist():
            mlp = edited.model.layers[layer].mlp
            if e == 4:
                mlp.shared_expert.down_proj.weight[:, i] = 0
            else:
                mlp.experts.down_proj[e][:, i] = 0
    with ii.ablate_neurons(model, units):
        got = _logits(model, TOKENS)
    torch.testing.assert_close(got, _logits(edited, TOKENS), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(got, _logits(model, TOKENS), atol=1e-4)
    experts = compat.wrapped_module(compat.wrapped_module(model.blocks[0].mlp).experts)
    assert not experts._forward_hooks and not [n for n, hp in model.hook_dict.items() if hp.has_hooks()]


def test_mean_ablation_matches_a_per_token_loop(small_data):
    model, hf = _moe("mixtral")
    means = ii.mean_expert_activations(model, small_data[:3], progress=False)
    units = torch.tensor([[1, 0, 3], [1, 2, 7], [1, 2, 8]])
    block = {}
    grab = lambda name: lambda m, a, o: block.__setitem__(name, (a, o))  # noqa: E731
    experts = compat.wrapped_module(compat.wrapped_module(model.blocks[1].mlp).experts)
    with ii.ablate_neurons(model, units, mode="mean", means=means):
        handle = experts.register_forward_hook(grab("out"))  # after the ablation's hook: sees its output
        _logits(model, TOKENS)
    handle.remove()
    (x, top_idx, top_w), out = block["out"]
    # plain loop: every token, every routed expert, the expert's MLP with the chosen neurons fixed
    ref = torch.zeros_like(out)
    w_all, down = experts.gate_up_proj.detach(), experts.down_proj.detach()
    for t in range(x.shape[0]):
        for slot in range(top_idx.shape[1]):
            e = int(top_idx[t, slot])
            gate, up = w_all[e, :128] @ x[t], w_all[e, 128:] @ x[t]
            h = torch.nn.functional.silu(gate) * up
            for layer, ue, i in units.tolist():
                if ue == e:
                    h[i] = means[layer * 4 * 128 + e * 128 + i]  # flat order: layer, expert, neuron
            ref[t] += top_w[t, slot] * (down[e] @ h)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


def _pruned(hf, layer, removed):
    """The same HF model with experts ``removed`` of ``layer`` deleted (router rows and weights)."""
    pruned = copy.deepcopy(hf)
    mlp = pruned.model.layers[layer].mlp
    keep = [e for e in range(mlp.gate.weight.shape[0]) if e not in removed]
    with torch.no_grad():
        mlp.gate.weight = torch.nn.Parameter(mlp.gate.weight[keep].clone())
        mlp.experts.gate_up_proj = torch.nn.Parameter(mlp.experts.gate_up_proj[keep].clone())
        mlp.experts.down_proj = torch.nn.Parameter(mlp.experts.down_proj[keep].clone())
    mlp.gate.num_experts = mlp.experts.num_experts = len(keep)
    return pruned, keep


@pytest.mark.parametrize("arch", ["mixtral", "olmoe"])
def test_reroute_equals_a_pruned_model_and_composes_with_neuron_ablation(arch):
    model, hf = _moe(arch)
    pruned, keep = _pruned(hf, 1, [2])
    with ablate_experts(model, torch.tensor([[1, 2]])):
        rerouted = _logits(model, TOKENS)
    torch.testing.assert_close(rerouted, _logits(pruned, TOKENS), atol=1e-4, rtol=1e-4)
    with ablate_experts(model, torch.tensor([[1, 2]]), mode="drop"):
        dropped = _logits(model, TOKENS)
    assert not torch.allclose(rerouted, dropped, atol=1e-4)  # the two modes differ
    # composed: reroute away from expert 2, zero neuron 5 of expert 3 (index 2 once pruned)
    with torch.no_grad():
        pruned.model.layers[1].mlp.experts.down_proj[keep.index(3)][:, 5] = 0
    with ablate_experts(model, torch.tensor([[1, 2]])), ii.ablate_neurons(model, torch.tensor([[1, 3, 5]])):
        both = _logits(model, TOKENS)
    torch.testing.assert_close(both, _logits(pruned, TOKENS), atol=1e-4, rtol=1e-4)
    assert not [n for n, hp in model.hook_dict.items() if hp.has_hooks()]


def test_expert_neuron_ablation_validates():
    model, _ = _moe("mixtral")
    with pytest.raises(ValueError, match="out of range"):
        with ii.ablate_neurons(model, torch.tensor([[0, 4, 0]])):  # no always-on MLP: width 0
            pass
    with pytest.raises(ValueError, match="mode"):
        with ii.ablate_neurons(model, torch.tensor([[0, 1, 0]]), mode="half"):
            pass
    with pytest.raises(ValueError, match="means of shape"):
        with ii.ablate_neurons(model, torch.tensor([[0, 1, 0]]), mode="mean"):
            pass


def test_cli_isns_on_an_moe_model(tmp_path, small_data):
    from instr_interp.cli import main

    model_dir = tmp_path / "tiny-moe"
    ii.models.tiny_hf_model(seed=0, moe="qwen2_moe").save_pretrained(model_dir)
    ii.models.tiny_tokenizer().save_pretrained(model_dir)
    data = small_data[:6].save(tmp_path / "d.jsonl")
    args = ["isns", "--model", str(model_dir), "--data", str(data), "--top", "0.02", "--device", "cpu"]
    assert main(args + ["--out", str(tmp_path / "s"), "--expert-denominator", "routed"]) == 0
    sets = ii.load(tmp_path / "s")
    assert sets.widths is not None and sets.settings["expert_denominator"] == "routed"
    assert next(iter(sets.category_sets.values())).shape[1] == 3
    assert (tmp_path / "s" / "overlap.csv").exists() and (tmp_path / "s" / "layers.csv").exists()


def test_critical_role_on_moe_neuron_sets(small_data):
    from instr_interp.sparcom.ablation import critical_role, random_like

    model, _ = _moe("qwen2_moe")
    sample = small_data.filter(category="code")[:2]
    sets = find_isns(model, sample, top=0.02, progress=False)
    units = sets.category_sets["code"]
    drawn = random_like(units, sets.d_mlp, 0, sets.widths)
    same = lambda u: sorted(map(tuple, u[:, :2].tolist()))  # noqa: E731
    assert same(drawn) == same(units) and len(torch.unique(drawn, dim=0)) == len(units)
    with pytest.raises(ValueError, match="not yet for neurons inside experts"):
        critical_role(model, sample, sets, eval_data=small_data.filter(category="math")[:1])


def test_mean_expert_activations_equal_a_plain_average(small_data):
    model, hf = _moe("qwen2_moe")
    sample = small_data[:3]
    means = ii.mean_expert_activations(model, sample, batch_size=2, progress=False)
    widths = [[128] * 4 + [128]] * 2
    sums = {
        key: torch.zeros(128, dtype=torch.float64) for key in [(j, s) for j in range(2) for s in range(5)]
    }
    routed = {key: 0 for key in sums}
    got = {}
    layers = hf.model.layers
    handles = [
        layer.mlp.experts.register_forward_pre_hook(lambda m, a, i=i: got.__setitem__(i, (a[0], a[1])))
        for i, layer in enumerate(layers)
    ]
    tokens = 0
    for rec in ii.encode(sample, model.tokenizer):
        with torch.no_grad():
            hf(input_ids=torch.tensor([rec.tokens]))
        keep = [t for t, reg in enumerate(rec.regions) if reg in (2, 3)]
        tokens += len(keep)
        for i, layer in enumerate(layers):
            x, top = got[i]
            mlp = layer.mlp
            for t in keep:
                for e in top[t].tolist():  # HF's own fused weights, sliced per token with chunk
                    gate, up = (mlp.experts.gate_up_proj[e] @ x[t]).chunk(2)
                    sums[(i, e)] += (torch.nn.functional.silu(gate) * up).double()
                    routed[(i, e)] += 1
                sh = mlp.shared_expert
                sums[(i, 4)] += (torch.nn.functional.silu(sh.gate_proj(x[t])) * sh.up_proj(x[t])).double()
    for h in handles:
        h.remove()
    expected = torch.cat(
        [sums[(j, s)] / (tokens if s == 4 else max(routed[(j, s)], 1)) for j in range(2) for s in range(5)]
    )
    assert len(expected) == sum(map(sum, widths))
    torch.testing.assert_close(means.double(), expected, atol=1e-5, rtol=1e-4)
