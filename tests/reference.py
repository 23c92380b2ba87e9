"""Independent computations the tests compare the toolkit against (plain torch + HF modules)."""

import torch


def plain_firing(hf_model, encoded, regions=(2, 3), width=None):
    """Per-record firing counts from forward hooks on the HF gate projections, one record at a time:
    counts[r, layer, neuron] = #tokens in ``regions`` with gate_proj(x) > 0. Without padding, or
    right-padded (token 0, no mask: the model is causal) to ``width(n_tokens)`` positions."""
    layers = hf_model.model.layers
    captured = {}
    handles = [
        layer.mlp.gate_proj.register_forward_hook(lambda m, i, o, idx=idx: captured.__setitem__(idx, o))
        for idx, layer in enumerate(layers)
    ]
    counts, sums, tokens = [], [], []
    try:
        for rec in encoded:
            pad = 0 if width is None else width(len(rec.tokens)) - len(rec.tokens)
            ids = torch.tensor([list(rec.tokens) + [0] * pad])
            with torch.no_grad():
                hf_model(input_ids=ids)
            keep = torch.tensor([r in regions for r in rec.regions] + [False] * pad)
            acts = torch.stack([captured[i][0] for i in range(len(layers))])  # [layer pos d_mlp]
            counts.append((acts[:, keep] > 0).sum(1))
            sums.append(torch.nn.functional.silu(acts[:, keep]).double().sum(1))
            tokens.append(int(keep.sum()))
    finally:
        for h in handles:
            h.remove()
    return torch.stack(counts), torch.stack(sums), torch.tensor(tokens)
