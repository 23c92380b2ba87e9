"""Forwards over right-padded rows: logits at chosen positions and greedy continuation."""

import contextlib
import contextvars
from collections.abc import Iterator, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..hooks import hook_site
from ..models import model_device
from .batching import pad_id, pad_rows, plan_rows

__all__ = ["tokenize_prompts", "prompt_positions", "current_last_positions", "last_token_logits", "greedy",
           "iter_batches"]


def _tokenizer(model_or_tokenizer):
    return getattr(model_or_tokenizer, "tokenizer", model_or_tokenizer)


def tokenize_prompts(model_or_tokenizer, prompts: Sequence[str]) -> list[list[int]]:
    """Token ids of raw-text prompts, with the tokenizer's own special tokens (e.g. Gemma's BOS)."""
    tok = _tokenizer(model_or_tokenizer)
    return [list(tok(p)["input_ids"]) for p in prompts]


_LAST_POSITIONS: contextvars.ContextVar = contextvars.ContextVar("instr_interp_last_positions", default=None)


@contextlib.contextmanager
def prompt_positions(last: Int[Tensor, " batch"]):
    """Declare each row's last prompt position for the forwards inside the block; interventions
    with ``positions="last"`` (e.g. :func:`instr_interp.vectors.add_vector`) read it."""
    token = _LAST_POSITIONS.set(last)
    try:
        yield
    finally:
        _LAST_POSITIONS.reset(token)


def current_last_positions() -> Tensor | None:
    """The last prompt positions declared by the innermost :func:`prompt_positions`, or None."""
    return _LAST_POSITIONS.get()


class _Stop(Exception):
    pass


def last_token_logits(
    model,
    tokens: Int[Tensor, "batch pos"],
    last: Int[Tensor, " batch"],
    fwd_hooks: Sequence = (),
    at: Int[Tensor, " batch"] | None = None,
) -> Float[Tensor, "batch d_vocab"]:
    """Logits at position ``last[b]`` (or ``at[b]``) of each right-padded row, with ``fwd_hooks`` active.

    The forward stops at the final norm (``ln_final.hook_out``) and only those positions are
    unembedded, which equals the full model's logits there (checked in the tests). Inside, ``last``
    is declared as the rows' last prompt positions with :func:`prompt_positions`.
    """
    held: dict[str, Tensor] = {}

    def grab(act, hook=None):
        held["final"] = act
        raise _Stop

    rows = torch.arange(tokens.shape[0], device=tokens.device)
    final_norm = hook_site(model, "final_norm").name
    with prompt_positions(last), model.hooks(fwd_hooks=list(fwd_hooks) + [(final_norm, grab)]):
        try:
            model(tokens, return_type=None)
        except _Stop:
            pass
    if "final" not in held:
        raise RuntimeError("ln_final.hook_out never fired; this model has no final-norm hook point.")
    final = held["final"][rows, last if at is None else at]  # [batch d_model]
    return model.unembed(final[:, None, :])[:, 0, :]


def greedy(
    model, tokens: Tensor, last: Tensor, first_logits: Tensor, max_new_tokens: int
) -> list[list[int]]:
    """Greedy continuation of right-padded rows (the buckets leave room for the new tokens).

    Each step reruns the whole row (no KV cache) and writes the argmax after the current end; the
    declared last *prompt* position stays fixed, so ``positions="last"`` interventions act on
    the prompt's last token at every step.
    """
    tokens = tokens.clone()
    rows = torch.arange(tokens.shape[0], device=tokens.device)
    new = [first_logits.argmax(-1)]
    for step in range(1, max_new_tokens):
        tokens[rows, last + step] = new[-1]
        new.append(last_token_logits(model, tokens, last, at=last + step).argmax(-1))
    return torch.stack(new, 1).cpu().tolist()


def iter_batches(
    token_lists: Sequence[Sequence[int]], model, batch_size: int
) -> Iterator[tuple[list[int], Tensor, Tensor]]:
    """``(row indices, right-padded tokens, last positions)`` over batches of :func:`plan_rows`."""
    device, pid = model_device(model), pad_id(model)
    for width, rows in plan_rows(token_lists, batch_size):
        tokens, last = pad_rows(token_lists, rows, width, pid, device)
        yield rows, tokens, last
