"""Encoding instruction records for one model: prompt format, token region masks, padded batches.

Regions are assigned from character offsets: the formatted text is built so the exact character
span of the instruction, the input and the response is known, and each token goes to the region
holding most of its characters (tokens with no characters, e.g. BOS, are template scaffolding).
"""

import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from .dataset import InstructionDataset, InstructionRecord, load_instructions

__all__ = [
    "Region",
    "EncodedRecord",
    "EncodedDataset",
    "EncodedBatch",
    "encode",
    "format_prompt",
    "pad_id",
    "region_codes",
    "region_names",
]

Format = Literal["auto", "chat", "alpaca", "plain"]
PaddingSide = Literal["left", "right"]
ControlText = Literal["refuse", "split"]


class Region(IntEnum):
    """Which part of the formatted text a token belongs to."""

    PAD = 0
    TEMPLATE = 1  # system prompt, role markers, BOS, separators
    INSTRUCTION = 2
    INPUT = 3
    RESPONSE = 4


REGION_NAMES = {r.name.lower(): r for r in Region}
ALPACA = ("### Instruction:\n", "\n\n### Input:\n", "\n\n### Response:\n")


def region_names(regions: str | Iterable[str]) -> tuple[str, ...]:
    """Validated region names as a tuple; one name given as a plain string is one region (never its
    characters).

    Examples:
        >>> region_names("instruction"), region_names(["instruction", "input"])
        (('instruction',), ('instruction', 'input'))
    """
    names = (regions,) if isinstance(regions, str) else tuple(regions)
    unknown = [n for n in names if n not in REGION_NAMES]
    if unknown or not names:
        raise ValueError(f"Unknown regions {unknown or names}; choose from {sorted(REGION_NAMES)}.")
    return names


def region_codes(regions: str | Iterable[str]) -> tuple[int, ...]:
    """Names (``"instruction"``, ``"input"``, ...) to region codes, with a clear error."""
    return tuple(int(REGION_NAMES[n]) for n in region_names(regions))


@dataclass(frozen=True)
class EncodedRecord:
    """One record's tokens, their regions, and where its prompt ends."""

    index: int
    id: str
    category: str
    tokens: tuple[int, ...]
    regions: tuple[int, ...]
    prompt_length: int  # tokens before the response (the last prompt token is prompt_length - 1)
    text: str


@dataclass(frozen=True, kw_only=True)
class EncodedBatch:
    """A padded batch. ``index`` are the records' positions in the dataset."""

    tokens: Int[Tensor, "batch pos"]
    attention_mask: Bool[Tensor, "batch pos"]
    regions: Int[Tensor, "batch pos"]
    index: Int[Tensor, " batch"]
    last_prompt: Int[Tensor, " batch"]  # position of each record's last prompt token
    padding_side: str

    def mask(self, regions: str | Iterable[str] = ("instruction", "input")) -> Bool[Tensor, "batch pos"]:
        """True at tokens of the given regions."""
        codes = torch.tensor(region_codes(regions), device=self.regions.device)
        return torch.isin(self.regions, codes)

    def position_ids(self) -> Int[Tensor, "batch pos"]:
        return (self.attention_mask.long().cumsum(-1) - 1).clamp(min=0)

    def to(self, device) -> "EncodedBatch":
        return EncodedBatch(
            tokens=self.tokens.to(device),
            attention_mask=self.attention_mask.to(device),
            regions=self.regions.to(device),
            index=self.index.to(device),
            last_prompt=self.last_prompt.to(device),
            padding_side=self.padding_side,
        )


