"""Activation patching with plain transformers forward hooks on the Hugging Face modules: the
independent computation the bridge's ``patch`` is checked against (tiny models and SmolLM2)."""

import torch


def _module(hf, kind: str, layer: int):
    block = hf.model.layers[layer]
    return {
        "resid_post": block,
        "attn_out": block.self_attn,
        "mlp_out": block.mlp,
        "mlp_post": block.mlp.down_proj,
        "attn_z": block.self_attn.o_proj,
    }[kind]


def _pre(kind: str) -> bool:
    return kind in ("mlp_post", "attn_z")  # inputs of a projection: a forward pre-hook


def _shape(kind: str, x: torch.Tensor, n_heads: int) -> torch.Tensor:
    return x.reshape(*x.shape[:2], n_heads, -1) if kind == "attn_z" else x


def hf_activations(hf, tokens, sites, n_heads: int) -> dict:
    """``{(kind, layer): activation}`` of a plain HF forward on ``tokens``."""
    held, handles = {}, []
    for kind, layer in sites:
        module = _module(hf, kind, layer)
        if _pre(kind):

            def pre(mod, args, key=(kind, layer)):
                held[key] = _shape(key[0], args[0].detach().clone(), n_heads)

            handles.append(module.register_forward_pre_hook(pre))
        else:

            def post(mod, args, out, key=(kind, layer)):
                held[key] = (out[0] if isinstance(out, tuple) else out).detach().clone()

            handles.append(module.register_forward_hook(post))
    try:
        with torch.no_grad():
            hf(input_ids=tokens)
    finally:
        for h in handles:
            h.remove()
    return held


def hf_patched_logits(
    target, source_acts: dict, tokens, *, mask=None, units=None, zero_neurons=None, n_heads: int
):
    """Logits of plain HF ``target`` on ``tokens`` with each ``(kind, layer)`` activation replaced by
    ``source_acts`` at ``mask`` positions (``[batch, pos]``; all when None) and ``units`` (axis 2;
    all when None); ``zero_neurons``: ``{layer: [neurons]}`` zeroed at the down projection's input."""
    handles = []

    def replace(key, x):
        x = _shape(key[0], x, n_heads).clone()
        src = source_acts[key].to(x.dtype)
        m = torch.ones(x.shape[:2], dtype=torch.bool) if mask is None else mask
        for b in range(x.shape[0]):
            for p in range(x.shape[1]):
                if m[b, p]:
                    if units is None:
                        x[b, p] = src[b, p]
                    else:
                        x[b, p, units] = src[b, p, units]
        return x

    for key in source_acts:
        kind, layer = key
        module = _module(target, kind, layer)
        if _pre(kind):

            def pre(mod, args, key=key):
                x = replace(key, args[0])
                return (x.reshape(*x.shape[:2], -1),) + tuple(args[1:])

            handles.append(module.register_forward_pre_hook(pre))
        else:

            def post(mod, args, out, key=key):
                if isinstance(out, tuple):
                    return (replace(key, out[0]),) + tuple(out[1:])
                return replace(key, out)

            handles.append(module.register_forward_hook(post))
    for layer, neurons in (zero_neurons or {}).items():

        def zero(mod, args, neurons=neurons):
            x = args[0].clone()
            x[..., neurons] = 0.0
            return (x,)

        handles.append(target.model.layers[layer].mlp.down_proj.register_forward_pre_hook(zero))
    try:
        with torch.no_grad():
            return target(input_ids=tokens).logits
    finally:
        for h in handles:
            h.remove()
