"""Gradient input→output attribution of responses to prompt tokens (METHODS.md section 5; Wu et al.).

For a text = prompt + response, ``a[n, m] = Σ_d (∂P_m/∂e_n)_d (e_n)_d``: gradient × input of the
probability ``P_m`` of response token ``m`` (softmax of the model's logits at the position that
predicts it) with respect to the embedding ``e_n`` of prompt token ``n`` (BOS excluded).

``e_n`` is the output of the bridge's ``hook_embed``, which is exactly the input of the first block
(``blocks.0.hook_resid_pre``): the token embedding, for Gemma including its ``sqrt(d_model)`` scale,
and with no positional term (rotary models add position inside attention).

All response tokens come from ONE forward pass. The final residual (``unembed.hook_in``) is cut
into a leaf ``H``; one backward of ``Σ_m P_m`` through the unembedding gives ``g_m = ∂P_m/∂H[m-1]``
(``P_m`` depends on row ``m-1`` of ``H`` only); then the body is differentiated for a chunk of
response tokens at once with ``torch.autograd.grad(..., is_grads_batched=True)`` (vmap over the
one-row grad outputs ``g_m``). The vocabulary-sized unembedding is therefore differentiated once,
not once per response token.

This module computes (:func:`attribute`, :func:`attribute_many`); the results it returns are in
:mod:`~instr_interp.shift.attribution_results` and the METHODS scores and their comparison in
:mod:`~instr_interp.shift.scores`. Every one of those names is importable from here too.
"""

import dataclasses
import warnings
from collections.abc import Sequence
from typing import Literal

import torch
from jaxtyping import Int
from torch import Tensor
from tqdm.auto import tqdm

from ..data.dataset import InstructionRecord, load_instructions
from ..data.encoding import Region, _assign, encode
from ..engine.batching import check_context
from ..engine.generation import generate_responses
from ..engine.parallel import map_shards
from ..engine.passes import check_finite
from ..engine.positions import prompt_positions as last_prompt_of
from ..hooks import hook_site
from ..models import frozen, model_device
from .attribution_results import Attribution, AttributionSet
from .scores import (
    SPARSIFY_EPS,
    SPARSIFY_LEVELS,
    SPARSIFY_THRESHOLD,
    compare_scores,
    importance_density,
    instruction_score,
    is_level_matrix,
    score_levels,
    sparsify,
)

__all__ = [
    "Attribution",
    "AttributionSet",
    "attribute",
    "attribute_many",
    "compare_scores",
    "empty_attribution",
    "importance_density",
    "instruction_score",
    "is_level_matrix",
    "score_levels",
    "sparsify",
    "SPARSIFY_EPS",
    "SPARSIFY_LEVELS",
    "SPARSIFY_THRESHOLD",
]

Target = Literal["prob", "logprob"]

# ---------------------------------------------------------------------------------------------
# Attribution


def _display(tokenizer, ids: Sequence[int]) -> list[str]:
    return [tokenizer.decode([i]) for i in ids]


def _tokenize_prompt(model, prompt: str, response: str, instruction: str | None):
    """Raw prompt text (used verbatim) + response: token ids, regions and the prompt length."""
    tok = model.tokenizer
    bos = tok.bos_token
    text = prompt + response
    spans = [(len(prompt), len(text), Region.RESPONSE)]
    if instruction is not None:
        start = prompt.find(instruction)
        if start < 0 or not instruction:
            raise ValueError(
                f"instruction={instruction!r} does not occur in the prompt; pass the exact "
                "substring of the prompt that is the instruction."
            )
        spans.append((start, start + len(instruction), Region.INSTRUCTION))
    enc = tok(text, add_special_tokens=not (bos and text.startswith(bos)), return_offsets_mapping=True)
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    regions = _assign(offsets, spans, len(text))
    prompt_length = sum(1 for s, e in offsets if e <= len(prompt) or s < len(prompt))
    return list(enc["input_ids"]), regions, prompt_length


