"""Offline word lists and word vectors for the weight-only analyses (concepts, word pairs).

Source of the frequency list: the ``wordfreq`` package (Robyn Speer et al.), whose shipped data merges
word frequencies from Wikipedia, subtitles, news, books, web text, Twitter and Reddit. It needs no
network: :func:`frequent_words` reads ``wordfreq.top_n_list`` and keeps purely alphabetic words.

A word's vector is the mean of the rows of its sub-tokens in the embedding or unembedding matrix. Words
are tokenised with a leading space (``" " + word``), the form in which a word appears mid-sentence for
both SentencePiece (``▁word``) and byte-level BPE (``Ġword``) tokenizers; a sub-token that decodes to
pure whitespace (a bare ``Ġ``/``▁`` split off before the word) is dropped, and a word left with no
sub-tokens is dropped from the list.

The 38 instruction verbs of Wu et al. (METHODS.md section 7) and a documented list of frequent
general verbs for comparison live here too.
"""

from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

__all__ = [
    "INSTRUCTION_VERBS",
    "COMMON_VERBS",
    "WordVectors",
    "frequent_words",
    "general_verbs",
    "word_token_ids",
    "word_vectors",
]

# METHODS.md section 7 (Wu et al. 2024): the instruction verbs, in the paper's order.
INSTRUCTION_VERBS: tuple[str, ...] = (
    "translate",
    "explain",
    "summarize",
    "retrieve",
    "revise",
    "generate",
    "describe",
    "classify",
    "create",
    "evaluate",
    "correct",
    "develop",
    "identify",
    "analyze",
    "compose",
    "demonstrate",
    "interpret",
    "design",
    "solve",
    "follow",
    "clarify",
    "say",
    "help",
    "act",
    "recommend",
    "estimate",
    "edit",
    "format",
    "repeat",
    "write",
    "give",
    "find",
    "make",
    "have",
    "tell",
    "output",
    "predict",
    "detect",
)

# Our list of common English verbs in base form (our choice): everyday action, motion, perception,
# cognition and change verbs. ``general_verbs`` orders those not among INSTRUCTION_VERBS by wordfreq
# frequency and keeps the most frequent ones as the comparison group of the instruction-verb test.
COMMON_VERBS: tuple[str, ...] = (
    "be",
    "do",
    "go",
    "get",
    "see",
    "know",
    "take",
    "think",
    "come",
    "look",
    "want",
    "use",
    "work",
    "call",
    "try",
    "ask",
    "need",
    "feel",
    "become",
    "leave",
    "put",
    "mean",
    "keep",
    "let",
    "begin",
    "seem",
    "show",
    "hear",
    "play",
    "run",
    "move",
    "like",
    "live",
    "believe",
    "hold",
    "bring",
    "happen",
    "sit",
    "stand",
    "lose",
    "pay",
    "meet",
    "include",
    "continue",
    "set",
    "learn",
    "change",
    "lead",
    "understand",
    "watch",
    "speak",
    "read",
    "allow",
    "add",
    "spend",
    "grow",
    "open",
    "walk",
    "win",
    "offer",
    "remember",
    "love",
    "consider",
    "appear",
    "buy",
    "wait",
    "serve",
    "die",
    "send",
    "expect",
    "build",
    "stay",
    "fall",
    "cut",
    "reach",
    "kill",
    "remain",
    "suggest",
    "raise",
    "pass",
    "sell",
    "require",
    "report",
    "decide",
    "pull",
    "break",
    "eat",
    "drink",
    "sleep",
    "drive",
    "fly",
    "sing",
    "dance",
    "swim",
    "throw",
    "catch",
    "push",
    "carry",
    "wear",
    "wash",
    "cook",
    "clean",
    "fight",
    "laugh",
    "cry",
    "smile",
    "listen",
    "travel",
    "visit",
    "enjoy",
    "hope",
    "worry",
    "agree",
    "join",
    "return",
    "close",
    "start",
    "stop",
    "finish",
    "save",
    "share",
    "check",
    "choose",
    "fix",
    "hit",
    "jump",
    "kick",
    "knock",
    "lift",
    "marry",
    "pick",
    "plant",
    "pour",
    "rain",
    "ride",
    "ring",
    "rise",
    "shake",
    "shout",
    "shut",
    "sink",
    "slide",
    "smell",
    "taste",
    "touch",
    "turn",
    "wake",
    "wander",
    "wave",
    "whisper",
    "wish",
    "wonder",
    "hide",
    "hunt",
    "fill",
    "feed",
    "draw",
    "dig",
)


