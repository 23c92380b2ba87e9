"""Catastrophic forgetting before/after fine-tuning (METHODS.md §8, Jiang et al.).

For each earlier task and for held-out general instructions, one model is scored on:

- ``accuracy``: first-answer-token accuracy from :func:`instr_interp.tasks.evaluate_task` (raw
  ``Q: x\\nA:`` prompts; few-shot by default, the in-context ability);
- ``format_accuracy``: first-response-token accuracy in the model's own prompt format (chat template
  where it has one) — the format :func:`instr_interp.finetune` trains in;
- ``instruction_nll``: −log P(y_c | c, x) per response token, the answer given instruction and input;
- ``knowledge_nll``: −log P(y | x) per response token, the answer given the plain query alone (the
  instruction dropped, same prompt format).

The paper's reading: forgetting shows mostly in the instruction probability, while the knowledge
probability holds. A :class:`ForgettingReport` holds both models' scores side by side.
"""

from dataclasses import dataclass, field

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from ..data.dataset import InstructionDataset, InstructionRecord, load_instructions
from ..data.encoding import EncodedDataset, Region, encode
from ..engine import BatchContext, Probe, run
from ..engine.forward import first_token_scores
from ..engine.likelihood import response_nll
from ..hooks import HookSite, hook_site
from ..models import load_model
from ..results import Result

__all__ = [
    "FirstResponseToken",
    "ForgettingReport",
    "forgetting_report",
    "format_accuracy",
    "knowledge_records",
    "measure_forgetting",
]

METRICS = ("accuracy", "format_accuracy", "instruction_nll", "knowledge_nll")


class FirstResponseToken(Probe):
    """Per record: is the argmax at the last prompt token the first response token, and its probability."""

    needs_logits = True
    name = "first_response_token"

    def sites(self, model) -> list[HookSite]:
        return [hook_site(model, "logits")]

    def setup(self, model, encoded: EncodedDataset, device) -> None:
        if not encoded.with_response:
            raise ValueError("FirstResponseToken needs records encoded with with_response=True.")
        self.encoded = encoded
        self.state = {
            "correct": torch.zeros(len(encoded), dtype=torch.int64, device=device),
            "p_target": torch.zeros(len(encoded), dtype=torch.float64, device=device),
        }

    def update(self, site: HookSite, act: Float[Tensor, "batch pos d_vocab"], ctx: BatchContext) -> None:
        batch = ctx.batch
        rows = torch.arange(batch.tokens.shape[0], device=batch.tokens.device)
        last = batch.last_prompt
        if not bool((batch.regions[rows, last + 1] == Region.RESPONSE).all()):
            raise ValueError("A record's token after its prompt is not a response token (truncated?).")
        target = batch.tokens[rows, last + 1]
        p_target, predicted = first_token_scores(act[rows, last], target)
        self.state["correct"][batch.index] += (predicted == target).long()
        self.state["p_target"][batch.index] += p_target

    def result(self) -> pd.DataFrame:
        enc = self.encoded
        return pd.DataFrame(
            {
                "id": [r.id for r in enc.records],
                "category": [r.category for r in enc.records],
                "correct": self.state["correct"].cpu().numpy().astype(bool),
                "p_target": self.state["p_target"].cpu().numpy(),
            }
        )


def format_accuracy(
    model, data, *, batch_size: int = 8, format: str = "auto", progress: bool = True
) -> pd.DataFrame:
    """First-response-token accuracy of each record in the model's own prompt format.

    Runs on :func:`instr_interp.run`, so ``add_vector(..., positions="last")`` adds at each record's
    last prompt token (the token before its response) and ranks share the batches.

    Returns:
        A frame with ``id``, ``category``, ``correct`` and ``p_target`` (probability of the first
        response token at the last prompt token).
    """
    encoded = (
        data
        if isinstance(data, EncodedDataset)
        else encode(data, model.tokenizer, format=format, with_response=True)
    )
    (probe,) = run(model, encoded, [FirstResponseToken()], batch_size=batch_size, progress=progress)
    return probe.result()


