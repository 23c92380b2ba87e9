"""The shared activation pass: one forward over an encoded dataset feeds many probes.

A probe names its hook sites, reduces each activation on the spot into a dict of summable
tensors (its ``state``), and turns that state into a result at the end. Because states are sums,
a pass can be checkpointed and resumed, and data-parallel ranks combine with one ``all_reduce``.

Exactness. fp32 results of a transformer depend on the batch layout: with left padding the
attention reductions shift, and Intel MKL's multithreaded GEMM splits the inner dimension
differently for different row counts; and the blocked inner products over key positions in
attention round differently when the padded width changes (seen above ~400 positions). Measured on SmolLM2-135M, 32 prompts: up to 3e-5 absolute
difference in gate pre-activations and 7 of 31.7M ``> 0`` decisions flipped between batch sizes 1
and 7. The engine therefore (1) always runs the forward right-padded (padding after the last real
token changes nothing a causal model computes for real tokens), (2) computes every record at a
fixed padded width that depends only on its own length (``bucket_width``), and (3) relies on MKL's strict
conditional-numerical-reproducibility mode, ``MKL_CBWR=AUTO,STRICT``, which ``import instr_interp``
sets when torch is not imported yet. With all three, statistics are bit-identical across batch sizes,
padding sides and process counts on CPU. On GPUs cuBLAS gives no such guarantee.
"""

import contextlib
import copy
import ctypes
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .data.encoding import EncodedBatch, EncodedDataset, encode
from .hooks import FIRING_ORDER, HookSite
from .models import model_device

__all__ = ["Probe", "BatchContext", "run", "feed_cache", "blas_reproducible", "bucket_width", "plan_batches", "plan_rows",
           "native_forward"]


class BatchContext:
    """What a probe sees besides the activation: the batch and the dataset it came from."""

    def __init__(self, batch: EncodedBatch, encoded: EncodedDataset, categories: torch.Tensor):
        self.batch = batch
        self.encoded = encoded
        self.category = categories[batch.index.cpu()].to(batch.tokens.device)  # [batch]
        self._masks: dict[tuple[str, ...], torch.Tensor] = {}

    def mask(self, regions: Sequence[str]) -> torch.Tensor:
        key = tuple(regions)
        if key not in self._masks:
            self._masks[key] = self.batch.mask(key)
        return self._masks[key]

    def span(self, regions: Sequence[str]) -> slice:
        """The smallest position slice holding every token of ``regions`` in the batch (lets a probe
        skip e.g. a chat template's system prompt before reducing)."""
        key = ("span",) + tuple(regions)
        if key not in self._masks:
            cols = self.mask(regions).any(0).nonzero().flatten()
            self._masks[key] = slice(int(cols[0]), int(cols[-1]) + 1) if len(cols) else slice(0, 0)
        return self._masks[key]


class Probe:
    """Base class of streaming reducers. Subclasses set ``state`` in :meth:`setup` and fill it in
    :meth:`update`; every state tensor must be a sum over records (so it can be all-reduced)."""

    needs_logits: bool = False
    name: str = "probe"

    def __init__(self):
        self.state: dict[str, torch.Tensor] = {}

    def sites(self, model) -> list[HookSite]:
        raise NotImplementedError

    def setup(self, model, encoded: EncodedDataset, device: torch.device) -> None:
        raise NotImplementedError

    def update(self, site: HookSite, act: torch.Tensor, ctx: BatchContext) -> None:
        raise NotImplementedError

    def config(self) -> dict:
        """Settings that identify the probe (checked when resuming from a checkpoint)."""
        return {"probe": type(self).__name__}


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


def _check_blas(device: torch.device) -> None:
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
# The pass


class _StopForward(Exception):
    pass


