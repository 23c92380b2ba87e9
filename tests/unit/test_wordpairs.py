import math

import numpy as np
import pytest
import torch
from scipy.stats import ttest_ind

import instr_interp as ii
from instr_interp.models import _boot, tiny_tokenizer
from instr_interp.shift.vocabulary import word_vectors
from instr_interp.shift.wordpairs import (
    EmbeddingSimilarity,
    WordPairs,
    attention_norm_gain,
    head_qk,
    head_word_pairs,
    instruction_verb_shift,
    model_word_pairs,
    relatedness_thresholds,
    verb_pair_counts,
    word_shift_scores,
)

WORDS = [
    "cat",
    "dog",
    "sun",
    "moon",
    "tree",
    "leaf",
    "rock",
    "sand",
    "fish",
    "bird",
    "rain",
    "snow",
    "wind",
    "fire",
    "milk",
    "bread",
    "apple",
    "grape",
    "stone",
    "cloud",
    "river",
    "lake",
    "hill",
    "road",
]


# ---------------------------------------------------------------------------------------------
# A hand-built model with a word-level vocabulary


def word_tokenizer(words):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, **{w: i + 2 for i, w in enumerate(words)}}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="<unk>", bos_token="<s>", eos_token="<s>", pad_token="<s>"
    )
    tok.init_kwargs["name_or_path"] = "test/word-level"
    tok.init_kwargs["add_bos_token"] = True
    return tok


def planted_model(q_star="cat", k_star="moon", seed=0):
    """One layer, 2 query heads sharing 1 KV head; head 0 plants (q_star, k_star) in dimensions 0 and 1."""
    import transformers as tf

    d_model, d_head = 16, 8
    tok = word_tokenizer(WORDS)
    config = tf.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=d_model,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=d_head,
        max_position_embeddings=64,
        bos_token_id=1,
        eos_token_id=1,
        pad_token_id=1,
        tie_word_embeddings=False,
    )
    config.architectures = ["LlamaForCausalLM"]
    torch.manual_seed(seed)
    hf = tf.AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(seed)
    u = torch.zeros(d_model)
    u[0] = 1.0  # the planted direction
    emb = torch.randn(len(tok), d_model, generator=g)
    emb[:, 0] = 0.0  # every other word is orthogonal to u
    qi, ki = tok.convert_tokens_to_ids([q_star, k_star])
    shared = torch.randn(d_model, generator=g) * 0.2
    shared[0] = 0.0
    emb[qi] = 3.0 * u + shared + 0.05 * torch.randn(d_model, generator=g)
    emb[ki] = 3.0 * u + shared + 0.05 * torch.randn(d_model, generator=g)
    gain = torch.linspace(0.5, 2.0, d_model)
    layer = hf.model.layers[0]
    with torch.no_grad():
        hf.model.embed_tokens.weight.copy_(emb)
        layer.input_layernorm.weight.copy_(gain)
        w_q = torch.randn(2 * d_head, d_model, generator=g) * 0.05  # [out, in] as in nn.Linear
        w_k = torch.randn(d_head, d_model, generator=g) * 0.05
        for dim, sign in ((0, 1.0), (1, -1.0)):  # both dims: H_Q[q*] H_K[k*] > 0
            w_q[dim] = sign * 4.0 * u / gain
            w_k[dim] = sign * 4.0 * u / gain
        layer.self_attn.q_proj.weight.copy_(w_q)
        layer.self_attn.k_proj.weight.copy_(w_k)
    return _boot("test/planted", hf, tok, torch.device("cpu"), None)


@pytest.fixture(scope="module")
def planted():
    return planted_model()


