"""In-context word tasks (antonyms, capitals, ...) and first-answer-token evaluation (METHODS.md §8).

Prompt format. A task is a list of ``(x, y)`` pairs plus an instruction. Prompts use the raw
``Q: x\\nA:`` format of the function-vector papers, **not** the chat template, also for chat
models: ``zero_shot(x)`` is ``"Q: x\\nA:"``, ``instructed(x)`` puts the instruction and a blank line
before it, ``few_shot(x, k)`` puts ``k`` demonstrations ``"Q: xi\\nA: yi\\n\\n"`` before it. Text is
tokenized with the tokenizer's own special-token convention (Gemma adds ``<bos>``, SmolLM2 adds
nothing).

Answer convention. The answer is appended after ``"A:"`` as ``" " + y``; its *first answer token* is
the first token of ``tokenizer(" " + y, add_special_tokens=False)``. Accuracy is whether the argmax
of the logits at the last prompt token equals that token.

Batching. Prompts run right-padded, each at a fixed padded width that depends only on its own
length (:func:`instr_interp.engine.bucket_width`), so scores do not depend on the batch size; they
run on the engine's native path and are shared across ``torch.distributed`` ranks
(:func:`instr_interp.engine.map_rows`). The forward stops at the final norm and unembeds only the
last prompt position of each row.
"""

import json
import random
import warnings
from dataclasses import dataclass, field, replace
from importlib.resources import files
from typing import Literal

import pandas as pd
import torch

from ..data.dataset import InstructionDataset, InstructionRecord
from ..engine.forward import first_token_scores, greedy, last_token_logits, map_rows, tokenize_prompts
from ..results import Result

__all__ = [
    "ICL_TASKS",
    "Task",
    "TaskScore",
    "answer_token",
    "shared_first_tokens",
    "evaluate_task",
    "icl_task",
]

Form = Literal["zero_shot", "instructed", "few_shot"]


# ---------------------------------------------------------------------------------------------
# Tasks


