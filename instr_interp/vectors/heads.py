"""Causal attention heads (METHODS.md §8 steps 1-2), the raw material of instruction vectors.

1. :func:`head_means`: each head's output ``z`` (``blocks.L.attn.hook_z``, the per-head slice of the
   output projection's input) at the last prompt token, averaged over clean few-shot prompts that
   the model answers correctly.
2. :func:`head_effects`: average indirect effect of each head: on corrupted few-shot prompts
   (labels shuffled across the demonstrations) set one head's ``z`` at the last token to its mean
   and record the change in the probability of the correct first answer token. ``"exact"``
   patches every head (all heads of a layer in one batch); ``"atp"`` is the first-order
   (attribution-patching) estimate from one forward and one backward.

:func:`top_heads` and :func:`random_heads` pick heads; :mod:`instr_interp.vectors.instruction` turns them into
a vector. Both passes run on the engine's row batches (:func:`instr_interp.engine.map_rows`: right
padding at bucket widths, the native path, batches shared across ``torch.distributed`` ranks with
the single-process result on every rank). GQA: ``hook_z`` is per *query* head (``[batch, pos, n_heads, d_head]``) also when keys and
values are shared, so every step works per query head.
"""

import random
from collections.abc import Sequence
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..checks import check_layers
from ..engine import last_token_logits, map_rows
from ..hooks import hook_site
from ..interventions.patching import patch_heads
from ..models import frozen, model_facts
from .prompts import query_prompts
from .tasks import Task

__all__ = [
    "Method",
    "check_means",
    "clean_prompts",
    "corrupted_prompts",
    "head_effects",
    "head_means",
    "random_heads",
    "top_heads",
]

Method = Literal["exact", "atp"]
_CORRUPT_SEED = 10_000  # corrupted prompts draw demonstrations with other seeds than the clean ones


def _z_names(model) -> list[str]:
    return [hook_site(model, "attn_z", layer).name for layer in range(model.cfg.n_layers)]


def _prompts(
    task: Task, n: int | None, shots: int, seed: int, corrupt: bool
) -> tuple[list[str], list[tuple[str, str]]]:
    """Few-shot prompts for ``n`` query pairs (the task's pairs shuffled by ``seed``); the
    demonstrations of query ``i`` come from all other pairs of the task, drawn with ``seed + i``."""
    pairs = list(task.pairs)
    random.Random(seed).shuffle(pairs)
    queries = pairs[: n or len(pairs)]
    prompts = [task.few_shot(x, shots, seed=seed + i, corrupt=corrupt) for i, (x, _) in enumerate(queries)]
    return prompts, queries


def head_means(
    model,
    task: Task,
    *,
    shots: int = 5,
    n_prompts: int = 100,
    seed: int = 0,
    batch_size: int = 16,
    progress: bool = True,
    form: str = "few_shot",
    queries: list[tuple[str, str]] | None = None,
    only_correct: bool = True,
) -> tuple[Float[Tensor, "layer head d_head"], int]:
    """Mean of every head's ``z`` at the last prompt token over clean few-shot prompts the model
    answers correctly (first answer token is the argmax).

    Args:
        task: the queries are up to ``n_prompts`` of its pairs (shuffled with ``seed``); each
            prompt has ``shots`` demonstrations drawn from the other pairs.
        form: ``"few_shot"`` (raw Q/A prompts) or ``"instruction"`` (zero-shot, the task's
            instruction in the model's own prompt format; :mod:`instr_interp.vectors.prompts`).
        queries: use these ``(x, y)`` queries (repeats allowed) instead of drawing them.
        only_correct: average only over prompts the model answers right (else over all of them,
            as Todd et al. do once their queries are filtered).

    Returns:
        ``(means, n_correct)``: means ``[layer, head, d_head]`` and how many prompts were averaged.

    Raises:
        ValueError: when the model answers none of the prompts correctly.
    """
    ids, targets, _ = query_prompts(
        model, task, form=form, n=n_prompts, shots=shots, seed=seed, queries=queries
    )
    names = _z_names(model)
    facts = model_facts(model)

    def batch_sums(rows, tokens, last):
        ar = torch.arange(len(rows), device=tokens.device)
        held: dict[int, Tensor] = {}

        def grab(act, hook=None, layer=0):
            held[layer] = act[ar, last].double()  # [batch head d_head]

        hooks = [(name, _bind(grab, layer=layer)) for layer, name in enumerate(names)]
        with torch.inference_mode():
            logits = last_token_logits(model, tokens, last, hooks)
        ok = logits.argmax(-1).cpu() == targets[rows]
        ok = ok if only_correct else torch.ones_like(ok)
        return torch.stack([held[layer].cpu()[ok].sum(0) for layer in range(facts.n_layers)]), int(ok.sum())

    total = torch.zeros(facts.n_layers, facts.n_heads, facts.d_head, dtype=torch.float64)
    n_correct = 0
    for _, (sums, n_ok) in map_rows(
        model, ids, batch_sums, batch_size=batch_size, desc=f"head means {task.name}", progress=progress
    ):
        total += sums
        n_correct += n_ok
    if n_correct == 0:
        raise ValueError(
            f"The model answers none of the {len(ids)} clean {form} prompts of {task.name!r} "
            "correctly, so there are no head means; use more shots, another form or a task the model can do."
        )
    return (total / n_correct).float(), n_correct


