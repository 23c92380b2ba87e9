"""Word relatedness for the word pairs of attention heads (METHODS.md section 7; Wu et al. 2024).

A candidate pair (q, k) of :mod:`~instr_interp.shift.wordpairs` is kept only when the two words are
related: their similarity (by default :class:`EmbeddingSimilarity`, the model's input-embedding
cosine) exceeds both words' thresholds from :func:`relatedness_thresholds`.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from ..models import model_facts
from .vocabulary import INSTRUCTION_VERBS, WordVectors, frequent_words, general_verbs, word_vectors

__all__ = ["EmbeddingSimilarity", "relatedness_thresholds"]

Similarity = Callable[[list[str], list[str]], Tensor]  # (words_a, words_b) -> [len a, len b]


class EmbeddingSimilarity:
    """Default relatedness: cosine of the model's own input-embedding word vectors (mean over sub-tokens).

    Callable as ``similarity(words_a, words_b) -> Tensor [len(words_a), len(words_b)]``. Vectors are
    computed on first use and cached.
    """

    def __init__(self, model):
        self.model = model
        self._rows: dict[str, int] = {}
        self._unit = torch.zeros(0, model.cfg.d_model)

    def _ensure(self, words: Sequence[str]) -> None:
        new = [w for w in dict.fromkeys(words) if w not in self._rows]
        if not new:
            return
        wv = word_vectors(self.model, new, matrix="embed")
        if wv.dropped:
            raise ValueError(f"Words with no sub-tokens cannot be compared: {wv.dropped[:5]}.")
        start = len(self._rows)
        self._rows.update({w: start + i for i, w in enumerate(wv.words)})
        self._unit = torch.cat([self._unit.to(wv.vectors), wv.normalized().float()])

    def __call__(self, words_a: Sequence[str], words_b: Sequence[str]) -> Float[Tensor, "a b"]:
        self._ensure(list(words_a) + list(words_b))
        a = self._unit[[self._rows[w] for w in words_a]]
        b = self._unit[[self._rows[w] for w in words_b]]
        return a @ b.T


def relatedness_thresholds(
    similarity: Similarity,
    words: Sequence[str],
    reference: Sequence[str],
    *,
    z: float = 1.96,
    chunk: int = 2048,
) -> Float[Tensor, " word"]:
    """Per word: mean + z * std of its similarity to the ``reference`` words (itself excluded).

    The std is the sample standard deviation. A pair (a, b) counts as related when its similarity
    exceeds both words' thresholds.
    """
    words, reference = list(words), list(reference)
    if len(reference) < 2:
        raise ValueError("reference needs at least two words (paper: the 3,000 most frequent).")
    ref_index = {w: i for i, w in enumerate(reference)}
    out = []
    for start in range(0, len(words), chunk):
        part = words[start : start + chunk]
        sims = torch.as_tensor(similarity(part, reference), dtype=torch.float64).cpu()
        if sims.shape != (len(part), len(reference)):
            raise ValueError(
                f"similarity returned shape {tuple(sims.shape)}; expected ({len(part)}, {len(reference)})."
            )
        keep = torch.ones_like(sims, dtype=torch.bool)
        for row, w in enumerate(part):
            if w in ref_index:
                keep[row, ref_index[w]] = False
        n = keep.sum(1)
        mean = (sims * keep).sum(1) / n
        var = (((sims - mean[:, None]) ** 2) * keep).sum(1) / (n - 1)
        out.append(mean + z * var.sqrt())
    return torch.cat(out).float()


# ------------------------------------------------------------------------------------------------
# The vocabulary, judge and thresholds one extraction uses


@dataclass(kw_only=True)
class _Context:
    """What one extraction judges relatedness with: the vocabulary, the similarity, each word's threshold."""

    vocab: WordVectors
    similarity: Similarity
    thresholds: Tensor
    settings: dict


def _context(model, *, vocabulary, similarity, reference, z) -> _Context:
    """The vocabulary's word vectors (default: frequent words and the instruction and general verbs), the
    judge (default :class:`EmbeddingSimilarity`) and every word's threshold against ``reference``."""
    if isinstance(vocabulary, WordVectors):
        vocab = vocabulary
    else:
        words = (
            list(vocabulary)
            if vocabulary is not None
            else (frequent_words() + list(INSTRUCTION_VERBS) + general_verbs())
        )
        vocab = word_vectors(model, list(dict.fromkeys(words)), matrix="embed")
    if isinstance(reference, int):
        reference = frequent_words(reference)
    reference = list(reference)
    sim = similarity if similarity is not None else EmbeddingSimilarity(model)
    thresholds = relatedness_thresholds(sim, vocab.words, reference, z=z)
    settings = {
        "n_vocabulary": len(vocab.words),
        "n_reference": len(reference),
        "z": z,
        "similarity": "input-embedding cosine"
        if similarity is None
        else getattr(similarity, "__name__", type(similarity).__name__),
        "model": model_facts(model).name,
    }
    return _Context(vocab=vocab, similarity=sim, thresholds=thresholds, settings=settings)