def test_planted_pair_is_recovered(planted):
    kwargs = dict(top_dims=3, top_words=4, vocabulary=WORDS, reference=WORDS, similarity="own")
    wp = head_word_pairs(planted, 0, 0, **kwargs)
    pairs = wp.head_pairs()
    # the authors' counting: one unordered pair, seen in 2 dimensions x 2 orientations
    assert pairs[["query", "key", "count", "n_dims"]].values.tolist() == [["cat", "moon", 4, 2]]
    ordered = head_word_pairs(planted, 0, 0, counting="ordered", **kwargs).head_pairs()
    assert set(zip(ordered["query"], ordered["key"])) == {("cat", "moon"), ("moon", "cat")}
    assert sorted(ordered["n_dims"]) == [2, 2] and sorted(ordered["count"]) == [2, 2]
    assert "own input-embedding" in wp.settings["similarity"]
    # dims 0 and 1 carry the planted energy; candidates include unrelated words, none is kept
    assert set(wp.top_dims[:2, 2].tolist()) == {0, 1}
    frame = wp.to_frame()
    assert set(frame["query"]) | set(frame["key"]) == {"cat", "moon"}
    # an independent relatedness saying nothing is related removes everything
    none = head_word_pairs(
        planted,
        0,
        0,
        top_dims=3,
        top_words=4,
        vocabulary=WORDS,
        reference=WORDS,
        similarity=lambda a, b: torch.zeros(len(a), len(b)),
    )
    assert none.to_frame().empty


def test_pluggable_similarity_decides_relatedness(planted):
    # a similarity relating only (cat, moon): the planted pair survives; (dog, sun) would, but never co-occurs
    def sim(a, b):
        out = torch.zeros(len(a), len(b))
        for i, x in enumerate(a):
            for j, y in enumerate(b):
                out[i, j] = 1.0 if {x, y} in ({"cat", "moon"}, {"dog", "sun"}) else 0.0
        return out

    wp = head_word_pairs(
        planted, 0, 0, top_dims=2, top_words=6, vocabulary=WORDS, reference=WORDS, similarity=sim
    )
    assert set(zip(wp.head_pairs()["query"], wp.head_pairs()["key"])) == {("cat", "moon")}


# ---------------------------------------------------------------------------------------------
# Folded weights against direct computations


