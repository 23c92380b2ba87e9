"""The prompts instruction vectors are built and validated on (METHODS.md §8).

Two forms:

- ``"few_shot"`` (Todd et al.): raw ``Q: x\\nA:`` text with demonstrations; the corrupted prompts
  shuffle the demonstrations' labels (``corruption="shuffle"``).
- ``"instruction"`` (Jiang et al. extract from zero-shot prompts of the task's own format): the
  task's instruction and the query as one user turn, in the model's own prompt format (its chat
  template where it has one; :func:`instr_interp.encode` with ``format="auto"``), exactly as
  :func:`instr_interp.finetune` trains on them. The target is the first response token as that
  encoding tokenizes it. The corrupted prompts drop the instruction (``corruption=
  "drop_instruction"``: the query alone as the user turn).

:func:`query_prompts` gives token ids and targets for either form; :func:`instruction_accuracy`
scores a task in the instruction form (first-response-token accuracy through
:func:`instr_interp.vectors.forgetting.format_accuracy`, so ``add_vector`` adds at the last prompt
token).
"""

import random

import torch
from torch import Tensor

from ..data.dataset import InstructionDataset, InstructionRecord
from ..data.encoding import encode
from ..engine import tokenize_prompts
from .tasks import Task, answer_token

__all__ = ["CORRUPTIONS", "FORMS", "instruction_accuracy", "instruction_records", "query_prompts"]

FORMS = ("few_shot", "instruction")
CORRUPTIONS = ("shuffle", "drop_instruction")


def check_form(form: str, corruption: str | None) -> str:
    """Validate ``form`` and return the corruption to use (the form's own when ``None``)."""
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}; got {form!r}.")
    corruption = corruption or ("shuffle" if form == "few_shot" else "drop_instruction")
    if corruption not in CORRUPTIONS:
        raise ValueError(f"corruption must be one of {CORRUPTIONS}; got {corruption!r}.")
    if form == "instruction" and corruption == "shuffle":
        raise ValueError(
            "corruption='shuffle' needs form='few_shot' (zero-shot instruction prompts have no "
            "demonstrations whose labels could be shuffled); use corruption='drop_instruction'."
        )
    if form == "few_shot" and corruption == "drop_instruction":
        raise ValueError(
            "corruption='drop_instruction' needs form='instruction' (few-shot Q/A prompts carry no "
            "instruction); use corruption='shuffle'."
        )
    return corruption


def instruction_records(
    task: Task, pairs: list[tuple[str, str]] | None = None, *, drop_instruction: bool = False
) -> InstructionDataset:
    """The pairs as instruction records (instruction = the task's, input = x, response = y); with
    ``drop_instruction`` the query alone is the user turn (instruction = x, no input)."""
    pairs = task.pairs if pairs is None else pairs
    return InstructionDataset(
        [
            InstructionRecord(
                id=f"{task.name}-{i}",
                category=task.name,
                instruction=x if drop_instruction else task.instruction,
                input="" if drop_instruction else x,
                response=y,
                source="icl",
            )
            for i, (x, y) in enumerate(pairs)
        ],
        name=task.name,
    )


def _instruction_ids(model, task, pairs, drop_instruction: bool) -> tuple[list[list[int]], Tensor]:
    enc = encode(
        instruction_records(task, pairs, drop_instruction=drop_instruction),
        model.tokenizer,
        with_response=True,
    )
    ids = [list(r.tokens[: r.prompt_length]) for r in enc.records]
    targets = torch.tensor([r.tokens[r.prompt_length] for r in enc.records])
    return ids, targets


def query_prompts(
    model,
    task: Task,
    *,
    form: str = "few_shot",
    n: int | None = None,
    shots: int = 5,
    seed: int = 0,
    corrupt: bool = False,
    corruption: str | None = None,
    queries: list[tuple[str, str]] | None = None,
) -> tuple[list[list[int]], Tensor, list[tuple[str, str]]]:
    """Token ids, first-answer-token targets and ``(x, y)`` pairs of ``n`` prompts of ``form``.

    The queries are the task's pairs shuffled with ``seed`` (or ``queries`` as given, repeats
    allowed); few-shot query ``i`` draws its demonstrations from the other pairs with seed
    ``seed + i``. ``corrupt`` builds the corrupted version (``corruption``, the form's own by default).
    """
    corruption = check_form(form, corruption)
    if queries is None:
        queries = list(task.pairs)
        random.Random(seed).shuffle(queries)
        queries = queries[: n or len(queries)]
    if form == "instruction":
        ids, targets = _instruction_ids(model, task, queries, drop_instruction=corrupt)
        return ids, targets, queries
    prompts = [task.few_shot(x, shots, seed=seed + i, corrupt=corrupt) for i, (x, _) in enumerate(queries)]
    targets = torch.tensor([answer_token(model, y) for _, y in queries])
    return tokenize_prompts(model, prompts), targets, queries


def instruction_accuracy(model, task: Task, *, batch_size: int = 8) -> tuple[float, float]:
    """First-response-token accuracy and mean probability of that token on ``task``'s pairs in the
    instruction form (interventions active around the call apply)."""
    from .forgetting import format_accuracy

    frame = format_accuracy(model, instruction_records(task), batch_size=batch_size, progress=False)
    return float(frame["correct"].mean()), float(frame["p_target"].mean())


def filtered_queries(
    model,
    task: Task,
    *,
    shots: int = 10,
    n: int = 100,
    seed: int = 0,
    batch_size: int = 8,
    progress: bool = True,
) -> list[tuple[str, str]]:
    """Todd et al.'s query filter: the pairs whose clean ``shots``-shot prompt the model answers
    right, then ``n`` queries drawn from them at random (with replacement, ``seed``).

    Raises:
        ValueError: when the model answers none of them.
    """
    from .tasks import evaluate_task

    score = evaluate_task(model, task, shots=shots, seed=seed, batch_size=batch_size, progress=progress)
    kept = [pair for pair, ok in zip(task.pairs, score.frame["correct"]) if ok]
    if not kept:
        raise ValueError(
            f"The model answers none of the {len(task)} clean {shots}-shot prompts of {task.name!r}; "
            "Todd et al.'s filter leaves no query."
        )
    rng = random.Random(seed)
    return [rng.choice(kept) for _ in range(n)]
