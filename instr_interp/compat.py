"""The one seam to TransformerLens and transformers internals.

Everything the package needs from the inside of a ``TransformerBridge`` (the wrapped Hugging Face
modules, parameter names, the way a bridge's ``forward`` is replaced), from torch modules (hook
registries) and from Hugging Face configs and module trees (attention implementation, decoder
layers, config fields that differ between architectures) goes through a small named function
here. Public APIs (``model.hooks()``, ``run_with_hooks``, ``AutoTokenizer``, peft) are used
directly where they are needed; hook names are built in :mod:`instr_interp.hooks`.

When TransformerLens or transformers change an internal, this module is the one place to adapt
(``tests/unit/test_seam.py`` keeps the rest of the package off those internals).

Examples:
    >>> from instr_interp import tiny_model
    >>> from instr_interp.compat import hf_config
    >>> hf_config(tiny_model()).model_type
    'llama'
"""

import contextlib
import copy
import functools
import warnings

import torch
from torch import Tensor

__all__ = [
    "architecture",
    "attention_config",
    "attention_window",
    "attn_implementation",
    "boot_bridge",
    "drop_quantization",
    "generation_eos_ids",
    "has_hooks",
    "has_own_forward",
    "hf_attention_out_proj",
    "hf_body",
    "hf_config",
    "hf_decoder_layers",
    "hf_logit_softcap",
    "hf_model",
    "hf_n_heads",
    "hf_parameters",
    "is_native_norm",
    "moe_config",
    "n_kv_heads",
    "name_tokenizer",
    "override_forward",
    "restore_forward",
    "rmsnorm_offset",
    "router_renormalizes",
    "unwrap_peft",
    "with_attn_implementation",
    "wrapped_module",
    "on_forward_input",
    "tl_act_name",
    "tl_patching",
]

# ---------------------------------------------------------------------------------------------
# Building a bridge


def boot_bridge(label: str, hf_model, tokenizer, device: torch.device, dtype: torch.dtype):
    """Wrap a loaded Hugging Face causal LM and its tokenizer in a TransformerLens bridge.

    ``TransformerBridge.boot_transformers`` makes no hub call when both are passed; the bridge wraps
    ``hf_model``'s modules in place. Its loading chatter (``UserWarning``, ``RuntimeWarning``) is
    silenced; deprecations (``DeprecationWarning``, ``FutureWarning``) pass through, so upstream churn
    shows (the test suite turns them into errors).
    """
    from transformer_lens.model_bridge import TransformerBridge

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        return TransformerBridge.boot_transformers(
            label, hf_model=hf_model, tokenizer=tokenizer, device=device, dtype=dtype
        )


def name_tokenizer(
    tokenizer, name_or_path: str, *, adds_bos: bool | None = None, overwrite: bool = False
) -> None:
    """Record ``name_or_path`` (and whether the tokenizer adds BOS) where TransformerLens looks.

    The bridge reloads a tokenizer by ``init_kwargs["name_or_path"]`` unless ``init_kwargs`` says it
    already adds BOS; an in-memory tokenizer must carry both. ``overwrite=False`` keeps a name already set.
    """
    if overwrite:
        tokenizer.init_kwargs["name_or_path"] = name_or_path
    else:
        tokenizer.init_kwargs.setdefault("name_or_path", name_or_path)
    if adds_bos is not None:
        tokenizer.init_kwargs["add_bos_token"] = adds_bos


def drop_quantization(hf_model) -> None:
    """Forget that a (dequantised) model was loaded quantised, so it saves as plain weights."""
    hf_model.hf_quantizer = None
    if hasattr(hf_model.config, "quantization_config"):
        del hf_model.config.quantization_config


# ---------------------------------------------------------------------------------------------
# Inside a bridge


def hf_model(model):
    """The Hugging Face model a bridge wraps (``original_model``), or None for other models."""
    return getattr(model, "original_model", None)


def hf_config(model):
    """The Hugging Face config of the model a bridge wraps, or None."""
    return getattr(hf_model(model), "config", None)


def generation_eos_ids(model) -> list[int]:
    """The end-of-sequence ids of the wrapped model's ``generation_config`` (empty when none)."""
    gen = getattr(hf_model(model), "generation_config", None)
    extra = getattr(gen, "eos_token_id", None)
    if extra is None:
        return []
    return list(extra) if isinstance(extra, (list, tuple)) else [extra]


