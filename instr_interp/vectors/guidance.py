"""The instruction-vector guidance of :func:`~instr_interp.vectors.training.finetune` (METHODS §8):
the vectors per layer, the progressive scale α(s), the KL to the vector-steered reference, the
top-head consistency term, and the guided loss of one batch (see the training module's docstring).
"""

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from .. import compat
from ..data.encoding import Region
from ..interventions.vectors import iv_addition

__all__ = ["guidance_kl", "last_prompt_positions", "progressive_alpha"]


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


def _vectors_by_layer(guidance, n_layers: int, d_model: int) -> dict[int, Tensor]:
    """θ per layer: vectors at the same layer are summed; each layer keeps its own sum."""
    if guidance is None:
        return {}
    items = list(guidance) if isinstance(guidance, (list, tuple)) else [guidance]
    if not items:
        raise ValueError("iv_guidance is an empty list; pass None or at least one InstructionVector.")
    out: dict[int, Tensor] = {}
    for iv in items:
        if not hasattr(iv, "vector") or not hasattr(iv, "layer"):
            raise TypeError(
                f"iv_guidance items need .vector and .layer (an InstructionVector); got {type(iv).__name__}."
            )
        vec = torch.as_tensor(iv.vector).detach().float().reshape(-1)
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
    items = list(guidance) if isinstance(guidance, (list, tuple)) else [guidance]
    heads = set()
    for iv in items:
        top = getattr(iv, "top_heads", None)
        if top is None:
            raise ValueError(
                "head_consistency needs instruction vectors with .top_heads ([k, 2] (layer, head))."
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
    new_logits: Float[Tensor, "n d_vocab"], ref_logits: Float[Tensor, "n d_vocab"], temperature: float = 2.0
) -> Tensor:
    """KL(softmax(new/T) ‖ softmax(ref/T)) · T², averaged over the ``n`` rows (positions)."""
    log_p = torch.log_softmax(new_logits.float() / temperature, dim=-1)
    log_q = torch.log_softmax(ref_logits.float() / temperature, dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1).mean() * temperature**2


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

    def active(self) -> bool:
        return bool(self.vectors) and (
            self.kl_weight > 0 or self.seq_kl_weight > 0 or self.progressive or self.head_consistency > 0
        )


def _guided_loss(model, g: _Guidance, tokens, mask, labels, last, alpha: float) -> tuple[Tensor, dict]:
    """Cross-entropy plus the IV terms for one batch (``last``: each row's last prompt position as the
    encoding records it, ``EncodedBatch.last_prompt``); returns the loss and its logged parts."""
    base = compat.unwrap_peft(model)
    rows = torch.arange(tokens.shape[0])
    new_heads: dict = {}
    with (
        iv_addition(model, g.vectors, last, alpha if g.progressive else 0.0),
        _capture_heads(model, g.heads if g.head_consistency > 0 else [], last, new_heads),
    ):
        hidden = compat.hf_body(base)(input_ids=tokens, attention_mask=mask).last_hidden_state
    ce = _response_ce(base, hidden, labels)
    parts = {"ce": ce.item(), "alpha": alpha if g.progressive else 0.0}
    loss = ce
    if g.reference is None:
        return loss, parts
    ref_heads: dict = {}
    with (
        torch.no_grad(),
        iv_addition(g.reference, g.vectors, last),
        _capture_heads(g.reference, g.heads if g.head_consistency > 0 else [], last, ref_heads),
    ):
        ref_hidden = g.reference.model(input_ids=tokens, attention_mask=mask).last_hidden_state
    ref = g.reference
    if g.kl_weight > 0:
        kl = guidance_kl(
            _logits(base, hidden[rows, last]), _logits(ref, ref_hidden[rows, last]), g.temperature
        )
        parts["kl"] = kl.item()
        if parts["kl"] > g.kl_threshold:
            loss = loss + g.kl_weight * kl
    if g.seq_kl_weight > 0:
        keep = mask.bool()
        seq = guidance_kl(_logits(base, hidden[keep]), _logits(ref, ref_hidden[keep]), g.temperature)
        parts["seq_kl"] = seq.item()
        loss = loss + g.seq_kl_weight * seq
    if g.head_consistency > 0:
        mse = torch.stack([torch.nn.functional.mse_loss(new_heads[h], ref_heads[h]) for h in g.heads]).mean()
        parts["head_mse"] = mse.item()
        if parts["head_mse"] > g.head_threshold:
            loss = loss + g.head_consistency * mse
    return loss, parts


def _guidance_record(guidance) -> list[dict] | None:
    """What to write into the settings about the vectors used (task, layer, norm, top heads)."""
    if guidance is None:
        return None
    items: Sequence = list(guidance) if isinstance(guidance, (list, tuple)) else [guidance]
    out = []
    for iv in items:
        top = getattr(iv, "top_heads", None)
        out.append(
            {
                "task": getattr(iv, "task", None),
                "layer": int(iv.layer),
                "norm": float(torch.as_tensor(iv.vector).float().norm()),
                "top_heads": torch.as_tensor(top).reshape(-1, 2).tolist() if top is not None else None,
            }
        )
    return out
