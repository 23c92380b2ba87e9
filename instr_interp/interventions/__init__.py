"""Interventions: context managers over hook points that ablate, patch or add, always removed on exit."""

from .neurons import ablate_neurons, mean_activations
from .patching import patch, patch_heads
from .vectors import add_vector, iv_addition

__all__ = ["ablate_neurons", "add_vector", "iv_addition", "mean_activations", "patch", "patch_heads"]
