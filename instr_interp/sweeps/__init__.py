"""Patching analyses: sweeps that patch one unit at a time (layers, positions, heads, neurons,
experts) from a source run or another model, and "where did tuning act?" across a base/tuned pair."""

from .results import PatchSweep
from .sweep import patch_sweep
from .tuning import TuningEffects, where_tuning_acted

__all__ = ["PatchSweep", "TuningEffects", "patch_sweep", "where_tuning_acted"]
