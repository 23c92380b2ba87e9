"""Patching sweeps: patch one unit at a time (a layer's block output, a (layer, position), a head, a
neuron, an expert) from a source into the model, and score every record after each patch.

Layer, layer-position and head sweeps are TransformerLens's own (``transformer_lens.patching.
generic_activation_patch`` with its patch setters), run batch by batch over the engine's right-padded
batches with the source's activations on the same tokens as the "clean cache". Neuron and expert
sweeps are batched here: the batch is repeated once per unit of a chunk (copy ``u`` patches unit
``u``, as the head-effect pass does), so a layer's ``d_mlp`` neurons take ``d_mlp / chunk``
forwards per batch instead of ``d_mlp``; and since the blocks before the unit's layer compute the
same for every copy, they run once (the repeated forwards start at that layer,
``start_at_layer``, from the residual stream entering it).
"""

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .. import compat
from ..checks import check_layer, check_layers
from ..data.encoding import region_codes
from ..engine import native_forward, prompt_positions
from ..hooks import TL_ACT_NAMES, HookSite, hook_site, is_moe
from ..interventions.patching import check_positions, replace_units
from ..interventions.sources import check_same_architecture, constant_value, is_model, source_activations
from ..models import model_facts, model_identity
from .metrics import SweepBatch, check_metrics, metric_values, source_logprobs, sweep_batches
from .results import PatchSweep

__all__ = ["patch_sweep", "Over"]

Over = Literal["layer", "layer_pos", "head", "neuron", "expert"]
_LAYER_SITES = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out")


class _Final(Exception):
    pass


def _mask(positions, batch: SweepBatch) -> Tensor | None:
    """The batch's ``[batch, pos]`` positions to patch (None: all)."""
    if positions is None or (isinstance(positions, str) and positions == "all"):
        return None
    if isinstance(positions, Tensor):
        return positions.to(batch.tokens.device).expand_as(batch.tokens)
    if isinstance(positions, str) and positions == "last":
        mask = torch.zeros_like(batch.tokens, dtype=torch.bool)
        mask[torch.arange(len(mask)), batch.last] = True
        return mask
    if batch.regions is None:
        raise ValueError(
            "Region positions need records (raw prompts have no regions); use 'last', 'all' or a mask."
        )
    return torch.isin(batch.regions, torch.tensor(region_codes(positions), device=batch.regions.device))


def _source_values(model, source, means, sites: Sequence[HookSite], batch: SweepBatch, need_logits: bool):
    """``({site name: source activation on the batch}, source logits or None)``."""
    if is_model(source):
        acts = {}
        logits = None
        if need_logits:
            held = {}

            def grab(act, hook=None, name=""):
                held[name] = act.detach()

            hooks = [(s.name, _named(grab, s.name)) for s in sites]
            with torch.no_grad():
                logits = source.run_with_hooks(batch.tokens, fwd_hooks=hooks)
            acts = held
        else:
            acts = source_activations(source, batch.tokens, list(sites))
        return acts, logits
    return {s.name: constant_value(s, source, means) for s in sites}, None


def _named(fn, name):
    def hook(act, hook=None):
        return fn(act, hook, name=name)

    return hook


def _final_states(model, inputs: Tensor, hooks, start_at_layer: int | None = None) -> Tensor:
    """The final norm's output ``[batch, pos, d_model]`` of a forward with ``hooks`` (stops there);
    with ``start_at_layer``, ``inputs`` is the residual stream entering that block."""
    held = {}

    def grab(act, hook=None):
        held["x"] = act
        raise _Final

    kwargs = {} if start_at_layer is None else {"start_at_layer": start_at_layer}
    with model.hooks(fwd_hooks=list(hooks) + [(hook_site(model, "final_norm").name, grab)]):
        try:
            model(inputs, return_type=None, **kwargs)
        except _Final:
            pass
    return held["x"]