def knowledge_records(data) -> InstructionDataset:
    """The records with their instruction dropped: the input becomes the whole (plain) query.

    Records without an input have no instruction-free query and are left out.
    """
    data = load_instructions(data)
    kept = [
        InstructionRecord(
            id=r.id, category=r.category, instruction=r.input, input="", response=r.response, source=r.source
        )
        for r in data
        if r.input.strip()
    ]
    if not kept:
        raise ValueError("No record has an input, so none has a plain query without the instruction.")
    return InstructionDataset(kept, name=f"{data.name}-knowledge")


def _scores(model, data, *, batch_size: int, progress: bool) -> dict[str, float]:
    data = load_instructions(data)
    with_input = InstructionDataset([r for r in data if r.input.strip()], name=data.name)
    inst = response_nll(model, with_input, batch_size=batch_size, progress=progress)
    know = response_nll(model, knowledge_records(with_input), batch_size=batch_size, progress=progress)
    acc = format_accuracy(model, with_input, batch_size=batch_size, progress=progress)
    return {
        "format_accuracy": float(acc["correct"].mean()),
        "instruction_nll": float(inst["nll"].mean()),
        "knowledge_nll": float(know["nll"].mean()),
        "n": len(with_input),
    }


def measure_forgetting(
    model,
    tasks,
    *,
    general=None,
    shots: int = 3,
    form: str | None = None,
    n: int | None = None,
    general_n: int | None = 60,
    batch_size: int = 8,
    progress: bool = True,
) -> pd.DataFrame:
    """One model's scores on each task and on general instructions (one row per set and metric).

    Args:
        model: a hooked model or a name for :func:`instr_interp.load_model`.
        tasks: :class:`instr_interp.tasks.Task` objects (their first ``n`` pairs are scored).
        general: held-out instruction records with responses (only those with an input count:
            they have a plain query for the knowledge probability); ``None`` skips them.
        shots, form: passed to :func:`evaluate_task` for ``accuracy``.
        general_n: score at most this many general records (the first ones with an input).

    Returns:
        A frame with ``set``, ``kind`` (``"task"``/``"general"``), ``metric``, ``value``, ``n``.
    """
    from .tasks import evaluate_task

    model = load_model(model) if isinstance(model, str) else model
    rows = []
    for task in tasks:
        pairs = task.pairs if n is None else task.pairs[:n]
        sub = type(task)(name=task.name, instruction=task.instruction, pairs=pairs)
        score = evaluate_task(model, sub, shots=shots, form=form, batch_size=batch_size, progress=progress)
        values = {
            "accuracy": score.accuracy,
            **_scores(model, sub.records(), batch_size=batch_size, progress=progress),
        }
        rows += [
            {"set": task.name, "kind": "task", "metric": m, "value": values[m], "n": len(pairs)}
            for m in METRICS
        ]
    if general is not None:
        data = load_instructions(general)
        data = InstructionDataset(
            [r for r in data if r.input.strip() and r.response][:general_n], name=data.name
        )
        values = _scores(model, data, batch_size=batch_size, progress=progress)
        rows += [
            {"set": "general", "kind": "general", "metric": m, "value": values[m], "n": values["n"]}
            for m in METRICS[1:]
        ]
    return pd.DataFrame(rows)


