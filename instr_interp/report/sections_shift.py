"""Report sections for the behaviour shift: input→output attribution, FFN concepts and attention-head
word pairs.

Each function only renders computed results; the statistics it states come from public analysis
functions (the paired and Welch tests and power of :func:`~instr_interp.shift.score_tests.compare_models` and of
:func:`~instr_interp.shift.wordpairs.instruction_verb_shift` are run by the stage and passed in).
"""

from collections.abc import Iterable, Sequence

import pandas as pd

from ..shift.attribution import SPARSIFY_LEVELS, SPARSIFY_THRESHOLD, Attribution, AttributionSet
from ..shift.concept_shares import POOLED, compare_concepts, plot_shares, task_label_summary
from ..shift.score_tests import ScoreComparison
from ..shift.vocabulary import INSTRUCTION_VERBS
from ..shift.wordpairs import WordPairs, top_verb_pairs, verb_pair_counts
from .page import Section
from .paper_numbers import PAPER_NUMBERS

__all__ = ["attribution_sections", "attribution_study_section", "concepts_section", "wordpairs_section"]


def _std_text(x: float) -> str:
    """0.484 -> '.484' (the papers' style for a std)."""
    text = f"{x:.3f}"
    return text[1:] if text.startswith("0.") else text


def _relatedness(pairs: Iterable[WordPairs]) -> str:
    """The relatedness cut of the word pairs, from their settings (``z`` and the reference size)."""
    found = {(p.settings.get("z"), p.settings.get("n_reference")) for p in pairs}
    if len(found) == 1 and None not in next(iter(found)):
        z, n = next(iter(found))
        return f"{z:g} std over the {n:,} most frequent words"
    return "z std over a reference list of frequent words (see each result's settings)"


def attribution_sections(
    example: Attribution,
    comparisons: dict[str, AttributionSet] | None = None,
    tests: dict[str, ScoreComparison] | None = None,
    *,
    alpha: float = 0.05,
) -> list:
    """Report sections: one attributed example, and the instruction-score comparison.

    Args:
        example: one :class:`~instr_interp.shift.attribution.Attribution` to show (circuitsvis views + heatmap).
        comparisons: ``{label: AttributionSet}`` in order; the first entry is the reference (e.g. a
            base model).
        tests: ``{label: compare_models(reference, comparisons[label])}`` for every later label (paired
            and Welch tests of higher scores than the reference on the same prompts, with the power of
            this sample), run by the caller.
        alpha: significance level the reading states.

    Returns:
        A list of two ``Section`` objects (one when ``comparisons`` is empty).
    """
    sections = [_example_section(example)]
    if not comparisons:
        return sections
    labels = list(comparisons)
    tests = tests or {}
    missing = [label for label in labels[1:] if label not in tests]
    if missing:
        raise ValueError(
            f"No test for {missing}: pass tests={{label: compare_models(comparisons[{labels[0]!r}], "
            "comparisons[label])}} for every label after the first."
        )
    sections.append(_scores_section(comparisons, tests, alpha))
    return sections


def _example_section(example: Attribution) -> Section:
    """One attributed example: circuitsvis views, the heatmap and its densest prompt tokens."""
    top = example.top_tokens(5)
    n_instr = int(example.instruction_mask.sum())
    reading = (
        f"Record {example.id or '(raw prompt)'}: {len(example.response_positions)} response tokens attributed to "
        f"{len(example.prompt_positions)} prompt tokens ({n_instr} of them instruction tokens) by gradient × "
        f"input of each token's probability. After keeping only attributions above "
        f"{SPARSIFY_THRESHOLD / SPARSIFY_LEVELS:g} of each response token's "
        f"maximum, the instruction tokens hold {example.instruction_share:.0%} of the prompt's importance density; "
        f"the instruction score is {example.instruction_score:.3f}. The densest prompt tokens are "
        + ", ".join(
            f"{t!r} ({d:.2f}{', instruction' if i else ''})"
            for t, d, i in zip(top["token"], top["density"], top["instruction"])
        )
        + "."
    )
    return Section(
        title="Input→output attribution: one example",
        reading=reading,
        figures=[example.plot()],
        tables=[top],
        html=example.html(),
    )


