"""Greedy responses of a hooked model to instruction prompts, formatted as :func:`encode` formats them
(used by attribution to attribute a model's own answers; active hooks apply)."""

import torch
from tqdm.auto import tqdm

from .. import compat
from ..data.dataset import InstructionDataset, InstructionRecord, load_instructions
from ..data.encoding import encode
from ..models import model_device

__all__ = ["generate_responses"]


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
        raise ValueError("The tokenizer has no EOS token, so generation cannot stop; set tokenizer.eos_token.")
    return sorted(ids)


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
    model has one, else alpaca). Generation is greedy (deterministic) with the model's KV cache
    and stops at EOS (or the chat template's end-of-turn token) or after ``max_new_tokens``. Only
    prompts of equal token length share a batch, so nothing is padded and the text is the same
    whatever ``batch_size``. Active hooks (e.g. ``ablate_neurons``) apply.

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
    stops = _stop_ids(model)
    groups: dict[int, list[int]] = {}
    for i, rec in enumerate(encoded):
        groups.setdefault(len(rec.tokens), []).append(i)
    batches = [ids[s : s + batch_size] for _, ids in sorted(groups.items()) for s in range(0, len(ids), batch_size)]
    device = model_device(model)
    generated: dict[int, list[int]] = {}
    for idx in tqdm(batches, desc="generating", unit="batch", disable=not progress):
        prompt = torch.tensor([encoded[i].tokens for i in idx], device=device)
        with torch.no_grad():
            out = model.generate(
                prompt,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                stop_at_eos=True,
                eos_token_id=stops,
                use_past_kv_cache=True,
                verbose=False,
                return_type="tokens",
            )
        for row, i in enumerate(idx):
            new = out[row, prompt.shape[1] :].tolist()
            cut = next((j for j, t in enumerate(new) if t in stops), len(new))
            generated[i] = new[:cut]
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