@dataclass(kw_only=True)
class Task:
    """A word task: an instruction and ``(input, answer)`` pairs.

    Examples:
        >>> t = Task(name="caps", instruction="Capitalise the word.", pairs=[("a", "A"), ("b", "B")])
        >>> t.zero_shot("c")
        'Q: c\\nA:'
        >>> t.few_shot("c", 1, seed=0)
        'Q: a\\nA: A\\n\\nQ: c\\nA:'
    """

    name: str
    instruction: str
    pairs: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self):
        self.pairs = [(str(x), str(y)) for x, y in self.pairs]
        if not self.name or not self.instruction.strip():
            raise ValueError("A Task needs a non-empty name and instruction.")
        if not self.pairs:
            raise ValueError(f"Task {self.name!r} has no pairs; pass pairs=[(x, y), ...].")
        bad = [p for p in self.pairs if not p[0].strip() or not p[1].strip()]
        if bad:
            raise ValueError(f"Task {self.name!r}: empty input or answer in {bad[:3]}.")
        xs = [x for x, _ in self.pairs]
        dupes = sorted({x for x in xs if xs.count(x) > 1})
        if dupes:
            raise ValueError(
                f"Task {self.name!r}: duplicate inputs {dupes[:5]}; each input needs one answer."
            )

    def __len__(self) -> int:
        return len(self.pairs)

    def zero_shot(self, x: str) -> str:
        """The bare query ``"Q: x\\nA:"``."""
        return f"Q: {x}\nA:"

    def instructed(self, x: str) -> str:
        """The instruction, a blank line, then the query."""
        return f"{self.instruction}\n\n{self.zero_shot(x)}"

    def demonstrations(self, x: str, k: int, *, seed: int, corrupt: bool = False) -> list[tuple[str, str]]:
        """``k`` demonstration pairs for query ``x`` (never ``x`` itself), drawn with ``seed``.

        With ``corrupt=True`` the answers are permuted across the demonstrations so that no
        demonstration keeps its own answer (a random derangement; needs ``k >= 2``).
        """
        pool = [p for p in self.pairs if p[0] != x]
        if not 0 <= k <= len(pool):
            raise ValueError(
                f"Task {self.name!r} has {len(pool)} other pairs; cannot draw k={k} demonstrations."
            )
        rng = random.Random(f"{self.name}:{x}:{seed}")
        demos = rng.sample(pool, k)
        if corrupt:
            if k < 2:
                raise ValueError("corrupt=True needs at least 2 demonstrations to shuffle labels.")
            labels = [y for _, y in demos]
            while True:
                order = list(range(k))
                rng.shuffle(order)
                if all(o != i for i, o in enumerate(order)):
                    break
            demos = [(dx, labels[o]) for (dx, _), o in zip(demos, order)]
        return demos

    def few_shot(self, x: str, k: int, *, seed: int, corrupt: bool = False) -> str:
        """``k`` demonstrations ``"Q: xi\\nA: yi\\n\\n"`` then the query (see :meth:`demonstrations`)."""
        demos = self.demonstrations(x, k, seed=seed, corrupt=corrupt)
        return "".join(f"Q: {dx}\nA: {dy}\n\n" for dx, dy in demos) + self.zero_shot(x)

    def prompt(self, x: str, form: Form, *, shots: int = 0, seed: int = 0, corrupt: bool = False) -> str:
        """The prompt of ``form`` for ``x``."""
        if form == "zero_shot":
            return self.zero_shot(x)
        if form == "instructed":
            return self.instructed(x)
        if form == "few_shot":
            return self.few_shot(x, shots, seed=seed, corrupt=corrupt)
        raise ValueError(f"Unknown form {form!r}; choose 'zero_shot', 'instructed' or 'few_shot'.")

    def split(self, seed: int = 0, n_val: int = 10) -> tuple["Task", "Task"]:
        """Shuffle the pairs with ``seed`` and split them into ``(train, validation)`` tasks; the
        validation task holds ``n_val`` pairs."""
        if not 0 < n_val < len(self.pairs):
            raise ValueError(
                f"n_val must be in [1, {len(self.pairs) - 1}] for task {self.name!r}, got {n_val}."
            )
        pairs = list(self.pairs)
        random.Random(seed).shuffle(pairs)
        return replace(self, pairs=pairs[n_val:]), replace(self, pairs=pairs[:n_val])

    def records(self, form: Literal["instruction"] = "instruction") -> InstructionDataset:
        """The pairs as instruction records for fine-tuning: instruction = the task's instruction,
        input = x, response = y, category = the task name, source = ``"icl"``."""
        if form != "instruction":
            raise ValueError(f"Unknown records form {form!r}; only 'instruction' is supported.")
        return InstructionDataset(
            [
                InstructionRecord(
                    id=f"{self.name}-{i}",
                    category=self.name,
                    instruction=self.instruction,
                    input=x,
                    response=y,
                    source="icl",
                )
                for i, (x, y) in enumerate(self.pairs)
            ],
            name=self.name,
        )


