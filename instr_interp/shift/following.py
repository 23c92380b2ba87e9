"""Is the tuned model a better instruction follower than its base? Both models see the same records
in the same prompt format: reference-response NLL per category, exact-match accuracy on the
verifiable records (math and classification answers, code whose tests pass), and the share of
greedy responses that stop by themselves — each with a bootstrap interval over records.
"""

import re
import subprocess
import sys
from dataclasses import dataclass, field

import pandas as pd
import torch

from ..data.dataset import InstructionRecord, load_instructions
from ..engine.generation import generate_responses
from ..engine.likelihood import response_nll
from ..results import Result
from ..stats import bootstrap_mean, bootstrap_stratified_mean, paired_t

__all__ = ["FollowingComparison", "compare_following", "judge_response"]

_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")


def _numbers(text: str) -> list[float]:
    return [float(m.replace(",", "")) for m in _NUMBER.findall(text)]


def _normalised(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]+", " ", text.lower()).split())


def _code(text: str) -> str:
    fenced = re.search(r"```(?:python)?\n(.*?)```", text, re.S)
    return fenced.group(1) if fenced else text


def _answer(text: str) -> float | None:
    """The number after the last ``Answer:`` in ``text``, else its last number, else None."""
    tail = text.rsplit("Answer:", 1)[1] if "Answer:" in text else text
    found = _numbers(tail)
    return (found[0] if "Answer:" in text else found[-1]) if found else None


