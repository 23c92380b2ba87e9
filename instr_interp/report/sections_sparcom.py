"""Report sections for SPARCOM: the dataset, neuron firing, ISN (or ISE) sets, their critical role,
expert routing and the before/after comparison.

Each function only renders: it formats computed results, and every number it states comes from a
public analysis function or method (tests such as the permutation test are run by the stage in
:mod:`instr_interp.report.stages` and passed in).
"""

import pandas as pd

from ..data.dataset import InstructionDataset
from ..data.encoding import EncodedDataset
from ..data.summary import category_summary, record_lengths
from ..sparcom.compare import SetComparison
from ..sparcom.critical import plot_matrix
from ..sparcom.experts import ExpertStats
from ..sparcom.firing import FiringStats
from ..sparcom.neurons import NeuronSets
from .page import Section

__all__ = [
    "dataset_section",
    "firing_section",
    "isn_sections",
    "critical_role_section",
    "expert_routing_section",
    "comparison_section",
]


def dataset_section(data: InstructionDataset, encoded: EncodedDataset | None = None) -> Section:
    """What the instruction set holds: records per category and source, and prompt lengths
    (:func:`~instr_interp.data.summary.category_summary`)."""
    import plotly.express as px

    frame = record_lengths(data)
    table = category_summary(data, encoded)
    fig = px.histogram(
        frame,
        x="instruction words",
        color="category",
        barmode="overlay",
        nbins=30,
        title="Instruction length (words) by category",
    )
    cats = ", ".join(f"{c} ({n})" for c, n in data.category_counts().items())
    reading = (
        f"The analyses run on {len(data)} instructions ({data.name}) in {len(data.categories)} categories: "
        f"{cats}. Each record separates the directive (the instruction) from the material it acts on "
        f"(the input); statistics count only those tokens, never the chat template or padding. "
        f"{int(table['handwritten'].sum())} records were written one by one, "
        f"{int(table['templated'].sum())} come from templates."
    )
    return Section(title="Dataset", reading=reading, figures=[fig], tables=[table])


def firing_section(stats: FiringStats) -> Section:
    """Per-layer firing rates per category (:meth:`FiringStats.layer_rate_summary`)."""
    summary = stats.layer_rate_summary()
    overall = summary["mean"]
    lo, hi = int(overall.idxmin()), int(overall.idxmax())
    spread = float(summary["spread"].max())
    tokens = dict(zip(stats.categories, stats.category_tokens.tolist()))
    reading = (
        f"For every layer, the share of (neuron, token) pairs where the MLP gate pre-activation is positive, "
        f"over the instruction and input tokens of each category ({', '.join(f'{c}: {n} tokens' for c, n in tokens.items())}). "
        f"Firing is densest in layer {hi} ({overall[hi]:.1%} on average) and sparsest in layer {lo} "
        f"({overall[lo]:.1%}). Categories differ by at most {spread:.1%} in any layer: the bulk rate is "
        f"shared, so what distinguishes categories is which neurons fire, the subject of the "
        f"instruction-specific neuron analysis."
    )
    table = (summary[stats.categories] * 100).round(2).reset_index()
    table.columns = ["layer"] + [f"{c} %" for c in stats.categories]
    return Section(
        title="Neuron firing by layer", reading=reading, figures=[stats.plot_layers()], tables=[table]
    )