def bucket_width(n_tokens: int) -> int:
    """The padded width a record of ``n_tokens`` is always computed at: the next multiple of 16 up
    to 256, of 32 up to 512, of 64 up to 1024, then of 128 (at most ~12% padding)."""
    for limit, step in ((256, 16), (512, 32), (1024, 64)):
        if n_tokens <= limit:
            return -(-n_tokens // step) * step
    return -(-n_tokens // 128) * 128


def plan_batches(encoded: EncodedDataset, batch_size: int) -> list[tuple[int, list[int]]]:
    """Deterministic batches ``(width, record indices)``: records grouped by :func:`bucket_width`
    (widest bucket first), sorted by length within a bucket, at most ``batch_size`` per batch.

    Every record is computed at its own bucket width whatever the batch size, so the reduction
    lengths inside attention (softmax and pattern @ V over key positions) never change with the
    batch: only the row count of matrix products does, which MKL's strict mode makes irrelevant.
    """
    return plan_rows([rec.tokens for rec in encoded], batch_size)


def plan_rows(token_lists: Sequence[Sequence[int]], batch_size: int, extra: int = 0) -> list[tuple[int, list[int]]]:
    """Batches ``(width, row indices)`` of any token lists, as :func:`plan_batches` makes them: rows
    grouped by the bucket width of ``len + extra`` tokens (``extra``: room for generated tokens;
    widest bucket first), sorted by length within a bucket, at most ``batch_size`` per batch."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    buckets: dict[int, list[int]] = {}
    for i in sorted(range(len(token_lists)), key=lambda i: (len(token_lists[i]), i)):
        buckets.setdefault(bucket_width(len(token_lists[i]) + extra), []).append(i)
    # Widest bucket first: the first batches size the allocator's blocks and later, narrower ones
    # reuse them, rather than each wider bucket asking for fresh ones (and an out-of-memory shows
    # at once, not at the end).
    return [(w, ids[s : s + batch_size]) for w, ids in sorted(buckets.items(), reverse=True)
            for s in range(0, len(ids), batch_size)]

def _dist():
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _save_checkpoint(path: Path, probes, done: list[int], meta: dict) -> None:
    from safetensors.torch import save_file

    tensors = {f"{i}/{k}": v.contiguous().cpu() for i, p in enumerate(probes) for k, v in p.state.items()}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"meta": json.dumps({**meta, "done": done})})
    os.replace(tmp, path)


def _load_checkpoint(path: Path, probes, meta: dict) -> set[int]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        saved = json.loads(fh.metadata()["meta"])
        done = saved.pop("done")
        if saved != meta:
            raise ValueError(
                f"Checkpoint {path} was written by a different pass ({saved}); expected {meta}. "
                "Delete it or point checkpoint= elsewhere."
            )
        for i, probe in enumerate(probes):
            for key, value in probe.state.items():
                value.copy_(fh.get_tensor(f"{i}/{key}"))
    return set(done)


def run(
    model,
    data,
    probes: Sequence[Probe],
    *,
    batch_size: int = 16,
    padding_side: str = "right",
    format: str = "auto",
    with_response: bool = False,
    max_length: int | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 10,
    progress: bool = True,
    stop_after_batches: int | None = None,
) -> list[Probe]:
    """Run ``model`` over ``data`` once, feeding every probe; returns the probes (with states).

    Args:
        model: a hooked model (``TransformerBridge``, or anything with ``hooks()`` and ``hook_dict``).
        data: an :class:`EncodedDataset`, or records (then encoded with ``format``/``max_length``).
        probes: the reducers to feed; they share the forward pass.
        batch_size: records per forward.
        padding_side: accepted for symmetry with encoding; the forward itself always runs
            right-padded (see the module docstring), so the result is the same for either side.
        checkpoint: a file to save probe states to every ``checkpoint_every`` batches; if it exists,
            the pass resumes from it (finished batches are skipped, so nothing is counted twice).
        stop_after_batches: process at most this many new batches, then return (simulates an
            interruption; the checkpoint is written first).

    Under ``torch.distributed`` (e.g. torchrun), each rank runs every world_size-th batch and the
    states are summed with ``all_reduce``: every rank ends with the single-process result.

    Examples:
        >>> from instr_interp import tiny_model, hexainst
        >>> from instr_interp.probes import NeuronFiring
        >>> model = tiny_model()
        >>> (probe,) = run(model, hexainst()[:4], [NeuronFiring()], progress=False)
        >>> probe.result().counts.shape[1:]
        torch.Size([2, 128])
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}.")
    if not probes:
        raise ValueError("run() needs at least one probe.")
    encoded = data if isinstance(data, EncodedDataset) else encode(
        data, model.tokenizer, format=format, max_length=max_length, with_response=with_response
    )
    device = model_device(model)
    _check_blas(device)
    for probe in probes:
        probe.setup(model, encoded, device)
    sites = {id(p): p.sites(model) for p in probes}
    by_name: dict[str, list[tuple[Probe, HookSite]]] = {}
    for probe in probes:
        for site in sites[id(probe)]:
            by_name.setdefault(site.name, []).append((probe, site))
    needs_logits = any(p.needs_logits for p in probes)
    every_site = [s for ss in sites.values() for s in ss]
    n_layers = model.cfg.n_layers
    # Stop right after the site that fires last (the unembedding and later layers never run).
    last_site = max(every_site, key=lambda s: (n_layers if s.kind == "logits" else -1 if s.layer is None
                                                else s.layer, FIRING_ORDER[s.kind]))
    stop_site = None if needs_logits else last_site

    rank, world = _dist()
    all_batches = plan_batches(encoded, batch_size)
    mine = [b for b in range(len(all_batches)) if b % world == rank]
    meta = {"data": encoded.fingerprint, "batch_size": batch_size, "plan": "widest-first", "rank": rank, "world": world,
            "probes": [p.config() for p in probes]}
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and world > 1:
        ckpt = ckpt.with_name(f"{ckpt.stem}.rank{rank}{ckpt.suffix}")
    done = _load_checkpoint(ckpt, probes, meta) if ckpt is not None and ckpt.exists() else set()

    ctx_holder: dict[str, BatchContext] = {}
    categories = encoded.category_index()

    def make_hook(name: str):
        targets = by_name[name]

        def hook(act, hook=None):
            ctx = ctx_holder["ctx"]
            fired.add(name)
            for probe, site in targets:
                probe.update(site, act.detach(), ctx)
            return None

        return hook

    def stop_hook(act, hook=None):
        raise _StopForward

    fired: set[str] = set()
    fwd_hooks = [(name, make_hook(name)) for name in by_name]
    if stop_site is not None:
        fwd_hooks.append((stop_site.name, stop_hook))  # after the probes' hook on the same point

    todo = [b for b in mine if b not in done]
    processed = 0
    bar = tqdm(total=len(mine), initial=len(mine) - len(todo), desc="activation pass",
               unit="batch", disable=not progress or rank != 0)
    try:
        with torch.inference_mode(), model.hooks(fwd_hooks=fwd_hooks), native_forward(model, causal=True):
            for b in todo:
                if stop_after_batches is not None and processed >= stop_after_batches:
                    break
                width, indices = all_batches[b]
                batch = encoded.batch(indices, "right", width=width).to(device)
                ctx_holder["ctx"] = BatchContext(batch, encoded, categories)
                fired.clear()
                try:
                    # Right padding after causal sequences: real tokens never see the padding, so
                    # no attention mask is needed (positions default to 0..pos-1, also right).
                    model(batch.tokens, return_type=None)
                except _StopForward:
                    pass
                if len(fired) != len(by_name):
                    missing = sorted(set(by_name) - fired)
                    raise RuntimeError(f"Hook points never fired during the forward: {missing[:5]}. "
                                       "This model does not route through them; choose other sites.")
                done.add(b)
                processed += 1
                bar.update(1)
                if ckpt is not None and processed % checkpoint_every == 0:
                    _save_checkpoint(ckpt, probes, sorted(done), meta)
    finally:
        bar.close()
        ctx_holder.clear()
    if ckpt is not None:
        _save_checkpoint(ckpt, probes, sorted(done), meta)
    if world > 1 and len(done) == len(mine):
        for probe in probes:
            for value in probe.state.values():
                torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.SUM)
    return list(probes)


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


def feed_cache(probes: Sequence[Probe], cache, batch: EncodedBatch, encoded: EncodedDataset, model) -> None:
    """Feed activations already in a TransformerLens ``ActivationCache`` (from ``run_with_cache``
    on ``batch.tokens``) to probes, for quick interactive work on a few prompts."""
    device = batch.tokens.device
    categories = encoded.category_index()
    ctx = BatchContext(batch, encoded, categories)
    for probe in probes:
        if not probe.state:
            probe.setup(model, encoded, device)
        for site in probe.sites(model):
            if site.name not in cache:
                raise KeyError(f"The cache has no {site.name!r}; pass names_filter covering it to run_with_cache.")
            probe.update(site, cache[site.name], ctx)


