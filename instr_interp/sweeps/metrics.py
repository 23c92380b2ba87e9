"""The batches a patching sweep runs on and the per-record metrics it scores from full logits.

Metrics (one value per record, from the logits of one forward):

- ``"nll"``: mean negative log-likelihood per token of the reference response (teacher forcing;
  as :func:`instr_interp.response_nll`).
- ``"first_token"``: 1 when the argmax at the last prompt token is the target (the reference
  response's first token, or ``answers``), else 0 — first-token accuracy.
- ``"logit_diff"``: logit of ``answers[0]`` minus logit of ``answers[1]`` at the last prompt token.
- ``"stop"``: probability of an end token (EOS or the chat template's end-of-turn) right after the
  reference response's last token — how readily the model stops where the reference stops.
- ``"kl"``: KL(source ‖ patched), in nats, averaged over the scored positions (the positions that
  predict the response tokens, or the last prompt token for raw prompts); needs a source model.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..data.dataset import load_instructions
from ..data.encoding import Region, encode
from ..engine import pad_id, pad_rows, plan_batches, plan_rows, tokenize_prompts
from ..engine.generation import stop_token_ids
from ..engine.likelihood import response_token_nll
from ..models import model_device

__all__ = ["METRICS", "SweepBatch", "sweep_batches", "metric_values", "check_metrics", "LOWER_IS_BETTER"]

METRICS = ("nll", "first_token", "logit_diff", "stop", "kl")
LOWER_IS_BETTER = {"nll": True, "first_token": False, "logit_diff": False, "stop": False, "kl": True}
_NEEDS_RESPONSE = ("nll", "stop")


@dataclass
class SweepBatch:
    """One right-padded batch: tokens, each row's last prompt position, its token regions (None for
    raw prompts), the record indices, and per-row answer tokens (``[batch, 2]``, -1 where unused)."""

    tokens: Tensor
    last: Tensor
    regions: Tensor | None
    index: Tensor
    answers: Tensor


def check_metrics(metric, *, prompts: bool, has_answers: bool, model_source: bool) -> list[str]:
    names = [metric] if isinstance(metric, str) else list(metric)
    if not names:
        raise ValueError(f"metric needs at least one of {METRICS}.")
    for name in names:
        if name not in METRICS:
            raise ValueError(f"Unknown metric {name!r}; choose from {METRICS}.")
        if prompts and name in _NEEDS_RESPONSE:
            raise ValueError(f"metric {name!r} needs records with reference responses, not raw prompts.")
        if name == "logit_diff" and not has_answers:
            raise ValueError(
                "metric 'logit_diff' needs answers=(correct_ids, wrong_ids), one token id per record each."
            )
        if name == "first_token" and prompts and not has_answers:
            raise ValueError(
                "metric 'first_token' on raw prompts needs answers= (the target token id per prompt)."
            )
        if name == "kl" and not model_source:
            raise ValueError(
                "metric 'kl' compares with the source model's output; it needs source=<a model>."
            )
    if len(set(names)) != len(names):
        raise ValueError(f"metric lists a metric twice: {names}.")
    return names


def _answers(answers, n: int) -> Tensor:
    """``[n, 2]`` answer tokens: column 0 the target (correct), column 1 the wrong one (-1: none)."""
    out = torch.full((n, 2), -1, dtype=torch.long)
    if answers is None:
        return out
    if isinstance(answers, tuple) and len(answers) == 2 and not isinstance(answers[0], int):
        good, bad = (torch.as_tensor(a, dtype=torch.long).flatten() for a in answers)
        if good.shape != (n,) or bad.shape != (n,):
            raise ValueError(f"answers=(correct, wrong) must each hold one token id per record ({n}).")
        out[:, 0], out[:, 1] = good, bad
        return out
    good = torch.as_tensor(answers, dtype=torch.long).flatten()
    if good.shape != (n,):
        raise ValueError(f"answers must hold one token id per record ({n}); got {tuple(good.shape)}.")
    out[:, 0] = good
    return out


def sweep_batches(
    model, data, *, batch_size: int, answers=None, exact_width: bool = False
) -> tuple[list[SweepBatch], list[str], list[str], bool]:
    """Batches of ``data`` (records, encoded with their responses, or raw prompt strings), record ids,
    categories, and whether the data are raw prompts. ``exact_width``: no bucket padding (every row
    must then have the same length: position sweeps)."""
    prompts = isinstance(data, (list, tuple)) and len(data) > 0 and all(isinstance(p, str) for p in data)
    device = model_device(model)
    if prompts:
        ids = tokenize_prompts(model, data)
        if exact_width and len({len(t) for t in ids}) != 1:
            raise ValueError("A position sweep (over='layer_pos') needs prompts of equal token length.")
        plan = plan_rows(ids, batch_size) if not exact_width else _exact(ids, batch_size)
        ans = _answers(answers, len(ids))
        batches = []
        for width, rows in plan:
            tokens, last = pad_rows(ids, rows, width, pad_id(model), device)
            idx = torch.tensor(rows)
            batches.append(SweepBatch(tokens, last, None, idx, ans[idx].to(device)))
        names = [f"prompt{i}" for i in range(len(ids))]
        return batches, names, ["prompt"] * len(ids), True
    records = load_instructions(data)
    encoded = encode(records, model.tokenizer, with_response=True)
    if exact_width and len({len(r.tokens) for r in encoded}) != 1:
        raise ValueError("A position sweep (over='layer_pos') needs records of equal token length.")
    plan = (
        plan_batches(encoded, batch_size)
        if not exact_width
        else _exact([r.tokens for r in encoded], batch_size)
    )
    ans = _answers(answers, len(encoded))
    batches = []
    for width, rows in plan:
        b = encoded.batch(rows, "right", width=width).to(device)
        batches.append(
            SweepBatch(b.tokens, b.last_prompt, b.regions, b.index.cpu(), ans[b.index.cpu()].to(device))
        )
    return batches, [r.id for r in records], [r.category for r in records], False


def _exact(token_lists: Sequence, batch_size: int) -> list[tuple[int, list[int]]]:
    n, width = len(token_lists), len(token_lists[0])
    return [(width, list(range(s, min(s + batch_size, n)))) for s in range(0, n, batch_size)]


def scored_positions(batch: SweepBatch) -> Tensor:
    """``[batch, pos]`` positions whose logits predict a response token (raw prompts: the last one)."""
    if batch.regions is None:
        mask = torch.zeros_like(batch.tokens, dtype=torch.bool)
        mask[torch.arange(len(mask)), batch.last] = True
        return mask
    mask = torch.zeros_like(batch.tokens, dtype=torch.bool)
    mask[:, :-1] = batch.regions[:, 1:] == Region.RESPONSE
    return mask


def metric_values(
    model,
    names: Sequence[str],
    logits: Tensor,
    batch: SweepBatch,
    rows: Tensor,
    source_logprobs: Tensor | None = None,
) -> Tensor:
    """``[metric, len(rows)]`` values for ``logits`` ``[len(rows), pos, d_vocab]`` of batch rows ``rows``.

    ``source_logprobs``: the source model's log-probabilities at the batch's scored positions
    (``[n_scored_in_batch, d_vocab]``, row-major order of :func:`scored_positions`), for ``"kl"``.
    """
    logits = logits.float()
    ar = torch.arange(len(rows), device=logits.device)
    tokens, last = batch.tokens[rows], batch.last[rows]
    out = []
    for name in names:
        if name == "nll":
            total, count = response_token_nll(logits, tokens, batch.regions[rows])
            out.append(total / count.clamp(min=1))
        elif name == "first_token":
            given = batch.answers[rows, 0]
            target = torch.where(given >= 0, given, tokens[ar, (last + 1).clamp(max=tokens.shape[1] - 1)])
            out.append((logits[ar, last].argmax(-1) == target).float())
        elif name == "logit_diff":
            at = logits[ar, last]
            out.append(at[ar, batch.answers[rows, 0]] - at[ar, batch.answers[rows, 1]])
        elif name == "stop":
            resp = batch.regions[rows] == Region.RESPONSE
            end = (resp * torch.arange(resp.shape[1], device=resp.device)).argmax(1)  # last response token
            probs = logits[ar, end].softmax(-1)
            out.append(probs[:, stop_token_ids(model)].sum(-1))
        elif name == "kl":
            scored = scored_positions(batch)
            offsets = torch.cumsum(scored.sum(1), 0) - scored.sum(1)
            values = []
            for i, r in enumerate(rows.tolist()):
                pos = scored[r].nonzero().flatten()
                src = source_logprobs[offsets[r] : offsets[r] + len(pos)]
                lp = torch.log_softmax(logits[i, pos], -1)
                values.append((src.exp() * (src - lp)).sum(-1).mean())
            out.append(torch.stack(values))
    return torch.stack(out).double()


def source_logprobs(logits: Tensor, batch: SweepBatch) -> Tensor:
    """The source model's log-probabilities at the batch's scored positions, for ``"kl"``."""
    return torch.log_softmax(logits.float()[scored_positions(batch)], -1)
