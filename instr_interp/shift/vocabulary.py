"""Offline word lists and word vectors for the weight-only analyses (concepts, word pairs).

Source of the frequency list: the ``wordfreq`` package (Robyn Speer et al.), whose shipped data merges
word frequencies from Wikipedia, subtitles, news, books, web text, Twitter and Reddit. It needs no
network: :func:`frequent_words` reads ``wordfreq.top_n_list`` and keeps purely alphabetic words.

A word's vector is the mean of the rows of its sub-tokens in the embedding or unembedding matrix. Words
are tokenised with a leading space (``" " + word``), the form in which a word appears mid-sentence for
both SentencePiece (``▁word``) and byte-level BPE (``Ġword``) tokenizers; a sub-token that decodes to
pure whitespace (a bare ``Ġ``/``▁`` split off before the word) is dropped, and a word left with no
sub-tokens is dropped from the list.

The 38 instruction verbs of Wu et al. (METHODS.md section 7) and the general verbs they are compared
with (:func:`general_verbs`: frequent verbs from the offline ``lemminflect`` lexicon, stopwords excluded)
live here too.
"""

from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

__all__ = [
    "INSTRUCTION_VERBS",
    "COMMON_VERBS",
    "NLTK_STOPWORDS",
    "WordVectors",
    "frequent_words",
    "general_verbs",
    "lexicon_verbs",
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


# NLTK's English stopword list (``nltk.corpus.stopwords.words("english")``, 179 entries), written out
# here because NLTK's data needs a download; Wu et al. exclude these from their general verbs.
NLTK_STOPWORDS: frozenset[str] = frozenset(
    """
    i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself yourselves he
    him his himself she she's her hers herself it it's its itself they them their theirs themselves what
    which who whom this that that'll these those am is are was were be been being have has had having do
    does did doing a an the and but if or because as until while of at by for with about against between
    into through during before after above below to from up down in out on off over under again further
    then once here there when where why how all any both each few more most other some such no nor not
    only own same so than too very s t can will just don don't should should've now d ll m o re ve y ain
    aren aren't couldn couldn't didn didn't doesn doesn't hadn hadn't hasn hasn't haven haven't isn isn't
    ma mightn mightn't mustn mustn't needn needn't shan shan't shouldn shouldn't wasn wasn't weren weren't
    won won't wouldn wouldn't""".split()
)


def lexicon_verbs(n_words: int = 60_000) -> list[str]:
    """English verbs in base form, most frequent first: the words among wordfreq's ``n_words`` most frequent
    (purely alphabetic, ASCII) that the ``lemminflect`` lexicon lists as a verb lemma (offline).

    ``lemminflect`` ships its lexicon (derived from the NIH SPECIALIST Lexicon) inside its wheel; a word is a
    verb here when ``lemminflect.getAllInflections(word, upos="VERB")`` is not empty. Like WordNet's verb
    index, which Wu et al. read, the lexicon lists words whose first sense is a noun (``time``, ``people``)
    when they also have a verb sense.
    """
    import lemminflect

    return [w for w in frequent_words(n_words) if lemminflect.getAllInflections(w, upos="VERB")]


def general_verbs(
    n: int = 3000,
    *,
    exclude=INSTRUCTION_VERBS,
    source: Literal["lexicon", "common"] = "lexicon",
) -> list[str]:
    """The comparison group of the instruction-verb test: the ``n`` most frequent verbs not in ``exclude``.

    Args:
        n: how many verbs (Wu et al.: 3,000).
        exclude: words left out besides the stopwords (default: the 38 instruction verbs).
        source: ``"lexicon"`` (default, the authors' recipe made offline): :func:`lexicon_verbs` ordered by
            wordfreq frequency, minus :data:`NLTK_STOPWORDS` (the authors: WordNet verb synsets with an example
            sentence, their first lemma, minus NLTK's stopwords, ordered by wordfreq); ``"common"``: our
            hand-picked :data:`COMMON_VERBS` (about 170 everyday verbs, no stopword filter), the toolkit's
            earlier default.

    Examples:
        >>> general_verbs(5)
        ['like', 'time', 'get', 'people', 'know']
    """
    if n < 1:
        raise ValueError(f"n must be a positive number of verbs, got {n}.")
    excluded = set(exclude)
    if source == "lexicon":
        excluded |= NLTK_STOPWORDS
        return [v for v in lexicon_verbs() if v not in excluded][:n]
    if source != "common":
        raise ValueError(f"source must be 'lexicon' or 'common', got {source!r}.")
    from wordfreq import word_frequency

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
