"""The instruction-vector guidance of :func:`~instr_interp.vectors.training.finetune` (METHODS §8),
as Jiang et al.'s training code defines it (``src/tuning/trainer/base.py`` of FvForgetting):

- the teacher is the frozen pre-task model with θ (each vector times its ``.scale``) added at each
  row's last prompt token, at the *attention output* of layer ℓ (the output of ``o_proj``,
  ``site="attn_out"``, the reference's) or after the whole block (``site="resid_post"``, where
  :func:`~instr_interp.interventions.vectors.add_vector` adds);
- ``kl``: KL(softmax(new/T) ‖ softmax(teacher/T)) at the last prompt token, summed over the vocabulary
  and averaged over the batch (``batchmean``), T = 2, no T² factor unless ``kl_t2``;
- ``seq_kl``: the same KL at every non-padding position, summed over positions and divided by the
  batch size (``batchmean`` over ``[batch, pos, vocab]``);
- ``head``: for each top head, the MSE between its output (its slice of the ``o_proj`` input) at the
  last prompt token in the training model and in the frozen model *without* θ; each head counts only
  while above its threshold, and the heads are summed;
- each term counts (times its weight) only on steps where it exceeds its threshold;
- progressive intervention (not in the reference; an option): α(s)·θ also added to the training model.
"""

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from .. import compat
from ..data.encoding import Region
from ..engine.likelihood import response_token_nll
from ..interventions.vectors import iv_addition

__all__ = ["SITES", "guidance_kl", "last_prompt_positions", "progressive_alpha"]

SITES = ("attn_out", "resid_post")
Site = Literal["attn_out", "resid_post"]