@dataclass(kw_only=True, repr=False)
class ForgettingReport(Result):
    """Scores of one model before and after fine-tuning; ``change`` = after − before."""

    frame: pd.DataFrame  # set, kind, metric, n, before, after, change
    settings: dict = field(default_factory=dict)

    def forgetting(self) -> pd.DataFrame:
        """Per set: accuracy drops (before − after, positive = forgotten) and NLL rises (after − before)."""
        wide = self.frame.pivot(index="set", columns="metric", values="change")
        out = pd.DataFrame(index=wide.index)
        for m in wide.columns:
            out[f"{m} {'drop' if 'accuracy' in m else 'rise'}"] = -wide[m] if "accuracy" in m else wide[m]
        return out.reset_index()

    def plot(self):
        """Plotly bars: the change of each metric per set (accuracies and NLLs in two panels)."""
        import plotly.express as px

        frame = self.frame.assign(
            panel=self.frame["metric"].map(
                lambda m: (
                    "accuracy (after − before)" if "accuracy" in m else "NLL, nats/token (after − before)"
                )
            )
        )
        fig = px.bar(
            frame,
            x="set",
            y="change",
            color="metric",
            barmode="group",
            facet_row="panel",
            title=f"Forgetting: {self.settings.get('after', 'after')} vs {self.settings.get('before', 'before')}",
        )
        fig.update_yaxes(matches=None)
        return fig

    def to_frame(self) -> pd.DataFrame:
        """One row per set and metric: before, after and change (a copy of ``frame``)."""
        return self.frame.copy()

    def _model(self) -> str:
        before, after = self.settings.get("before"), self.settings.get("after")
        return f"{before} -> {after}" if before and after else ""

    def _facts(self) -> dict[str, object]:
        f = self.frame
        facts: dict[str, object] = {
            "rows": f"{len(f)} ({f['set'].nunique()} sets x {f['metric'].nunique()} metrics)"
        }
        for metric, part in f.groupby("metric", sort=False):
            facts[f"change in {metric}"] = ", ".join(
                f"{s} {c:+.3f}" for s, c in zip(part["set"], part["change"])
            )
        return facts

    def _saved(self):
        return {}, {"frame": self.frame.to_dict("list"), "settings": self.settings}

    @classmethod
    def _from_saved(cls, tensors, meta, path) -> "ForgettingReport":
        return cls(frame=pd.DataFrame(meta["frame"]), settings=meta["settings"])


def _name(model) -> str:
    return model if isinstance(model, str) else getattr(model, "instr_interp_name", type(model).__name__)


def forgetting_report(
    before,
    after,
    tasks,
    *,
    general=None,
    shots: int = 3,
    form: str | None = None,
    n: int | None = None,
    general_n: int | None = 60,
    batch_size: int = 8,
    progress: bool = True,
) -> ForgettingReport:
    """Score ``before`` and ``after`` on earlier tasks and general instructions (see the module docstring).

    Args:
        before, after: hooked models, names for :func:`instr_interp.load_model`, or frames already
            returned by :func:`measure_forgetting` with the same settings (to reuse a scored model).
        tasks: the earlier tasks (:class:`instr_interp.tasks.Task`).
        general: held-out instruction records (e.g. ``ii.hexainst()``), or ``None``.
        shots, form, n, general_n, batch_size: see :func:`measure_forgetting`.

    Returns:
        A :class:`ForgettingReport`; ``.forgetting()`` gives drops and rises per set, ``.plot()`` a figure.

    Examples:
        >>> import instr_interp as ii
        >>> from instr_interp.vectors.tasks import icl_task
        >>> m = ii.tiny_model()
        >>> r = forgetting_report(m, m, [icl_task("antonym")], n=4, shots=2, progress=False)
        >>> float(r.to_frame()["change"].abs().max())
        0.0
    """
    kwargs = dict(
        general=general,
        shots=shots,
        form=form,
        n=n,
        general_n=general_n,
        batch_size=batch_size,
        progress=progress,
    )
    scores = [
        m if isinstance(m, pd.DataFrame) else measure_forgetting(m, tasks, **kwargs) for m in (before, after)
    ]
    keys = ["set", "kind", "metric", "n"]
    merged = scores[0].merge(scores[1], on=keys, suffixes=("_before", "_after"), how="outer")
    if merged[["value_before", "value_after"]].isna().any().any():
        raise ValueError(
            "The before and after scores cover different sets or metrics; score both with the "
            "same tasks, general records and n."
        )
    frame = merged.rename(columns={"value_before": "before", "value_after": "after"})
    frame["change"] = frame["after"] - frame["before"]
    settings = {
        "before": _name(before) if not isinstance(before, pd.DataFrame) else "scores",
        "after": _name(after) if not isinstance(after, pd.DataFrame) else "scores",
        "tasks": [t.name for t in tasks],
        "shots": shots,
        "form": form,
        "n": n,
        "general_n": general_n,
        "general": None if general is None else load_instructions(general).fingerprint(),
    }
    return ForgettingReport(frame=frame, settings=settings)