class EncodedDataset(Sequence):
    """A dataset encoded for one tokenizer and prompt format."""

    def __init__(
        self,
        records: Sequence[EncodedRecord],
        data: InstructionDataset,
        *,
        fmt: str,
        pad_id: int,
        padding_side: PaddingSide,
        with_response: bool,
        fingerprint: str,
    ):
        self.records = tuple(records)
        self.data = data
        self.format = fmt
        self.pad_id = pad_id
        self.padding_side = padding_side
        self.with_response = with_response
        self.fingerprint = fingerprint

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i):
        return self.records[i]

    @property
    def categories(self) -> tuple[str, ...]:
        return self.data.categories

    def category_index(self) -> Int[Tensor, " record"]:
        """Each record's category as an index into :attr:`categories`."""
        lookup = {c: i for i, c in enumerate(self.categories)}
        return torch.tensor([lookup[r.category] for r in self.records], dtype=torch.long)

    def region_text(self, i: int, region: str, tokenizer) -> str:
        """Decode the tokens of one region of record ``i``."""
        (code,) = region_codes(region)
        rec = self.records[i]
        return tokenizer.decode([t for t, r in zip(rec.tokens, rec.regions) if r == code])

    def batch(
        self, indices: Sequence[int], padding_side: PaddingSide | None = None, width: int | None = None
    ) -> EncodedBatch:
        """Collate the records at ``indices`` into one padded batch (``width`` positions, default
        the longest record's length)."""
        side = padding_side or self.padding_side
        if side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {side!r}.")
        recs = [self.records[i] for i in indices]
        longest = max(len(r.tokens) for r in recs)
        width = longest if width is None else width
        if width < longest:
            raise ValueError(f"width={width} is shorter than the longest record ({longest} tokens).")
        tokens = torch.full((len(recs), width), self.pad_id, dtype=torch.long)
        regions = torch.zeros((len(recs), width), dtype=torch.long)
        last = torch.zeros(len(recs), dtype=torch.long)
        for row, rec in enumerate(recs):
            n = len(rec.tokens)
            start = 0 if side == "right" else width - n
            tokens[row, start : start + n] = torch.tensor(rec.tokens)
            regions[row, start : start + n] = torch.tensor(rec.regions)
            last[row] = start + rec.prompt_length - 1
        return EncodedBatch(
            tokens=tokens,
            attention_mask=regions != Region.PAD,
            regions=regions,
            index=torch.tensor([r.index for r in recs], dtype=torch.long),
            last_prompt=last,
            padding_side=side,
        )

    def batches(
        self, batch_size: int, padding_side: PaddingSide | None = None, indices: Sequence[int] | None = None
    ) -> Iterator[EncodedBatch]:
        """Consecutive batches over ``indices`` (default: all records, in order)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        order = list(range(len(self))) if indices is None else list(indices)
        for start in range(0, len(order), batch_size):
            yield self.batch(order[start : start + batch_size], padding_side)


def _resolve_format(tokenizer, fmt: Format) -> str:
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if fmt == "auto":
        return "chat" if has_template else "alpaca"
    if fmt == "chat" and not has_template:
        raise ValueError("format='chat' but the tokenizer has no chat template; use 'alpaca' or 'plain'.")
    if fmt not in ("chat", "alpaca", "plain"):
        raise ValueError(f"Unknown format {fmt!r}; choose 'auto', 'chat', 'alpaca' or 'plain'.")
    return fmt


def _user_content(rec: InstructionRecord) -> tuple[str, list[tuple[int, int, Region]]]:
    content = rec.instruction
    spans = [(0, len(rec.instruction), Region.INSTRUCTION)]
    if rec.input:
        start = len(content) + 2
        content += "\n\n" + rec.input
        spans.append((start, start + len(rec.input), Region.INPUT))
    return content, spans


def format_prompt(rec: InstructionRecord, tokenizer, fmt: Format = "auto", with_response: bool = False):
    """The formatted text of a record and the character spans of its regions.

    Returns:
        ``(text, spans, prompt_end)``: spans are ``(start, end, Region)`` in ``text``;
        ``prompt_end`` is the character offset where the response begins.
    """
    fmt = _resolve_format(tokenizer, fmt)
    content, content_spans = _user_content(rec)
    if fmt == "chat":
        messages = [{"role": "user", "content": content}]
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        offset = prompt.rfind(content)
        if offset < 0:
            raise ValueError(
                f"The chat template altered the text of record {rec.id!r}; cannot locate regions."
            )
    elif fmt == "alpaca":
        head = ALPACA[0]
        prompt = head + rec.instruction + (ALPACA[1] + rec.input if rec.input else "") + ALPACA[2]
        offset = len(head)
        if rec.input:  # the alpaca separator replaces the plain "\n\n"
            content_spans = [
                content_spans[0],
                (
                    len(rec.instruction) + len(ALPACA[1]),
                    len(rec.instruction) + len(ALPACA[1]) + len(rec.input),
                    Region.INPUT,
                ),
            ]
    else:
        prompt = content + "\n\n"
        offset = 0
    spans = [(offset + s, offset + e, r) for s, e, r in content_spans]
    text = prompt
    if with_response:
        if not rec.response:
            raise ValueError(f"Record {rec.id!r} has no reference response; with_response needs one.")
        if fmt == "chat":
            full = tokenizer.apply_chat_template(
                messages + [{"role": "assistant", "content": rec.response}], tokenize=False
            )
            at = full.find(rec.response, len(prompt) if full.startswith(prompt) else 0)
            if not full.startswith(prompt) or at < 0:
                text = prompt + rec.response + (tokenizer.eos_token or "")
                at = len(prompt)
            else:
                text = full
        else:
            text = prompt + rec.response + (tokenizer.eos_token or "")
            at = len(prompt)
        spans.append((at, at + len(rec.response), Region.RESPONSE))
    return text, spans, len(prompt)


def _assign(offsets, spans, n_chars: int) -> list[int]:
    owner = [int(Region.TEMPLATE)] * n_chars
    for s, e, region in spans:
        owner[s:e] = [int(region)] * (e - s)
    out = []
    for s, e in offsets:
        if e <= s:
            out.append(int(Region.TEMPLATE))
            continue
        counts: dict[int, int] = {}
        for c in owner[s:e]:
            counts[c] = counts.get(c, 0) + 1
        out.append(max(counts, key=lambda k: (counts[k], k)))
    return out


def _control_strings(tokenizer) -> list[str]:
    """The text of every special (control) token the tokenizer would match inside plain text."""
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    special = {tok.content for tok in added.values() if getattr(tok, "special", False)}
    return sorted(special | set(getattr(tokenizer, "all_special_tokens", []) or []), key=len, reverse=True)


def _forged(rec: InstructionRecord, controls: Sequence[str]) -> list[tuple[str, str]]:
    """``(field, control string)`` for each user field of ``rec`` that contains a control token's text."""
    return [
        (name, c)
        for name in ("instruction", "input", "response")
        for c in controls
        if c and c in getattr(rec, name)
    ]