def _chunk_size(model, n_pos: int, n_response: int, memory_mb: float, logits: bool = False) -> int:
    cfg = model.cfg
    d_mlp = int(getattr(cfg, "d_mlp", None) or 4 * cfg.d_model)
    # Transient backward memory per vmapped response token, roughly: a few MLP-wide and residual
    # tensors and the attention scores of one layer, in fp32. A batched dual forward (logits=True)
    # also holds each copy's logits and log-probabilities over the vocabulary, primal and tangent.
    per_item = 4 * n_pos * (6 * d_mlp + 10 * cfg.d_model + 4 * cfg.n_heads * n_pos)
    per_item += 16 * n_pos * cfg.d_vocab if logits else 0
    return max(1, min(n_response, int(memory_mb * 2**20 // per_item)))


def attribute(
    model,
    record_or_prompt: InstructionRecord | dict | str,
    response: str | None = None,
    *,
    instruction: str | None = None,
    target: Target = "prob",
    chunk: int | None = None,
    memory_mb: float = 512,
    format: str = "plain",
    max_new_tokens: int = 64,
    progress: bool = False,
    mode: str = "reverse",
) -> Attribution:
    """Gradient × input attribution of every response token to every prompt token.

    Args:
        model: a hooked model (``TransformerBridge``) with a tokenizer.
        record_or_prompt: an :class:`InstructionRecord` (or a dict with its fields): its prompt is
            formatted as :func:`encode` does and its instruction tokens form ``instruction_mask``.
            Or a raw prompt string, used verbatim (no chat template is applied; BOS is added where
            the tokenizer adds one): it has no instruction region unless ``instruction`` names the
            substring of the prompt that is the instruction.
        response: the response text; default the record's ``response``, and when that is empty,
            the model's greedy response (:func:`generate_responses`, ``max_new_tokens``).
        instruction: for a raw prompt, the instruction substring (its tokens are marked).
        target: ``"prob"`` (METHODS: the softmax probability P_m) or ``"logprob"`` (log P_m).
        chunk: response tokens differentiated per batched backward; default: as many as fit in
            ``memory_mb``.
        memory_mb: memory budget for one batched backward when ``chunk`` is None.
        format: prompt format for records (see :func:`encode`); default ``"plain"``, the raw prompt
            (instruction, and input after a blank line, no chat template or headers) as the authors
            give every model.
        progress: a progress bar over the chunks.
        mode: ``"reverse"`` (one forward, then one vmapped backward per response token) or
            ``"forward"`` (forward-mode differentiation: since ``a[n, m]`` is the derivative of
            ``P_m`` along the direction ``e_n`` at position ``n``, one dual forward per *prompt* token
            gives a whole row; ``chunk`` then counts prompt tokens per batched forward). The same
            values to float precision; ``"forward"`` is the faster one when the response is much
            longer than the prompt.

    Returns:
        An :class:`Attribution`. Response tokens are the tokens of the response text only (not the
        EOS or the template's end-of-turn marker). Prompt positions are all tokens before the
        response except a leading BOS, template scaffolding included.

    Examples:
        >>> import instr_interp as ii
        >>> attr = attribute(ii.tiny_model(), ii.hexainst()[0], "Positive.")
        >>> attr.matrix.shape[1], attr.sparse.max().item()
        (9, 10)
    """
    if target not in ("prob", "logprob"):
        raise ValueError(f"target must be 'prob' or 'logprob', got {target!r}.")
    if chunk is not None and chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}.")
    if mode not in ("reverse", "forward"):
        raise ValueError(f"mode must be 'reverse' or 'forward', got {mode!r}.")
    if response is not None and not response.strip():
        raise ValueError(
            f"response={response!r} is empty: there is nothing to attribute. Pass a non-empty response, or "
            "response=None to attribute the record's reference response (or the model's greedy one)."
        )
    tok = model.tokenizer
    if isinstance(record_or_prompt, str):
        if response is None:
            raise ValueError("A raw prompt string needs response=...; pass a record to generate one.")
        ids, regions, prompt_length = _tokenize_prompt(model, record_or_prompt, response, instruction)
        labels = {"id": "", "category": "", "source": ""}
    else:
        if instruction is not None:
            raise ValueError("instruction= is for raw prompt strings; a record carries its own instruction.")
        ids, regions, prompt_length, labels = _tokenize_record(
            model, record_or_prompt, response, format=format, max_new_tokens=max_new_tokens
        )
    regions_t = torch.tensor(regions)
    prompt_positions, response_positions, bos_excluded = _attributed_positions(
        tok, ids, regions_t, prompt_length
    )
    check_context(model, [len(ids)], what="prompt and response")
    input_ids = torch.tensor(ids)
    matrix, probs = _gradient_x_input(
        model,
        input_ids,
        prompt_positions,
        response_positions,
        target=target,
        chunk=chunk,
        memory_mb=memory_mb,
        progress=progress,
        mode=mode,
    )
    check_finite(probs, "the response-token probabilities")
    check_finite(matrix, "the gradient x input attributions")
    return Attribution(
        input_ids=input_ids,
        tokens=_display(tok, ids),
        prompt_positions=prompt_positions,
        response_positions=response_positions,
        matrix=matrix,
        instruction_mask=regions_t[prompt_positions] == Region.INSTRUCTION,
        probs=probs,
        prompt_regions=regions_t[prompt_positions],
        **labels,
        settings={
            "target": target,
            "model": getattr(model, "instr_interp_name", ""),
            "format": format,
            "embedding": "hook_embed (input of the first block)",
            "bos_excluded": bos_excluded,
        },
    )


def _tokenize_record(
    model, record: InstructionRecord | dict, response: str | None, *, format: str, max_new_tokens: int
):
    """A record formatted as :func:`encode` does, with ``response`` (default: the record's own, else the
    model's greedy one): token ids, regions, the prompt length and the record's id/category/source."""
    (rec,) = load_instructions([record]) if isinstance(record, dict) else [record]
    if response is not None:
        rec = dataclasses.replace(rec, response=response)  # keeps the metadata as metadata
    elif rec.response and not rec.response.strip():
        raise ValueError(
            f"Record {rec.id!r}: its response is only whitespace; there is nothing to attribute."
        )
    elif not rec.response:
        rec = generate_responses(model, [rec], max_new_tokens=max_new_tokens, format=format, progress=False)[
            0
        ]
    if not rec.response:
        raise ValueError(
            f"Record {rec.id!r}: the model's greedy response is empty (it ended at once); "
            "there is nothing to attribute."
        )
    (enc,) = encode([rec], model.tokenizer, format=format, with_response=True).records
    labels = {"id": rec.id, "category": rec.category, "source": rec.source}
    return list(enc.tokens), list(enc.regions), enc.prompt_length, labels


def _attributed_positions(tok, ids: list[int], regions: Int[Tensor, " pos"], prompt_length: int):
    """Prompt positions (all before the response but a leading BOS), the response's positions, and
    whether a BOS was excluded."""
    pos = torch.arange(len(ids))
    start = 1 if tok.bos_token_id is not None and ids and ids[0] == tok.bos_token_id else 0
    prompt_positions = pos[start:prompt_length]
    response_positions = pos[(regions == Region.RESPONSE) & (pos >= prompt_length)]
    if len(response_positions) == 0:
        raise ValueError("The response has no tokens to attribute; pass a non-empty response.")
    if len(prompt_positions) == 0:
        raise ValueError("The prompt has no tokens besides BOS; nothing to attribute to.")
    return prompt_positions, response_positions, bool(start)


def _gradient_x_input(
    model,
    input_ids: Int[Tensor, " pos"],
    prompt_positions: Int[Tensor, " n_prompt"],
    response_positions: Int[Tensor, " n_response"],
    *,
    target: Target,
    chunk: int | None,
    memory_mb: float,
    progress: bool,
    mode: str = "reverse",
):
    """One forward; the unembedding differentiated once; the body in vmapped chunks (or, with
    ``mode="forward"``, :func:`_forward_gradient_x_input`)."""
    embed_name = hook_site(model, "embed").name
    final_name = hook_site(model, "unembed_in").name  # attribution splits the backward pass there
    device = model_device(model)
    _check_fp32(model)
    tokens = input_ids[None].to(device)
    resp = response_positions.to(device)
    if mode == "forward":
        return _forward_gradient_x_input(
            model, tokens, prompt_positions.to(device), resp, target, chunk, memory_mb, embed_name, progress
        )
    with frozen(model), torch.enable_grad():
        last = prompt_positions[-1:].to(device)  # declared for positions="last" interventions
        logits, held = _forward_cut_at_unembed(model, tokens, last, embed_name, final_name)
        objective = _objective(logits, tokens, resp, target)[0]
        # P_m depends on row m-1 of the final residual only, so one backward of the sum gives every
        # dP_m/dH[m-1] (rows are distinct).
        (g,) = torch.autograd.grad(objective.sum(), held["h_leaf"])
        size = chunk or _chunk_size(model, tokens.shape[1], len(resp), memory_mb)
        matrix = _body_gradient_x_input(
            held["e"],
            held["h"],
            g,
            resp,
            prompt_positions.to(device),
            size=size,
            device=device,
            progress=progress,
        )
    return matrix, objective.detach().float().cpu()


def _objective(logits, tokens, resp, target: Target):
    """``P_m`` (or ``log P_m``) of every response token at ``resp``, per batch row: ``[batch, n_response]``."""
    logp = torch.log_softmax(logits[:, resp - 1].float(), dim=-1).gather(-1, tokens[:, resp][..., None])[
        ..., 0
    ]
    return logp if target == "logprob" else logp.exp()


def _forward_gradient_x_input(
    model,
    tokens,
    prompt,
    resp,
    target: Target,
    chunk: int | None,
    memory_mb: float,
    embed_name: str,
    progress,
):
    """Forward-mode gradient × input: ``a[n, m] = d/dt P_m(e + t * e_n 1[pos = n])`` at ``t = 0``, the
    directional derivative along prompt token n's own embedding. The tokens are repeated once per
    prompt token in a chunk, each copy carrying its tangent; one dual forward gives those rows."""
    import torch.autograd.forward_ad as fwAD

    size = chunk or _chunk_size(model, tokens.shape[1], len(prompt), memory_mb, logits=True)
    rows, objective = [], None
    with frozen(model), torch.no_grad():
        for s in tqdm(range(0, len(prompt), size), desc="attribution", unit="chunk", disable=not progress):
            part = prompt[s : s + size]
            batch = tokens.expand(len(part), -1)
            where = torch.arange(len(part), device=tokens.device)

            def dual_embed(act, hook=None, part=part, where=where):
                tangent = torch.zeros_like(act)
                tangent[where, part] = act[where, part]
                with warnings.catch_warnings():  # torch scripts its forward-AD decompositions on first use
                    warnings.filterwarnings(
                        "ignore", message=".*torch.jit.script.*", category=DeprecationWarning
                    )
                    return fwAD.make_dual(act, tangent)

            with (
                fwAD.dual_level(),
                model.hooks(fwd_hooks=[(embed_name, dual_embed)]),
                last_prompt_of(model).declare(prompt[-1:].expand(len(part))),
            ):
                logits = model(batch, return_type="logits")
                primal, tangent = fwAD.unpack_dual(_objective(logits, batch, resp, target))
            rows.append(tangent.float().cpu())
            objective = primal[0].float().cpu()
    return torch.cat(rows, dim=0), objective


def _check_fp32(model) -> None:
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if dtypes != {torch.float32}:
        raise ValueError(
            f"Attribution runs in fp32 but the model has parameters of {sorted(map(str, dtypes))}; "
            "load it with dtype=torch.float32 (or call model.float())."
        )


def _forward_cut_at_unembed(
    model, tokens: Int[Tensor, "1 pos"], last: Int[Tensor, " 1"], embed_name: str, final_name: str
):
    """The forward pass with the embedding (hook ``embed_name``) held as a leaf ``e`` and the final
    residual ``h`` (hook ``final_name``, the unembedding's input) cut into a leaf ``h_leaf``; ``last``
    is declared as the last prompt position. Returns the logits and ``{"e", "h", "h_leaf"}``."""
    held: dict[str, Tensor] = {}

    def take_embed(act, hook=None):
        held["e"] = act.detach().clone().requires_grad_(True)
        return held["e"]

    def cut_final(act, hook=None):
        held["h"] = act
        held["h_leaf"] = act.detach().requires_grad_(True)
        return held["h_leaf"]

    with (
        model.hooks(fwd_hooks=[(embed_name, take_embed), (final_name, cut_final)]),
        last_prompt_of(model).declare(last),
    ):
        logits = model(tokens, return_type="logits")
    if "e" not in held or "h" not in held:
        raise RuntimeError(
            f"Hook points {embed_name!r} / {final_name!r} did not fire; this model does not route through them."
        )
    return logits, held


def _body_gradient_x_input(
    e: Tensor,
    h: Tensor,
    g: Tensor,
    resp: Int[Tensor, " n_response"],
    prompt: Int[Tensor, " n_prompt"],
    *,
    size: int,
    device,
    progress: bool,
):
    """Backpropagate each ``g_m = dP_m/dH[m-1]`` from ``h`` to the embeddings ``e`` (``size`` response
    tokens per vmapped backward) and multiply by the prompt embeddings: the ``[n_prompt, n_response]``
    gradient × input matrix, on the CPU."""
    n_resp = len(resp)
    columns = []
    for s in tqdm(range(0, n_resp, size), desc="attribution", unit="chunk", disable=not progress):
        rows = resp[s : s + size] - 1
        grad_out = torch.zeros((len(rows),) + tuple(h.shape), dtype=h.dtype, device=device)
        grad_out[torch.arange(len(rows), device=device), 0, rows] = g[0, rows].to(h.dtype)
        (ge,) = torch.autograd.grad(
            h, e, grad_outputs=grad_out, is_grads_batched=True, retain_graph=s + size < n_resp
        )
        columns.append((ge[:, 0, prompt] * e.detach()[0, prompt]).sum(-1).T)
        del grad_out, ge
    return torch.cat(columns, dim=1).float().cpu()


# ---------------------------------------------------------------------------------------------
# Many records


def attribute_many(
    model,
    data,
    *,
    max_new_tokens: int = 32,
    use_reference: bool = False,
    target: Target = "prob",
    chunk: int | None = None,
    memory_mb: float = 512,
    format: str = "plain",
    batch_size: int = 8,
    empty: Literal["zero", "skip"] = "zero",
    progress: bool = True,
) -> AttributionSet:
    """Attribute each record's response: by default the model's own greedy response (as Wu et al.).

    Args:
        model: a hooked model.
        data: records (anything :func:`load_instructions` accepts).
        max_new_tokens: generation length cap.
        use_reference: attribute the records' reference ``response`` instead of generating.
        target, chunk, memory_mb, format: as in :func:`attribute`.
        batch_size: prompts per generation batch (does not change the text).
        empty: what a record whose greedy response is empty becomes: ``"zero"`` (default, the
            authors') an attribution with no response tokens, scored 0 and kept in every mean and test;
            ``"skip"`` leaves it out and lists its id in ``skipped`` (a warning names them).
        progress: progress bars.

    Returns:
        An :class:`AttributionSet`. Under ``torch.distributed`` the generation batches and the
        records are shared across ranks, and every rank gets the whole set.
    """
    import warnings

    if empty not in ("zero", "skip"):
        raise ValueError(f"empty must be 'zero' or 'skip', got {empty!r}.")
    data = load_instructions(data)
    if use_reference:
        missing = [r.id for r in data if not r.response]
        if missing:
            raise ValueError(f"use_reference=True but records {missing[:5]} have no response.")
        filled = data
    else:
        filled = generate_responses(
            model,
            data,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            format=format,
            progress=progress,
        )
    skipped = [rec.id for rec in filled if not rec.response.strip()] if empty == "skip" else []
    todo = [rec for rec in filled if rec.id not in set(skipped)]

    def one(rec):
        if not rec.response.strip():
            return empty_attribution(model, rec, format=format, target=target)
        return attribute(model, rec, target=target, chunk=chunk, memory_mb=memory_mb, format=format)

    items = map_shards(one, todo, desc="attributing", progress=progress)
    if skipped:
        warnings.warn(
            f"{len(skipped)} record(s) got an empty greedy response and were not scored: {skipped[:5]}",
            stacklevel=2,
        )
    if not items:
        raise ValueError("No record had a response to attribute.")
    return AttributionSet(
        items=items,
        name=getattr(model, "instr_interp_name", ""),
        skipped=skipped,
        settings={
            "max_new_tokens": max_new_tokens,
            "use_reference": use_reference,
            "target": target,
            "format": format,
            "empty": empty,
            "data": data.fingerprint(),
        },
    )


def empty_attribution(
    model, record: InstructionRecord | dict, *, format: str = "plain", target: Target = "prob"
) -> Attribution:
    """The attribution of an empty response: the record's prompt tokens and no response tokens (an
    ``[n_prompt, 0]`` matrix). It scores 0, as the authors keep an empty response (``evaluate`` returns
    0 when the output has no tokens)."""
    (rec,) = load_instructions([record]) if isinstance(record, dict) else [record]
    (enc,) = encode([rec], model.tokenizer, format=format).records
    regions = torch.tensor(list(enc.regions))
    ids = list(enc.tokens)
    start = (
        1
        if model.tokenizer.bos_token_id is not None and ids and ids[0] == model.tokenizer.bos_token_id
        else 0
    )
    prompt_positions = torch.arange(start, enc.prompt_length)
    return Attribution(
        input_ids=torch.tensor(ids),
        tokens=_display(model.tokenizer, ids),
        prompt_positions=prompt_positions,
        response_positions=torch.zeros(0, dtype=torch.long),
        matrix=torch.zeros(len(prompt_positions), 0),
        instruction_mask=regions[prompt_positions] == Region.INSTRUCTION,
        probs=torch.zeros(0),
        prompt_regions=regions[prompt_positions],
        id=rec.id,
        category=rec.category,
        source=rec.source,
        settings={
            "target": target,
            "model": getattr(model, "instr_interp_name", ""),
            "format": format,
            "embedding": "hook_embed (input of the first block)",
            "bos_excluded": bool(start),
            "empty_response": True,
        },
    )
