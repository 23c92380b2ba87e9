"""Instruction vectors [FV, IV]: word tasks, causal heads, vectors, IV-guided fine-tuning, forgetting."""

from .instruction import InstructionVector, add_vector, instruction_vector, vector_scores

__all__ = ["InstructionVector", "add_vector", "instruction_vector", "vector_scores"]