def isn_sections(sets: NeuronSets, test: dict) -> list[Section]:
    """Overlap heatmap with its permutation test, layer distribution, and general/unique counts
    (for ISNs, or for ISEs when ``sets`` is an :class:`~instr_interp.sparcom.experts.ExpertSets`).

    Args:
        sets: the sets to show.
        test: ``sets.permutation_test(...)`` (:meth:`NeuronSets.permutation_test`), run by the caller.
    """
    need = {"statistic", "p_value", "per_category"}
    if not isinstance(test, dict) or not need <= set(test):
        raise ValueError(
            f"test must be the dict of sets.permutation_test() (keys {sorted(need)}); got {test!r:.80}."
        )
    unit, short = sets.unit, sets.short
    wins = [c for c, v in test["per_category"].items() if v["same"] > v["cross"]]
    ties = sorted(v for k, v in sets.ties.items() if not k.startswith("category:"))
    kept = sets.settings.get("k")
    if unit == "neuron":
        chosen = "fire on the largest share of its instruction and input tokens"
        tie = sets.tie_summary()
        tie_note = (
            f" Many neurons tie at the cut (median {ties[len(ties) // 2]} tied at the cut frequency); "
            + (
                "ties are broken by the summed activation's rank within its layer"
                if sets.settings.get("tie_break") == "layer_rank"
                else f"ties are broken by tie_break={sets.settings.get('tie_break')!r}"
            )
            + (
                f", which decides a median {tie['median_decided']:.0%} of each instruction's set (not firing)."
                if tie["median_decided"] == tie["median_decided"]
                else "."
            )
            if ties
            else ""
        )
    else:
        chosen = "receive the largest share of its instruction and input tokens from the router" + (
            f" (the top {sets.settings['per_layer']} of every layer)"
            if sets.settings.get("per_layer")
            else ""
        )
        tie_note = " Ties in routing frequency are broken by summed routing weight, then by index."
    if sets.settings.get("select") == "threshold":
        sizes = sets.size_summary()
        which = (
            f"the {unit}s that fire on at least {sets.settings['threshold']:.0%} of its instruction and input "
            f"tokens (of {sets.n_neurons:,}; {sizes['median']:g} per instruction at the median, "
            f"{sizes['min']}–{sizes['max']})"
        )
        tie_note = ""
    else:
        which = f"the {kept} {unit}s ({sets.settings.get('top', 0):.1%} of {sets.n_neurons:,}) that {chosen}"
    reading = (
        f"Each instruction's {short} are {which}. Cells show "
        f"the mean Jaccard overlap between the sets of two instructions from the row and column categories. "
        + (
            f"Same-category pairs overlap more than cross-category pairs for {len(wins)} of "
            f"{len(test['per_category'])} categories ({', '.join(wins) or 'none'}); a permutation test that shuffles "
            f"category labels gives p = {test['p_value']:.3g} for the diagonal-minus-off-diagonal gap of "
            f"{test['statistic']:.3f}."
            if not test.get("note")
            else f"No overlap test: {test['note']}."
        )
        + tie_note
    )
    per_cat = pd.DataFrame(
        [
            {"category": c, "same-category overlap": v["same"], "cross-category overlap": v["cross"]}
            for c, v in test["per_category"].items()
        ]
    )
    depth = sets.depth_distribution().set_index("part")["share"]
    layer_reading = (
        f"Where the category {short} sit: {depth['first']:.0%} in the first third of the layers, "
        f"{depth['middle']:.0%} in the middle third and {depth['last']:.0%} in the last third "
        f"(all categories together); the busiest layer is {sets.busiest_layer()}. The paper reports a "
        "three-phase shape (many early, few in the middle, a specialised set near the output) that is stable "
        "across instruction types."
    )
    general = sets.general()
    unique = {c: len(sets.unique(c)) for c in sets.categories}
    counts = pd.DataFrame(
        [
            {
                "category": c,
                short: len(sets.category_sets[c]),
                "unique": unique[c],
                "general (in all categories)": len(general),
            }
            for c in sets.categories
        ]
    )
    general_reading = (
        f"{len(general)} {unit}s are in every category's set (general {short}, {len(general) / sets.n_neurons:.2%} of all "
        f"{unit}s); unique {short}, in one category's set and no other, number "
        f"{', '.join(f'{c}: {n}' for c, n in unique.items())}."
    )
    return [
        Section(
            title=f"Instruction-specific {unit}s: overlap between categories",
            reading=reading,
            figures=[sets.plot_overlap()],
            tables=[per_cat],
        ),
        Section(
            title=f"Instruction-specific {unit}s by layer",
            reading=layer_reading,
            figures=[sets.plot_layers()],
        ),
        Section(title=f"General and unique {unit}s", reading=general_reading, tables=[counts]),
    ]


