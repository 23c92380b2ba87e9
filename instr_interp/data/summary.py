"""What an instruction set holds: per-record lengths and a per-category summary."""

import pandas as pd

from .dataset import InstructionDataset
from .encoding import EncodedDataset, Region

__all__ = ["category_summary", "record_lengths"]


def record_lengths(data: InstructionDataset) -> pd.DataFrame:
    """One row per record: ``category``, ``source`` ("unknown" when empty) and the whitespace word
    counts of the instruction and the input.

    Examples:
        >>> import instr_interp as ii
        >>> record_lengths(ii.hexainst()[:2]).columns.tolist()
        ['category', 'source', 'instruction words', 'input words']
    """
    rows = [
        {
            "category": r.category,
            "source": r.source or "unknown",
            "instruction words": len(r.instruction.split()),
            "input words": len(r.input.split()),
        }
        for r in data
    ]
    return pd.DataFrame(rows, columns=["category", "source", "instruction words", "input words"])


def category_summary(data: InstructionDataset, encoded: EncodedDataset | None = None) -> pd.DataFrame:
    """Per category (in order of first appearance): records, how many are handwritten and templated,
    the median instruction length in words, how many have an input, and (with ``encoded``) the
    median number of counted tokens (instruction and input regions) per record.

    Examples:
        >>> import instr_interp as ii
        >>> data = ii.hexainst()
        >>> int(category_summary(data)["records"].sum()) == len(data)
        True
    """
    frame = record_lengths(data)
    table = (
        frame.groupby("category", sort=False)
        .agg(
            records=("source", "size"),
            handwritten=("source", lambda s: int((s == "handwritten").sum())),
            templated=("source", lambda s: int((s == "templated").sum())),
            median_instruction_words=("instruction words", "median"),
            with_input=("input words", lambda s: int((s > 0).sum())),
        )
        .reset_index()
    )
    if encoded is not None:
        counted = (int(Region.INSTRUCTION), int(Region.INPUT))
        per_record = pd.DataFrame(
            {
                "category": [e.category for e in encoded],
                "n": [sum(r in counted for r in e.regions) for e in encoded],
            }
        )
        table["median_counted_tokens"] = per_record.groupby("category", sort=False)["n"].median().values
    return table