def wrapped_module(component):
    """The Hugging Face module a bridge component wraps (``original_component``), else ``component``."""
    return getattr(component, "original_component", component)


def hf_parameters(component) -> dict[str, Tensor]:
    """A bridge component's parameters under their Hugging Face names (bridge wrappers removed)."""
    return {k.replace("_original_component.", ""): v for k, v in component.named_parameters()}


def rmsnorm_offset(model) -> bool:
    """Whether the model's RMSNorms scale by ``1 + w`` (Gemma) rather than ``w``."""
    return bool(getattr(model.cfg, "rmsnorm_uses_offset", False))


def moe_config(model) -> tuple[int, int, int | None, bool]:
    """``(n_experts, experts_per_token, d_expert, shared_expert)`` of a model; zeros for dense models.

    Reads TransformerLens's ``cfg`` first, then the wrapped config, whose field names differ by
    architecture (Mixtral ``num_local_experts``; OLMoE / Qwen2-MoE ``num_experts``;
    ``moe_intermediate_size`` where experts are narrower than ``intermediate_size``). ``d_expert``
    is None for dense models.
    """
    cfg, hf_cfg = model.cfg, hf_config(model)
    n_experts = int(getattr(cfg, "num_experts", None) or 0)
    top_k = int(getattr(cfg, "experts_per_token", None) or 0)
    if hf_cfg is not None and not n_experts:
        n_experts = int(getattr(hf_cfg, "num_local_experts", 0) or getattr(hf_cfg, "num_experts", 0) or 0)
        top_k = int(getattr(hf_cfg, "num_experts_per_tok", 0) or 0)
    d_expert = None
    if hf_cfg is not None and n_experts:
        d_expert = int(getattr(hf_cfg, "moe_intermediate_size", 0) or hf_cfg.intermediate_size)
    shared = bool(hf_cfg is not None and getattr(hf_cfg, "shared_expert_intermediate_size", 0))
    return n_experts, top_k, d_expert, shared


def router_renormalizes(model, layer: int) -> bool:
    """Whether the softmax-then-top-k router of MoE layer ``layer`` rescales each token's top-k
    probabilities to sum to 1 (Mixtral always; OLMoE / Qwen2-MoE when ``norm_topk_prob``).

    Raises:
        ValueError: a router of another kind (its rule is not known here).
    """
    router = wrapped_module(model.blocks[layer].mlp.gate)
    name = type(router).__name__
    if hasattr(router, "norm_topk_prob"):
        return bool(router.norm_topk_prob)
    if name.startswith("Mixtral"):
        return True
    raise ValueError(
        f"Unknown router {name} in layer {layer}: rerouting supports softmax-then-top-k routers "
        "(Mixtral, OLMoE, Qwen2-MoE); use mode='drop'."
    )


def architecture(model) -> str:
    """The architecture name: TransformerLens's ``cfg.architecture``, else the wrapped config's."""
    hf_cfg = hf_config(model)
    arch = getattr(model.cfg, "architecture", None) or (
        hf_cfg.architectures[0] if hf_cfg is not None and hf_cfg.architectures else type(model).__name__
    )
    return str(arch)


def n_kv_heads(model) -> int:
    """Key/value heads per layer (``cfg.n_key_value_heads``; ``n_heads`` without GQA)."""
    return int(getattr(model.cfg, "n_key_value_heads", None) or model.cfg.n_heads)


# ---------------------------------------------------------------------------------------------
# Routing a bridge component straight through the module it wraps (engine.native)


def has_hooks(module) -> bool:
    """Whether a torch module (or TransformerLens hook point) carries any forward/backward hook."""
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or module._backward_hooks
        or getattr(module, "fwd_hooks", None)
        or getattr(module, "bwd_hooks", None)
    )


def attn_implementation(config) -> str | None:
    """The attention implementation a Hugging Face config selects (``"eager"``, ``"sdpa"``, ...)."""
    return getattr(config, "_attn_implementation", None)


def with_attn_implementation(config, implementation: str):
    """A shallow copy of ``config`` that selects another attention implementation."""
    fast = copy.copy(config)
    fast._attn_implementation_internal = implementation
    return fast


