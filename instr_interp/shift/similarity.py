"""Word relatedness for the word pairs of attention heads (METHODS.md section 7; Wu et al. 2024).

A candidate pair (q, k) of :mod:`~instr_interp.shift.wordpairs` is kept only when the two words are
related: their similarity exceeds both words' thresholds from :func:`relatedness_thresholds` (and 0).

The judge of relatedness is ONE fixed model for every model analysed, as in the authors' code (one GloVe
model for LLaMA and Vicuna): by default :func:`reference_judge`, the input-embedding cosine of the bundled
SmolLM2-135M-Instruct (no offline package ships GloVe or another static word-vector model small enough;
see docs/wordpairs.md). ``similarity="own"`` uses the analysed model's own input embeddings instead — a
labelled option only: it is circular, and a tune that moves the embeddings moves the judge too.
"""

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from jaxtyping import Float
from torch import Tensor

from ..models import model_facts
from .vocabulary import INSTRUCTION_VERBS, WordVectors, frequent_words, general_verbs, word_vectors

__all__ = ["DEFAULT_JUDGE", "EmbeddingSimilarity", "reference_judge", "relatedness_thresholds"]

DEFAULT_JUDGE = "smollm2-135m-instruct"  # the fixed relatedness judge: this bundled model's input embeddings

Similarity = Callable[[list[str], list[str]], Tensor]  # (words_a, words_b) -> [len a, len b]


class EmbeddingSimilarity:
    """Relatedness as the cosine of a model's input-embedding word vectors (mean over sub-tokens).

    Callable as ``similarity(words_a, words_b) -> Tensor [len(words_a), len(words_b)]``; ``unit_vectors``
    gives the L2-normalised word vectors (the extraction uses them for one batched product per head).
    Vectors are computed on first use and cached.

    Args:
        model: anything with ``W_E`` (``d_vocab x d``) and ``tokenizer`` (a bridge, or the table that
            :func:`reference_judge` keeps).
        label: how results name this judge (their ``settings["similarity"]``).
    """

    def __init__(self, model, label: str | None = None):
        self.model = model
        self.label = label or "input-embedding cosine"
        self._rows: dict[str, int] = {}
        self._unit = torch.zeros(0, model.W_E.shape[1])

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

    def unit_vectors(self, words: Sequence[str]) -> Float[Tensor, "word d"]:
        """The L2-normalised word vectors of ``words`` (float32, in order)."""
        self._ensure(list(words))
        return self._unit[[self._rows[w] for w in words]]

    def __call__(self, words_a: Sequence[str], words_b: Sequence[str]) -> Float[Tensor, "a b"]:
        return self.unit_vectors(words_a) @ self.unit_vectors(words_b).T


@functools.lru_cache(maxsize=4)
def reference_judge(name: str = DEFAULT_JUDGE) -> EmbeddingSimilarity:
    """The fixed relatedness judge: input-embedding cosine of the model ``name`` (default: bundled SmolLM2).

    The model is loaded once on the CPU; only its input embedding and tokenizer are kept. One instance per
    name is shared, so every model analysed in a session is judged by the same vectors.
    """
    from ..models import load_model

    model = load_model(name, device="cpu")
    table = SimpleNamespace(W_E=model.W_E.detach().float().clone(), tokenizer=model.tokenizer)
    del model
    return EmbeddingSimilarity(table, label=f"{name} input-embedding cosine (fixed judge)")


def relatedness_thresholds(
    similarity: Similarity,
    words: Sequence[str],
    reference: Sequence[str],
    *,
    z: float = 1.96,
    exclude_self: bool = False,
    ddof: int = 0,
    chunk: int = 2048,
) -> Float[Tensor, " word"]:
    """Per word: mean + z * std of its similarity to the ``reference`` words.

    The defaults are the authors' (``np.mean(s) + 1.96 * np.std(s)`` over the 3,000 most frequent words,
    a word among them included with its similarity to itself). A pair (a, b) counts as related when its
    similarity exceeds both words' thresholds.

    Args:
        exclude_self: leave a word's similarity to itself out of its own statistics.
        ddof: delta degrees of freedom of the std (0: population std, the authors'; 1: sample std).
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
        if exclude_self:
            for row, w in enumerate(part):
                if w in ref_index:
                    keep[row, ref_index[w]] = False
        n = keep.sum(1)
        if int(n.min()) - ddof < 1:
            raise ValueError(f"ddof={ddof} needs more than {ddof} reference words per word.")
        mean = (sims * keep).sum(1) / n
        var = (((sims - mean[:, None]) ** 2) * keep).sum(1) / (n - ddof)
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
    unit: Tensor | None = None  # the judge's unit vectors of vocab.words, when it has them


def _judge(model, similarity) -> Similarity:
    """None -> :func:`reference_judge`; ``"own"`` -> the analysed model's embeddings; a callable as is."""
    if similarity is None:
        return reference_judge()
    if isinstance(similarity, str):
        if similarity == "own":
            name = model_facts(model).name
            return EmbeddingSimilarity(
                model, label=f"{name}'s own input-embedding cosine (the analysed model)"
            )
        raise ValueError(
            f"similarity must be None (the fixed judge), 'own' or a callable; got {similarity!r}."
        )
    if not callable(similarity):
        raise ValueError(
            f"similarity must be None (the fixed judge), 'own' or a callable; got {type(similarity)}."
        )
    return similarity


def _context(model, *, vocabulary, similarity, reference, z) -> _Context:
    """The vocabulary's word vectors (default: frequent words and the instruction and general verbs), the
    judge (default :func:`reference_judge`) and every word's threshold against ``reference``."""
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
    sim = _judge(model, similarity)
    thresholds = relatedness_thresholds(sim, vocab.words, reference, z=z)
    settings = {
        "n_vocabulary": len(vocab.words),
        "n_reference": len(reference),
        "z": z,
        "similarity": getattr(sim, "label", None) or getattr(sim, "__name__", type(sim).__name__),
        "model": model_facts(model).name,
    }
    unit = sim.unit_vectors(vocab.words).float() if hasattr(sim, "unit_vectors") else None
    return _Context(vocab=vocab, similarity=sim, thresholds=thresholds, settings=settings, unit=unit)