def critical_role_section(view: dict, *, origin: str = "") -> Section:
    """The NLL rise when sets of ISNs (or ISEs) are zeroed on held-out records: the set x category
    matrix, the diagonal against the off-diagonal, and matched-control p-values.

    Args:
        view: :meth:`CriticalRole.view` of :func:`~instr_interp.sparcom.ablation.critical_role`'s
            result (live, or the committed summary of ``instr-interp study critical``).
        origin: where the numbers come from, named in the title and the reading.
    """
    unit = view["unit"]
    short = "ISEs" if unit == "expert" else "ISNs"
    how = "after the activation function" if unit == "neuron" else "their routing weights"
    summary, alpha = view["summary"], view["summary"]["alpha"]
    matrix = pd.DataFrame(view["matrix"])
    diag = pd.DataFrame(view["diagonal"])
    p_values = pd.DataFrame(view["p_values"])
    p = p_values.set_index(["set", "measure"])
    counts = matrix.groupby("category")["n_records"].first()
    n_min = int(counts.min())
    parts = [f"{origin}." if origin else ""]
    parts.append(
        f"Each category's {short} were chosen on {view['n_identified']} records and zeroed ({how}) on "
        f"{view['n_records']} others ({n_min}-{int(counts.max())} per category; no shared record, "
        f"template or instruction). The figure shows the rise in reference-response NLL (nats/token, ablated "
        f"minus baseline) of every category when each set is zeroed; intervals are 95% bootstrap intervals over "
        f"records. Each set is compared with {view['n_control']} control sets of as many {unit}s per layer, "
        f"matched in firing frequency and mean activation (empirical one-sided p-values; the smallest possible "
        f"is {summary['min_p']:.3f})."
    )
    if len(diag):
        rows = [
            f"{r['category']} {r['own rise']:+.3f}{_interval(r['own ci_low'], r['own ci_high'], '+.3f')}, "
            f"p = {r['own p']:.2f}"
            for r in diag.to_dict("records")
        ]
        if n_min < 2:
            parts.append(
                "With a single evaluation record in a category no interval over records can be formed there; "
                "those intervals are left out."
            )
        parts.append(
            f"Own-category rises (the diagonal): {'; '.join(rows)}. The rise exceeds the matched controls "
            f"(p < {alpha:g}) for {len(summary['above_controls'])} of {summary['n_sets']} categories"
            + (f" ({', '.join(summary['above_controls'])})" if summary["above_controls"] else "")
            + f". The diagonal is the largest entry of its column for {len(summary['column_max'])} of "
            f"{summary['n_sets']} evaluation categories. Specificity (relative rise on the own category minus the "
            f"mean relative rise on the others, each rise divided by its category's baseline NLL) has an interval "
            f"above 0 for {len(summary['specific'])} of {summary['n_sets']}"
            + (f" ({', '.join(summary['specific'])})" if summary["specific"] else "")
            + "."
        )
        if not summary["above_controls"] and not summary["specific"]:
            width = summary["widest_interval"]
            parts.append(
                f"This is a null result: with {n_min} evaluation record(s) per category and {view['n_control']} "
                f"control draws, no category's {short} are shown to matter more for it than matched {unit}s "
                "or than for the other categories"
                + (
                    f"; own-category intervals up to {width:.3f} nats/token wide bound what this sample could resolve."
                    if width == width
                    else "; without intervals over records this sample cannot show the effect either way."
                )
            )
    for kind, part in summary["parts"].items():
        parts.append(
            f"Zeroing each category's {kind} {unit}s ({part['n_sets']} sets) changes NLL by "
            f"{part['rise_min']:+.3f} to {part['rise_max']:+.3f} nats/token across evaluation categories "
            f"(95% intervals within [{part['ci_low_min']:+.3f}, {part['ci_high_max']:+.3f}]); its mean relative rise "
            f"beats the matched controls for {len(part['above_controls'])} of {part['n_sets']} sets"
            + (f" ({', '.join(part['above_controls'])})" if part["above_controls"] else "")
            + "."
        )
    if ("general", "mean relative rise") in p.index:
        g = p.loc[("general", "mean relative rise")]
        parts.append(
            f"The general set ({view['set_sizes']['general']} {unit}s in every category's "
            f"set) raises NLL by {g['observed']:.1%} of the baseline on average over categories"
            f"{_interval(g['ci_low'], g['ci_high'], '.1%')}; matched controls {g['control_mean']:.1%} "
            f"(p = {g['p_value']:.2f})."
        )
    return Section(
        title=f"Critical role of {short} (ablation)" + (f": {origin}" if origin else ""),
        reading=" ".join(x for x in parts if x),
        figures=[plot_matrix(matrix, view["names"], view["categories"], unit)],
        tables=[diag.round(4), p_values.round(4)],
    )


def _interval(low: float, high: float, spec: str) -> str:
    """`` [low, high]`` formatted, or nothing when the interval is undefined (NaN)."""
    return f" [{low:{spec}}, {high:{spec}}]" if low == low and high == high else ""