def judge_response(record: InstructionRecord, text: str, *, timeout: float = 5.0) -> float:
    """1.0 when ``text`` answers a verifiable record correctly, 0.0 when not, NaN when the record is
    not verifiable. A record is verifiable by its ``meta["check"]`` (as the built-in tuning set's
    math and code records carry) or by being a classification record with a reference label:

    - ``check["answer"]`` a number: the number after the response's last ``Answer:`` (else its last
      number) equals it (to 1e-6);
    - ``check["tests"]``: the response's code (its first fenced block, else all of it) followed by
      the tests runs in a fresh, isolated Python process without error within ``timeout`` seconds;
    - classification: the response, lower-cased and stripped of punctuation, starts with the
      reference response so normalised.

    Answers that mix prose and code (``check["kind"] == "explained"``: their tests check the
    reference's claims, not a program the response is) are not verifiable: NaN.

    Examples:
        >>> rec = InstructionRecord(id="m1", category="math", instruction="2+2?", meta={"check": {"answer": 4}})
        >>> judge_response(rec, "2 + 2 = 4. Answer: 4"), judge_response(rec, "It is 5.")
        (1.0, 0.0)
    """
    check = record.meta.get("check") or {}
    if check.get("kind") == "explained":
        return float("nan")
    if isinstance(check.get("answer"), (int, float)):
        found = _answer(text)
        return float(found is not None and abs(found - float(check["answer"])) <= 1e-6)
    if check.get("tests"):
        program = _code(text) + "\n\n" + str(check["tests"]) + "\n"
        try:
            done = subprocess.run(
                [sys.executable, "-I", "-c", program], capture_output=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return 0.0
        return float(done.returncode == 0)
    if record.category == "classification" and record.response:
        reference = _normalised(record.response)
        return float(bool(reference) and _normalised(text).startswith(reference))
    return float("nan")


@dataclass(kw_only=True, repr=False)
class FollowingComparison(Result):
    """Base vs tuned on the same records: ``nll`` (one row per record with a reference response) and
    ``generations`` (one row per generated record: correct/stopped per model, the two responses)."""

    models: list[str]
    format: str
    nll: pd.DataFrame
    generations: pd.DataFrame
    settings: dict = field(default_factory=dict)

    def _model(self) -> str:
        return " vs ".join(self.models)

    def _facts(self) -> dict[str, object]:
        diff = self.nll_by_category()
        overall = diff[diff.category == "all"].iloc[0]
        return {
            "records": f"{len(self.nll)} with references, {len(self.generations)} generated",
            "format": self.format,
            "NLL tuned - base": f"{overall.difference:+.3f} [{overall.ci_low:+.3f}, {overall.ci_high:+.3f}] "
            f"nats/token (lower in {int((diff.difference < 0).sum() - 1)} of {len(diff) - 1} categories)",
        }

    def to_frame(self) -> pd.DataFrame:
        return self.nll_by_category()

    def nll_by_category(self, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
        """Mean reference NLL (nats/token) of each model per category and overall (``all``: the mean
        of the category means, each category weighted equally), with the paired difference tuned −
        base, its bootstrap interval over records (stratified by category for ``all``) and a paired t-test."""
        rows = []
        frame = self.nll
        for cat, part in [*frame.groupby("category", sort=True), ("all", frame)]:
            delta = (part.nll_tuned - part.nll_base).to_numpy()
            if cat == "all":
                interval = bootstrap_stratified_mean(delta, part.category, n_boot=n_boot, seed=seed)
            else:
                interval = bootstrap_mean(delta, n_boot=n_boot, seed=seed)
            test = paired_t(part.nll_tuned, part.nll_base)
            rows.append(
                {
                    "category": cat,
                    "n": len(part),
                    "nll_base": float(part.groupby("category").nll_base.mean().mean()),
                    "nll_tuned": float(part.groupby("category").nll_tuned.mean().mean()),
                    "difference": interval.estimate,
                    "ci_low": interval.low,
                    "ci_high": interval.high,
                    "p_value": test.p_value,
                }
            )
        return pd.DataFrame(rows)

    def rates(self, column: str, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
        """Per category and overall: the share of records where ``column`` (``"correct"`` or
        ``"stopped"``) holds for each model, and the paired difference tuned − base with its
        bootstrap interval. Records where it is undefined (``correct`` of a non-verifiable record)
        are left out; ``n`` counts the rest."""
        if column not in ("correct", "stopped"):
            raise ValueError(f"column must be 'correct' or 'stopped', not {column!r}.")
        frame = self.generations.dropna(subset=[f"{column}_base", f"{column}_tuned"])
        rows = []
        for cat, part in [*frame.groupby("category", sort=True), ("all", frame)]:
            delta = (part[f"{column}_tuned"] - part[f"{column}_base"]).to_numpy(dtype=float)
            interval = bootstrap_mean(delta, n_boot=n_boot, seed=seed)
            rows.append(
                {
                    "category": cat,
                    "n": len(part),
                    "base": float(part[f"{column}_base"].mean()),
                    "tuned": float(part[f"{column}_tuned"].mean()),
                    "difference": interval.estimate,
                    "ci_low": interval.low,
                    "ci_high": interval.high,
                }
            )
        return pd.DataFrame(rows)

    def examples(self, n: int = 3, seed: int = 0) -> pd.DataFrame:
        """``n`` generated records per category (chosen reproducibly), the two responses side by side."""
        columns = ["id", "category", "instruction", "response_base", "response_tuned", "reference"]
        parts = [
            part.sample(min(n, len(part)), random_state=seed)
            for _, part in self.generations.groupby("category", sort=True)
        ]
        return pd.concat(parts)[columns].reset_index(drop=True) if parts else pd.DataFrame(columns=columns)

    def _saved(self):
        meta = {
            "models": self.models,
            "format": self.format,
            "nll": self.nll.to_dict("list"),
            "generations": self.generations.to_dict("list"),
            "settings": self.settings,
        }
        return {"_": torch.zeros(0)}, meta

    @classmethod
    def _from_saved(cls, tensors, meta, path):
        return cls(
            models=meta["models"],
            format=meta["format"],
            nll=pd.DataFrame(meta["nll"]),
            generations=pd.DataFrame(meta["generations"]),
            settings=meta["settings"],
        )


def compare_following(
    base,
    tuned,
    data,
    *,
    generate=None,
    max_new_tokens: int = 64,
    format: str = "auto",
    batch_size: int = 8,
    progress: bool = True,
) -> FollowingComparison:
    """Compare two models (e.g. a base model and its instruction tune) on the same records.

    Args:
        base, tuned: hooked models with the same tokenizer (refused otherwise: the same prompt must
            be the same tokens for both).
        data: records with reference responses, for the NLL comparison.
        generate: records to answer greedily (default: ``data``), judged by :func:`judge_response`;
            a response "stops" when the model emits its end token before ``max_new_tokens``.
        format: one prompt format for both models (``"auto"`` resolves on the shared tokenizer).

    Returns:
        A :class:`FollowingComparison`.

    Examples:
        >>> import instr_interp as ii
        >>> data = ii.hexainst().sample(per_category=1, seed=0)
        >>> result = compare_following(ii.tiny_model(seed=0), ii.tiny_model(seed=1), data, max_new_tokens=2, progress=False)
        >>> list(result.nll_by_category().category)[-1], len(result.generations)
        ('all', 6)
    """
    if base.tokenizer.get_vocab() != tuned.tokenizer.get_vocab():
        raise ValueError(
            "compare_following needs two models with the same tokenizer (same prompts, same tokens)."
        )
    data = load_instructions(data)
    generate = data if generate is None else load_instructions(generate)
    nll = {}
    for key, model in (("base", base), ("tuned", tuned)):
        frame = response_nll(model, data, batch_size=batch_size, format=format, progress=progress)
        nll[key] = frame.set_index("id")
    joined = nll["base"][["category", "nll"]].rename(columns={"nll": "nll_base"})
    joined = joined.join(nll["tuned"][["nll"]].rename(columns={"nll": "nll_tuned"}))
    joined = joined.reset_index()
    records = {r.id: r for r in generate}
    rows = {
        r.id: {"id": r.id, "category": r.category, "instruction": r.instruction, "reference": r.response}
        for r in generate
    }
    for key, model in (("base", base), ("tuned", tuned)):
        out = generate_responses(
            model,
            generate,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            format=format,
            progress=progress,
        )
        for rec in out:
            text = rec.response or ""
            rows[rec.id][f"response_{key}"] = text
            rows[rec.id][f"stopped_{key}"] = float(rec.meta["generated_tokens"] < max_new_tokens)
            rows[rec.id][f"correct_{key}"] = judge_response(records[rec.id], text)
    from ..data.encoding import encode

    resolved = encode(data[:1], base.tokenizer, format=format, with_response=True).format
    return FollowingComparison(
        models=[getattr(base, "instr_interp_name", "base"), getattr(tuned, "instr_interp_name", "tuned")],
        format=resolved,
        nll=joined,
        generations=pd.DataFrame(list(rows.values())),
        settings={
            "max_new_tokens": max_new_tokens,
            "data": data.fingerprint(),
            "generate": generate.fingerprint(),
        },
    )
