"""CPU numerics and speed: MKL's reproducible mode, and transformers' own fused attention and norm
modules wherever no hook looks inside them (see :mod:`instr_interp.engine.passes` for exactness)."""

import contextlib
import ctypes
import warnings
from pathlib import Path

import torch

from .. import compat
from ..hooks import ATTENTION_INNER_HOOKS, NORM_INNER_HOOKS

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


def _hooked(module) -> bool:
    return compat.has_hooks(module)


def _fused_forward(attn, config, causal: bool):
    hf_attn = compat.wrapped_module(attn)
    window = compat.attention_window(hf_attn)

    def forward(hidden_states, *args, **kwargs):
        if causal and (window is None or hidden_states.shape[-2] <= window):
            # The mask is the plain causal triangle: let the kernel apply it (is_causal), as a plain
            # transformers forward without padding does; row i then never reads keys beyond i.
            kwargs["attention_mask"] = None
        with compat.attention_config(hf_attn, config):
            out, weights = hf_attn(attn.hook_in(hidden_states), *args, **kwargs)
        return attn.hook_out(out), weights

    return forward


def _native_norm_forward(norm):
    hf_norm = compat.wrapped_module(norm)

    def forward(hidden_states, **kwargs):
        x = norm.hook_in(hidden_states)
        return norm.hook_out(hf_norm(x).to(x.dtype))

    return forward


def _attention_to_fuse(attn):
    hf_attn = compat.wrapped_module(attn)
    config = getattr(hf_attn, "config", None) if hf_attn is not attn else None
    if (
        config is None
        or compat.attn_implementation(config) not in ("eager", "sdpa")
        or any(_hooked(getattr(attn, name)) for name in ATTENTION_INNER_HOOKS if hasattr(attn, name))
    ):
        return None
    return compat.with_attn_implementation(config, "sdpa")


def _native_norm(module) -> bool:
    # Only bridges whose unhooked output already is the wrapped module's own output: the swap is
    # then exact. (The python-norm path computes differently, at rounding scale; it is left alone.)
    return compat.is_native_norm(module) and not any(
        _hooked(getattr(module, name)) for name in NORM_INNER_HOOKS
    )


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
            if attn is None or compat.has_own_forward(attn):
                continue
            fast = _attention_to_fuse(attn)
            if fast is not None:
                compat.override_forward(attn, _fused_forward(attn, fast, causal))
                patched.append(attn)
        for module in model.modules():
            if not compat.has_own_forward(module) and _native_norm(module):
                compat.override_forward(module, _native_norm_forward(module))
                patched.append(module)
        yield len(patched)
    finally:
        for module in patched:
            compat.restore_forward(module)
