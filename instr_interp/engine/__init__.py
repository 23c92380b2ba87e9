"""The engine: batching, the shared activation pass, forwards at chosen positions, generation, NLL."""

from .batching import bucket_width, pad_id, pad_rows, plan_batches, plan_rows
from .forward import (
           current_last_positions,
           greedy,
           iter_batches,
           last_token_logits,
           prompt_positions,
           tokenize_prompts,
)
from .native import blas_reproducible, native_forward
from .passes import BatchContext, Probe, feed_cache, run

__all__ = ["BatchContext", "Probe", "blas_reproducible", "bucket_width", "current_last_positions", "feed_cache",
           "greedy", "iter_batches", "last_token_logits", "native_forward", "pad_id", "pad_rows", "plan_batches",
           "plan_rows", "prompt_positions", "run", "tokenize_prompts"]
