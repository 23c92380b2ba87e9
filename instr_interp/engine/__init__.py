"""The engine: batching, the shared activation pass, forwards at chosen positions, generation, NLL."""

from .batching import bucket_width, pad_id, pad_rows, plan_batches, plan_rows
from .forward import first_token_scores, greedy, last_token_logits, map_rows, tokenize_prompts
from .native import blas_reproducible, native_forward
from .parallel import map_shards, shard, world
from .passes import BatchContext, Probe, feed_cache, run
from .positions import PromptPositions, prompt_positions

__all__ = [
    "BatchContext",
    "Probe",
    "PromptPositions",
    "blas_reproducible",
    "bucket_width",
    "feed_cache",
    "first_token_scores",
    "greedy",
    "last_token_logits",
    "map_rows",
    "map_shards",
    "native_forward",
    "pad_id",
    "pad_rows",
    "plan_batches",
    "plan_rows",
    "prompt_positions",
    "run",
    "shard",
    "tokenize_prompts",
    "world",
]
