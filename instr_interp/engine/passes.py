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

import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..data.encoding import EncodedBatch, EncodedDataset, encode
from ..hooks import FIRING_ORDER, HookSite
from ..models import model_device, model_identity
from .batching import check_context, plan_batches
from .native import check_blas, native_forward
from .parallel import shard, world
from .positions import prompt_positions

__all__ = ["Probe", "BatchContext", "check_finite", "run", "feed_cache"]


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
# The pass


class _StopForward(Exception):
    """The engine's one way to end a forward early: raised by a hook after the last needed site
    (the hooks are still removed); every engine forward catches it."""


def _save_checkpoint(path: Path, probes, done: list[int], meta: dict) -> None:
    from safetensors.torch import save_file

    tensors = {f"{i}/{k}": v.contiguous().cpu() for i, p in enumerate(probes) for k, v in p.state.items()}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"meta": json.dumps({**meta, "done": done})})
    os.replace(tmp, path)


def _load_checkpoint(path: Path, probes, meta: dict) -> set[int]:
    from safetensors import safe_open

    def corrupt(what: str) -> ValueError:
        return ValueError(
            f"Checkpoint {path} is corrupt or not a checkpoint of this toolkit: {what}. "
            "Delete it to start the pass afresh, or point checkpoint= elsewhere."
        )

    try:
        fh_context = safe_open(str(path), framework="pt")
    except Exception as err:  # safetensors raises its own error types for truncated or foreign files
        raise corrupt(f"it cannot be read as safetensors ({err})") from None
    with fh_context as fh:
        try:
            saved = json.loads((fh.metadata() or {})["meta"])
            done = saved.pop("done")
        except (KeyError, json.JSONDecodeError, TypeError, AttributeError):
            raise corrupt("its 'meta' record (with the finished batches) is missing or unreadable") from None
        if saved != meta:
            differ = sorted(k for k in set(saved) | set(meta) if saved.get(k) != meta.get(k))
            raise ValueError(
                f"Checkpoint {path} was written by a different pass: {', '.join(differ)} differ "
                f"(saved {[saved.get(k) for k in differ]}, now {[meta.get(k) for k in differ]}). "
                "Delete it or point checkpoint= elsewhere."
            )
        for i, probe in enumerate(probes):
            for key, value in probe.state.items():
                if f"{i}/{key}" not in fh.keys():
                    raise corrupt(f"the state {i}/{key} of probe {type(probe).__name__} is missing")
                value.copy_(fh.get_tensor(f"{i}/{key}"))
    return set(done)


def check_finite(values: torch.Tensor, what: str, batch: EncodedBatch | None = None) -> None:
    """Raise a clear error when ``values`` hold a NaN or an infinity (in weights or activations),
    instead of letting a pass reduce them to a silent 0 or a NaN ranking.

    Examples:
        >>> check_finite(torch.tensor([1.0, float("nan")]), "the logits")
        Traceback (most recent call last):
        ...
        FloatingPointError: the logits hold 1 non-finite value(s) (NaN or inf)...
    """
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        rows = ""
        if batch is not None and values.dim() >= 2 and values.shape[0] == batch.tokens.shape[0]:
            rows = f" in records {batch.index[bad.reshape(values.shape[0], -1).any(1).cpu()].tolist()[:5]}"
        raise FloatingPointError(
            f"{what} hold {int(bad.sum())} non-finite value(s) (NaN or inf){rows}. The model's weights or "
            "inputs are broken (check the checkpoint, the dtype, e.g. float16 overflow); no statistic is "
            "computed from them."
        )


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

    Under ``torch.distributed`` (e.g. torchrun), each rank runs every world_size-th batch
    (:func:`instr_interp.engine.shard`) and the states are summed with ``all_reduce``: every rank
    ends with the single-process result.

    Each forward declares its batch's last prompt positions (``EncodedBatch.last_prompt``: the token
    before the response region when responses are encoded) on
    :func:`instr_interp.engine.prompt_positions`, so ``add_vector(..., positions="last")`` adds there.

    Examples:
        >>> from instr_interp import tiny_model, hexainst
        >>> from instr_interp.sparcom.firing import NeuronFiring
        >>> model = tiny_model()
        >>> (probe,) = run(model, hexainst()[:4], [NeuronFiring()], progress=False)
        >>> probe.result().counts.shape[1:]
        torch.Size([2, 128])
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}.")
    if not probes:
        raise ValueError("run() needs at least one probe.")
    encoded = (
        data
        if isinstance(data, EncodedDataset)
        else encode(data, model.tokenizer, format=format, max_length=max_length, with_response=with_response)
    )
    check_context(model, [len(r.tokens) for r in encoded], names=[r.id for r in encoded])
    device = model_device(model)
    check_blas(device)
    for probe in probes:
        probe.setup(model, encoded, device)
    by_name, last_site, stop_site = _route(model, probes)

    rank, n_ranks = world()
    held = [p.name for p in probes if not getattr(p, "reducible", True)]
    if held and (checkpoint is not None or n_ranks > 1):
        raise ValueError(
            f"Probes {held} keep per-record rows outside their summed state, so they cannot be "
            "checkpointed or combined across ranks; run them without checkpoint= on one process."
        )
    all_batches = plan_batches(encoded, batch_size)
    mine = shard(len(all_batches))
    ckpt, meta, done = _open_checkpoint(model, encoded, probes, batch_size, checkpoint, rank, n_ranks)

    dispatch = _Dispatch(by_name, last_site.name)
    fwd_hooks = dispatch.hooks()
    if stop_site is not None:
        fwd_hooks.append((stop_site.name, _stop_hook))  # after the probes' hook on the same point

    todo = [b for b in mine if b not in done]
    processed = 0
    categories = encoded.category_index()
    bar = tqdm(
        total=len(mine),
        initial=len(mine) - len(todo),
        desc="activation pass",
        unit="batch",
        disable=not progress or rank != 0,
    )
    try:
        with torch.inference_mode(), model.hooks(fwd_hooks=fwd_hooks), native_forward(model, causal=True):
            for b in todo:
                if stop_after_batches is not None and processed >= stop_after_batches:
                    break
                width, indices = all_batches[b]
                batch = encoded.batch(indices, "right", width=width).to(device)
                _forward_batch(model, batch, dispatch, BatchContext(batch, encoded, categories))
                done.add(b)
                processed += 1
                bar.update(1)
                if ckpt is not None and processed % checkpoint_every == 0:
                    _save_checkpoint(ckpt, probes, sorted(done), meta)
    finally:
        bar.close()
        dispatch.ctx = None
    if ckpt is not None:
        _save_checkpoint(ckpt, probes, sorted(done), meta)
    if n_ranks > 1 and len(done) == len(mine):
        _sum_over_ranks(probes)
    return list(probes)


