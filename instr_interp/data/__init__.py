"""Instruction data: records, file formats, the built-in HexaInst set, and encoding for a model."""

from .dataset import CATEGORIES, InstructionDataset, InstructionRecord, hexainst, load_instructions, tuneset
from .encoding import EncodedBatch, EncodedDataset, Region, encode, format_prompt

__all__ = [
    "CATEGORIES",
    "EncodedBatch",
    "EncodedDataset",
    "InstructionDataset",
    "InstructionRecord",
    "Region",
    "encode",
    "format_prompt",
    "hexainst",
    "load_instructions",
    "tuneset",
]