def _scores_section(
    comparisons: dict[str, AttributionSet], tests: dict[str, ScoreComparison], alpha: float
) -> Section:
    """The instruction scores of every model against the first (the reference), with the tests' reading."""
    import plotly.express as px

    labels = list(comparisons)
    frame = pd.concat(
        [s.to_frame().assign(model=label) for label, s in comparisons.items()], ignore_index=True
    )
    fig = px.box(
        frame,
        x="model",
        y="instruction_score",
        points="all",
        color="model",
        title="Instruction score per record (each model attributes its own greedy response)",
    )
    tables, sentences = [], []
    for label in labels[1:]:
        summary = tests[label].summary
        tables.append(pd.DataFrame([{"a": labels[0], "b": label, **summary}]))
        sentences.append(_test_sentence(label, labels[0], summary, alpha))
    paper = PAPER_NUMBERS["instruction_score_lima"]
    formats = sorted({s.settings.get("format", "?") for s in comparisons.values()})
    reading = (
        "The instruction score sums the importance density of the instruction tokens (scaled by the log of "
        "their count). Wu et al. report higher scores for instruction-tuned models than for their base models "
        f"(e.g. {paper['tuned']} {paper['tuned_mean']:.3f} ± {_std_text(paper['tuned_std'])} vs {paper['base']} "
        f"{paper['base_mean']:.3f} ± {_std_text(paper['base_std'])} on LIMA prompts, responses of ~240–300 tokens). "
        f"Every model here gets the same prompts in one format ({', '.join(formats)}) and attributes its own "
        "greedy response. " + " ".join(sentences)
    )
    return Section(
        title="Input→output attribution: instruction scores",
        reading=reading,
        figures=[fig],
        tables=tables,
    )


def attribution_study_section(summary: dict, command: str, *, alpha: float = 0.05) -> Section:
    """The committed attribution study (``summary``: its JSON): base vs tuned instruction scores on
    the same prompts in one format, with and without the format's tokens, and per category."""
    d, cmp = summary["design"], summary["comparison"]
    lengths = summary["responses"]
    length_text = ", ".join(
        f"{d[label]} median {r['median_tokens']:g} tokens ({r['at_cap']} of {d['n_prompts']} at the cap)"
        for label, r in lengths.items()
    )
    reading = (
        f"The committed study (`{command}`): {d['base']} and {d['tuned']} on the same {d['n_prompts']} HexaInst "
        f"prompts ({d['data']}) in one format ({d['format']}, for both), each attributing its own greedy "
        f"response of up to {d['max_new_tokens']} tokens ({length_text}; the comparison does not match "
        "lengths, as the authors' design does not). All prompt tokens: "
        + _test_sentence(d["tuned"], d["base"], cmp["all_prompt_tokens"], alpha)
        + " Without the format's tokens: "
        + _test_sentence(d["tuned"], d["base"], cmp["without_template"], alpha)
        + f" Per category ({d['per_category']} prompts each, paired bootstrap intervals, no correction for "
        f"the {len(summary['per_category'])} tests) in the table."
    )
    table = pd.DataFrame(summary["per_category"]).rename(columns={"mean_a": d["base"], "mean_b": d["tuned"]})
    return Section(
        title="Input→output attribution: the base-vs-tuned study",
        reading=reading,
        tables=[table.round(3), pd.DataFrame([{"variant": k, **v} for k, v in cmp.items()]).round(4)],
    )


def _test_sentence(label: str, reference: str, s: dict, alpha: float) -> str:
    """One comparison in words: ``label`` against ``reference`` on the same prompts, with its power."""
    head = (
        f"{label}: {s['mean_b']:.3f} against {reference}: {s['mean_a']:.3f} on the same {s['n']} prompts "
        f"(difference {s['difference']:+.3f}, {s['level']:.0%} bootstrap CI {s['ci_low']:+.3f} to "
        f"{s['ci_high']:+.3f}); one-sided paired t p = {s['paired_p']:.3g}, Wilcoxon p = {s['wilcoxon_p']:.3g}, "
        f"the authors' Welch test p = {s['welch_p']:.3g}. "
    )
    if s["difference"] > 0 and s["paired_p"] < alpha:
        return head + f"The paper's direction ({label} higher) holds here (paired p < {alpha:g})."
    power = (
        f"at n = {s['n']} the paired test has power {s['power_paired']:.0%} to detect the paper's difference of "
        f"{s['effect']:.2f} (80% power needs a difference of {s['detectable_paired']:.2f} at this spread)"
    )
    if not s["power_paired"] >= 0.8:
        return (
            head
            + f"Not significant, and not a finding: {power}; this sample is too small to tell either way."
        )
    return (
        head
        + f"Not significant at {alpha:g}: {power}, so a difference as large as the paper's would likely have shown."
    )