def is_native_norm(module) -> bool:
    """A normalisation bridge whose unhooked output already is the wrapped module's own output.

    Routing such a norm straight through the wrapped module is exact. (The python-norm path
    computes differently, at rounding scale; it is not one of these.)
    """
    from transformer_lens.model_bridge.generalized_components.normalization import NormalizationBridge

    return (
        isinstance(module, NormalizationBridge)
        and (module.use_native_layernorm_autograd or getattr(module.config, "layer_norm_folding", False))
        and isinstance(module.original_component, torch.nn.Module)
        and not isinstance(module.original_component, torch.nn.Identity)
    )


def attention_window(hf_attention) -> int | None:
    """The sliding-window width of a Hugging Face attention module (None: global attention)."""
    return getattr(hf_attention, "sliding_window", None)


@contextlib.contextmanager
def attention_config(hf_attention, config):
    """Run a Hugging Face attention module with another config (restored on exit)."""
    saved = hf_attention.config
    hf_attention.config = config
    try:
        yield hf_attention
    finally:
        hf_attention.config = saved


def has_own_forward(module) -> bool:
    """Whether ``forward`` is set on the instance itself (already overridden)."""
    return "forward" in vars(module)


def override_forward(module, forward) -> None:
    """Set ``forward`` on the instance, past the bridge's ``__setattr__`` (which forwards to the wrapped module)."""
    object.__setattr__(module, "forward", forward)


def restore_forward(module) -> None:
    """Undo :func:`override_forward`: the class's ``forward`` applies again."""
    object.__delattr__(module, "forward")


# ---------------------------------------------------------------------------------------------
# Plain Hugging Face causal LMs (training on the transformers model itself)


def unwrap_peft(model):
    """The transformers model inside a peft wrapper (the model itself otherwise)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def hf_body(model):
    """The decoder body of a causal LM without its head (``model.model``; peft wrappers unwrapped)."""
    return unwrap_peft(model).model


def hf_decoder_layers(model):
    """The decoder layers of a causal LM (``model.model.layers``; peft wrappers unwrapped)."""
    base = unwrap_peft(model)
    try:
        return base.model.layers
    except AttributeError as err:
        raise ValueError(
            f"{type(base).__name__} has no decoder layers at .model.layers; only "
            "Llama-style causal LMs are supported here."
        ) from err


def hf_attention_out_proj(model, layer: int):
    """The attention output projection (``o_proj``) of decoder layer ``layer``."""
    return hf_decoder_layers(model)[layer].self_attn.o_proj


def hf_n_heads(model) -> int:
    """Query heads per layer of a causal LM (``config.num_attention_heads``)."""
    return int(unwrap_peft(model).config.num_attention_heads)


def hf_logit_softcap(model) -> float | None:
    """Final logit soft-capping of a causal LM (Gemma 2/3 ``final_logit_softcapping``), or None."""
    return getattr(unwrap_peft(model).config, "final_logit_softcapping", None)


# ---------------------------------------------------------------------------------------------
# Seeing a model's input tokens (cross-model patching) and TransformerLens's patching sweeps


@contextlib.contextmanager
def on_forward_input(model, fn):
    """Call ``fn(continuing)`` before every ``model(...)`` call (a torch forward pre-hook, removed on
    exit, also on errors): ``continuing`` is True when the call continues a KV-cached sequence
    (TransformerLens ``generate`` passes ``past_key_values`` after the prompt's forward), so its
    input holds only the new tokens. ``run_with_hooks``/``run_with_cache`` call ``forward``
    directly: no call is seen for them (they never continue a cache in the toolkit)."""

    def pre_hook(module, args, kwargs):
        fn(kwargs.get("past_key_values") is not None)
        return None

    handle = model.register_forward_pre_hook(pre_hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def tl_patching():
    """TransformerLens's ``transformer_lens.patching`` module (activation patching sweeps)."""
    from transformer_lens import patching

    return patching


@contextlib.contextmanager
def tl_patching_progress(show: bool):
    """Show or hide the progress bar that ``transformer_lens.patching.generic_activation_patch`` draws
    on every call (it has no option for it): while ``show`` is False the module's ``tqdm`` is replaced
    by a disabled one, and restored on exit."""
    patching = tl_patching()
    if show:
        yield
        return
    original = patching.tqdm
    patching.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        patching.tqdm = original


def tl_act_name(name: str, layer: int | None) -> str:
    """TransformerLens's full hook name for a short activation name (``utils.get_act_name``)."""
    from transformer_lens import utilities as utils

    return utils.get_act_name(name, layer)
