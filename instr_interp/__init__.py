"""instr_interp: which neurons, experts, heads and vectors make a model follow instructions.

Importing the package sets ``MKL_CBWR=AUTO,STRICT`` (unless already set) when torch has not been
imported yet: Intel MKL then computes matrix products identically whatever the batch shape, which
makes firing statistics bit-identical across batch sizes (see ``instr_interp.engine.passes``). Nothing
else happens on import.
"""

import os as _os
import sys as _sys

if "torch" not in _sys.modules:
    _os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

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
    tuneset,
)
from .engine import BatchContext, Probe, blas_reproducible, feed_cache, run  # noqa: E402
from .engine.generation import generate_responses  # noqa: E402
from .engine.likelihood import response_nll  # noqa: E402
from .hooks import HookSite, hook_names, hook_site  # noqa: E402
from .interventions.expert_neurons import mean_expert_activations  # noqa: E402
from .interventions.neurons import ablate_neurons, mean_activations  # noqa: E402
from .interventions.patching import patch, patch_heads  # noqa: E402
from .models import BUNDLED, ModelFacts, cache_dir, load_model, model_facts, tiny_model  # noqa: E402
from .results import Result, load  # noqa: E402
from .shift.attribution import (  # noqa: E402
    Attribution,
    AttributionSet,
    attribute,
    attribute_many,
    compare_scores,
)
from .shift.concepts import Concepts, compare_concepts, concept_shares, ffn_concepts  # noqa: E402
from .shift.lexicon import lexicon_labeller  # noqa: E402
from .shift.score_tests import FollowedComparison, ScoreComparison, compare_models, followed_vs_not  # noqa: E402
from .shift.vocabulary import INSTRUCTION_VERBS, frequent_words, word_vectors  # noqa: E402
from .shift.wordpairs import WordPairs, head_word_pairs, instruction_verb_shift, model_word_pairs  # noqa: E402
from .sparcom.ablation import critical_role, random_like  # noqa: E402
from .sparcom.change import SetChange, compare_with_intervals  # noqa: E402
from .sparcom.compare import SetComparison, compare  # noqa: E402
from .sparcom.critical import CriticalRole  # noqa: E402
from .sparcom.experts import ExpertSets, ExpertStats, ablate_experts, find_ises  # noqa: E402
from .sparcom.firing import FiringStats, NeuronFiring  # noqa: E402
from .sparcom.neurons import NeuronSets  # noqa: E402
from .sparcom.overlap import OverlapTest, counted_tokens, overlap_test  # noqa: E402
from .sparcom.selection import find_isns  # noqa: E402
from .sweeps import PatchSweep, TuningEffects, patch_sweep, where_tuning_acted  # noqa: E402
from .vectors.forgetting import ForgettingReport, forgetting_report, format_accuracy, measure_forgetting  # noqa: E402
from .vectors.heads import head_effects, random_heads  # noqa: E402
from .vectors.instruction import InstructionVector, add_vector, instruction_vector  # noqa: E402
from .vectors.tasks import ICL_TASKS, Task, TaskScore, evaluate_task, icl_task  # noqa: E402
from .vectors.training import FinetuneResult, finetune  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "ablate_experts",
    "ablate_neurons",
    "add_vector",
    "attribute",
    "attribute_many",
    "Attribution",
    "AttributionSet",
    "BatchContext",
    "blas_reproducible",
    "BUNDLED",
    "cache_dir",
    "CATEGORIES",
    "compare",
    "compare_concepts",
    "compare_scores",
    "concept_shares",
    "Concepts",
    "critical_role",
    "CriticalRole",
    "encode",
    "EncodedBatch",
    "EncodedDataset",
    "evaluate_task",
    "ExpertSets",
    "ExpertStats",
    "feed_cache",
    "ffn_concepts",
    "find_ises",
    "find_isns",
    "finetune",
    "FinetuneResult",
    "FiringStats",
    "forgetting_report",
    "format_accuracy",
    "measure_forgetting",
    "ForgettingReport",
    "frequent_words",
    "generate_responses",
    "head_effects",
    "head_word_pairs",
    "hexainst",
    "hook_names",
    "hook_site",
    "HookSite",
    "icl_task",
    "ICL_TASKS",
    "instruction_vector",
    "instruction_verb_shift",
    "INSTRUCTION_VERBS",
    "InstructionDataset",
    "InstructionRecord",
    "InstructionVector",
    "lexicon_labeller",
    "load",
    "load_instructions",
    "load_model",
    "mean_activations",
    "mean_expert_activations",
    "model_facts",
    "model_word_pairs",
    "ModelFacts",
    "NeuronFiring",
    "NeuronSets",
    "Probe",
    "random_heads",
    "random_like",
    "Region",
    "response_nll",
    "Result",
    "run",
    "SetComparison",
    "Task",
    "TaskScore",
    "tiny_model",
    "word_vectors",
    "WordPairs",
    "tuneset",
    "SetChange",
    "compare_with_intervals",
    "OverlapTest",
    "counted_tokens",
    "overlap_test",
    "FollowedComparison",
    "ScoreComparison",
    "compare_models",
    "followed_vs_not",
    "patch",
    "patch_heads",
    "patch_sweep",
    "PatchSweep",
    "TuningEffects",
    "where_tuning_acted",
]