def expert_routing_section(stats: ExpertStats) -> Section:
    """Routing of an MoE model: the share of counted tokens each expert of each layer receives
    (:meth:`ExpertStats.routing_share`), and which expert each category over-uses most relative to all
    categories (:meth:`ExpertStats.routing_lift`)."""
    import plotly.express as px

    pooled = stats.routing_share()  # sums to top-k per layer
    n_experts = pooled.shape[1]
    top_k = float(pooled.sum(1).mean())
    fig = px.imshow(
        pooled.numpy(),
        labels={"x": "expert", "y": "layer", "color": "share of tokens"},
        color_continuous_scale="Blues",
        aspect="auto",
        title="Share of instruction and input tokens routed to each expert",
    )
    table = stats.routing_lift()
    reading = (
        f"The router sends each token to {top_k:.3g} of {n_experts} experts per layer, so a perfectly balanced "
        f"layer gives every expert a share of {top_k / n_experts:.3f}. Over {int(stats.tokens.sum()):,} instruction "
        f"and input tokens the shares range from {float(pooled.min()):.3f} to {float(pooled.max()):.3f}. The table "
        f"names, per category, the expert whose share rises most above its overall share: "
        + "; ".join(
            f"{r['category']} layer {r['layer']} expert {r['expert']} ({r['share in category']:.3f} vs "
            f"{r['share overall']:.3f})"
            for r in table.to_dict("records")
        )
        + "."
    )
    return Section(title="Expert routing by layer", reading=reading, figures=[fig], tables=[table])


def comparison_section(diff: SetComparison, before: str, after: str, train_note: str = "") -> Section:
    """How fine-tuning moved each category's ISNs (:func:`~instr_interp.sparcom.compare.compare`)."""
    summary = diff.summary
    gained = diff.layer_totals()["delta"].sort_values()
    reading = (
        f"ISNs of the same categories in {before} (before) and {after} (after). {train_note} The Jaccard "
        f"overlap of a category's set before and after ranges from {summary['jaccard'].min():.2f} to "
        f"{summary['jaccard'].max():.2f} (mean {summary['jaccard'].mean():.2f}). Summed over categories, layer "
        f"{int(gained.index[-1])} gained the most ISNs ({int(gained.iloc[-1]):+d}) and layer {int(gained.index[0])} "
        f"lost the most ({int(gained.iloc[0]):+d}); the paper reports a stable layer distribution with more "
        "specialised units after tuning."
    )
    return Section(
        title="Before vs after fine-tuning",
        reading=reading,
        figures=[diff.plot_jaccard(), diff.plot_layers()],
        tables=[summary],
    )


def set_change_section(change, before: str, after: str, train_note: str = "") -> Section:
    """Before vs after with bootstrap intervals and split-half noise floors
    (:func:`~instr_interp.sparcom.change.compare_with_intervals`)."""
    s, noise, diffs = change.summary, change.noise, change.differences
    rule = change.settings.get("select")
    jaccards = "; ".join(
        f"{c} {j:.2f} [{lo:.2f}, {hi:.2f}]"
        for c, j, lo, hi in zip(s["category"], s["jaccard"], s["jaccard_low"], s["jaccard_high"])
    )
    floors = "; ".join(
        f"{c} {b:.2f}/{a:.2f} vs {w:.2f}"
        for c, b, a, w in zip(
            noise["category"], noise["floor_before"], noise["floor_after"], noise["between"]
        )
    )
    sizes = "; ".join(
        f"{c} {b:.0f} -> {a:.0f} ({d:+.0f} [{lo:+.0f}, {hi:+.0f}])"
        for c, b, a, d, lo, hi in zip(
            s["category"], s["before"], s["after"], s["change"], s["change_low"], s["change_high"]
        )
    )
    exceeding = diffs[diffs["exceeds"]]
    beyond = (
        "; ".join(f"{c}: {m}" for c, m in zip(exceeding["category"], exceeding["measure"]))
        if len(exceeding)
        else "none: no difference between the models is larger than the resampling noise of this sample"
    )
    threshold = change.settings.get("threshold")
    reading = (
        f"Category sets of {before} (before) and {after} (after) on the same records in one prompt format, chosen "
        f"by the {rule} rule{f' (firing on at least {threshold:.0%} of counted tokens)' if threshold else ''}, so "
        f"set sizes can change. {train_note} Set sizes before -> after (change and 95% bootstrap interval over "
        f"records): {sizes}. Jaccard before vs after with its interval: {jaccards}. Split-half noise floor "
        f"(Jaccard of each model with itself on disjoint halves, before/after, against the two models on "
        f"disjoint halves): {floors}. Differences whose interval excludes zero: {beyond}."
    )
    return Section(
        title="Before vs after instruction tuning",
        reading=reading,
        figures=[change.plot_jaccard(), change.plot_layers()],
        tables=[s.round(3), diffs.round(3)],
    )