def _tokenize_split(
    tokenizer, text: str, spans, add_special: bool
) -> tuple[list[int], list[tuple[int, int]]]:
    """Tokenize ``text`` segment by segment: the template's own text with its control tokens, the
    user's spans with control-token text split into ordinary tokens (so it cannot forge a turn)."""
    with_x = tokenizer("x", add_special_tokens=add_special)["input_ids"]
    bare = tokenizer("x", add_special_tokens=False)["input_ids"]
    at = next(i for i in range(len(with_x) - len(bare) + 1) if with_x[i : i + len(bare)] == bare)
    prefix, suffix = with_x[:at], with_x[at + len(bare) :]
    ids, offsets = list(prefix), [(0, 0)] * len(prefix)
    cuts = sorted({0, len(text), *(s for s, _, _ in spans), *(e for _, e, _ in spans)})
    user = [(s, e) for s, e, _ in spans]
    for start, end in zip(cuts, cuts[1:]):
        inside = any(s <= start and end <= e for s, e in user)
        enc = tokenizer(
            text[start:end],
            add_special_tokens=False,
            split_special_tokens=inside,
            return_offsets_mapping=True,
        )
        ids += list(enc["input_ids"])
        offsets += [(start + a, start + b) for a, b in enc["offset_mapping"]]
    return ids + list(suffix), offsets + [(len(text), len(text))] * len(suffix)


def pad_id(model_or_tokenizer) -> int:
    """The token id every toolkit batch pads with: the tokenizer's pad token, else its EOS token.

    Batches run right-padded, so real tokens never attend to padding and any id would do; but a
    tokenizer with neither token is an error rather than a silent guess.

    Raises:
        ValueError: when the tokenizer has neither a pad nor an EOS token.
    """
    tok = getattr(model_or_tokenizer, "tokenizer", model_or_tokenizer)
    pid = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    if pid is None:
        raise ValueError(
            "The tokenizer has neither a pad nor an EOS token to pad with; set "
            "tokenizer.pad_token (e.g. tokenizer.pad_token = tokenizer.unk_token)."
        )
    return int(pid)


