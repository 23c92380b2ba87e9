"""Attention-head word pairs read from the weights (METHODS.md section 7; Wu et al. 2024).

For a head h of layer l: ``W_Q^h``, ``W_K^h`` (d_model x d_head) with rows scaled by the gain of the
pre-attention norm (``w`` for Llama's RMSNorm, ``1 + w`` for Gemma's); for GQA, query head h reads KV
head ``h // (n_heads / n_kv_heads)``; where the model normalises q and k per head (Gemma 3's
``q_norm``/``k_norm``) their gains scale the d_head columns; RoPE and the RMS divisions are ignored.
With E the input-embedding word vectors, ``H_Q = E W_Q^h`` and ``H_K = E W_K^h``. Dimensions d are
ranked by ``sum_w H_Q[w,d]^2 + sum_w H_K[w,d]^2`` and by default every one is read (the authors'
code); in each, the top words by ``|H_Q[:, d]|`` and by ``|H_K[:, d]|`` form candidate pairs (q, k),
kept when one fixed judge finds the words related, ``H_Q[q,d] H_K[k,d] > 0`` and ``q != k``. A head
knows a pair when it is seen more than once: by default (the authors' rule) pairs are unordered and
lower-cased and counted over (dimension, orientation) occurrences.

This module reads the weights and extracts the pairs, and compares instruction verbs before and after
tuning; the relatedness judge is in :mod:`~instr_interp.shift.similarity` and the :class:`WordPairs`
result in :mod:`~instr_interp.shift.wordpair_results` (both importable from here too).
"""

from collections.abc import Sequence
from typing import Literal

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from .. import compat
from ..checks import check_layer, check_layers, check_units
from ..models import model_facts
from ..stats import welch
from .concepts import layer_groups, layer_label
from .similarity import (
    DEFAULT_JUDGE,
    EmbeddingSimilarity,
    Similarity,
    _Context,
    _context,
    reference_judge,
    relatedness_thresholds,
)
from .vocabulary import INSTRUCTION_VERBS, WordVectors, general_verbs
from .wordpair_results import WordPairs

__all__ = [
    "DEFAULT_JUDGE",
    "EmbeddingSimilarity",
    "reference_judge",
    "WordPairs",
    "attention_norm_gain",
    "head_qk",
    "head_word_pairs",
    "instruction_verb_shift",
    "layer_word_pairs",
    "model_word_pairs",
    "relatedness_thresholds",
    "top_verb_pairs",
    "verb_pair_counts",
    "word_shift_scores",
]


# ------------------------------------------------------------------------------------------------
# Folded query / key weights


def _norm_gain(module, offset: bool, what: str) -> Float[Tensor, " d"]:
    """Gain of an RMSNorm module, checked against the module's own forward on a random vector."""
    weight = getattr(module, "weight", None)
    if weight is None:
        raise ValueError(f"{what} ({type(module).__name__}) has no weight; cannot fold it into W_Q/W_K.")
    weight = weight.detach()
    gain = weight.float() + 1.0 if offset else weight.float()
    eps = float(getattr(module, "variance_epsilon", getattr(module, "eps", 1e-6)))
    x = torch.randn(weight.shape[-1], generator=torch.Generator().manual_seed(0)).to(weight)
    with torch.no_grad():
        got = module(x[None]).float()[0]
    expected = x.float() * torch.rsqrt(x.float().pow(2).mean() + eps) * gain
    if not torch.allclose(got, expected, rtol=1e-3, atol=1e-4 * float(expected.abs().max())):
        raise ValueError(
            f"{what} ({type(module).__name__}) is not an RMSNorm with gain {'1 + w' if offset else 'w'}: its "
            "output differs from x / rms(x) * gain. Word pairs fold only RMSNorm gains; LayerNorm models are not "
            "supported."
        )
    return gain


