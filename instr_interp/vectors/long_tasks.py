"""Instruction tasks with multi-token answers (sentences, lists, short explanations), built
deterministically from the word tasks' pairs, for the forgetting study (METHODS.md §8).

- ``past_sentence``: "Rewrite the sentence in the past tense." ``Today I walk.`` →
  ``Yesterday I walked.`` (present_past);
- ``capital_sentence``: "Answer with one full sentence: what is the capital of this country?"
  ``France`` → ``The capital of France is Paris.`` (country_capital);
- ``plural_list``: "Write the plural of each noun, separated by commas." ``cat, dog, foot`` →
  ``cats, dogs, feet`` (singular_plural, three nouns per item);
- ``antonym_explain``: "Explain in one short sentence what the opposite of the word is." ``hot`` →
  ``The opposite of "hot" is "cold".`` (antonym).

They are :class:`~instr_interp.vectors.tasks.Task` objects, so ``task.records()`` gives fine-tuning
records and :func:`~instr_interp.vectors.prompts.query_prompts` instruction prompts.
"""

import random

from .tasks import Task, icl_task

__all__ = ["LONG_TASKS", "long_task"]


def _past_sentence() -> Task:
    pairs = [(f"Today I {v}.", f"Yesterday I {p}.") for v, p in icl_task("present_past").pairs]
    return Task(name="past_sentence", instruction="Rewrite the sentence in the past tense.", pairs=pairs)


def _capital_sentence() -> Task:
    pairs = [(c, f"The capital of {c} is {k}.") for c, k in icl_task("country_capital").pairs]
    return Task(
        name="capital_sentence",
        instruction="Answer with one full sentence: what is the capital of this country?",
        pairs=pairs,
    )


def _plural_list() -> Task:
    nouns = list(icl_task("singular_plural").pairs)
    random.Random(0).shuffle(nouns)
    groups = [nouns[i : i + 3] for i in range(0, len(nouns) - 2, 3)]
    groups += [nouns[i::17][:3] for i in range(len(nouns) // 3)]  # more items, other combinations
    pairs = dict((", ".join(s for s, _ in g), ", ".join(p for _, p in g)) for g in groups if len(g) == 3)
    return Task(
        name="plural_list",
        instruction="Write the plural of each noun, separated by commas.",
        pairs=list(pairs.items()),
    )


def _antonym_explain() -> Task:
    pairs = [(w, f'The opposite of "{w}" is "{a}".') for w, a in icl_task("antonym").pairs]
    return Task(
        name="antonym_explain",
        instruction="Explain in one short sentence what the opposite of the word is.",
        pairs=pairs,
    )


_BUILDERS = {
    "past_sentence": _past_sentence,
    "capital_sentence": _capital_sentence,
    "plural_list": _plural_list,
    "antonym_explain": _antonym_explain,
}
LONG_TASKS: tuple[str, ...] = tuple(_BUILDERS)


def long_task(name: str) -> Task:
    """A multi-token-answer task by name (see ``LONG_TASKS``).

    Examples:
        >>> long_task("capital_sentence").pairs[0]
        ('France', 'The capital of France is Paris.')
    """
    if name not in _BUILDERS:
        raise ValueError(f"No multi-token task {name!r}; choose one of {LONG_TASKS}.")
    return _BUILDERS[name]()
