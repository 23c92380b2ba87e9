"""instr_interp: which neurons, experts, heads and vectors make a model follow instructions.

Importing the package sets ``MKL_CBWR=AUTO,STRICT`` (unless already set) when torch has not been
imported yet: Intel MKL then computes matrix products identically whatever the batch shape, which
makes firing statistics bit-identical across batch sizes (see ``instr_interp.engine``). Nothing
else happens on import.
"""

import os as _os
import sys as _sys

if "torch" not in _sys.modules:
    _os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from .ablation import critical_role, random_like  # noqa: E402
from .compare import SetComparison, compare  # noqa: E402
from .data import (  # noqa: E402
    CATEGORIES,
    EncodedBatch,
    EncodedDataset,
    InstructionDataset,
    InstructionRecord,
    Region,
    encode,
    hexainst,
    load_instructions,
)
from .engine import BatchContext, Probe, blas_reproducible, feed_cache, run  # noqa: E402
from .experts import ExpertSets, ExpertStats, ablate_experts, find_ises  # noqa: E402
from .hooks import HookSite, hook_names, hook_site  # noqa: E402
from .interventions import ablate_neurons, mean_activations  # noqa: E402
from .likelihood import response_nll  # noqa: E402
from .models import BUNDLED, ModelFacts, cache_dir, load_model, model_facts, tiny_model  # noqa: E402
from .neurons import NeuronSets, find_isns  # noqa: E402
from .probes import FiringStats, NeuronFiring  # noqa: E402
from .training import FinetuneResult, finetune  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "BUNDLED",
    "CATEGORIES",
    "BatchContext",
    "EncodedBatch",
    "EncodedDataset",
    "ExpertSets",
    "ExpertStats",
    "FinetuneResult",
    "FiringStats",
    "HookSite",
    "InstructionDataset",
    "InstructionRecord",
    "ModelFacts",
    "NeuronFiring",
    "NeuronSets",
    "Probe",
    "Region",
    "SetComparison",
    "ablate_experts",
    "ablate_neurons",
    "blas_reproducible",
    "cache_dir",
    "compare",
    "critical_role",
    "encode",
    "feed_cache",
    "find_ises",
    "finetune",
    "find_isns",
    "hexainst",
    "hook_names",
    "hook_site",
    "load_instructions",
    "load_model",
    "mean_activations",
    "model_facts",
    "random_like",
    "response_nll",
    "run",
    "tiny_model",
]
