"""Independent computations the tests compare the toolkit against (plain torch + HF modules)."""

import torch


def plain_firing(hf_model, encoded, regions=(2, 3)):
    """Per-record firing counts from forward hooks on the HF gate projections, one record at a time
    with no padding: counts[r, layer, neuron] = #tokens in ``regions`` with gate_proj(x) > 0."""
    layers = hf_model.model.layers
    captured = {}
    handles = [
        layer.mlp.gate_proj.register_forward_hook(lambda m, i, o, idx=idx: captured.__setitem__(idx, o))
        for idx, layer in enumerate(layers)
    ]
    counts, sums, tokens = [], [], []
    try:
        for rec in encoded:
            ids = torch.tensor([rec.tokens])
            with torch.no_grad():
                hf_model(input_ids=ids)
            keep = torch.tensor([r in regions for r in rec.regions])
            acts = torch.stack([captured[i][0] for i in range(len(layers))])  # [layer pos d_mlp]
            counts.append((acts[:, keep] > 0).sum(1))
            sums.append(torch.nn.functional.silu(acts[:, keep]).double().sum(1))
            tokens.append(int(keep.sum()))
    finally:
        for h in handles:
            h.remove()
    return torch.stack(counts), torch.stack(sums), torch.tensor(tokens)
