"""Greedy responses of a hooked model to instruction prompts, formatted as :func:`encode` formats them
(used by attribution to attribute a model's own answers; active hooks apply)."""

import torch
from torch import Tensor

from .. import compat
from ..data.dataset import InstructionDataset, InstructionRecord, load_instructions
from ..data.encoding import encode
from ..hooks import hook_site
from ..models import model_device
from .batching import check_context
from .parallel import map_shards
from .positions import prompt_positions

__all__ = ["generate_responses", "stop_token_ids"]


def _stop_ids(model) -> list[int]:
    tok = model.tokenizer
    ids = {tok.eos_token_id} if tok.eos_token_id is not None else set()
    ids |= set(compat.generation_eos_ids(model))
    if getattr(tok, "chat_template", None):  # the end-of-turn marker of common templates
        for marker in ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>"):
            tid = tok.convert_tokens_to_ids(marker)
            if isinstance(tid, int) and tid != tok.unk_token_id and marker in tok.get_vocab():
                ids.add(tid)
    if not ids:
        raise ValueError(
            "The tokenizer has no EOS token, so generation cannot stop; set tokenizer.eos_token."
        )
    return sorted(ids)


def stop_token_ids(model) -> list[int]:
    """The token ids generation stops at: EOS, the generation config's EOS ids, and the chat
    template's end-of-turn marker where the tokenizer has one."""
    return _stop_ids(model)


def _generate(model, prompt: Tensor, max_new_tokens: int, stops: list[int]) -> Tensor:
    """TransformerLens greedy ``generate`` with a KV cache on unpadded, equal-length prompts, each
    forward declaring the prompts' last positions relative to its input (``start`` = the cached length)."""
    declared = prompt_positions(model)
    seen = {"n": 0}

    def track(embed, hook=None):
        declared.start = seen["n"]
        seen["n"] += embed.shape[1]

    last = torch.full((prompt.shape[0],), prompt.shape[1] - 1, device=prompt.device)
    with (
        torch.no_grad(),
        model.hooks(fwd_hooks=[(hook_site(model, "embed").name, track)]),
        declared.declare(last),
    ):
        return model.generate(
            prompt,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            stop_at_eos=True,
            eos_token_id=stops,
            use_past_kv_cache=True,
            verbose=False,
            return_type="tokens",
        )


def generate_responses(
    model,
    data,
    *,
    max_new_tokens: int = 64,
    batch_size: int = 8,
    format: str = "auto",
    progress: bool = True,
) -> InstructionDataset:
    """Greedy responses of ``model`` to each record's prompt, as the records' ``response``.

    The prompt is formatted and tokenized exactly as :func:`encode` does (chat template when the
    model has one, else alpaca). Generation is greedy (deterministic) and stops at EOS (or the chat
    template's end-of-turn token) or after ``max_new_tokens``. Only prompts of equal token length
    share a batch, so nothing is padded and the text is the same whatever ``batch_size``. Batches
    are shared across ``torch.distributed`` ranks (:func:`instr_interp.engine.map_shards`); every
    rank returns every response. Active hooks (e.g. ``ablate_neurons``) apply; each prompt's last
    token is declared (:func:`instr_interp.engine.prompt_positions`), so ``add_vector(...,
    positions="last")`` adds there once, in the prompt's forward (the generated tokens attend to
    it through the KV cache), as :func:`instr_interp.engine.greedy` does by rerunning the row.

    Why TransformerLens ``generate`` rather than the engine's :func:`instr_interp.engine.greedy`:
    it keeps a KV cache, so ``n`` new tokens after a ``p``-token prompt cost ``p + n`` positions
    instead of about ``n * (p + n / 2)`` for reruns of the whole row, and its cached forwards are
    not the same computation as full reruns on the fused path (different kernels and reduction
    lengths), so switching could flip near-tied argmaxes and change the generated text that
    attribution results were computed on. For the same reason it runs on the bridge path, not
    inside :func:`instr_interp.engine.native_forward` (whose ``causal=True`` shortcut assumes each
    forward starts at position 0).

    Args:
        model: a hooked model with a tokenizer (``TransformerBridge``).
        data: records (anything :func:`load_instructions` accepts).
        max_new_tokens: the most tokens generated per record.
        batch_size: the most prompts per ``generate`` call.
        format: prompt format for :func:`encode`.
        progress: show a progress bar.

    Returns:
        The records with ``response`` replaced by the decoded greedy continuation (special tokens
        dropped) and ``meta["generated_tokens"]`` its token count.

    Examples:
        >>> import instr_interp as ii
        >>> out = generate_responses(ii.tiny_model(), ii.hexainst()[:1], max_new_tokens=4, progress=False)
        >>> out[0].meta["generated_tokens"]
        4
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    data = load_instructions(data)
    encoded = encode(data, model.tokenizer, format=format)
    check_context(
        model,
        [len(r.tokens) for r in encoded],
        names=[r.id for r in encoded],
        extra=max_new_tokens,
        what="prompt",
    )
    stops = _stop_ids(model)
    groups: dict[int, list[int]] = {}
    for i, rec in enumerate(encoded):
        groups.setdefault(len(rec.tokens), []).append(i)
    batches = [
        ids[s : s + batch_size] for _, ids in sorted(groups.items()) for s in range(0, len(ids), batch_size)
    ]
    device = model_device(model)

    def one(idx: list[int]) -> list[list[int]]:
        prompt = torch.tensor([encoded[i].tokens for i in idx], device=device)
        out = _generate(model, prompt, max_new_tokens, stops)
        new = [out[row, prompt.shape[1] :].tolist() for row in range(len(idx))]
        return [seq[: next((j for j, t in enumerate(seq) if t in stops), len(seq))] for seq in new]

    generated: dict[int, list[int]] = {}
    for idx, new in zip(batches, map_shards(one, batches, desc="generating", progress=progress)):
        generated.update(zip(idx, new))
    records = []
    for i, rec in enumerate(data):
        text = model.tokenizer.decode(generated[i], skip_special_tokens=True)
        records.append(
            InstructionRecord(
                id=rec.id,
                category=rec.category,
                instruction=rec.instruction,
                input=rec.input,
                response=text,
                source=rec.source,
                meta={**rec.meta, "generated_tokens": len(generated[i])},
            )
        )
    return InstructionDataset(records, name=data.name)
