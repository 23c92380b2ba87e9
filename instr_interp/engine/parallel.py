"""Data parallelism for every dataset pass: batches are shared round-robin across ``torch.distributed``
ranks and the per-batch results are gathered so that every rank ends with the single-process result.

Each batch is computed by exactly one rank, on the same rows at the same padded width as in one
process, and results are combined in plan order on every rank, so the outcome is bit-identical to a
single process (on CPU, with MKL's strict mode; see :mod:`instr_interp.engine.passes`).
"""

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
from tqdm.auto import tqdm

__all__ = ["map_shards", "shard", "world"]

T = TypeVar("T")


def world() -> tuple[int, int]:
    """``(rank, world_size)`` under an initialised ``torch.distributed`` process group, else ``(0, 1)``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def shard(n_items: int) -> list[int]:
    """The indices of ``n_items`` planned batches this rank computes: every world_size-th, from its rank.

    Examples:
        >>> shard(5)  # one process computes everything
        [0, 1, 2, 3, 4]
    """
    rank, size = world()
    return list(range(rank, n_items, size))


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    return obj


def map_shards(fn: Callable[[Any], T], items: Sequence, *, desc: str = "", progress: bool = True) -> list[T]:
    """``[fn(item) for item in items]``, the items shared across ranks (:func:`shard`) and the results
    gathered (``all_gather_object``): every rank returns every result, in the order of ``items``.

    Tensors in the results (also inside tuples, lists and dicts) come back on the CPU. A progress
    bar shows on rank 0.

    Examples:
        >>> map_shards(lambda x: x * x, [1, 2, 3], progress=False)
        [1, 4, 9]
    """
    rank, size = world()
    mine = {
        i: _to_cpu(fn(items[i]))
        for i in tqdm(shard(len(items)), desc=desc, unit="batch", disable=not progress or rank != 0)
    }
    if size == 1:
        return [mine[i] for i in range(len(items))]
    gathered: list = [None] * size
    torch.distributed.all_gather_object(gathered, mine)
    merged: dict[int, Any] = {}
    for part in gathered:
        merged.update(part)
    return [merged[i] for i in range(len(items))]