def frequent_words(
    n: int = 20_000, lang: str = "en", *, min_length: int = 1, ascii_only: bool | None = None
) -> list[str]:
    """The ``n`` most frequent purely alphabetic words of ``lang``, most frequent first (offline).

    Reads the frequency list shipped with ``wordfreq`` (``top_n_list``, lowercased) and keeps words for
    which ``str.isalpha()`` holds (no digits, apostrophes or hyphens), ASCII-only for English. It reads a longer list than ``n``
    so that ``n`` words survive the filter.

    Args:
        n: how many words to return.
        lang: a wordfreq language code (``"en"``, ``"fr"``, ...).
        min_length: drop words shorter than this many characters.
        ascii_only: keep only ASCII letters (default: for English, where non-ASCII entries are mostly
            encoding debris such as ``"â"``).

    Returns:
        Up to ``n`` distinct words (fewer only when wordfreq's list runs out).

    Examples:
        >>> frequent_words(5)
        ['the', 'to', 'and', 'of', 'a']
    """
    if n < 1:
        raise ValueError(f"n must be a positive number of words, got {n}.")
    try:
        from wordfreq import top_n_list
    except ImportError as err:  # pragma: no cover - wordfreq is a dependency
        raise ImportError("frequent_words needs the wordfreq package: pip install wordfreq") from err
    ascii_only = lang == "en" if ascii_only is None else ascii_only
    fetch = int(n * 1.2) + 100
    while True:
        raw = top_n_list(lang, fetch)
        if not raw:
            raise ValueError(f"wordfreq has no word list for language {lang!r}.")
        words = [w for w in raw if w.isalpha() and len(w) >= min_length and (w.isascii() or not ascii_only)]
        if len(words) >= n or len(raw) < fetch:
            return words[:n]
        fetch *= 2


def general_verbs(n: int = 100, *, exclude=INSTRUCTION_VERBS) -> list[str]:
    """The ``n`` most frequent verbs of :data:`COMMON_VERBS` not in ``exclude``, by wordfreq frequency.

    The comparison group of the instruction-verb test: frequent English verbs that are not among the
    38 instruction verbs (our choice, documented in docs/wordpairs.md).
    """
    from wordfreq import word_frequency

    excluded = set(exclude)
    verbs = sorted(
        dict.fromkeys(v for v in COMMON_VERBS if v not in excluded),
        key=lambda v: (-word_frequency(v, "en"), v),
    )
    return verbs[:n]


def word_token_ids(tokenizer, words: list[str]) -> list[list[int]]:
    """Sub-token ids of each word as the model sees it mid-sentence (``" " + word``), whitespace dropped.

    A sub-token whose decoded text is pure whitespace is removed; a word may end with no ids.
    """
    encoded = tokenizer([" " + w for w in words], add_special_tokens=False)["input_ids"]
    blank: dict[int, bool] = {}
    out = []
    for ids in encoded:
        kept = []
        for i in ids:
            if i not in blank:
                blank[i] = tokenizer.decode([i]).strip() == ""
            if not blank[i]:
                kept.append(i)
        out.append(kept)
    return out


@dataclass(kw_only=True)
class WordVectors:
    """Word vectors: one row per kept word (mean of its sub-token rows)."""

    words: list[str]
    vectors: Float[Tensor, "word d_model"]
    n_tokens: Int[Tensor, " word"]  # sub-tokens averaged per word
    dropped: list[str]  # words that tokenised to nothing

    def normalized(self) -> Float[Tensor, "word d_model"]:
        """Rows scaled to unit L2 norm."""
        return self.vectors / self.vectors.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def index(self) -> dict[str, int]:
        """Word -> row."""
        return {w: i for i, w in enumerate(self.words)}


def _matrix(model, matrix: Literal["unembed", "embed"]) -> Float[Tensor, "d_vocab d_model"]:
    if matrix == "unembed":
        return model.W_U.T
    if matrix == "embed":
        return model.W_E
    raise ValueError(f"matrix must be 'unembed' or 'embed', got {matrix!r}.")


def word_vectors(model, words: list[str], matrix: Literal["unembed", "embed"] = "unembed") -> WordVectors:
    """Mean sub-token rows of the unembedding (``W_U.T``) or input embedding (``W_E``) per word.

    Args:
        model: a bridge (or any model with ``W_E``/``W_U`` and a ``tokenizer``).
        words: words without leading spaces; duplicates are kept once.
        matrix: ``"unembed"`` (rows of ``W_U.T``) or ``"embed"`` (rows of ``W_E``).

    Returns:
        :class:`WordVectors` for the words that tokenise to at least one non-whitespace sub-token, in
        input order; the others are listed in ``dropped``.

    Examples:
        >>> from instr_interp import tiny_model
        >>> wv = word_vectors(tiny_model(), ["cat", "dog"], matrix="embed")
        >>> wv.vectors.shape
        torch.Size([2, 64])
    """
    if isinstance(words, str):
        raise ValueError("words must be a list of words, not one string.")
    words = list(dict.fromkeys(words))
    if not words:
        raise ValueError("words is empty: pass at least one word (e.g. frequent_words()).")
    table = _matrix(model, matrix).detach()
    ids = word_token_ids(model.tokenizer, words)
    kept = [(w, t) for w, t in zip(words, ids) if t]
    dropped = [w for w, t in zip(words, ids) if not t]
    if not kept:
        raise ValueError(f"None of the {len(words)} words tokenised to a non-whitespace sub-token.")
    flat = torch.tensor([i for _, t in kept for i in t], dtype=torch.long, device=table.device)
    owner = torch.repeat_interleave(
        torch.arange(len(kept), device=table.device),
        torch.tensor([len(t) for _, t in kept], device=table.device),
    )
    sums = torch.zeros(len(kept), table.shape[1], dtype=table.dtype, device=table.device)
    sums.index_add_(0, owner, table[flat])
    counts = torch.tensor([len(t) for _, t in kept], dtype=torch.long)
    vectors = sums / counts.to(sums)[:, None]
    return WordVectors(words=[w for w, _ in kept], vectors=vectors, n_tokens=counts, dropped=dropped)
