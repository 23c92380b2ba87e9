"""Forwards over right-padded token rows: logits at chosen positions and greedy continuation.

The row passes of the toolkit (task evaluation, head means and effects) run here on the engine's
batching (:func:`plan_rows`: each row at its own ``bucket_width``, right-padded with :func:`pad_id`),
its data parallelism (:func:`map_shards`) and its native path (:func:`native_forward` with
``causal=True``: fused attention and native norms wherever no hook looks inside). Each forward
declares the rows' last prompt positions (:mod:`instr_interp.engine.positions`) and stops at the
final norm with the engine's stop exception, as :func:`instr_interp.run` does.
"""

from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..hooks import hook_site
from ..models import model_device
from .batching import check_context, pad_id, pad_rows, plan_rows
from .native import native_forward
from .parallel import map_shards
from .passes import _StopForward, check_finite
from .positions import prompt_positions

__all__ = ["tokenize_prompts", "last_token_logits", "first_token_scores", "greedy", "map_rows"]

T = TypeVar("T")


def _tokenizer(model_or_tokenizer):
    return getattr(model_or_tokenizer, "tokenizer", model_or_tokenizer)


def tokenize_prompts(model_or_tokenizer, prompts: Sequence[str]) -> list[list[int]]:
    """Token ids of raw-text prompts, with the tokenizer's own special tokens (e.g. Gemma's BOS)."""
    tok = _tokenizer(model_or_tokenizer)
    return [list(tok(p)["input_ids"]) for p in prompts]


def last_token_logits(
    model,
    tokens: Int[Tensor, "batch pos"],
    last: Int[Tensor, " batch"],
    fwd_hooks: Sequence = (),
    at: Int[Tensor, " batch"] | None = None,
) -> Float[Tensor, "batch d_vocab"]:
    """Logits at position ``last[b]`` (or ``at[b]``) of each right-padded row, with ``fwd_hooks`` active.

    ``last`` are the rows' last *prompt* positions: they are declared for the forward (so
    ``positions="last"`` interventions act there). The hooks are registered first, then the
    forward runs inside :func:`native_forward` (``causal=True``: right padding, no mask), which
    routes every attention and norm that no hook looks inside through transformers' own modules.
    The forward stops at the final norm (``ln_final.hook_out``) and only the chosen positions are
    unembedded, which equals the full model's logits there (checked in the tests).
    """
    held: dict[str, Tensor] = {}

    def grab(act, hook=None):
        held["final"] = act
        raise _StopForward

    rows = torch.arange(tokens.shape[0], device=tokens.device)
    final_norm = hook_site(model, "final_norm").name
    with (
        model.hooks(fwd_hooks=list(fwd_hooks) + [(final_norm, grab)]),
        native_forward(model, causal=True),
        prompt_positions(model).declare(last),
    ):
        try:
            model(tokens, return_type=None)
        except _StopForward:
            pass
    if "final" not in held:
        raise RuntimeError("ln_final.hook_out never fired; this model has no final-norm hook point.")
    final = held["final"][rows, last if at is None else at]  # [batch d_model]
    logits = model.unembed(final[:, None, :])[:, 0, :]
    check_finite(logits, "the logits at the scored positions")
    return logits


def first_token_scores(
    logits: Float[Tensor, "batch d_vocab"], targets: Int[Tensor, " batch"]
) -> tuple[Float[Tensor, " batch"], Int[Tensor, " batch"]]:
    """First-token accuracy's two numbers, for the logits at each row's last prompt token: the
    probability of the target token (float64) and the predicted (argmax) token.

    Examples:
        >>> import torch
        >>> p, predicted = first_token_scores(torch.tensor([[0.0, 0.0], [2.0, 0.0]]), torch.tensor([1, 0]))
        >>> p.tolist(), predicted.tolist()
        ([0.5, 0.8807970285415649], [0, 0])
    """
    logits = logits.float()
    rows = torch.arange(logits.shape[0], device=logits.device)
    return logits.softmax(-1)[rows, targets.to(logits.device)].double(), logits.argmax(-1)


def greedy(model, tokens: Tensor, last: Tensor, first_logits: Tensor, max_new_tokens: int) -> list[list[int]]:
    """Greedy continuation of right-padded rows (the buckets leave room for the new tokens).

    Each step reruns the whole row (no KV cache) through :func:`last_token_logits` and writes the
    argmax after the current end; the declared last *prompt* position stays fixed, so
    ``positions="last"`` interventions act on the prompt's last token at every step.
    """
    tokens = tokens.clone()
    rows = torch.arange(tokens.shape[0], device=tokens.device)
    new = [first_logits.argmax(-1)]
    for step in range(1, max_new_tokens):
        tokens[rows, last + step] = new[-1]
        new.append(last_token_logits(model, tokens, last, at=last + step).argmax(-1))
    return torch.stack(new, 1).cpu().tolist()


def map_rows(
    model,
    token_lists: Sequence[Sequence[int]],
    fn: Callable[[list[int], Tensor, Tensor], T],
    *,
    batch_size: int,
    extra: int = 0,
    desc: str = "",
    progress: bool = True,
) -> list[tuple[list[int], T]]:
    """``fn(rows, tokens, last)`` on every batch of :func:`plan_rows` (right-padded at each row's
    bucket width, ``extra`` positions of room), the batches shared across ``torch.distributed``
    ranks; every rank gets ``(rows, result)`` of every batch, in plan order (results on the CPU).

    ``last`` holds each row's last prompt position (its final token). ``fn`` runs its forwards
    with :func:`last_token_logits`.
    """
    check_context(model, [len(t) for t in token_lists], extra=extra, what="prompt")
    device, pid = model_device(model), pad_id(model)
    plan = plan_rows(token_lists, batch_size, extra)

    def one(item):
        width, rows = item
        tokens, last = pad_rows(token_lists, rows, width, pid, device)
        return fn(rows, tokens, last)

    results = map_shards(one, plan, desc=desc, progress=progress)
    return [(rows, out) for (_, rows), out in zip(plan, results)]
