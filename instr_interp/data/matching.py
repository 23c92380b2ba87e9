"""Length-matched subsets: the same counted-token length distribution in every category."""

import random
from collections.abc import Sequence

from .dataset import InstructionDataset

__all__ = ["counted_lengths", "length_matched"]


def counted_lengths(data: InstructionDataset, tokenizer, *, format: str = "auto") -> list[int]:
    """Per record, the number of counted tokens (the instruction and input regions of
    :func:`~instr_interp.data.encoding.encode`; never the template, the response or padding)."""
    from .encoding import Region, encode

    counted = (int(Region.INSTRUCTION), int(Region.INPUT))
    return [sum(r in counted for r in e.regions) for e in encode(data, tokenizer, format=format)]


def _bins(lengths: Sequence[int], width: int | None, edges: Sequence[int] | None) -> list[int | None]:
    if edges is not None:
        edges = list(edges)
        if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
            raise ValueError(f"edges must be at least two strictly increasing numbers, not {edges!r}.")
        out: list[int | None] = []
        for n in lengths:
            inside = [i for i in range(len(edges) - 1) if edges[i] <= n < edges[i + 1]]
            out.append(inside[0] if inside else None)
        return out
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise ValueError(f"width must be a positive whole number of tokens, not {width!r}.")
    return [n // width for n in lengths]


def length_matched(
    data: InstructionDataset,
    tokenizer=None,
    *,
    lengths: Sequence[int] | None = None,
    width: int | None = 8,
    edges: Sequence[int] | None = None,
    seed: int = 0,
    format: str = "auto",
) -> InstructionDataset:
    """A subset of ``data`` whose categories have the same counted-token length distribution.

    Records are put in length bins (``[k * width, (k + 1) * width)`` tokens, or the half-open
    intervals between consecutive ``edges``; records outside every interval are dropped). A bin where
    some category has no record is dropped; in every other bin each category keeps the same number of
    records, the smallest count any category has there, drawn reproducibly from ``seed``. So every
    category ends up with the same number of records in every bin. Records keep their order.

    Args:
        data: the records.
        tokenizer: a fast tokenizer (or a model that has one) to count tokens with, as the analyses
            count them (:func:`counted_lengths`).
        lengths: the per-record lengths, instead of a tokenizer (one number per record).
        width: the bin width in tokens (ignored when ``edges`` is given).
        edges: explicit bin edges, strictly increasing.
        seed: the random seed for which records a bin keeps.
        format: the prompt format used for counting (see :func:`~instr_interp.data.encoding.encode`).

    Raises:
        ValueError: neither or both of ``tokenizer`` and ``lengths``; ``lengths`` of the wrong size;
            a bad ``width`` or ``edges``; no bin holds records of every category.

    Example:
        >>> from instr_interp import load_instructions
        >>> rows = [{"id": str(i), "category": c, "instruction": "x"} for i, c in enumerate("aabb")]
        >>> data = length_matched(load_instructions(rows), lengths=[3, 12, 4, 30], width=10)
        >>> data.ids
        ('0', '2')
    """
    if (tokenizer is None) == (lengths is None):
        raise ValueError("Pass a tokenizer to count tokens with, or the lengths (not both).")
    if lengths is None:
        lengths = counted_lengths(data, tokenizer, format=format)
    lengths = list(lengths)
    if len(lengths) != len(data):
        raise ValueError(f"lengths has {len(lengths)} numbers for {len(data)} records.")
    bins = _bins(lengths, width, edges)
    cats = data.categories
    members: dict[int, dict[str, list[int]]] = {}
    for i, (rec, b) in enumerate(zip(data, bins)):
        if b is not None:
            members.setdefault(b, {c: [] for c in cats})[rec.category].append(i)
    rng = random.Random(seed)
    keep: list[int] = []
    for b in sorted(members):
        n = min(len(ix) for ix in members[b].values())
        for c in cats:
            keep += rng.sample(members[b][c], n) if n else []
    if not keep:
        raise ValueError(
            f"No length bin holds records of all {len(cats)} categories; use wider bins (width={width}, "
            f"edges={edges})."
        )
    return InstructionDataset(
        [data[i] for i in sorted(keep)], name=f"{data.name}-length-matched", format=data.format
    )