def _bind(fn, **kwargs):
    def hook(act, hook=None):
        return fn(act, hook, **kwargs)

    return hook


def check_means(model, means: Tensor) -> None:
    """Raise ``ValueError`` unless ``means`` is ``[layer, head, d_head]`` for ``model`` (as
    :func:`head_means` returns it).

    Examples:
        >>> import torch
        >>> from instr_interp import tiny_model
        >>> check_means(tiny_model(), torch.zeros(2, 4, 16))  # 2 layers, 4 heads, d_head 16: passes
        >>> check_means(tiny_model(), torch.zeros(2, 4, 8))
        Traceback (most recent call last):
        ...
        ValueError: means must have shape [layer, head, d_head] = (2, 4, 16); got (2, 4, 8).
    """
    facts = model_facts(model)
    want = (facts.n_layers, facts.n_heads, facts.d_head)
    if tuple(means.shape) != want:
        raise ValueError(f"means must have shape [layer, head, d_head] = {want}; got {tuple(means.shape)}.")


def corrupted_prompts(
    task: Task, *, n_prompts: int = 25, shots: int = 5, seed: int = 0
) -> tuple[list[str], list[tuple[str, str]]]:
    """The corrupted few-shot prompts :func:`head_effects` uses (labels shuffled across the
    demonstrations; queries and demonstrations drawn with other seeds than the clean prompts), and
    their ``(x, y)`` pairs."""
    return _prompts(task, n_prompts, shots, seed + _CORRUPT_SEED, corrupt=True)


def clean_prompts(
    task: Task, *, n_prompts: int = 100, shots: int = 5, seed: int = 0
) -> tuple[list[str], list[tuple[str, str]]]:
    """The clean few-shot prompts :func:`head_means` averages over (before keeping the correctly
    answered ones), and their ``(x, y)`` pairs."""
    return _prompts(task, n_prompts, shots, seed, corrupt=False)


def head_effects(
    model,
    task: Task,
    *,
    method: Method = "exact",
    means: Float[Tensor, "layer head d_head"] | None = None,
    n_prompts: int = 25,
    shots: int = 5,
    layers: Sequence[int] | None = None,
    seed: int = 0,
    batch_size: int = 8,
    progress: bool = True,
    form: str = "few_shot",
    corruption: str | None = None,
    queries: list[tuple[str, str]] | None = None,
) -> Float[Tensor, "layer head"]:
    """Average indirect effect of every head on the probability of the correct first answer token.

    On ``n_prompts`` corrupted few-shot prompts (labels shuffled across the demonstrations), one
    head's ``z`` at the last prompt token is replaced by its clean mean; the effect is
    ``p(answer | patched) - p(answer | corrupted)``, averaged over prompts.

    Args:
        method: ``"exact"`` patches each head in its own forward (a layer's heads are stacked
            along the batch axis: ``n_heads`` copies of the prompt batch, copy ``h`` patching head
            ``h``); ``"atp"`` (attribution patching) estimates all effects from one forward and one
            backward as ``sum_d_head (mean - z) * dp/dz`` at the last token.
        means: ``[layer, head, d_head]`` from :func:`head_means` (computed with ``shots``/``seed``
            when None).
        layers: only these layers (others are NaN); default all.
        form, corruption: the corrupted prompts: few-shot with shuffled labels (``"few_shot"``,
            ``"shuffle"``) or zero-shot instruction prompts with the instruction dropped
            (``"instruction"``, ``"drop_instruction"``); see :mod:`instr_interp.vectors.prompts`.
        queries: use these ``(x, y)`` queries instead of drawing them.
        batch_size: prompts per forward (exact: ``batch_size * n_heads`` rows).

    Returns:
        ``[layer, head]`` effects.
    """
    if method not in ("exact", "atp"):
        raise ValueError(f"Unknown method {method!r}; choose 'exact' or 'atp'.")
    facts = model_facts(model)
    layers = list(range(facts.n_layers)) if layers is None else check_layers(model, layers)
    if means is None:
        means, _ = head_means(model, task, shots=shots, seed=seed, form=form, progress=progress)
    check_means(model, means)
    ids, targets, _ = query_prompts(
        model,
        task,
        form=form,
        n=n_prompts,
        shots=shots,
        seed=seed + _CORRUPT_SEED,
        corrupt=True,
        corruption=corruption,
        queries=queries,
    )
    out = torch.full((facts.n_layers, facts.n_heads), float("nan"), dtype=torch.float64)
    out[layers] = 0.0
    fn = _exact_batch if method == "exact" else _atp_batch

    def batch_sums(rows, tokens, last):
        return fn(model, tokens, last, targets[rows].to(tokens.device), means, layers)

    for _, sums in map_rows(
        model,
        ids,
        batch_sums,
        batch_size=batch_size,
        desc=f"head effects ({method}) {task.name}",
        progress=progress,
    ):
        out[layers] += sums
    return (out / len(ids)).float()


