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


def assert_tokenizer_as_transformer_lens_builds_it(tokenizer, path):
    """``tokenizer`` tokenizes like the one TransformerLens's own loading gives for ``path``: a plain
    ``AutoTokenizer`` load passed through ``get_tokenizer_with_bos``."""
    from transformer_lens.utilities import get_tokenizer_with_bos
    from transformers import AutoTokenizer

    plain = AutoTokenizer.from_pretrained(path)
    plain.init_kwargs.setdefault("name_or_path", str(path))
    reference = get_tokenizer_with_bos(plain)
    texts = ["Classify the sentiment: I loved this film.", "  two  spaces\n\nand lines", ""]
    if reference.chat_template:
        texts.append(reference.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False))
    for text in texts:
        for special in (True, False):
            assert (
                tokenizer(text, add_special_tokens=special)["input_ids"]
                == reference(text, add_special_tokens=special)["input_ids"]
            ), (text, special)
    for attribute in (
        "add_bos_token",
        "bos_token",
        "eos_token",
        "pad_token",
        "padding_side",
        "chat_template",
    ):
        assert getattr(tokenizer, attribute) == getattr(reference, attribute), attribute