def concepts_section(
    shares_by_model: dict[str, pd.DataFrame],
    *,
    title: str = "FFN concepts (PCA of the down-projection)",
    label_words: int = 15,
    alpha: float = 0.05,
) -> Section:
    """Report section: explainable share, pooled task shares and level shares per block for each model,
    and (with two models) their differences with intervals and Fisher tests.

    Args:
        shares_by_model: model name -> :func:`~instr_interp.shift.concept_shares.concept_shares` frame. With
            two models built with the same blocks, the section adds the comparison table of
            :func:`~instr_interp.shift.concept_shares.compare_concepts` (second minus first).
        title: section title.
        label_words: how many top words of each component the labeller read (``ffn_concepts``'s
            ``label_words``).
        alpha: the significance level the reading states.

    Returns:
        A :class:`~instr_interp.report.page.Section`.
    """
    if not shares_by_model:
        raise ValueError("shares_by_model is empty: pass {model name: concept_shares(model)}.")
    figures, tables, sentences = [], [], []
    for name, frame in shares_by_model.items():
        figures.append(
            plot_shares(frame, "task", f"{name}: task shares of explainable FFN concepts, all layers")
        )
        figures.append(
            plot_shares(frame, "level", f"{name}: linguistic levels of FFN concepts per block of layers")
        )
        wide = frame.pivot_table(index=["axis", "label"], columns="layers", values="share", sort=False)
        wide = wide[list(dict.fromkeys(frame["layers"]))].reset_index()
        wide.insert(0, "model", name)
        tables.append(wide.round(3))
        s = task_label_summary(frame)
        total, explainable, labelled = s["total"], s["explainable"], s["labelled"]
        parts = ", ".join(f"{t} {v:.1%}" for t, v in s["tasks"].items())
        levels = ", ".join(f"{lv} {v:.1%}" for lv, v in s["levels"].items())
        sentences.append(
            f"{name}: {explainable} of {total} components ({explainable / total:.1%}) are explainable; of those, "
            f"{labelled} ({labelled / max(explainable, 1):.1%}) get at least one task label (shares of the "
            f"explainable components, all layers: {parts}); levels: {levels}."
            if total and explainable
            else f"{name}: none of its {total} components is explainable by the labeller."
        )
    reading = (
        "Each layer's MLP down-projection (one row per neuron) is centred and decomposed by SVD; every principal "
        f"component is read as the words whose unembedding vectors it aligns with most (|PC·ê|), and its top "
        f"{label_words} words are labelled by a fixed offline lexicon: several tasks (writing, coding, math, "
        "translation) or none, a linguistic level, or 'cannot tell'. As in Wu et al., components that cannot be "
        "told are left out of every share, task shares are pooled over all layers and linguistic levels are "
        "shown per block of 4 layers. " + " ".join(sentences)
    )
    names = list(shares_by_model)
    if len(names) == 2:
        a, b = shares_by_model[names[0]], shares_by_model[names[1]]
        if set(a["group"]) == set(b["group"]):
            diff = compare_concepts(a, b, names=(names[0], names[1]))
            tables.append(diff.round(4))
            pooled = diff[(diff["group"] == POOLED) & (diff["axis"] == "task") & (diff["label"] != "none")]
            pooled = pooled.dropna(subset=["diff"])
            if len(pooled):
                top = pooled.loc[pooled["diff"].abs().idxmax()]
                reading += (
                    f" The largest pooled task-share difference ({names[1]} minus {names[0]}) is "
                    f"{top['diff']:+.1%} for {top['label']} (95% interval {top['ci_low']:+.1%} to "
                    f"{top['ci_high']:+.1%}; Fisher's exact p = {top['p_value']:.3g}, "
                    + ("significant" if top["p_value"] < alpha else "not significant")
                    + f" at {alpha:g})."
                )
    reading += (
        " The lexicon labeller is a coarse, deterministic stand-in for the paper's LLM labeller: it explains few "
        "components, so shares should be compared between models, not read as absolute."
    )
    return Section(title=title, reading=reading, figures=figures, tables=tables)