def patch_sweep(
    model,
    data,
    *,
    source,
    over: str = "layer",
    metric="nll",
    site: str = "resid_post",
    positions="all",
    layers: Sequence[int] | None = None,
    layer: int | None = None,
    units: Sequence[int] | Tensor | None = None,
    means=None,
    answers=None,
    batch_size: int = 4,
    unit_batch: int = 256,
    progress: bool = True,
) -> PatchSweep:
    """Patch each unit in turn from ``source`` into ``model`` and score every record.

    Args:
        data: records with reference responses (anything :func:`instr_interp.load_instructions`
            accepts), or a list of raw prompt strings (then metrics at the last prompt token).
        source: another model of the same architecture (its activations on the same tokens),
            ``"zero"``, or ``"mean"`` (with ``means``, as :func:`instr_interp.patch`).
        over: ``"layer"`` (``site`` at each layer, at ``positions``), ``"layer_pos"`` (``site`` at
            each layer and position; equal-length inputs, all positions), ``"head"`` (each head's
            ``z``, at ``positions``), ``"neuron"`` (each ``mlp_post`` neuron of ``layer``; dense
            models), ``"expert"`` (each expert's routing weight at ``layer``; MoE models).
        metric: one of :data:`instr_interp.sweeps.metrics.METRICS` or a list of them.
        site: for ``"layer"``/``"layer_pos"``: ``resid_pre``, ``resid_mid``, ``resid_post``,
            ``attn_out`` or ``mlp_out``.
        positions: ``"all"``, ``"last"`` (last prompt token), region name(s), or a boolean mask.
        layers: the layers of a layer/head sweep (default all); ``layer``: the layer of a neuron or
            expert sweep; ``units``: a subset of its neurons/experts (default all).
        answers: token ids per record: the first-token target (raw prompts), or
            ``(correct, wrong)`` for ``"logit_diff"``.
        unit_batch: neuron/expert sweeps: most rows per forward (units per forward =
            ``unit_batch // batch rows``).

    Returns:
        A :class:`PatchSweep`: per-record values for each cell, the unpatched model's values and
        (model source) the source model's own values.
    """
    if over not in ("layer", "layer_pos", "head", "neuron", "expert"):
        raise ValueError(f"over must be 'layer', 'layer_pos', 'head', 'neuron' or 'expert'; got {over!r}.")
    check_positions(positions)
    cross = is_model(source)
    if cross:
        if source is model:
            raise ValueError("source is the model itself; pass another model, 'zero' or 'mean'.")
        check_same_architecture(model, source)
    elif not (isinstance(source, str) and source in ("zero", "mean")):
        raise ValueError(f"patch_sweep's source must be another model, 'zero' or 'mean'; got {source!r}.")
    if over == "layer_pos" and not (isinstance(positions, str) and positions == "all"):
        raise ValueError("over='layer_pos' sweeps every position; leave positions='all'.")
    batches, ids, categories, prompts = sweep_batches(
        model, data, batch_size=batch_size, answers=answers, exact_width=over == "layer_pos"
    )
    names = check_metrics(metric, prompts=prompts, has_answers=answers is not None, model_source=cross)
    facts = model_facts(model)
    n = len(ids)
    if over in ("layer", "layer_pos", "head"):
        kind = "attn_z" if over == "head" else site
        if over != "head" and site not in _LAYER_SITES:
            raise ValueError(f"site must be one of {_LAYER_SITES} for over={over!r}; got {site!r}.")
        chosen = list(range(facts.n_layers)) if layers is None else check_layers(model, layers)
        sites = [hook_site(model, kind, layer) for layer in chosen]
        labels = {"layer": chosen}
        if over == "head":
            labels["head"] = list(range(facts.n_heads))
        if over == "layer_pos":
            labels["pos"] = list(range(batches[0].tokens.shape[1]))
        run = _tl_batch
    else:
        layer = check_layer(model, layer, what="layer")
        if over == "neuron":
            sites = [hook_site(model, "mlp_post", layer)]
            size = facts.d_mlp
        else:
            if not is_moe(model):
                raise ValueError("over='expert' needs an MoE model; this model is dense (use over='neuron').")
            sites = [hook_site(model, "expert_weights", layer)]
            size = compat.moe_config(model)[0]
        chosen_units = (
            torch.arange(size) if units is None else torch.as_tensor(units, dtype=torch.long).flatten()
        )
        if len(chosen_units) == 0 or bool(((chosen_units < 0) | (chosen_units >= size)).any()):
            raise ValueError(f"units must be non-empty {over} indices in [0, {size}).")
        labels = {over: chosen_units.tolist()}
        run = _unit_batch
    shape = tuple(len(v) for v in labels.values())
    values = torch.full((len(names), *shape, n), float("nan"), dtype=torch.float64)
    baseline = torch.full((len(names), n), float("nan"), dtype=torch.float64)
    own = torch.full((len(names), n), float("nan"), dtype=torch.float64)
    for batch in tqdm(batches, desc=f"patch sweep over {over}", unit="batch", disable=not progress):
        acts, src_logits = _source_values(model, source, means, sites, batch, need_logits=cross)
        lp = source_logprobs(src_logits, batch) if cross and "kl" in names else None
        rows = torch.arange(len(batch.index), device=batch.tokens.device)
        if cross:
            own[:, batch.index] = metric_values(source, names, src_logits, batch, rows, lp).cpu()
        with (
            compat.tl_patching_progress(progress),  # TransformerLens's own per-call bar follows `progress`
            torch.inference_mode(),
            prompt_positions(model).declare(batch.last, regions=batch.regions),
        ):
            cells, base = run(
                model,
                batch,
                names,
                sites,
                acts,
                lp,
                _mask(positions, batch),
                over,
                units=chosen_units if over in ("neuron", "expert") else None,
                unit_batch=unit_batch,
            )
        values[..., batch.index] = cells.cpu()
        baseline[:, batch.index] = base.cpu()
    settings = {
        "model": model_identity(model).get("name", ""),
        "source": model_identity(source).get("name", "") if cross else source,
        "over": over,
        "site": sites[0].kind,
        "positions": positions
        if isinstance(positions, str)
        else list(positions)
        if not isinstance(positions, Tensor)
        else "mask",
        "batch_size": batch_size,
    }
    return PatchSweep(
        values=values,
        baseline=baseline,
        source_values=own,
        metrics=names,
        axes=labels,
        ids=ids,
        categories=categories,
        settings=settings,
    )