def _exact_batch(model, tokens, last, targets, means, layers) -> Float[Tensor, "layer head"]:
    """Summed exact effects over the rows of one batch, for ``layers``."""
    n_heads, b = means.shape[1], tokens.shape[0]
    means = means.to(tokens.device)
    ar = torch.arange(b, device=tokens.device)
    sums = torch.zeros(len(layers), n_heads, dtype=torch.float64)
    with torch.inference_mode():
        base = last_token_logits(model, tokens, last).softmax(-1)[ar, targets].double()
        rep_tokens, rep_last = tokens.repeat(n_heads, 1), last.repeat(n_heads)
        rep_rows = torch.arange(n_heads * b, device=tokens.device)
        rep_head = torch.arange(n_heads, device=tokens.device).repeat_interleave(b)
        rep_targets = targets.repeat(n_heads)
        for i, layer in enumerate(layers):
            heads = torch.stack([torch.full_like(rep_head, layer), rep_head], 1)  # copy h patches head h
            with patch_heads(
                model, heads, "mean", means=means, positions="last", last=rep_last, rows=rep_rows
            ):
                probs = last_token_logits(model, rep_tokens, rep_last).softmax(-1)
            p = probs[rep_rows, rep_targets].double().view(n_heads, b)
            sums[i] = (p - base[None, :]).sum(1).cpu()
    return sums


def _atp_batch(model, tokens, last, targets, means, layers) -> Float[Tensor, "layer head"]:
    """Summed attribution-patching estimates over the rows of one batch, for ``layers``."""
    names = _z_names(model)
    ar = torch.arange(tokens.shape[0], device=tokens.device)
    held: dict[int, Tensor] = {}
    deltas: dict[int, Tensor] = {}

    def keep(z, hook=None, layer=0):
        # A zero leaf added to z: its gradient is dp/dz whatever else requires grad.
        held[layer] = z.detach()
        deltas[layer] = torch.zeros_like(z, requires_grad=True)
        return z + deltas[layer]

    hooks = [(names[layer], _bind(keep, layer=layer)) for layer in layers]
    with frozen(model), torch.enable_grad():
        probs = last_token_logits(model, tokens, last, hooks).softmax(-1)
        probs[ar, targets].sum().backward()
    sums = torch.zeros(len(layers), means.shape[1], dtype=torch.float64)
    for i, layer in enumerate(layers):
        z = held[layer][ar, last]  # [batch head d_head]
        grad = deltas[layer].grad[ar, last]
        delta = means[layer].to(z.device, z.dtype)[None] - z
        sums[i] = (delta * grad).sum(-1).double().sum(0).cpu()
    return sums


def random_heads(model, k: int, seed: int = 0) -> Int[Tensor, "k 2"]:
    """``k`` distinct ``(layer, head)`` pairs drawn uniformly (a control for the top heads)."""
    facts = model_facts(model)
    total = facts.n_layers * facts.n_heads
    if not 1 <= k <= total:
        raise ValueError(f"k must be in [1, {total}], got {k}.")
    flat = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:k]
    return torch.stack([flat // facts.n_heads, flat % facts.n_heads], 1)


def top_heads(effects: Float[Tensor, "layer head"], k: int) -> Int[Tensor, "k 2"]:
    """The ``k`` heads with the largest effect (NaN never ranks), as ``(layer, head)`` rows."""
    flat = torch.nan_to_num(effects.flatten(), nan=-float("inf"))
    if not 1 <= k <= int(torch.isfinite(flat).sum()):
        raise ValueError(
            f"k must be in [1, {int(torch.isfinite(flat).sum())}] (heads with effects), got {k}."
        )
    idx = torch.sort(flat, descending=True, stable=True).indices[:k]
    return torch.stack([idx // effects.shape[1], idx % effects.shape[1]], 1)