def encode(
    data,
    tokenizer,
    *,
    format: Format = "auto",
    padding_side: PaddingSide = "right",
    max_length: int | None = None,
    with_response: bool = False,
    control_text: ControlText = "refuse",
) -> EncodedDataset:
    """Format and tokenize records, with per-token region labels.

    Args:
        data: an :class:`InstructionDataset` or anything :func:`load_instructions` accepts.
        tokenizer: a fast Hugging Face tokenizer (``model.tokenizer``), or a model that has one.
        format: ``"chat"`` (the tokenizer's chat template), ``"alpaca"`` (``### Instruction:``
            headers, for base models), ``"plain"`` (instruction and input only) or ``"auto"``
            (chat when the tokenizer has a template, else alpaca).
        padding_side: default side for :meth:`EncodedDataset.batch`.
        max_length: truncate longer records (keeping their start) with a warning.
        with_response: append the reference response (teacher forcing, fine-tuning).
        control_text: what to do when a record's text contains the text of a control token (e.g.
            ``<|im_end|>`` or ``<|im_start|>assistant``), which would otherwise become the real
            token and let record text forge a chat turn: ``"refuse"`` (default) raises an error naming
            the record; ``"split"`` tokenizes the record's own text with such strings split into
            ordinary tokens (the template keeps its control tokens). Records without such text are
            tokenized the same either way.

    Example:
        >>> from instr_interp import tiny_model, hexainst
        >>> enc = encode(hexainst()[:2], tiny_model().tokenizer)
        >>> enc.region_text(0, "instruction", tiny_model().tokenizer) == hexainst()[0].instruction
        True
    """
    data = load_instructions(data)
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("encode needs a fast tokenizer (character offsets); load one with use_fast=True.")
    fmt = _resolve_format(tokenizer, format)
    pid = pad_id(tokenizer)
    if control_text not in ("refuse", "split"):
        raise ValueError(f"control_text must be 'refuse' or 'split', got {control_text!r}.")
    bos = tokenizer.bos_token
    controls = _control_strings(tokenizer)
    records, truncated = [], []
    for i, rec in enumerate(data):
        forged = _forged(rec, controls)
        if forged and control_text == "refuse":
            field, string = forged[0]
            raise ValueError(
                f"Record {rec.id!r}: its {field} contains {string!r}, the text of a control token of this "
                "tokenizer, which would become the real token (and could forge a chat turn). Remove it, or "
                "encode with control_text='split' to tokenize it as ordinary text."
            )
        text, spans, prompt_end = format_prompt(rec, tokenizer, fmt, with_response)
        # Chat templates write their own start token; otherwise let the tokenizer add BOS if it does.
        add_special = not (bos and text.startswith(bos))
        if forged:
            ids, offsets = _tokenize_split(tokenizer, text, spans, add_special)
        else:
            enc = tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True)
            ids, offsets = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
        regions = _assign(offsets, spans, len(text))
        prompt_length = sum(1 for s, e in offsets if e <= prompt_end or s < prompt_end)
        if max_length is not None and len(ids) > max_length:
            truncated.append(rec.id)
            ids, regions = ids[:max_length], regions[:max_length]
            prompt_length = min(prompt_length, max_length)
        records.append(
            EncodedRecord(i, rec.id, rec.category, tuple(ids), tuple(regions), prompt_length, text)
        )
    if truncated:
        warnings.warn(
            f"{len(truncated)} record(s) longer than max_length={max_length} were truncated: "
            f"{truncated[:5]}{'...' if len(truncated) > 5 else ''}",
            stacklevel=2,
        )
    tag = f"{data.fingerprint()}:{fmt}:{with_response}:{max_length}:{getattr(tokenizer, 'name_or_path', '')}"
    if control_text == "split":
        tag += ":split"
    return EncodedDataset(
        records,
        data,
        fmt=fmt,
        pad_id=pid,
        padding_side=padding_side,
        with_response=with_response,
        fingerprint=tag,
    )