def _logits(base, hidden: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_vocab"]:
    """The unembedding of selected hidden states (with Gemma's final soft-capping where set)."""
    logits = base.lm_head(hidden)
    cap = compat.hf_logit_softcap(base)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits.float()


def _response_ce(base, hidden, labels):
    targets = labels[:, 1:]
    keep = targets != -100
    return torch.nn.functional.cross_entropy(_logits(base, hidden[:, :-1][keep]), targets[keep])


def progressive_alpha(step: int, total_steps: int) -> float:
    """Scale of the progressive intervention at ``step`` (0-based) of ``total_steps``.

    α(s) = max(0, 1 − s / (S/2)): 1 at the first step, falling linearly to 0 at the midpoint and 0
    for the second half of training.
    """
    if total_steps < 1 or not 0 <= step < total_steps:
        raise ValueError(
            f"Need 0 <= step < total_steps and total_steps >= 1; got step={step}, total_steps={total_steps}."
        )
    return max(0.0, 1.0 - step / (total_steps / 2))


def last_prompt_positions(regions: Int[Tensor, "batch pos"]) -> Int[Tensor, " batch"]:
    """The position right before each row's first response token, read from the region masks.

    Equal to ``EncodedBatch.last_prompt``, the position the encoding records and training uses; for
    when only the region masks are at hand."""
    response = regions == Region.RESPONSE
    if not bool(response.any(1).all()):
        raise ValueError(
            "Every row needs response tokens to locate its last prompt token; encode the "
            "records with with_response=True and keep max_length long enough to reach them."
        )
    first = response.int().argmax(1)
    if bool((first == 0).any()):
        raise ValueError("A row starts with a response token; there is no prompt token before it.")
    return first - 1


def _items(guidance) -> list:
    return list(guidance) if isinstance(guidance, (list, tuple)) else [guidance]


def _vectors_by_layer(guidance, n_layers: int, d_model: int) -> dict[int, Tensor]:
    """θ per layer, each vector times its own ``.scale`` (1 without one): vectors at the same layer
    are summed; each layer keeps its own sum."""
    if guidance is None:
        return {}
    items = _items(guidance)
    if not items:
        raise ValueError("iv_guidance is an empty list; pass None or at least one InstructionVector.")
    out: dict[int, Tensor] = {}
    for iv in items:
        if not hasattr(iv, "vector") or not hasattr(iv, "layer"):
            raise TypeError(
                f"iv_guidance items need .vector and .layer (an InstructionVector); got {type(iv).__name__}."
            )
        vec = torch.as_tensor(iv.vector).detach().float().reshape(-1) * float(getattr(iv, "scale", 1.0))
        layer = int(iv.layer)
        if vec.numel() != d_model:
            raise ValueError(
                f"Instruction vector has {vec.numel()} entries but the model's d_model is {d_model}; "
                "compute the vector on this model (or its pre-task version)."
            )
        if not 0 <= layer < n_layers:
            raise ValueError(f"Instruction vector layer {layer} is outside 0..{n_layers - 1}.")
        out[layer] = out[layer] + vec if layer in out else vec
    return out


def _top_heads(guidance) -> list[tuple[int, int]]:
    heads = set()
    for iv in _items(guidance):
        top = getattr(iv, "top_heads", None)
        if top is None:
            raise ValueError(
                "The head-consistency term needs instruction vectors with .top_heads ([k, 2] (layer, head)); "
                "pass head_consistency=0 to train without it."
            )
        heads.update((int(layer), int(head)) for layer, head in torch.as_tensor(top).reshape(-1, 2).tolist())
    return sorted(heads)


@contextlib.contextmanager
def _capture_heads(hf_model, heads: list[tuple[int, int]], positions: Int[Tensor, " batch"], store: dict):
    """Store each head's slice of the o_proj input at ``positions``: store[(layer, head)] = [batch, d_head]."""
    n_heads = compat.hf_n_heads(hf_model)
    handles = []

    def make(layer: int, wanted: list[int]):
        def hook(module, args):
            z = args[0]
            rows = torch.arange(z.shape[0], device=z.device)
            at = z[rows, positions.to(z.device)]
            at = at.reshape(at.shape[0], n_heads, -1)
            for head in wanted:
                store[(layer, head)] = at[:, head]

        return hook

    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        by_layer.setdefault(layer, []).append(head)
    try:
        for layer, wanted in by_layer.items():
            handles.append(
                compat.hf_attention_out_proj(hf_model, layer).register_forward_pre_hook(make(layer, wanted))
            )
        yield
    finally:
        for handle in handles:
            handle.remove()


def guidance_kl(
    new_logits: Float[Tensor, "n d_vocab"],
    ref_logits: Float[Tensor, "n d_vocab"],
    temperature: float = 2.0,
    *,
    per: int | None = None,
    t2: bool = False,
) -> Tensor:
    """KL(softmax(new/T) ‖ softmax(ref/T)) summed over the ``n`` rows and divided by ``per``
    (default ``n``: the mean over rows; the batch size for the sequence KL, as ``batchmean`` over
    ``[batch, pos, vocab]``), times T² only with ``t2=True`` (the reference does not scale)."""
    log_p = torch.log_softmax(new_logits.float() / temperature, dim=-1)
    log_q = torch.log_softmax(ref_logits.float() / temperature, dim=-1)
    per = new_logits.shape[0] if per is None else per
    return (log_p.exp() * (log_p - log_q)).sum() / per * (temperature**2 if t2 else 1.0)


@dataclass(kw_only=True)
class _Guidance:
    vectors: dict[int, Tensor]
    heads: list[tuple[int, int]]
    reference: Any
    kl_weight: float
    seq_kl_weight: float
    temperature: float
    progressive: bool
    head_consistency: float
    kl_threshold: float
    head_threshold: float
    seq_kl_threshold: float = 0.1
    kl_t2: bool = False
    site: Site = "attn_out"

    def active(self) -> bool:
        return bool(self.vectors) and (
            self.kl_weight > 0 or self.seq_kl_weight > 0 or self.progressive or self.head_consistency > 0
        )


def _gated(value: Tensor, weight: float, threshold: float) -> Tensor | float:
    return weight * value if weight > 0 and value.item() > threshold else 0.0


def _guided_loss(model, g: _Guidance, tokens, mask, labels, last, alpha: float) -> tuple[Tensor, dict]:
    """Cross-entropy plus the IV terms for one batch (``last``: each row's last prompt position as the
    encoding records it, ``EncodedBatch.last_prompt``); returns the loss and its logged parts
    (``ce``, ``kl``, ``seq_kl``, ``head``: the ungated values; ``alpha`` with ``progressive``)."""
    base = compat.unwrap_peft(model)
    rows = torch.arange(tokens.shape[0])
    use_heads = g.head_consistency > 0
    new_heads: dict = {}
    with (
        iv_addition(model, g.vectors, last, alpha if g.progressive else 0.0, site=g.site),
        _capture_heads(model, g.heads if use_heads else [], last, new_heads),
    ):
        hidden = compat.hf_body(base)(input_ids=tokens, attention_mask=mask).last_hidden_state
    ce = _response_ce(base, hidden, labels)
    parts = {"ce": ce.item()}
    if g.progressive:
        parts["alpha"] = alpha
    loss = ce
    if g.reference is None:
        return loss, parts
    ref = g.reference
    if g.kl_weight > 0 or g.seq_kl_weight > 0:
        with torch.no_grad(), iv_addition(ref, g.vectors, last, site=g.site):
            ref_hidden = ref.model(input_ids=tokens, attention_mask=mask).last_hidden_state
    if g.kl_weight > 0:
        kl = guidance_kl(
            _logits(base, hidden[rows, last]),
            _logits(ref, ref_hidden[rows, last]),
            g.temperature,
            t2=g.kl_t2,
        )
        parts["kl"] = kl.item()
        loss = loss + _gated(kl, g.kl_weight, g.kl_threshold)
    if g.seq_kl_weight > 0:
        keep = mask.bool()
        seq = guidance_kl(
            _logits(base, hidden[keep]),
            _logits(ref, ref_hidden[keep]),
            g.temperature,
            per=tokens.shape[0],
            t2=g.kl_t2,
        )
        parts["seq_kl"] = seq.item()
        loss = loss + _gated(seq, g.seq_kl_weight, g.seq_kl_threshold)
    if use_heads:
        ref_heads: dict = {}
        with torch.no_grad(), _capture_heads(ref, g.heads, last, ref_heads):
            ref.model(input_ids=tokens, attention_mask=mask)  # the frozen model without θ
        total = 0.0
        for h in g.heads:
            mse = torch.nn.functional.mse_loss(new_heads[h], ref_heads[h])
            parts["head"] = parts.get("head", 0.0) + mse.item()
            total = total + _gated(mse, g.head_consistency, g.head_threshold)
        loss = loss + total
    return loss, parts


def _guidance_record(guidance) -> list[dict] | None:
    """What to write into the settings about the vectors used (task, layer, scale, norm, top heads)."""
    if guidance is None:
        return None
    items: Sequence = _items(guidance)
    out = []
    for iv in items:
        top = getattr(iv, "top_heads", None)
        out.append(
            {
                "task": getattr(iv, "task", None),
                "layer": int(iv.layer),
                "scale": float(getattr(iv, "scale", 1.0)),
                "norm": float(torch.as_tensor(iv.vector).float().norm()),
                "top_heads": torch.as_tensor(top).reshape(-1, 2).tolist() if top is not None else None,
            }
        )
    return out


def teacher_check(
    model, guide: _Guidance, encoded, *, batch_size: int = 8, min_accuracy: float = 0.5, progress: bool = True
) -> dict:
    """How well the teacher (``model``, the pre-task model, with θ added as the KL terms add it)
    does the training task, in the training format, before guided training.

    Per training record: is the first response token the argmax at the last prompt token, its
    probability, and the mean negative log-likelihood of the whole response per token; for the
    steered teacher and for the same model without θ. Warns (``UserWarning`` with the numbers)
    when the steered accuracy is below ``min_accuracy``: the KL terms then pull the new model
    toward a distribution that does not answer.

    Returns:
        ``{"n", "accuracy", "p_answer", "nll", "accuracy_without", "p_answer_without",
        "nll_without", "min_accuracy", "can_do_task"}``.
    """
    import warnings

    from tqdm.auto import tqdm

    base = compat.unwrap_peft(model)
    sums = {
        k: 0.0 for k in ("accuracy", "p_answer", "nll", "accuracy_without", "p_answer_without", "nll_without")
    }
    starts = range(0, len(encoded), batch_size)
    for start in tqdm(starts, desc="teacher check", disable=not progress):
        batch = encoded.batch(list(range(start, min(start + batch_size, len(encoded)))), "right")
        last, mask = batch.last_prompt, batch.attention_mask.long()
        rows = torch.arange(batch.tokens.shape[0])
        target = batch.tokens[rows, last + 1]
        for suffix, scale in (("", 1.0), ("_without", 0.0)):
            with torch.no_grad(), iv_addition(base, guide.vectors, last, scale, site=guide.site):
                logits = _logits(
                    base, compat.hf_body(base)(input_ids=batch.tokens, attention_mask=mask).last_hidden_state
                )
            logp = torch.log_softmax(logits.double(), -1)
            first = logp[rows, last]
            sums["accuracy" + suffix] += float((first.argmax(-1) == target).sum())
            sums["p_answer" + suffix] += float(first[rows, target].exp().sum())
            total, count = response_token_nll(logits.double(), batch.tokens, batch.regions)
            sums["nll" + suffix] += float((total / count).sum())
    out = {k: v / len(encoded) for k, v in sums.items()}
    out |= {"n": len(encoded), "min_accuracy": min_accuracy, "can_do_task": out["accuracy"] >= min_accuracy}
    if not out["can_do_task"]:
        warnings.warn(
            f"IV guidance: the teacher (the pre-task model with the vector added at {guide.site} of layer(s) "
            f"{sorted(guide.vectors)}) answers {out['accuracy']:.2f} of the {len(encoded)} training prompts "
            f"right (first response token; mean probability {out['p_answer']:.3f}, response NLL "
            f"{out['nll']:.2f} nats/token; without the vector {out['accuracy_without']:.2f}, "
            f"{out['p_answer_without']:.3f}, {out['nll_without']:.2f}). The KL terms pull the new model toward "
            "this teacher, which cannot do the task: check the vector's layer, scale and prompt form.",
            UserWarning,
            stacklevel=3,
        )
    return out
