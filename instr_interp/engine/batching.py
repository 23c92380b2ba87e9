"""Batches that make results independent of the batch size: every record is computed at a padded
width that depends only on its own length, right-padded."""

from collections.abc import Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from ..data.encoding import EncodedDataset, pad_id

__all__ = ["check_context", "bucket_width", "plan_batches", "plan_rows", "pad_rows", "pad_id"]


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


def plan_rows(
    token_lists: Sequence[Sequence[int]], batch_size: int, extra: int = 0
) -> list[tuple[int, list[int]]]:
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
    return [
        (w, ids[s : s + batch_size])
        for w, ids in sorted(buckets.items(), reverse=True)
        for s in range(0, len(ids), batch_size)
    ]


def pad_rows(
    token_lists: Sequence[Sequence[int]], rows: Sequence[int], width: int, pad_id: int, device
) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, " batch"]]:
    """Right-padded tokens of ``rows`` at ``width`` and each row's last real position."""
    tokens = torch.full((len(rows), width), pad_id, dtype=torch.long)
    last = torch.empty(len(rows), dtype=torch.long)
    for r, i in enumerate(rows):
        seq = token_lists[i]
        tokens[r, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        last[r] = len(seq) - 1
    return tokens.to(device), last.to(device)


def check_context(
    model, lengths: Sequence[int], *, names: Sequence[str] | None = None, extra: int = 0, what: str = "record"
) -> None:
    """Refuse inputs longer than the model's context (``cfg.n_ctx``) before any forward: past it the
    positions are ones the model never saw in training, and its outputs mean nothing.

    Args:
        lengths: token counts of the inputs; ``extra`` tokens (e.g. to be generated) are added to each.
        names: labels for the message (record ids), default the indices.

    Examples:
        >>> from instr_interp import tiny_model
        >>> check_context(tiny_model(), [3000])
        Traceback (most recent call last):
        ...
        ValueError: 1 record(s) are longer than the model's context of 2048 tokens: 0 (3000 tokens)...
    """
    n_ctx = getattr(model.cfg, "n_ctx", None)
    if not n_ctx:
        return
    over = [(i, n + extra) for i, n in enumerate(lengths) if n + extra > n_ctx]
    if over:
        label = (lambda i: names[i]) if names is not None else str
        listed = ", ".join(f"{label(i)} ({n} tokens)" for i, n in over[:5])
        raise ValueError(
            f"{len(over)} {what}(s) are longer than the model's context of {n_ctx} tokens: {listed}"
            f"{' ...' if len(over) > 5 else ''}. Encode with max_length={n_ctx - extra} to truncate them (with a "
            "warning naming them), or shorten them."
        )