def _linearised_rms(module, x):
    """module(x) * rms(x): the norm with its RMS division undone (its gain only)."""
    eps = float(getattr(module, "variance_epsilon", getattr(module, "eps", 1e-6)))
    with torch.no_grad():
        return module(x) * torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def test_gqa_and_norm_folding_match_hf_modules():
    model = ii.tiny_model(seed=3, n_heads=4, n_kv_heads=2)
    layer = model.original_model.model.layers[1]
    with torch.no_grad():
        layer.input_layernorm.weight.copy_(torch.linspace(0.2, 3.0, 64))
    w_q, w_k = head_qk(model, 1)
    x = torch.randn(5, 64, generator=torch.Generator().manual_seed(1))
    normed = _linearised_rms(layer.input_layernorm, x)
    with torch.no_grad():
        q = layer.self_attn.q_proj(normed).view(5, 4, 16)
        k = layer.self_attn.k_proj(normed).view(5, 2, 16)
    for h in range(4):
        torch.testing.assert_close(x @ w_q[h], q[:, h], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(
            x @ w_k[h], k[:, h // 2], rtol=1e-5, atol=1e-5
        )  # heads 0,1 -> KV 0; 2,3 -> KV 1
    torch.testing.assert_close(attention_norm_gain(model, 1), torch.linspace(0.2, 3.0, 64))


def tiny_gemma3():
    import transformers as tf

    tok = tiny_tokenizer()
    config = tf.Gemma3TextConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=8,
        max_position_embeddings=64,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
        sliding_window=16,
        layer_types=["full_attention"],
    )
    config.architectures = ["Gemma3ForCausalLM"]
    torch.manual_seed(0)
    hf = tf.AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        attn = hf.model.layers[0].self_attn
        hf.model.layers[0].input_layernorm.weight.copy_(torch.randn(32, generator=g))
        attn.q_norm.weight.copy_(torch.randn(8, generator=g))
        attn.k_norm.weight.copy_(torch.randn(8, generator=g))
    return _boot("test/gemma3", hf, tok, torch.device("cpu"), None)


def test_gemma_offset_norms_fold_as_one_plus_w():
    model = tiny_gemma3()
    layer = model.original_model.model.layers[0]
    assert model.cfg.rmsnorm_uses_offset
    torch.testing.assert_close(attention_norm_gain(model, 0), 1.0 + layer.input_layernorm.weight.detach())
    w_q, w_k = head_qk(model, 0)
    x = torch.randn(3, 32, generator=torch.Generator().manual_seed(5))
    normed = _linearised_rms(layer.input_layernorm, x)
    with torch.no_grad():
        q = layer.self_attn.q_proj(normed).view(3, 4, 8)
        k = layer.self_attn.k_proj(normed).view(3, 1, 8)
    q = _linearised_rms(layer.self_attn.q_norm, q)
    k = _linearised_rms(layer.self_attn.k_norm, k)
    for h in range(4):
        torch.testing.assert_close(x @ w_q[h], q[:, h], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(x @ w_k[h], k[:, 0], rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# Relatedness and extraction against independent computations


def test_thresholds_match_numpy():
    words, ref = ["a", "b", "c"], ["a", "x", "y", "z"]
    mat = np.array([[1.0, 0.2, 0.4, 0.0], [0.5, 0.1, 0.3, 0.9], [0.3, 0.3, 0.6, 0.0]])

    def sim(a, b):
        return torch.tensor(mat[[words.index(w) for w in a]])

    # the authors' default: np.mean + 1.96 * np.std over all reference words ("a" included with itself)
    thr = relatedness_thresholds(sim, words, ref, z=1.96)
    np.testing.assert_allclose(thr.numpy(), mat.mean(1) + 1.96 * mat.std(1), rtol=1e-6)
    loo = relatedness_thresholds(sim, words, ref, z=1.96, exclude_self=True, ddof=1)
    rows = [mat[0, 1:], mat[1], mat[2]]  # "a" is not compared with itself
    expected = [r.mean() + 1.96 * r.std(ddof=1) for r in rows]
    np.testing.assert_allclose(loo.numpy(), expected, rtol=1e-6)


def test_embedding_similarity_is_cosine_of_mean_embedding_rows(tiny):
    sim = EmbeddingSimilarity(tiny)
    got = sim(["cat", "sun"], ["dog", "cat", "moon"])
    emb = tiny.W_E.detach()

    def vec(w):
        ids = [tiny.tokenizer.convert_tokens_to_ids(ch) for ch in w]  # byte-level: ASCII letters are tokens
        return emb[ids].mean(0)

    expected = torch.tensor(
        [
            [torch.cosine_similarity(vec(a), vec(b), dim=0).item() for b in ["dog", "cat", "moon"]]
            for a in ["cat", "sun"]
        ]
    )
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def reference_pairs(model, layer, head, words, ref, top_dims, top_words, z):
    """Plain numpy loops over dims and words (independent of the batched implementation)."""
    n_heads, n_kv = model.cfg.n_heads, model.cfg.n_key_value_heads
    hf = model.original_model.model.layers[layer]
    d_head = model.cfg.d_head
    gain = hf.input_layernorm.weight.detach().numpy()
    wq = hf.self_attn.q_proj.weight.detach().numpy()[head * d_head : (head + 1) * d_head].T * gain[:, None]
    kv = head // (n_heads // n_kv)
    wk = hf.self_attn.k_proj.weight.detach().numpy()[kv * d_head : (kv + 1) * d_head].T * gain[:, None]
    emb = model.W_E.detach().numpy()
    vec = {
        w: emb[[model.tokenizer.convert_tokens_to_ids(c) for c in w]].mean(0) for w in set(words) | set(ref)
    }
    e = np.stack([vec[w] for w in words])
    hq, hk = e @ wq, e @ wk

    def cos(a, b):
        return float(vec[a] @ vec[b] / np.linalg.norm(vec[a]) / np.linalg.norm(vec[b]))

    thr = {}
    for w in words:
        c = np.array([cos(w, r) for r in ref])
        thr[w] = c.mean() + z * c.std()
    energy = (hq**2).sum(0) + (hk**2).sum(0)
    pairs = set()
    for d in np.argsort(-energy)[:top_dims]:
        qs = np.argsort(-np.abs(hq[:, d]), kind="stable")[:top_words]
        ks = np.argsort(-np.abs(hk[:, d]), kind="stable")[:top_words]
        for q in qs:
            for k in ks:
                c = cos(words[q], words[k])
                if q != k and c > max(thr[words[q]], thr[words[k]], 0) and hq[q, d] * hk[k, d] > 0:
                    pairs.add((int(d), words[q], words[k]))
    return pairs


def test_extraction_matches_independent_loops(tiny):
    words = WORDS + ["cats", "dogs", "suns", "moons", "trees", "rocks"]
    wp = model_word_pairs(
        tiny,
        layers=[1],
        top_dims=4,
        top_words=8,
        vocabulary=words,
        reference=WORDS,
        z=0.5,
        similarity="own",
        progress=False,
    )
    sizes = []
    for head in range(tiny.cfg.n_heads):
        got = {
            (d, q, k)
            for _, _, d, q, k in wp.select(1, head)
            .to_frame()[["layer", "head", "dim", "query", "key"]]
            .itertuples(index=False)
        }
        expected = reference_pairs(tiny, 1, head, words, WORDS, 4, 8, 0.5)
        assert got == expected
        sizes.append(len(expected))
    assert min(sizes) > 0


def test_batched_heads_equal_single_heads(tiny):
    kwargs = dict(top_dims=3, top_words=6, vocabulary=WORDS, reference=WORDS, similarity="own")
    every = model_word_pairs(tiny, progress=False, **kwargs)
    assert every.heads == [(layer, h) for layer in range(2) for h in range(4)]
    for layer, head in every.heads:
        one = head_word_pairs(tiny, layer, head, **kwargs)
        assert one.to_frame().equals(every.select(layer, head).to_frame())
        assert one.head_pairs().equals(every.select(layer, head).head_pairs())


def test_word_vectors_drop_whitespace_and_empty(tiny):
    wv = word_vectors(tiny, ["cat", "", "sun"], matrix="embed")
    assert wv.words == ["cat", "sun"] and wv.dropped == [""]
    ids = [tiny.tokenizer.convert_tokens_to_ids(c) for c in "cat"]
    torch.testing.assert_close(wv.vectors[0], tiny.W_E[ids].mean(0).detach())
    assert wv.n_tokens.tolist() == [3, 3]


# ---------------------------------------------------------------------------------------------
# Result handling and the instruction-verb test on hand-built pairs


def hand_pairs(spec, heads):
    """spec: list of (layer, head, dim, q, k)."""
    words = sorted({w for s in spec for w in s[3:]} | {"write", "go", "run", "explain", "see"})
    idx = {w: i for i, w in enumerate(words)}
    rows = torch.tensor([[a, b, d, idx[q], idx[k]] for a, b, d, q, k in spec], dtype=torch.long).reshape(
        -1, 5
    )
    units = torch.tensor([[a, b, 0] for a, b in heads], dtype=torch.long)
    return WordPairs(
        words=words,
        dim_pairs=rows,
        scores=torch.ones(len(rows)),
        top_dims=units,
        dim_energy=torch.ones(len(units)),
    )


HEADS = [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_head_pairs_and_counts_hand_computed(tmp_path):
    wp = hand_pairs(
        [
            (0, 0, 1, "write", "essay"),
            (0, 0, 2, "write", "essay"),
            (0, 0, 2, "go", "home"),
            (0, 1, 1, "explain", "why"),
            (0, 1, 3, "explain", "why"),
            (0, 1, 5, "explain", "why"),
        ],
        HEADS,
    )
    pairs = wp.head_pairs(dims=True)
    assert pairs[["layer", "head", "query", "key", "n_dims"]].values.tolist() == [
        [0, 0, "write", "essay", 2],
        [0, 1, "explain", "why", 3],
    ]
    assert pairs["dims"].tolist() == [[1, 2], [1, 3, 5]]
    counts = wp.word_counts(["write", "go", "explain"])
    assert (
        counts.loc["write", (0, 0)] == 1
        and counts.loc["go", (0, 0)] == 0
        and counts.loc["explain", (0, 1)] == 1
    )
    assert int(counts.values.sum()) == 2 and counts.columns.tolist() == HEADS
    # a pair of two wanted words counts for each; a pair (w, w) counts once
    both = hand_pairs(
        [(1, 1, 1, "write", "go"), (1, 1, 2, "write", "go"), (1, 0, 1, "go", "go"), (1, 0, 4, "go", "go")],
        HEADS,
    ).word_counts(["go", "write", "essay"])
    assert both.values.tolist() == [[0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]]
    table = verb_pair_counts(wp, ["write", "explain"], n_layers=2, group=1)
    assert table["word_pairs"].tolist() == [2, 0] and table["n_heads"].tolist() == [2, 2]
    wp.save(tmp_path / "wp")
    back = WordPairs.load(tmp_path / "wp")
    assert back.to_frame().equals(wp.to_frame()) and back.head_pairs().equals(wp.head_pairs())


def test_instruction_verb_shift_hand_computed():
    def two(q, k, layer, head):
        return [(layer, head, 1, q, k), (layer, head, 2, q, k)]

    base = hand_pairs(two("write", "a", 0, 0) + two("go", "b", 0, 1) + two("see", "c", 1, 0), HEADS)
    ft = hand_pairs(
        two("write", "a", 0, 0)
        + two("write", "d", 0, 0)
        + two("explain", "e", 0, 1)
        + two("explain", "f", 1, 1)
        + two("run", "g", 0, 0)
        + two("see", "h", 1, 1),
        HEADS,
    )
    scores = word_shift_scores(base, ft, ["write", "explain", "go", "run", "see"], n_layers=2, group=2)
    s = scores.set_index("word")["score"]
    # write: head (0,0) 1 -> 2 up; explain: (0,1) 0->1 up, (1,1) 0->1 up; go: (0,1) 1->0 down;
    # run: (0,0) up; see: (1,0) 1->0 down, (1,1) 0->1 up
    assert s["write"] == 1 and s["explain"] == 1 and s["go"] == 0 and s["run"] == 1 and s["see"] == 0.5
    out = instruction_verb_shift(base, ft, group=2, verbs=["write", "explain"], general=["go", "run", "see"])
    row = out.iloc[0]
    t, p = ttest_ind([1.0, 1.0], [0.0, 1.0, 0.5], equal_var=False)
    assert row["instruction_mean"] == 1 and row["general_mean"] == pytest.approx(0.5)
    assert row["t"] == pytest.approx(t) and row["p_two_sided"] == pytest.approx(p)
    assert row["instruction_pairs_base"] == 1 and row["instruction_pairs_ft"] == 4
    with pytest.raises(ValueError, match="must not include"):
        instruction_verb_shift(base, ft, verbs=["write"], general=["write", "go"])
    # one judge for both models: pairs judged by two different judges are refused
    other = hand_pairs([], HEADS)
    base.settings["similarity"], other.settings["similarity"] = "judge A", "judge B"
    with pytest.raises(ValueError, match="different relatedness judges"):
        instruction_verb_shift(base, other, verbs=["write"], general=["go"])
    with pytest.raises(ValueError, match="different heads"):
        word_shift_scores(base, hand_pairs([], HEADS[:2]), ["write"])
    assert math.isnan(word_shift_scores(base, base, ["write"], n_layers=2, group=2)["score"].iloc[0])


def test_bad_input_errors(tiny):
    with pytest.raises(ValueError, match="layer must be"):
        head_word_pairs(tiny, 5, 0, vocabulary=WORDS, reference=WORDS)
    with pytest.raises(ValueError, match="heads must be"):
        model_word_pairs(tiny, heads=[7], vocabulary=WORDS, reference=WORDS, progress=False)


def test_wordpairs_section_states_the_numbers():
    from instr_interp.report.sections_shift import wordpairs_section

    def two(q, k, layer, head):
        return [(layer, head, 1, q, k), (layer, head, 2, q, k)]

    base = hand_pairs(two("write", "a", 0, 0) + two("go", "b", 1, 1), HEADS)
    ft = hand_pairs(two("write", "a", 0, 0) + two("explain", "e", 0, 1) + two("go", "b", 1, 1), HEADS)
    base.settings["n_layers"] = ft.settings["n_layers"] = 2
    shift = instruction_verb_shift(
        base, ft, group=1, verbs=["write", "explain"], general=["go", "run", "see"]
    )
    section = wordpairs_section({"base": base, "ft": ft}, shift=shift, verbs=["write", "explain"], n_groups=2)
    assert "base: 2 head-level pairs over 4 heads, 1 of them (50.00%)" in section.reading
    assert "ft: 3 head-level pairs over 4 heads, 2 of them (66.67%)" in section.reading
    assert "explain→e (L0H1, seen 2×)" in section.reading
    counts = section.tables[0]
    assert counts[counts["model"] == "ft"]["per_head"].tolist() == [1.0, 0.0]
    assert section.tables[-1] is shift
    # layer 1 has no instruction verb on an untied head: said in words, not as nan
    assert (
        "layers 1: instruction verbs none (n=0)" in section.reading
        and "1-1" not in section.reading
        and "nan" not in section.reading
    )


# ---------------------------------------------------------------------------------------------
# Must hold: the defaults equal the authors' per-dimension recipe, and every dimension is read


CASED = WORDS + ["Cat", "Moon", "River", "Sun"]


def _judge_vectors(words):
    """An independent fixed judge: a random 6-d vector per lower-cased word (case variants share one)."""
    g = np.random.default_rng(7)
    table = {w: g.standard_normal(6) for w in sorted({w.lower() for w in words})}
    return {w: table[w.lower()] / np.linalg.norm(table[w.lower()]) for w in words}


def authors_recipe(model, layer, head, words, top_words):
    """Wu et al.'s att_explain + analysis_bilinear_interpret, re-written in numpy for one head: every dimension
    (ordered by energy), the top words per side, the judge's thresholds np.mean + 1.96 * np.std over the
    reference words (the first 3,000 words: here all of them), pairs "key=query" with similarity above both
    thresholds and above 0, a positive activation product and two different words; then per head a Counter
    of the sorted, lower-cased pairs over all dimensions' lists, kept when seen more than once."""
    import collections

    vec = _judge_vectors(words)
    base = np.stack([vec[w] for w in words])
    thr = {w: (vec[w] @ base.T).mean() + 1.96 * (vec[w] @ base.T).std() for w in words}
    hf = model.original_model.model.layers[layer]
    d_head, group = model.cfg.d_head, model.cfg.n_heads // model.cfg.n_key_value_heads
    gain = hf.input_layernorm.weight.detach().numpy()
    wq = hf.self_attn.q_proj.weight.detach().numpy()[head * d_head : (head + 1) * d_head].T * gain[:, None]
    kv = head // group
    wk = hf.self_attn.k_proj.weight.detach().numpy()[kv * d_head : (kv + 1) * d_head].T * gain[:, None]
    emb = model.W_E.detach().numpy()
    e = np.stack([emb[[model.tokenizer.convert_tokens_to_ids(c) for c in w]].mean(0) for w in words])
    hq, hk = e @ wq, e @ wk
    order = np.argsort(-((hq**2).sum(0) + (hk**2).sum(0)))
    lists = []
    for d in order:
        tq = np.argsort(-np.abs(hq[:, d]), kind="stable")[:top_words]
        tk = np.argsort(-np.abs(hk[:, d]), kind="stable")[:top_words]
        found = []
        for q in tq:
            for k in tk:
                s = vec[words[q]] @ vec[words[k]]
                keep = s > thr[words[q]] and s > thr[words[k]] and hq[q, d] * hk[k, d] > 0
                if keep and s > 0 and words[q] != words[k]:
                    found.append(words[k] + "=" + words[q])
        lists.append(found)
    counter = collections.Counter("=".join(sorted(p.lower().split("="))) for found in lists for p in found)
    return {pair: n for pair, n in counter.items() if n > 1}, len(order)


def test_defaults_equal_the_authors_recipe_and_read_every_dimension(tiny):
    vec = _judge_vectors(CASED)

    def judge(a, b):  # a plain callable: the extraction's per-dimension path
        return torch.tensor(np.array([[vec[x] @ vec[y] for y in b] for x in a]), dtype=torch.float32)

    class Batched:  # the same judge with unit vectors: the batched path
        label = "test judge"

        def unit_vectors(self, words):
            return torch.tensor(np.stack([vec[w] for w in words]), dtype=torch.float32)

        def __call__(self, a, b):
            return self.unit_vectors(a) @ self.unit_vectors(b).T

    total = 0
    for similarity in (judge, Batched()):
        wp = model_word_pairs(
            tiny, top_words=9, vocabulary=CASED, reference=CASED, similarity=similarity, progress=False
        )
        for layer, head in wp.heads:
            one = wp.select(layer, head)
            expected, n_dims = authors_recipe(tiny, layer, head, CASED, 9)
            # every head dimension is read
            assert n_dims == tiny.cfg.d_head and sorted(one.top_dims[:, 2].tolist()) == list(range(n_dims))
            pairs = one.head_pairs()
            got = {f"{q}={k}": n for q, k, n in pairs[["query", "key", "count"]].itertuples(index=False)}
            assert got == expected
            total += len(got)
    assert total > 0
    # lower-casing joined case variants: some head pairs a word with its capitalised form
    cased = [
        p
        for p in ("cat=cat", "moon=moon", "river=river", "sun=sun")
        for h in [wp.select(*x) for x in wp.heads]
        if p in {f"{q}={k}" for q, k in h.head_pairs()[["query", "key"]].itertuples(index=False)}
    ]
    assert cased