def _sum_over_ranks(probes: Sequence[Probe]) -> None:
    """Sum every probe state over the ``torch.distributed`` ranks, in place."""
    for probe in probes:
        for value in probe.state.values():
            torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.SUM)


def _route(
    model, probes: Sequence[Probe]
) -> tuple[dict[str, list[tuple[Probe, HookSite]]], HookSite, HookSite | None]:
    """Which probes each hook point feeds, the site that fires last, and where to stop the forward
    (that site, unless a probe needs the logits)."""
    sites = {id(p): p.sites(model) for p in probes}
    by_name: dict[str, list[tuple[Probe, HookSite]]] = {}
    for probe in probes:
        for site in sites[id(probe)]:
            by_name.setdefault(site.name, []).append((probe, site))
    needs_logits = any(p.needs_logits for p in probes)
    every_site = [s for ss in sites.values() for s in ss]
    n_layers = model.cfg.n_layers
    # Stop right after the site that fires last (the unembedding and later layers never run).
    last_site = max(
        every_site,
        key=lambda s: (
            s.layer if s.layer is not None else -1 if s.kind == "embed" else n_layers,
            FIRING_ORDER[s.kind],
        ),
    )
    stop_site = None if needs_logits else last_site
    return by_name, last_site, stop_site


def _open_checkpoint(
    model,
    encoded: EncodedDataset,
    probes: Sequence[Probe],
    batch_size: int,
    checkpoint: str | Path | None,
    rank: int,
    n_ranks: int,
) -> tuple[Path | None, dict, set[int]]:
    """The checkpoint file of this rank (``None`` without checkpointing), the settings a checkpoint
    must match to be resumed, and the batches already done (the probes' states are loaded from it)."""
    identity = {k: v for k, v in model_identity(model).items() if k != "name"}  # the weights, not the label
    meta = {
        "data": encoded.fingerprint,
        "batch_size": batch_size,
        "plan": "widest-first",
        "rank": rank,
        "world": n_ranks,
        "probes": [p.config() for p in probes],
        "model": identity,
    }
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and n_ranks > 1:
        ckpt = ckpt.with_name(f"{ckpt.stem}.rank{rank}{ckpt.suffix}")
    done = _load_checkpoint(ckpt, probes, meta) if ckpt is not None and ckpt.exists() else set()
    return ckpt, meta, done


class _Dispatch:
    """The probes' forward hooks: each hands its activation to the probes on that hook point, with
    the current batch's context, and records that it fired."""

    def __init__(self, by_name: dict[str, list[tuple[Probe, HookSite]]], deepest: str):
        self.by_name = by_name
        self.deepest = deepest
        self.ctx: BatchContext | None = None
        self.fired: set[str] = set()

    def hooks(self) -> list[tuple[str, object]]:
        return [(name, self._hook(name)) for name in self.by_name]

    def _hook(self, name: str):
        targets = self.by_name[name]
        deepest = name == self.deepest

        def hook(act, hook=None):
            ctx = self.ctx
            self.fired.add(name)
            if deepest:  # NaN/inf anywhere upstream reaches the deepest probed site
                check_finite(act, f"the activations at {name}", ctx.batch)
            for probe, site in targets:
                probe.update(site, act.detach(), ctx)
            return None

        return hook


def _stop_hook(act, hook=None):
    raise _StopForward


def _forward_batch(model, batch: EncodedBatch, dispatch: _Dispatch, ctx: BatchContext) -> None:
    """One forward over ``batch`` feeding the probes; fails when a probed hook point never fired."""
    dispatch.ctx = ctx
    dispatch.fired.clear()
    try:
        # Right padding after causal sequences: real tokens never see the padding, so
        # no attention mask is needed (positions default to 0..pos-1, also right).
        with prompt_positions(model).declare(batch.last_prompt, regions=batch.regions):
            model(batch.tokens, return_type=None)
    except _StopForward:
        pass
    if len(dispatch.fired) != len(dispatch.by_name):
        missing = sorted(set(dispatch.by_name) - dispatch.fired)
        raise RuntimeError(
            f"Hook points never fired during the forward: {missing[:5]}. "
            "This model does not route through them; choose other sites."
        )


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
                raise KeyError(
                    f"The cache has no {site.name!r}; pass names_filter covering it to run_with_cache."
                )
            probe.update(site, cache[site.name], ctx)