def attention_norm_gain(model, layer: int) -> Float[Tensor, " d_model"]:
    """The elementwise gain of the pre-attention RMSNorm of ``layer``.

    ``w`` for Llama-style RMSNorm, ``1 + w`` where the model's config says the norm uses an offset
    (``cfg.rmsnorm_uses_offset``: Gemma). Checked against the norm module's own output.
    """
    ln = model.blocks[layer].ln1
    return _norm_gain(compat.wrapped_module(ln), compat.rmsnorm_offset(model), f"blocks.{layer}.ln1")


def head_qk(
    model, layer: int
) -> tuple[Float[Tensor, "head d_model d_head"], Float[Tensor, "head d_model d_head"]]:
    """``W_Q^h`` and ``W_K^h`` of every query head of ``layer``, with the norm gains folded in.

    Rows are scaled by :func:`attention_norm_gain`; key weights are repeated so that query head h gets
    KV head ``h // (n_heads // n_kv_heads)``; per-head q/k norm gains (Gemma 3) scale the columns.
    """
    layer = check_layer(model, layer)
    facts = model_facts(model)
    attn = model.blocks[layer].attn
    w_q, w_k = attn.W_Q.detach().float(), attn.W_K.detach().float()
    if w_q.shape[0] != facts.n_heads or w_k.shape[0] != facts.n_kv_heads:
        raise ValueError(
            f"Unexpected W_Q/W_K head counts {w_q.shape[0]}/{w_k.shape[0]}; expected "
            f"{facts.n_heads}/{facts.n_kv_heads}."
        )
    gain = attention_norm_gain(model, layer).to(w_q.device)
    w_q = w_q * gain[None, :, None]
    w_k = w_k * gain[None, :, None]
    offset = compat.rmsnorm_offset(model)
    original = compat.wrapped_module(attn)
    for name, which in (("q_norm", "q"), ("k_norm", "k")):
        module = getattr(original, name, None)
        if module is not None:
            g = _norm_gain(module, offset, f"blocks.{layer}.attn.{name}").to(w_q.device)
            if which == "q":
                w_q = w_q * g[None, None, :]
            else:
                w_k = w_k * g[None, None, :]
    group = facts.n_heads // facts.n_kv_heads
    w_k = w_k[torch.arange(facts.n_heads) // group]
    return w_q, w_k


# ------------------------------------------------------------------------------------------------
# Extraction


def _related(ctx: _Context, unit: Tensor | None, q_ids: Tensor, k_ids: Tensor) -> Float[Tensor, "chunk q k"]:
    """Judge similarities of every (query word, key word) of a chunk of dimensions: ``[chunk, q, k]``."""
    if unit is not None:  # the judge's unit vectors (on the model's device): one batched product
        return unit[q_ids] @ unit[k_ids].transpose(-1, -2)
    words = ctx.vocab.words
    return torch.stack(
        [
            torch.as_tensor(
                ctx.similarity([words[x] for x in qi.tolist()], [words[x] for x in ki.tolist()]),
                dtype=torch.float32,
            ).to(q_ids.device)
            for qi, ki in zip(q_ids, k_ids)
        ]
    )


def _layer(model, layer: int, heads: Sequence[int], ctx: _Context, top_dims: int | None, top_words: int):
    """Per-dimension pairs of ``heads`` of ``layer`` (the word projections of all heads in one matmul)."""
    w_q, w_k = head_qk(model, layer)
    heads_t = torch.tensor(list(heads), dtype=torch.long)
    w_q, w_k = w_q[heads_t], w_k[heads_t]
    e = ctx.vocab.vectors.float().to(w_q.device)
    h_q = torch.einsum("vm,hmd->hvd", e, w_q)  # [head, word, d_head]
    h_k = torch.einsum("vm,hmd->hvd", e, w_k)
    energy = h_q.pow(2).sum(1) + h_k.pow(2).sum(1)  # [head, d_head]
    n_dims = energy.shape[1] if top_dims is None else min(top_dims, energy.shape[1])
    n_words = min(top_words, e.shape[0])
    dim_energy, dims = energy.topk(n_dims, dim=1)  # [head, dim], highest energy first
    thr = ctx.thresholds.to(w_q.device)
    unit = None if ctx.unit is None else ctx.unit.to(w_q.device)
    rows, scores = [], []
    for i, head in enumerate(heads):
        q_sel, k_sel = h_q[i][:, dims[i]].T, h_k[i][:, dims[i]].T  # [dim, word]
        q_ids = q_sel.abs().topk(n_words, dim=1).indices  # [dim, n_words]
        k_ids = k_sel.abs().topk(n_words, dim=1).indices
        q_val, k_val = q_sel.gather(1, q_ids), k_sel.gather(1, k_ids)
        for start in range(0, n_dims, 32):  # bounded memory: 32 dims x n_words^2 judge products at a time
            part = slice(start, start + 32)
            qi, ki = q_ids[part], k_ids[part]
            sim = _related(ctx, unit, qi, ki)
            product = q_val[part][:, :, None] * k_val[part][:, None, :]
            keep = (
                (sim > thr[qi][:, :, None])
                & (sim > thr[ki][:, None, :])
                & (sim > 0)
                & (product > 0)
                & (qi[:, :, None] != ki[:, None, :])
            )
            j, a, b = keep.nonzero(as_tuple=True)
            rows.append(
                torch.stack(
                    [
                        torch.full_like(j, layer),
                        torch.full_like(j, head),
                        dims[i][part][j],
                        qi[j, a],
                        ki[j, b],
                    ],
                    dim=1,
                ).cpu()
            )
            scores.append(product[j, a, b].cpu())
    units = torch.stack(
        [torch.full_like(dims, layer), heads_t[:, None].expand_as(dims).to(dims), dims], dim=-1
    )
    return torch.cat(rows), torch.cat(scores), units.reshape(-1, 3).cpu(), dim_energy.reshape(-1).cpu()


_COUNTINGS = ("authors", "ordered")


def _extract(
    model,
    layer_heads: dict[int, list[int]],
    ctx: _Context,
    top_dims: int | None,
    top_words: int,
    min_dims: int,
    counting: str,
    progress: bool,
) -> WordPairs:
    if (top_dims is not None and top_dims < 1) or top_words < 1 or min_dims < 1:
        raise ValueError("top_dims (or None for every dimension), top_words and min_dims must be positive.")
    if counting not in _COUNTINGS:
        raise ValueError(f"counting must be one of {_COUNTINGS}, got {counting!r}.")
    parts = [
        _layer(model, layer, heads, ctx, top_dims, top_words)
        for layer, heads in tqdm(layer_heads.items(), desc="word pairs", disable=not progress)
    ]
    settings = {
        **ctx.settings,
        "top_dims": "all" if top_dims is None else top_dims,
        "top_words": top_words,
        "min_dims": min_dims,
        "counting": counting,
        "n_layers": int(model.cfg.n_layers),
        "n_heads": int(model.cfg.n_heads),
    }
    return WordPairs(
        words=list(ctx.vocab.words),
        dim_pairs=torch.cat([p[0] for p in parts]).long(),
        scores=torch.cat([p[1] for p in parts]).float(),
        top_dims=torch.cat([p[2] for p in parts]).long(),
        dim_energy=torch.cat([p[3] for p in parts]).float(),
        min_dims=min_dims,
        counting=counting,
        settings=settings,
    )


def model_word_pairs(
    model,
    *,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    top_dims: int | None = None,
    top_words: int = 100,
    min_dims: int = 2,
    counting: Literal["authors", "ordered"] = "authors",
    similarity: Similarity | Literal["own"] | None = None,
    vocabulary: Sequence[str] | WordVectors | None = None,
    reference: int | Sequence[str] = 3000,
    z: float = 1.96,
    progress: bool = True,
) -> WordPairs:
    """Word pairs of many heads (default: every head of every layer), one batched pass per layer.

    Args:
        model: a bridge with RMSNorm (Llama, Gemma, Mistral, Qwen, ... style).
        layers: layers to analyse (default all); heads: query heads (default all).
        top_dims: dimensions analysed per head, by their summed squared word projections; default None:
            every dimension (the authors' code loops over all of them).
        top_words: words per dimension on the query and on the key side (paper: 100).
        min_dims: a head-level pair must be seen at least this many times (authors: more than once).
        counting: ``"authors"`` (default): pairs unordered and lower-cased, counted over
            (dimension, orientation) occurrences; ``"ordered"``: (query, key) pairs counted over dimensions
            (the toolkit's earlier rule). See :meth:`WordPairs.head_pairs`.
        similarity: the relatedness judge: None (default) the fixed :func:`reference_judge` (SmolLM2's input
            embeddings, the same for every model analysed); ``"own"`` the analysed model's input embeddings
            (circular; a labelled option); or any ``callable(words_a, words_b) -> [len a, len b]``.
        vocabulary: words (default: 20,000 frequent English words from wordfreq, plus the instruction verbs
            and the general comparison verbs) or precomputed input-embedding :class:`WordVectors`.
        reference: the words a threshold is computed against: a count of most frequent words (paper:
            3,000) or a list.
        z: threshold = mean + z * std of a word's similarities to the reference words (paper: 1.96).
        progress: progress bar over layers.

    Returns:
        :class:`WordPairs` for all analysed heads.
    """
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    chosen = sorted(range(n_layers) if layers is None else check_layers(model, layers))
    head_list = (
        list(range(n_heads))
        if heads is None
        else sorted(check_units(list(heads), (n_heads,), names=("head",), what="heads").tolist())
    )
    ctx = _context(model, vocabulary=vocabulary, similarity=similarity, reference=reference, z=z)
    return _extract(
        model, {layer: head_list for layer in chosen}, ctx, top_dims, top_words, min_dims, counting, progress
    )


def layer_word_pairs(model, layer: int, **kwargs) -> WordPairs:
    """:func:`model_word_pairs` for every head of one layer (same keyword arguments)."""
    return model_word_pairs(model, layers=[check_layer(model, layer)], **kwargs)


def head_word_pairs(
    model,
    layer: int,
    head: int,
    *,
    top_dims: int | None = None,
    top_words: int = 100,
    min_dims: int = 2,
    counting: Literal["authors", "ordered"] = "authors",
    similarity: Similarity | Literal["own"] | None = None,
    vocabulary: Sequence[str] | WordVectors | None = None,
    reference: int | Sequence[str] = 3000,
    z: float = 1.96,
) -> WordPairs:
    """Word pairs of one attention head (see :func:`model_word_pairs` for the arguments).

    Examples:
        >>> from instr_interp import tiny_model
        >>> wp = head_word_pairs(tiny_model(), 0, 1, vocabulary=["cat", "dog", "sun", "moon"], reference=["a", "b", "c"],
        ...                      similarity="own")
        >>> wp.heads
        [(0, 1)]
    """
    return model_word_pairs(
        model,
        layers=[check_layer(model, layer)],
        heads=[head],
        top_dims=top_dims,
        top_words=top_words,
        min_dims=min_dims,
        counting=counting,
        similarity=similarity,
        vocabulary=vocabulary,
        reference=reference,
        z=z,
        progress=False,
    )


# ------------------------------------------------------------------------------------------------
# Instruction verbs before vs after tuning


def _groups(pairs: WordPairs, n_layers: int | None, group: int | None, n_groups: int | None):
    n_layers = n_layers or pairs.settings.get("n_layers") or max(layer for layer, _ in pairs.heads) + 1
    return layer_groups(n_layers, group=group, n_groups=n_groups)


def verb_pair_counts(
    pairs: WordPairs,
    words: Sequence[str] = INSTRUCTION_VERBS,
    *,
    n_layers: int | None = None,
    group: int | None = 8,
    n_groups: int | None = None,
) -> pd.DataFrame:
    """Head-level pairs that contain one of ``words``, per layer group (works for any model).

    Returns:
        DataFrame: ``group``, ``layers``, ``n_heads``, ``pairs`` (all head-level pairs), ``word_pairs``
        (those containing a listed word), ``per_head``, ``share`` (``word_pairs / pairs``), ``top``
        (the most frequent such pairs).
    """
    frame = pairs.head_pairs()
    wanted = set(words)
    hit = frame["query"].isin(wanted) | frame["key"].isin(wanted)
    heads = pairs.heads
    rows = []
    for index, members in enumerate(_groups(pairs, n_layers, group, n_groups)):
        in_group = frame["layer"].isin(members)
        n_heads = sum(layer in members for layer, _ in heads)
        if not n_heads:
            continue
        sub = frame[in_group & hit]
        common = (sub["query"] + "→" + sub["key"]).value_counts().head(5)
        rows.append(
            {
                "group": index,
                "layers": layer_label(members),
                "n_heads": n_heads,
                "pairs": int(in_group.sum()),
                "word_pairs": len(sub),
                "per_head": len(sub) / n_heads,
                "share": len(sub) / max(int(in_group.sum()), 1),
                "top": ", ".join(f"{p} ({c})" for p, c in common.items()),
            }
        )
    return pd.DataFrame(rows)


def word_shift_scores(
    base: WordPairs,
    ft: WordPairs,
    words: Sequence[str],
    *,
    n_layers: int | None = None,
    group: int | None = 8,
    n_groups: int | None = None,
) -> pd.DataFrame:
    """Per word and layer group: over heads, 1 where ft has more head-level pairs with the word, 0 where fewer.

    Ties (including 0 vs 0) are excluded. ``score`` is the mean over the non-tied heads (NaN if all tie).
    """
    if base.heads != ft.heads:
        raise ValueError(
            "base and ft were analysed on different heads; word shifts need the same architecture "
            "and the same layers/heads (use verb_pair_counts to compare different models)."
        )
    words = list(dict.fromkeys(words))
    cb, cf = base.word_counts(words), ft.word_counts(words)
    rows = []
    for index, members in enumerate(_groups(base, n_layers, group, n_groups)):
        cols = [c for c in cb.columns if c[0] in members]
        if not cols:
            continue
        up = (cf[cols] > cb[cols]).sum(axis=1)
        down = (cf[cols] < cb[cols]).sum(axis=1)
        total_base, total_ft = cb[cols].sum(axis=1), cf[cols].sum(axis=1)
        for w in words:
            n = int(up[w] + down[w])
            rows.append(
                {
                    "group": index,
                    "layers": layer_label(members),
                    "word": w,
                    "up": int(up[w]),
                    "down": int(down[w]),
                    "score": up[w] / n if n else float("nan"),
                    "pairs_base": int(total_base[w]),
                    "pairs_ft": int(total_ft[w]),
                }
            )
    return pd.DataFrame(rows)


def instruction_verb_shift(
    base,
    ft,
    *,
    layers: Sequence[int] | None = None,
    group: int | None = 8,
    n_groups: int | None = None,
    verbs: Sequence[str] = INSTRUCTION_VERBS,
    general: Sequence[str] | None = None,
    progress: bool = True,
    **pair_kwargs,
) -> pd.DataFrame:
    """Do fine-tuned heads encode more pairs with instruction verbs than with general verbs? (Welch t-test)

    Both models must have been judged by the same relatedness judge (their ``settings["similarity"]``);
    the default judge is the fixed :func:`reference_judge` for both.

    Args:
        base, ft: two models of the same architecture, or their :class:`WordPairs` (from
            :func:`model_word_pairs`; pass those to reuse a computation).
        layers: layers to analyse when models are passed (default all).
        group: layers per group (paper: 8); or ``n_groups`` near-equal groups.
        verbs: the instruction verbs (default: the 38 of METHODS.md section 7).
        general: comparison verbs (default: :func:`~instr_interp.shift.vocabulary.general_verbs`, the 3,000
            most frequent verbs of the offline lexicon, stopwords and instruction verbs excluded: the authors'
            recipe).
        progress: progress bars.
        **pair_kwargs: passed to :func:`model_word_pairs`.

    Returns:
        DataFrame, one row per layer group: ``n_instruction`` / ``n_general`` (words with a non-tied head),
        ``instruction_mean`` / ``general_mean`` (mean per-word score: share of non-tied heads where ft has
        more pairs), ``t``, ``p_two_sided`` (the authors' test: scipy's two-sided Welch), ``p_greater``
        (one-sided: instruction > general), and the summed pair counts of the instruction verbs before and
        after.
    """
    general = list(general) if general is not None else general_verbs()
    overlap = set(verbs) & set(general)
    if overlap:
        raise ValueError(f"general verbs must not include instruction verbs: {sorted(overlap)}.")
    n_layers = None
    if not isinstance(base, WordPairs) or not isinstance(ft, WordPairs):
        if isinstance(base, WordPairs) or isinstance(ft, WordPairs):
            raise ValueError("Pass two models or two WordPairs, not one of each.")
        if (
            model_facts(base).architecture != model_facts(ft).architecture
            or base.cfg.n_layers != ft.cfg.n_layers
        ):
            raise ValueError(
                "instruction_verb_shift compares the same architecture before and after tuning; for "
                "different models use verb_pair_counts on each."
            )
        n_layers = base.cfg.n_layers
        vocab = pair_kwargs.pop("vocabulary", None)
        if vocab is not None and not isinstance(vocab, WordVectors):
            vocab = list(dict.fromkeys(list(vocab) + list(verbs) + general))
        base = model_word_pairs(base, layers=layers, vocabulary=vocab, progress=progress, **pair_kwargs)
        ft = model_word_pairs(ft, layers=layers, vocabulary=vocab, progress=progress, **pair_kwargs)
    judges = (base.settings.get("similarity"), ft.settings.get("similarity"))
    if None not in judges and judges[0] != judges[1]:
        raise ValueError(
            f"base and ft were judged by different relatedness judges ({judges[0]!r} vs {judges[1]!r}); compare "
            "pairs found with one judge for both (the default fixed judge, similarity=None)."
        )
    missing = [w for w in list(verbs) + general if w not in set(base.words)]
    scores = word_shift_scores(
        base, ft, list(verbs) + general, n_layers=n_layers, group=group, n_groups=n_groups
    )
    rows = []
    for (index, layers_label), part in scores.groupby(["group", "layers"], sort=True):
        a = part[part["word"].isin(verbs)]
        b = part[part["word"].isin(general)]
        sa, sb = a["score"].dropna().to_numpy(), b["score"].dropna().to_numpy()
        two, one = welch(sa, sb), welch(sa, sb, alternative="greater")
        t, p2, p1 = two.statistic, two.p_value, one.p_value
        rows.append(
            {
                "group": index,
                "layers": layers_label,
                "n_instruction": len(sa),
                "n_general": len(sb),
                "instruction_mean": float(sa.mean()) if len(sa) else float("nan"),
                "general_mean": float(sb.mean()) if len(sb) else float("nan"),
                "t": float(t),
                "p_greater": float(p1),
                "p_two_sided": float(p2),
                "note": two.note,
                "instruction_pairs_base": int(a["pairs_base"].sum()),
                "instruction_pairs_ft": int(a["pairs_ft"].sum()),
            }
        )
    out = pd.DataFrame(rows)
    out.attrs["missing_words"] = missing
    return out


def top_verb_pairs(pairs: WordPairs, words: Sequence[str] = INSTRUCTION_VERBS, k: int = 15) -> pd.DataFrame:
    """The ``k`` head-level pairs containing one of ``words`` seen most often (``count``)."""
    frame = pairs.head_pairs()
    wanted = set(words)
    frame = frame[frame["query"].isin(wanted) | frame["key"].isin(wanted)]
    return (
        frame.sort_values(
            ["count", "layer", "head", "query", "key"],
            ascending=[False, True, True, True, True],
            kind="stable",
        )
        .head(k)
        .reset_index(drop=True)
    )