def _load_builtin() -> dict[str, dict]:
    text = files("instr_interp.data").joinpath("icl_tasks.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return {row["name"]: row for row in rows}


_BUILTIN = _load_builtin()
ICL_TASKS: tuple[str, ...] = tuple(_BUILTIN)


def icl_task(name: str) -> Task:
    """A built-in task by name (see ``ICL_TASKS``).

    Examples:
        >>> icl_task("country_capital").pairs[0]
        ('France', 'Paris')
    """
    if name not in _BUILTIN:
        raise ValueError(f"No built-in task {name!r}; choose one of {ICL_TASKS} or build Task(...).")
    row = _BUILTIN[name]
    return Task(name=row["name"], instruction=row["instruction"], pairs=[tuple(p) for p in row["pairs"]])


# ---------------------------------------------------------------------------------------------
# Tokens and batched last-position forwards


def _tokenizer(model_or_tokenizer):
    return getattr(model_or_tokenizer, "tokenizer", model_or_tokenizer)


def shared_first_tokens(model_or_tokenizer, task: Task) -> dict[int, list[str]]:
    """Answers of ``task`` whose first answer token (:func:`answer_token`) is shared with another
    answer, by that token: first-token accuracy cannot tell them apart.

    Examples:
        >>> from instr_interp import tiny_model
        >>> t = Task(name="n", instruction="Spell it.", pairs=[("20", "twenty"), ("21", "twenty-one"), ("3", "three")])
        >>> sorted(shared_first_tokens(tiny_model(), t).values())  # byte-level: ' t...' all start with ' '
        [['twenty', 'twenty-one', 'three']]
    """
    by_token: dict[int, list[str]] = {}
    for y in dict.fromkeys(y for _, y in task.pairs):
        by_token.setdefault(answer_token(model_or_tokenizer, y), []).append(y)
    return {tid: ys for tid, ys in by_token.items() if len(ys) > 1}


def _warn_shared_first_tokens(tokenizer, task: Task) -> None:
    shared = shared_first_tokens(tokenizer, task)
    if shared:
        warnings.warn(
            f"Task {task.name!r}: {sum(map(len, shared.values()))} answers share a first token with another "
            f"answer under this tokenizer (e.g. {next(iter(shared.values()))[:3]}), so first-token accuracy counts "
            "a wrong answer with the same first token as right. Use answers that differ in their first token "
            "(as the built-in tasks do for the bundled tokenizers), or read exact_match (max_new_tokens > 0).",
            stacklevel=3,
        )


def answer_token(model_or_tokenizer, y: str) -> int:
    """The first token of the answer ``" " + y`` (the token the model must predict after ``"A:"``)."""
    ids = _tokenizer(model_or_tokenizer)(" " + y, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ValueError(f"The answer {y!r} tokenizes to nothing.")
    return int(ids[0])


# ---------------------------------------------------------------------------------------------
# Evaluation


@dataclass(kw_only=True, repr=False)
class TaskScore(Result):
    """First-answer-token accuracy (and optional greedy exact match) of a model on a task."""

    task: str
    form: str
    shots: int
    accuracy: float
    exact_match: float | None
    frame: pd.DataFrame  # one row per pair
    settings: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """One row per pair: prompt, target, whether the first answer token was right, its probability."""
        return self.frame.copy()

    def _facts(self) -> dict[str, object]:
        em = {} if self.exact_match is None else {"exact match": f"{self.exact_match:.3f}"}
        return {
            "task": f"{self.task} ({self.form}, {self.shots} shots)",
            "pairs": len(self.frame),
            "accuracy": f"{self.accuracy:.3f}",
            **em,
        }

    def plot(self):
        """Bar chart of the probability of the correct first token per pair."""
        import plotly.express as px

        fig = px.bar(
            self.frame,
            x="x",
            y="p_target",
            color="correct",
            title=f"{self.task} ({self.form}, {self.shots} shots): accuracy {self.accuracy:.2f}",
        )
        fig.update_layout(yaxis_title="p(first answer token)", xaxis_title="input")
        return fig

    def _saved(self):
        tensors = {"p_target": torch.tensor(self.frame["p_target"].to_numpy(), dtype=torch.float32)}
        frame = self.frame.drop(columns=["p_target"]).to_dict(orient="list")
        meta = {
            "task": self.task,
            "form": self.form,
            "shots": self.shots,
            "accuracy": self.accuracy,
            "exact_match": self.exact_match,
            "frame": frame,
            "settings": self.settings,
        }
        return tensors, meta

    @classmethod
    def _from_saved(cls, tensors, meta, path) -> "TaskScore":
        frame = pd.DataFrame(meta["frame"])
        frame["p_target"] = tensors["p_target"].double().numpy()
        return cls(
            task=meta["task"],
            form=meta["form"],
            shots=meta["shots"],
            accuracy=meta["accuracy"],
            exact_match=meta["exact_match"],
            frame=frame,
            settings=meta["settings"],
        )


def _resolve_form(form: str | None, shots: int) -> str:
    if form is None:
        form = "few_shot" if shots > 0 else "zero_shot"
    if form not in ("zero_shot", "instructed", "few_shot"):
        raise ValueError(f"Unknown form {form!r}; choose 'zero_shot', 'instructed' or 'few_shot'.")
    if form == "few_shot" and shots < 1:
        raise ValueError("form='few_shot' needs shots >= 1.")
    if form != "few_shot" and shots:
        raise ValueError(f"shots={shots} only applies to form='few_shot'; got form={form!r}.")
    return form


def task_prompts(
    task: Task, form: str, *, shots: int = 0, n: int | None = None, seed: int = 0, corrupt: bool = False
) -> tuple[list[str], list[tuple[str, str]]]:
    """The prompts of ``form`` for the first ``n`` pairs of ``task`` (query ``i`` draws its
    demonstrations with seed ``seed + i``), and those pairs."""
    pairs = task.pairs if n is None else task.pairs[:n]
    if n is not None and not 1 <= n <= len(task.pairs):
        raise ValueError(f"n must be in [1, {len(task.pairs)}] for task {task.name!r}, got {n}.")
    prompts = [
        task.prompt(x, form, shots=shots, seed=seed + i, corrupt=corrupt) for i, (x, _) in enumerate(pairs)
    ]
    return prompts, pairs


def _first_line(text: str) -> str:
    return text.split("\n", 1)[0].strip()


def evaluate_task(
    model,
    task: Task,
    *,
    shots: int = 0,
    form: Form | None = None,
    n: int | None = None,
    max_new_tokens: int = 0,
    seed: int = 0,
    corrupt: bool = False,
    batch_size: int = 16,
    progress: bool = True,
) -> TaskScore:
    """Score a model on a task: does the argmax at the last prompt token equal the first answer token?

    Prompts are raw text (no chat template; see the module docstring). Interventions active around
    the call (e.g. ``with add_vector(model, iv):``) apply, and ``positions="last"`` interventions
    see each row's last prompt position.

    Args:
        model: a hooked model with a tokenizer.
        task: the task; the first ``n`` pairs (default all) are scored.
        shots: demonstrations per prompt (``form="few_shot"``; the default form when ``shots > 0``).
        form: ``"zero_shot"`` (``Q: x\\nA:``), ``"instructed"`` (instruction + query) or ``"few_shot"``.
        max_new_tokens: if > 0, also generate that many tokens greedily and score exact match of
            the first generated line against ``y`` (whitespace-stripped).
        seed: demonstrations of query ``i`` are drawn with seed ``seed + i``.
        corrupt: few-shot demonstrations with labels shuffled across them.
        batch_size: prompts per forward (results do not depend on it).

    Returns:
        A :class:`TaskScore` with ``accuracy``, ``exact_match`` and a per-pair ``frame``.

    Examples:
        >>> from instr_interp import tiny_model
        >>> score = evaluate_task(tiny_model(), icl_task("antonym"), n=4, progress=False)
        >>> 0.0 <= score.accuracy <= 1.0
        True
    """
    form = _resolve_form(form, shots)
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}.")
    prompts, pairs = task_prompts(task, form, shots=shots, n=n, seed=seed, corrupt=corrupt)
    tok = model.tokenizer
    ids = tokenize_prompts(model, prompts)
    targets = torch.tensor([answer_token(tok, y) for _, y in pairs])
    _warn_shared_first_tokens(tok, task)
    p_target, pred, generations = _score_prompts(
        model, ids, targets, max_new_tokens, batch_size, f"evaluate {task.name}", progress
    )
    correct = pred == targets
    frame = pd.DataFrame(
        {
            "x": [x for x, _ in pairs],
            "y": [y for _, y in pairs],
            "prompt": prompts,
            "target": [tok.decode([t]) for t in targets.tolist()],
            "predicted": [tok.decode([t]) for t in pred.tolist()],
            "correct": correct.numpy(),
            "p_target": p_target.numpy(),
        }
    )
    exact = None
    if max_new_tokens:
        frame["generation"] = generations
        frame["exact"] = [_first_line(g) == y.strip() for g, (_, y) in zip(generations, pairs)]
        exact = float(frame["exact"].mean())
    return TaskScore(
        task=task.name,
        form=form,
        shots=shots,
        accuracy=float(correct.double().mean()),
        exact_match=exact,
        frame=frame,
        settings={
            "n": len(pairs),
            "seed": seed,
            "corrupt": corrupt,
            "max_new_tokens": max_new_tokens,
            "model": getattr(model, "instr_interp_name", ""),
        },
    )


def _score_prompts(
    model, ids, targets: torch.Tensor, max_new_tokens: int, batch_size: int, desc: str, progress: bool
):
    """Each prompt's probability of its target's first token, the argmax token at the last prompt
    position, and (with ``max_new_tokens``) the decoded greedy continuation (else ``""``)."""
    tok = model.tokenizer

    def score(rows, tokens, last):
        with torch.inference_mode():
            logits = last_token_logits(model, tokens, last).float()
            p, best = first_token_scores(logits, targets[rows])
            new = greedy(model, tokens, last, logits, max_new_tokens) if max_new_tokens else None
        return p, best, new

    p_target = torch.zeros(len(targets), dtype=torch.float64)
    pred = torch.zeros(len(targets), dtype=torch.long)
    generations = [""] * len(targets)
    for rows, (p, best, new) in map_rows(
        model, ids, score, batch_size=batch_size, extra=max_new_tokens, desc=desc, progress=progress
    ):
        p_target[rows], pred[rows] = p, best
        for r, i in enumerate(rows if new is not None else ()):
            generations[i] = tok.decode(new[r])
    return p_target, pred, generations
