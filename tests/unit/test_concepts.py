import numpy as np
import pandas as pd
import pytest
import torch
import wordfreq

import instr_interp as ii
from instr_interp.shift.concepts import (
    Concepts,
    compare_concepts,
    concept_shares,
    down_projection,
    ffn_concepts,
    layer_groups,
)
from instr_interp.shift.lexicon import lexicon_labeller
from instr_interp.shift.vocabulary import INSTRUCTION_VERBS, frequent_words, general_verbs, word_vectors
from tests.typecheck import bad_input

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
    "code",
    "loop",
    "sum",
    "poem",
]


def test_svd_matches_numpy(tiny):
    c = ffn_concepts(tiny, 1, n_components=20, top_words=5, vocabulary=WORDS)
    w = (
        tiny.original_model.model.layers[1].mlp.down_proj.weight.detach().numpy().T.astype(np.float64)
    )  # [d_mlp, d_model]
    centred = w - w.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(c.singular_values.numpy(), s[:20], rtol=1e-5)
    np.testing.assert_allclose(c.explained_variance_ratio.numpy(), (s**2 / (s**2).sum())[:20], rtol=1e-5)
    signs = np.sign((c.components.numpy() * vt[:20]).sum(1))
    assert set(signs.tolist()) <= {-1.0, 1.0}
    np.testing.assert_allclose(c.components.numpy(), vt[:20] * signs[:, None], atol=1e-5)
    # the sign convention: each component's largest-magnitude entry is positive
    comps = c.components.numpy()
    assert (comps[np.arange(20), np.abs(comps).argmax(1)] > 0).all()


def test_components_capped_at_rank():
    model = ii.tiny_model(seed=1, d_mlp=32)  # centred 32 x 64 matrix has rank 31
    c = ffn_concepts(model, 0, n_components=300, top_words=3, vocabulary=WORDS)
    assert c.n_components == 31 and c.settings["rank"] == 31
    assert c.explained_variance_ratio.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_top_words_match_hand_computed_projection(tiny):
    c = ffn_concepts(tiny, 0, n_components=6, top_words=4, vocabulary=WORDS)
    w_u = tiny.original_model.lm_head.weight.detach().double()  # [d_vocab, d_model]
    unit = []
    for word in WORDS:  # byte-level tokenizer: " cat" -> [space, c, a, t]; the space is dropped
        rows = w_u[[tiny.tokenizer.convert_tokens_to_ids(ch) for ch in word]].mean(0)
        unit.append(rows / rows.norm())
    scores = c.components.double() @ torch.stack(unit).T
    for k in range(6):
        order = sorted(range(len(WORDS)), key=lambda i: -abs(scores[k, i].item()))[:4]
        assert c.top_words(k) == [WORDS[i] for i in order]
        np.testing.assert_allclose(c.top_scores[k].numpy(), scores[k, order].numpy(), rtol=1e-4, atol=1e-6)


def test_pluggable_labeller_and_errors(tiny):
    seen = []

    def labeller(words):
        seen.append(list(words))
        return {"task": "math" if "sum" in words else "none", "level": "semantics", "custom": len(words)}

    c = ffn_concepts(
        tiny, 0, n_components=4, top_words=10, vocabulary=WORDS, labeller=labeller, label_words=3
    )
    assert len(seen) == 4 and all(len(s) == 3 for s in seen)
    assert [lab["custom"] for lab in c.labels] == [3] * 4
    assert seen[0] == c.top_words(0, 3)
    with pytest.raises(ValueError, match="labeller must return a dict"):
        ffn_concepts(tiny, 0, n_components=2, vocabulary=WORDS, labeller=lambda w: "math")
    with pytest.raises(ValueError, match="layer must be"):
        down_projection(tiny, 7)
    with pytest.raises(ValueError, match="dense MLP"):
        down_projection(ii.tiny_model(moe=True), 0)


