"""Where each row's prompt ends, for the forward running now: the one way position-aware
interventions (``add_vector(..., positions="last")``) learn the last prompt token of each row.

Every toolkit dataset pass (:func:`instr_interp.run` and what runs on it: ``response_nll``,
``format_accuracy``, the firing statistics; task evaluation, head means and effects, greedy
decoding) declares the batch's last prompt positions on the model's :class:`PromptPositions`
around each forward, and clears them after. A forward nobody declared for (e.g. a plain
``model(tokens)`` call in user code) has none, and an intervention that needs them raises instead
of guessing; pass the positions explicitly there (``add_vector(..., last=...)``).
"""

import contextlib
import weakref

from jaxtyping import Int
from torch import Tensor

__all__ = ["PromptPositions", "prompt_positions"]


class PromptPositions:
    """The last prompt position of each row of the batch a toolkit pass is running on one model.

    ``last`` is a ``[batch]`` tensor while a pass runs a forward, ``None`` otherwise. ``start`` is
    the position of the forward's first input token: 0, except for the steps of a generation with
    a KV cache, whose inputs start after the cached tokens (there the last prompt token, already in
    the cache, lies before the input: :meth:`require` returns it relative to the input, negative).

    Examples:
        >>> import torch
        >>> from instr_interp import tiny_model
        >>> model = tiny_model()
        >>> with prompt_positions(model).declare(torch.tensor([4, 2])):
        ...     prompt_positions(model).require(2, "add_vector").tolist()
        [4, 2]
        >>> prompt_positions(model).last is None
        True
    """

    def __init__(self):
        self.last: Tensor | None = None
        self.start: int = 0
        self.regions: Tensor | None = None

    @contextlib.contextmanager
    def declare(self, last: Int[Tensor, " batch"], regions: Int[Tensor, "batch pos"] | None = None):
        """Declare ``last`` (and, for encoded records, the batch's per-token ``regions`` codes, see
        :class:`instr_interp.data.encoding.Region`) for the forwards inside the block (restoring the
        previous state after)."""
        saved = (self.last, self.start, self.regions)
        self.last, self.start, self.regions = last, 0, regions
        try:
            yield self
        finally:
            self.last, self.start, self.regions = saved

    def require(self, n_rows: int, who: str) -> Int[Tensor, " batch"]:
        """The declared positions for a batch of ``n_rows``, relative to the forward's input
        (``last - start``); a clear error when none are declared or they belong to a batch of
        another size."""
        if self.last is None:
            raise ValueError(
                f"{who} with positions='last' needs each row's last prompt position, but this forward "
                "declared none (a plain model(tokens) call does not know where prompts end). Run it "
                "through a toolkit pass (evaluate_task, response_nll, run, head_means, ...), pass "
                "last=<[batch] positions> explicitly, or use positions='all' or a boolean mask."
            )
        if tuple(self.last.shape) != (n_rows,):
            raise ValueError(
                f"{who}: {tuple(self.last.shape)} declared last prompt positions do not match the batch of "
                f"{n_rows} rows."
            )
        return self.last - self.start

    def require_regions(self, shape: tuple[int, int], who: str) -> Int[Tensor, "batch pos"]:
        """The declared region codes of the batch (``[batch, pos]``); a clear error when the forward
        declared none (row passes over raw prompts, a plain ``model(tokens)``, generation steps
        after the prompt) or they belong to another batch shape."""
        if self.regions is None or self.start != 0:
            raise ValueError(
                f"{who} with region positions needs the batch's token regions, but this forward declared "
                "none (only passes over encoded records declare them: run, response_nll, format_accuracy; "
                "not raw-prompt row passes, plain model(tokens) calls or KV-cached generation steps). Pass "
                "a boolean [batch, pos] mask instead."
            )
        if tuple(self.regions.shape) != tuple(shape):
            raise ValueError(
                f"{who}: the declared regions {tuple(self.regions.shape)} do not match the batch {tuple(shape)}."
            )
        return self.regions


_BY_MODEL: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def prompt_positions(model) -> PromptPositions:
    """The :class:`PromptPositions` of ``model`` (one per model, made on first use)."""
    if model not in _BY_MODEL:
        _BY_MODEL[model] = PromptPositions()
    return _BY_MODEL[model]
