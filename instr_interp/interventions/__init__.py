"""Interventions: context managers over hook points that ablate, patch or add, always removed on exit."""

from .neurons import ablate_neurons, mean_activations

__all__ = ["ablate_neurons", "mean_activations"]