def test_lexicon_labeller_hand_cases():
    assert lexicon_labeller(["python", "function", "loop", "cat", "return"]) == {
        "explainable": True,
        "tasks": ["coding"],
        "task": "coding",
        "level": "semantics",
    }
    # several task labels: every task with 2+ hits, most hits first
    both = lexicon_labeller(["python", "function", "loop", "equation", "sum", "sky"])
    assert both["tasks"] == ["coding", "math"] and both["task"] == "coding"
    assert lexicon_labeller(["equation", "sum", "integers", "tree", "rock"])["task"] == "math"
    assert lexicon_labeller(["translate", "french", "spanish", "dog"])["task"] == "translation"
    assert lexicon_labeller(["poem", "essay", "novel", "stories", "sky"])["task"] == "writing"
    # a tie (one coding word, one math word) or a single hit gives no task
    assert lexicon_labeller(["python", "equation", "sky"])["task"] == "none"
    assert lexicon_labeller(["python", "sky", "grass"])["task"] == "none"
    assert lexicon_labeller(["the", "of", "and", "with", "cat"])["level"] == "syntax"
    assert lexicon_labeller(["running", "jumping", "singing", "cat", "dog"])["level"] == "morphology"
    assert lexicon_labeller(["cat", "hat", "bat", "sky", "tree"])["level"] == "phonology"
    # no topic and no form rule: "cannot tell", left out of the shares
    unexplained = {"explainable": False, "tasks": [], "task": "none", "level": "cannot tell"}
    assert lexicon_labeller(["cat", "dog", "horse", "cow", "sheep"]) == unexplained
    assert lexicon_labeller([]) == unexplained


def test_layer_groups():
    assert layer_groups(30, group=8) == [
        list(range(0, 8)),
        list(range(8, 16)),
        list(range(16, 24)),
        list(range(24, 30)),
    ]
    assert layer_groups(18, n_groups=3) == [list(range(0, 6)), list(range(6, 12)), list(range(12, 18))]
    assert [len(g) for g in layer_groups(30, n_groups=4)] == [7, 8, 7, 8]
    with pytest.raises(ValueError):
        layer_groups(4, group=0)


def test_concept_shares_count_labels(tiny):
    model = ii.tiny_model(seed=0, n_layers=3)

    def labeller(words):  # deterministic, exercising unexplainable and multi-task components
        k = sum(map(len, words)) % 4
        return {
            "explainable": k != 0,
            "tasks": [["math"], ["math", "coding"], []][k - 1] if k else [],
            "level": ["cannot tell", "syntax", "semantics", "semantics"][k],
        }

    kwargs = dict(n_components=10, top_words=15, vocabulary=WORDS, labeller=labeller)
    shares = concept_shares(model, group=2, progress=False, **kwargs)
    assert shares["layers"].unique().tolist() == ["0-2", "0-1", "2"] and shares[
        "group"
    ].unique().tolist() == [-1, 0, 1]
    labels = {layer: ffn_concepts(model, layer, **kwargs).labels for layer in range(3)}
    for group, layers in ((-1, [0, 1, 2]), (0, [0, 1]), (1, [2])):
        labs = [lab for layer in layers for lab in labels[layer]]
        explained = [lab for lab in labs if lab["explainable"]]
        got = shares[shares["group"] == group].set_index(["axis", "label"])
        assert got.loc[("explainable", "cannot tell"), "count"] == len(labs) - len(explained)
        assert got.loc[("task", "math"), "count"] == sum("math" in lab["tasks"] for lab in explained)
        assert got.loc[("task", "none"), "count"] == sum(not lab["tasks"] for lab in explained)
        assert got.loc[("task", "math"), "share"] == pytest.approx(
            sum("math" in lab["tasks"] for lab in explained) / len(explained)
        )
        assert got.loc[("level", "syntax"), "n"] == len(explained)
        np.testing.assert_allclose(
            got.loc["level", "share"].sum(), 1.0
        )  # one level per explainable component
        assert got["n_components"].iloc[0] == 10 * len(layers)


