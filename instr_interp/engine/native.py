"""CPU numerics and speed: MKL's reproducible mode, and transformers' own fused attention and norm
modules wherever no hook looks inside them (see :mod:`instr_interp.engine.passes` for exactness)."""

import contextlib
import copy
import ctypes
import warnings
from pathlib import Path

import torch

__all__ = ["blas_reproducible", "check_blas", "native_forward"]

# ---------------------------------------------------------------------------------------------
# Reproducible BLAS

_MKL_STRICT = 0x10000


def blas_reproducible() -> bool | None:
    """Whether Intel MKL runs in strict reproducible mode (None when torch does not use MKL)."""
    lib_path = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        lib = ctypes.CDLL(str(lib_path))
        get = lib.mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return None
    get.argtypes, get.restype = [ctypes.c_int], ctypes.c_int
    return bool(get(-1) & _MKL_STRICT)


_warned_blas = False


def check_blas(device: torch.device) -> None:
    global _warned_blas
    if device.type != "cpu" or _warned_blas or blas_reproducible() is not False:
        return
    _warned_blas = True
    warnings.warn(
        "MKL is not in strict reproducible mode, so firing statistics may differ in a handful of "
        "near-zero activations between batch sizes. Import instr_interp before torch, or start Python "
        "with MKL_CBWR=AUTO,STRICT in the environment.",
        stacklevel=3,
    )



# ---------------------------------------------------------------------------------------------
# transformers' own modules where nothing looks inside them

# Hook points that only the bridge's step-by-step attention fires. hook_q/k/v and hook_z live on the
# projection bridges and fire on the fused path too, as do the attention's own hook_in/hook_out.
_INSIDE_ATTENTION = ("hook_attn_scores", "hook_pattern", "hook_rot_q", "hook_rot_k", "hook_cos", "hook_sin",
                     "hook_q_input", "hook_k_input", "hook_v_input", "hook_attn_in", "hook_result",
                     "hook_hidden_states", "hook_q_normed", "hook_k_normed")
_INSIDE_NORM = ("hook_scale", "hook_normalized")


def _hooked(module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
                or getattr(module, "fwd_hooks", None) or getattr(module, "bwd_hooks", None))


def _fused_forward(attn, config, causal: bool):
    hf_attn = attn.original_component
    window = getattr(hf_attn, "sliding_window", None)

    def forward(hidden_states, *args, **kwargs):
        if causal and (window is None or hidden_states.shape[-2] <= window):
            # The mask is the plain causal triangle: let the kernel apply it (is_causal), as a plain
            # transformers forward without padding does; row i then never reads keys beyond i.
            kwargs["attention_mask"] = None
        saved = hf_attn.config
        hf_attn.config = config
        try:
            out, weights = hf_attn(attn.hook_in(hidden_states), *args, **kwargs)
        finally:
            hf_attn.config = saved
        return attn.hook_out(out), weights

    return forward


def _native_norm_forward(norm):
    hf_norm = norm.original_component

    def forward(hidden_states, **kwargs):
        x = norm.hook_in(hidden_states)
        return norm.hook_out(hf_norm(x).to(x.dtype))

    return forward


def _attention_to_fuse(attn):
    hf_attn = getattr(attn, "original_component", None)
    config = getattr(hf_attn, "config", None)
    if (config is None or getattr(config, "_attn_implementation", None) not in ("eager", "sdpa")
            or any(_hooked(getattr(attn, name)) for name in _INSIDE_ATTENTION if hasattr(attn, name))):
        return None
    fast = copy.copy(config)
    fast._attn_implementation_internal = "sdpa"
    return fast


def _native_norm(module) -> bool:
    from transformer_lens.model_bridge.generalized_components.normalization import NormalizationBridge

    # Only bridges whose unhooked output already is the wrapped module's own output: the swap is
    # then exact. (The python-norm path computes differently, at rounding scale; it is left alone.)
    return (isinstance(module, NormalizationBridge)
            and (module.use_native_layernorm_autograd or getattr(module.config, "layer_norm_folding", False))
            and isinstance(module.original_component, torch.nn.Module)
            and not isinstance(module.original_component, torch.nn.Identity)
            and not any(_hooked(getattr(module, name)) for name in _INSIDE_NORM))


@contextlib.contextmanager
def native_forward(model, *, causal: bool = False):
    """Run transformers' own attention and normalisation modules wherever no hook looks inside them.

    TransformerLens's bridge re-implements attention step by step (materialising scores and the
    pattern) so that ``hook_attn_scores``/``hook_pattern`` can fire, and computes every RMSNorm /
    LayerNorm a second time in Python so that ``hook_scale``/``hook_normalized`` can fire before
    returning the wrapped module's own output. Where none of those inner hook points carries a
    hook, this context routes the module straight through the wrapped transformers module:
    attention with the fused ``scaled_dot_product_attention`` kernel, a norm as itself. Each
    module's ``hook_in``/``hook_out`` (and ``hook_q/k/v``, ``hook_z``) still fire. Enter it after
    registering hooks: the check is made on entry, per module; everything is restored on exit.
    Yields the number of attention layers and norms routed.

    A norm's output is bit-identical to the bridge's (the bridge returns the wrapped module's
    output when its inner hooks only observe). ``causal=True`` declares that the forward runs
    without a padding mask (right padding, as :func:`run` does): the attention kernel then applies
    the causal mask itself, which makes each row's result independent of the padded width.

    Examples:
        >>> from instr_interp import tiny_model
        >>> with native_forward(tiny_model(), causal=True) as n_routed:
        ...     n_routed  # 2 attention layers, 2 x 2 block norms and the final norm
        7
    """
    patched = []
    try:
        for block in getattr(model, "blocks", []):
            attn = getattr(block, "attn", None)
            if attn is None or "forward" in vars(attn):
                continue
            fast = _attention_to_fuse(attn)
            if fast is not None:
                object.__setattr__(attn, "forward", _fused_forward(attn, fast, causal))  # the bridge's own setattr forwards
                patched.append(attn)
        for module in model.modules():
            if "forward" not in vars(module) and _native_norm(module):
                object.__setattr__(module, "forward", _native_norm_forward(module))
                patched.append(module)
        yield len(patched)
    finally:
        for module in patched:
            object.__delattr__(module, "forward")