def _tl_batch(model, batch, names, sites, acts, lp, mask, over, **_):
    """One batch of a layer / layer-position / head sweep, through TransformerLens's patching."""
    patching = compat.tl_patching()
    layers = [s.layer for s in sites]
    tl_name = TL_ACT_NAMES[sites[0].kind]
    cache = {}
    for s in sites:
        full = compat.tl_act_name(tl_name, s.layer)
        if full != s.name:
            raise RuntimeError(
                f"TransformerLens names {tl_name!r} at layer {s.layer} {full!r}, not {s.name!r}."
            )
        shape = _act_shape(model, s, batch)
        cache[s.name] = acts[s.name].expand(shape) if acts[s.name].ndim < len(shape) else acts[s.name]
    rows = torch.arange(len(batch.index), device=batch.tokens.device)
    metrics = {m: _metric_fn(model, m, batch, rows, lp) for m in names}
    if over == "layer":
        setter, axes = (lambda act, index, clean: replace_units(act, clean, mask)), ("layer",)
    elif over == "layer_pos":
        setter, axes = patching.layer_pos_patch_setter, ("layer", "pos")
    elif mask is None:
        setter, axes = patching.layer_head_vector_patch_setter, ("layer", "head")
    else:

        def setter(act, index, clean):
            return replace_units(act, clean, mask, torch.tensor([index[1]]))

        axes = ("layer", "head")
    index_df = None
    if layers != list(range(model.cfg.n_layers)):
        import itertools

        import pandas as pd

        extra = (
            [range(batch.tokens.shape[1])]
            if over == "layer_pos"
            else [range(model.cfg.n_heads)]
            if over == "head"
            else []
        )
        index_df = pd.DataFrame(list(itertools.product(layers, *extra)), columns=list(axes))
    result = patching.generic_activation_patch(
        model,
        batch.tokens,
        cache,
        metrics,
        setter,
        tl_name,
        index_axis_names=None if index_df is not None else axes,
        index_df=index_df,
        reduce="none",
        baseline=True,
    )
    values = result.values.double()  # [metric, *axes | cells, batch]
    if index_df is not None:
        values = values.reshape(len(names), len(layers), *([-1] if over != "layer" else []), len(rows))
    return values, result.baseline.double()


def _metric_fn(model, name, batch, rows, lp):
    def fn(logits):
        return metric_values(model, [name], logits, batch, rows, lp)[0]

    return fn


def _act_shape(model, site, batch):
    facts = model_facts(model)
    b, w = batch.tokens.shape
    return (b, w, facts.n_heads, facts.d_head) if site.kind == "attn_z" else (b, w, facts.d_model)


def _unit_batch(model, batch, names, sites, acts, lp, mask, over, *, units, unit_batch):
    """One batch of a neuron or expert sweep: chunks of units, each chunk one forward of the batch
    repeated per unit (copy ``u`` patches unit ``u``)."""
    (site,) = sites
    b, w = batch.tokens.shape
    rows = torch.arange(b, device=batch.tokens.device)
    value = acts[site.name]
    moe = over == "expert"
    if moe and value.ndim == 2:  # routing weights come flattened over batch and position
        value = value.reshape(b, w, -1)
    per = max(1, unit_batch // b)
    out = torch.empty(len(names), len(units), b, dtype=torch.float64)
    entering: dict[str, Tensor] = {}

    def keep(act, hook=None):
        entering["resid"] = act.detach()

    with native_forward(model, causal=True):
        # Blocks before the unit's layer compute the same for every copy: run them once, and start
        # the repeated forwards at that layer from the residual stream entering it.
        final = _final_states(model, batch.tokens, [(hook_site(model, "resid_pre", site.layer).name, keep)])
        base = metric_values(model, names, model.unembed(final), batch, rows, lp)
        for start in range(0, len(units), per):
            chunk = units[start : start + per].to(batch.tokens.device)
            k = len(chunk)
            rep_value = value.repeat(k, *([1] * (value.ndim - 1))) if value.ndim >= 3 else value
            rep_mask = None if mask is None else mask.repeat(k, 1)
            unit_rows, unit_ids = torch.arange(k * b, device=chunk.device), chunk.repeat_interleave(b)

            def hook(
                act,
                hook=None,
                k=k,
                rep_value=rep_value,
                rep_mask=rep_mask,
                unit_ids=unit_ids,
                unit_rows=unit_rows,
            ):
                shaped = act.reshape(k * b, w, -1) if moe else act
                new = replace_units(shaped, rep_value, rep_mask, unit_ids, unit_rows)
                return new.reshape(act.shape) if moe else new

            resid = entering["resid"].repeat(k, 1, 1)
            final = _final_states(model, resid, [(site.name, hook)], start_at_layer=site.layer)
            for j in range(k):
                logits = model.unembed(final[j * b : (j + 1) * b])
                out[:, start + j] = metric_values(model, names, logits, batch, rows, lp).cpu()
    return out, base