def test_compare_concepts_hand_frames():
    from instr_interp.shift.concept_shares import label_counts, task_label_summary

    def labels(n_math, n_none, n_unexplained):
        return (
            [{"explainable": True, "tasks": ["math"], "level": "semantics"}] * n_math
            + [{"explainable": True, "tasks": [], "level": "syntax"}] * n_none
            + [{"explainable": False, "tasks": [], "level": "cannot tell"}] * n_unexplained
        )

    a = label_counts(labels(3, 27, 10)).assign(group=-1, layers="0-7")
    b = label_counts(labels(12, 18, 50)).assign(group=-1, layers="0-7")
    out = compare_concepts(a, b, names=("base", "ft")).set_index(["axis", "label"])
    row = out.loc[("task", "math")]
    assert (row["count_base"], row["n_base"], row["count_ft"], row["n_ft"]) == (3, 30, 12, 30)
    assert row["diff"] == pytest.approx(0.3)  # over explainable components only
    from scipy.stats import fisher_exact

    assert row["p_value"] == pytest.approx(fisher_exact([[12, 18], [3, 27]]).pvalue)

    def wilson(x, n, z=1.959963984540054):  # Newcombe (1998) method 10, by hand
        p = x / n
        c, h = p + z * z / (2 * n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        return (c - h) / (1 + z * z / n), (c + h) / (1 + z * z / n)

    (la, ua), (lb, ub) = wilson(3, 30), wilson(12, 30)
    assert row["ci_low"] == pytest.approx(0.3 - np.sqrt((0.4 - lb) ** 2 + (ua - 0.1) ** 2))
    assert row["ci_high"] == pytest.approx(0.3 + np.sqrt((ub - 0.4) ** 2 + (0.1 - la) ** 2))
    assert out.loc[("explainable", "cannot tell"), "share_ft"] == pytest.approx(50 / 80)
    s = task_label_summary(b)
    assert (s["total"], s["explainable"], s["labelled"]) == (80, 30, 12) and s["tasks"][
        "math"
    ] == pytest.approx(0.4)
    assert s["levels"]["syntax"] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="different layer groups"):
        compare_concepts(a, b.assign(group=1))
    with pytest.raises(ValueError, match="missing columns"):
        compare_concepts(a.drop(columns=["n"]), b)


def test_save_load_round_trip(tiny, tmp_path):
    c = ffn_concepts(tiny, 0, n_components=5, top_words=4, vocabulary=WORDS)
    c.save(tmp_path / "c")
    back = Concepts.load(tmp_path / "c")
    assert torch.equal(back.components, c.components) and torch.equal(back.top_word_ids, c.top_word_ids)
    assert back.labels == c.labels and back.words == c.words and back.layer == 0
    assert back.to_frame().equals(c.to_frame())
    assert len(c.plot().data) >= 1


def test_frequent_words_from_wordfreq():
    words = frequent_words(500)
    expected = [w for w in wordfreq.top_n_list("en", 2000) if w.isalpha() and w.isascii()][:500]
    assert words == expected and len(words) == 500
    assert words[:3] == ["the", "to", "and"]
    verbs = general_verbs(30)
    assert len(verbs) == 30 and not set(verbs) & set(INSTRUCTION_VERBS)
    freqs = [wordfreq.word_frequency(v, "en") for v in verbs]
    assert freqs == sorted(freqs, reverse=True)
    with pytest.raises(ValueError):
        frequent_words(0)


def test_word_vectors_unembed_vs_embed(tiny):
    uv = word_vectors(tiny, ["sun", "sun", "moon"], matrix="unembed")
    assert uv.words == ["sun", "moon"]
    ids = [tiny.tokenizer.convert_tokens_to_ids(ch) for ch in "moon"]
    torch.testing.assert_close(uv.vectors[1], tiny.W_U.T[ids].mean(0).detach())
    with bad_input("matrix must be"):
        word_vectors(tiny, ["sun"], matrix="both")
    with bad_input("list of words"):
        word_vectors(tiny, "sun")


def test_concepts_section_states_the_numbers():
    from scipy.stats import fisher_exact

    from instr_interp.report.sections_shift import concepts_section
    from instr_interp.shift.concept_shares import label_counts

    def frame(n_math):
        labels = (
            [{"explainable": True, "tasks": ["math", "coding"], "level": "semantics"}] * n_math
            + [{"explainable": True, "tasks": [], "level": "syntax"}] * (10 - n_math)
            + [{"explainable": False, "tasks": [], "level": "cannot tell"}] * 10
        )
        half = len(labels) // 2
        return pd.concat(
            [
                label_counts(labels).assign(group=-1, layers="0-7"),
                label_counts(labels[:half]).assign(group=0, layers="0-3"),
                label_counts(labels[half:]).assign(group=1, layers="4-7"),
            ],
            ignore_index=True,
        )

    section = concepts_section({"base": frame(1), "tuned": frame(6)})
    assert "base: 10 of 20 components (50.0%) are explainable; of those, 1 (10.0%)" in section.reading
    assert "tuned: 10 of 20 components (50.0%) are explainable; of those, 6 (60.0%)" in section.reading
    p = fisher_exact([[6, 4], [1, 9]]).pvalue
    assert "+50.0% for coding" in section.reading and f"Fisher's exact p = {p:.3g}" in section.reading
    assert len(section.figures) == 4 and len(section.tables) == 3
    diff = section.tables[-1]
    pooled = diff[(diff["label"] == "math") & (diff["group"] == -1)]
    assert pooled["diff"].tolist() == [0.5]
    with pytest.raises(ValueError):
        concepts_section({})