def wordpairs_section(
    pairs_by_model: dict[str, WordPairs],
    *,
    shift: pd.DataFrame | None = None,
    verbs: Sequence[str] = INSTRUCTION_VERBS,
    group: int | None = None,
    n_groups: int | None = 3,
    title: str = "Attention-head word pairs",
) -> Section:
    """Report section: instruction-verb pairs per layer group for each model, and the verb-shift test.

    Args:
        pairs_by_model: model name -> :func:`~instr_interp.shift.wordpairs.model_word_pairs` result (all heads).
        shift: an :func:`~instr_interp.shift.wordpairs.instruction_verb_shift` frame (base vs fine-tuned),
            if available.
        verbs: the instruction verbs counted.
        group / n_groups: layer grouping of the counts (default 3 groups by relative depth, which also
            lines up models of different depth).
        title: section title.

    Returns:
        A :class:`~instr_interp.report.page.Section`.
    """
    import plotly.express as px

    if not pairs_by_model:
        raise ValueError("pairs_by_model is empty: pass {model name: model_word_pairs(model)}.")
    grouping = {"group": group, "n_groups": n_groups} if n_groups is not None else {"group": group or 8}
    counts, tables, sentences = [], [], []
    for name, pairs in pairs_by_model.items():
        table = verb_pair_counts(pairs, verbs, **grouping).assign(model=name)
        counts.append(table)
        top = top_verb_pairs(pairs, verbs).assign(model=name)
        tables.append(top)
        n_heads = len(pairs.heads)
        analysed = sorted({layer for layer, _ in pairs.heads})
        n_layers = pairs.settings.get("n_layers")
        span = (
            f" (layers {analysed[0]}-{analysed[-1]} of {n_layers} analysed)"
            if analysed and n_layers and len(analysed) < n_layers
            else ""
        )
        total = int(table["pairs"].sum())
        with_verbs = int(table["word_pairs"].sum())
        examples = ", ".join(
            f"{q}{'–' if pairs.counting == 'authors' else '→'}{k} (L{lay}H{h}, seen {n}×)"
            for lay, h, q, k, n in top[["layer", "head", "query", "key", "count"]]
            .head(3)
            .itertuples(index=False)
        )
        sentences.append(
            f"{name}{span}: {total} head-level pairs over {n_heads} heads, {with_verbs} of them ({with_verbs / max(total, 1):.2%}) "
            "with an instruction verb; per head by layer group: "
            + ", ".join(f"layers {r.layers} {r.per_head:.2f}" for r in table.itertuples())
            + (f". Strongest: {examples}." if examples else ".")
        )
    count_frame = pd.concat(counts, ignore_index=True)
    tables.insert(
        0,
        count_frame[
            ["model", "group", "layers", "n_heads", "pairs", "word_pairs", "per_head", "share", "top"]
        ],
    )
    figure = px.bar(
        count_frame,
        x="layers",
        y="per_head",
        color="model",
        barmode="group",
        title="Head-level word pairs with an instruction verb, per head and layer group",
    )
    judges = sorted({str(p.settings.get("similarity", "unknown")) for p in pairs_by_model.values()})
    dims = sorted({str(p.settings.get("top_dims", "?")) for p in pairs_by_model.values()})
    countings = sorted({p.counting for p in pairs_by_model.values()})
    reading = (
        "For every attention head, query and key weights (with the pre-attention norm gain folded in, RoPE ignored) "
        "are applied to the input embeddings of frequent English words; in "
        + (
            "every dimension of the head"
            if dims == ["all"]
            else f"the head's {', '.join(dims)} highest-energy dimensions"
        )
        + ", word pairs that strongly drive the query and key sides with the same sign and are related (cosine above "
        f"both words' mean + {_relatedness(pairs_by_model.values())}, judged by "
        + (
            f"one judge for every model: {judges[0]}"
            if len(judges) == 1
            else f"different judges: {', '.join(judges)}"
        )
        + ") are kept, and pairs seen more than once count for the head ("
        + (
            "unordered and lower-cased, over dimension-and-orientation occurrences, as in Wu et al.'s code"
            if countings == ["authors"]
            else f"counting: {', '.join(countings)}"
        )
        + "). "
        + " ".join(sentences)
    )
    if shift is not None and len(shift):
        tables.append(shift)

        def mean(value, n):
            return f"{value:.2f} (n={n})" if n else "none (n=0)"

        parts = [
            f"layers {r.layers}: instruction verbs {mean(r.instruction_mean, r.n_instruction)} vs general "
            f"verbs {mean(r.general_mean, r.n_general)}, "
            + (
                f"two-sided Welch t = {r.t:.2f}, p = {r.p_two_sided:.3g}"
                if r.p_two_sided == r.p_two_sided
                else "no test"
            )
            for r in shift.itertuples()
        ]
        reading += (
            " Fine-tuning shift (share of heads where the tuned model has more pairs with the word, ties "
            "excluded, averaged per word; general verbs: the most frequent verbs of an offline lexicon, "
            "stopwords excluded): " + "; ".join(parts) + "."
        )
    return Section(title=title, reading=reading, figures=[figure], tables=tables)
