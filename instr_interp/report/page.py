"""A self-contained HTML report: each section is one small function returning a :class:`Section`.

The page embeds plotly.js once and works offline.
"""

import html
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..sparcom.compare import SetComparison
from ..data.dataset import InstructionDataset
from ..sparcom.neurons import NeuronSets
from ..sparcom.firing import FiringStats

__all__ = ["Section", "dataset_section", "firing_section", "isn_sections", "critical_role_section",
           "expert_routing_section", "comparison_section", "write_report"]


@dataclass(kw_only=True)
class Section:
    """One report section: a title, a plain-language reading, figures and tables."""

    title: str
    reading: str
    figures: list = field(default_factory=list)  # plotly Figures
    tables: list[pd.DataFrame] = field(default_factory=list)
    html: str = ""  # extra raw HTML (e.g. circuitsvis views)


def dataset_section(data: InstructionDataset, encoded=None) -> Section:
    """What the instruction set holds: records per category and source, and prompt lengths."""
    import plotly.express as px

    rows = [{"category": r.category, "source": r.source or "unknown",
             "instruction words": len(r.instruction.split()), "input words": len(r.input.split())}
            for r in data]
    frame = pd.DataFrame(rows)
    table = frame.groupby("category", sort=False).agg(
        records=("source", "size"),
        human=("source", lambda s: int((s == "human").sum())),
        templated=("source", lambda s: int((s == "templated").sum())),
        median_instruction_words=("instruction words", "median"),
        with_input=("input words", lambda s: int((s > 0).sum())),
    ).reset_index()
    if encoded is not None:
        counted = pd.Series([sum(r in (2, 3) for r in e.regions) for e in encoded], name="counted tokens")
        table["median_counted_tokens"] = (
            pd.DataFrame({"category": [e.category for e in encoded], "n": counted})
            .groupby("category", sort=False)["n"].median().values
        )
    fig = px.histogram(frame, x="instruction words", color="category", barmode="overlay", nbins=30,
                       title="Instruction length (words) by category")
    cats = ", ".join(f"{c} ({n})" for c, n in data.category_counts().items())
    reading = (
        f"The analyses run on {len(data)} instructions ({data.name}) in {len(data.categories)} categories: "
        f"{cats}. Each record separates the directive (the instruction) from the material it acts on "
        f"(the input); statistics count only those tokens, never the chat template or padding. "
        f"{int((frame['source'] == 'human').sum())} records were written one by one, "
        f"{int((frame['source'] == 'templated').sum())} come from templates."
    )
    return Section(title="Dataset", reading=reading, figures=[fig], tables=[table])


def firing_section(stats: FiringStats) -> Section:
    """Per-layer firing rates per category from the shared activation pass."""
    rates = stats.layer_rates()
    wide = rates.pivot(index="layer", columns="category", values="firing_rate")[stats.categories]
    overall = wide.mean(axis=1)
    lo, hi = int(overall.idxmin()), int(overall.idxmax())
    spread = float((wide.max(axis=1) - wide.min(axis=1)).max())
    tokens = dict(zip(stats.categories, stats.category_tokens.tolist()))
    reading = (
        f"For every layer, the share of (neuron, token) pairs where the MLP gate pre-activation is positive, "
        f"over the instruction and input tokens of each category ({', '.join(f'{c}: {n} tokens' for c, n in tokens.items())}). "
        f"Firing is densest in layer {hi} ({overall[hi]:.1%} on average) and sparsest in layer {lo} "
        f"({overall[lo]:.1%}). Categories differ by at most {spread:.1%} in any layer: the bulk rate is "
        f"shared, so what distinguishes categories is which neurons fire, the subject of the "
        f"instruction-specific neuron analysis."
    )
    table = (wide * 100).round(2).reset_index()
    table.columns = ["layer"] + [f"{c} %" for c in stats.categories]
    return Section(title="Neuron firing by layer", reading=reading, figures=[stats.plot_layers()], tables=[table])


def isn_sections(sets: NeuronSets, *, n_permutations: int = 1000) -> list[Section]:
    """Overlap heatmap with its permutation test, layer distribution, and general/unique counts
    (for ISNs, or for ISEs when ``sets`` is an :class:`~instr_interp.experts.ExpertSets`)."""
    unit, short = sets.unit, sets.short
    test = sets.permutation_test(n_permutations=n_permutations)
    wins = [c for c, v in test["per_category"].items() if v["same"] > v["cross"]]
    ties = sorted(v for k, v in sets.ties.items() if not k.startswith("category:"))
    kept = sets.settings.get("k")
    if unit == "neuron":
        chosen = "fire on the largest share of its instruction and input tokens"
        tie_note = (f" Many neurons tie at the cut (median {ties[len(ties) // 2]} tied at the cut frequency); "
                    "ties are broken by mean activation." if ties else "")
    else:
        chosen = ("receive the largest share of its instruction and input tokens from the router"
                  + (f" (the top {sets.settings['per_layer']} of every layer)" if sets.settings.get("per_layer") else ""))
        tie_note = " Ties in routing frequency are broken by summed routing weight, then by index."
    reading = (
        f"Each instruction's {short} are the {kept} {unit}s ({sets.settings.get('top', 0):.1%} of "
        f"{sets.n_neurons:,}) that {chosen}. Cells show "
        f"the mean Jaccard overlap between the sets of two instructions from the row and column categories. "
        f"Same-category pairs overlap more than cross-category pairs for {len(wins)} of "
        f"{len(test['per_category'])} categories ({', '.join(wins) or 'none'}); a permutation test that shuffles "
        f"category labels gives p = {test['p_value']:.3g} for the diagonal-minus-off-diagonal gap of "
        f"{test['statistic']:.3f}.{tie_note}"
    )
    per_cat = pd.DataFrame([{"category": c, "same-category overlap": v["same"], "cross-category overlap": v["cross"]}
                            for c, v in test["per_category"].items()])
    layers = sets.layer_distribution()
    wide = layers.pivot(index="layer", columns="category", values="count")
    n_layers = len(wide)
    thirds = [wide.iloc[: n_layers // 3].to_numpy().sum(), wide.iloc[n_layers // 3 : 2 * n_layers // 3].to_numpy().sum(),
              wide.iloc[2 * n_layers // 3 :].to_numpy().sum()]
    total = max(sum(thirds), 1)
    layer_reading = (
        f"Where the category {short} sit: {thirds[0] / total:.0%} in the first third of the layers, "
        f"{thirds[1] / total:.0%} in the middle third and {thirds[2] / total:.0%} in the last third "
        f"(all categories together); the busiest layer is {int(wide.sum(axis=1).idxmax())}. The paper reports a "
        "three-phase shape (many early, few in the middle, a specialised set near the output) that is stable "
        "across instruction types."
    )
    general = sets.general()
    unique = {c: len(sets.unique(c)) for c in sets.categories}
    counts = pd.DataFrame([{"category": c, short: len(sets.category_sets[c]), "unique": unique[c],
                            "general (in all categories)": len(general)} for c in sets.categories])
    general_reading = (
        f"{len(general)} {unit}s are in every category's set (general {short}, {len(general) / sets.n_neurons:.2%} of all "
        f"{unit}s); unique {short}, in one category's set and no other, number "
        f"{', '.join(f'{c}: {n}' for c, n in unique.items())}."
    )
    return [
        Section(title=f"Instruction-specific {unit}s: overlap between categories", reading=reading,
                figures=[sets.plot_overlap()], tables=[per_cat]),
        Section(title=f"Instruction-specific {unit}s by layer", reading=layer_reading, figures=[sets.plot_layers()]),
        Section(title=f"General and unique {unit}s", reading=general_reading, tables=[counts]),
    ]


def critical_role_section(frame: pd.DataFrame, n_records: int, sets: NeuronSets | None = None) -> Section:
    """The NLL rise when a category's ISNs (or ISEs, per ``sets``) are zeroed, against random units."""
    from ..sparcom.ablation import plot_critical_role

    unit, short = (sets.unit, sets.short) if sets is not None else ("neuron", "ISNs")
    how = ("after the activation function" if unit == "neuron"
           else "their routing weights, so the tokens lose those experts' contributions")
    strong = frame[frame["ratio"] >= 2]["category"].tolist()
    reading = (
        f"Zeroing a category's {short} ({how}) and scoring the reference responses of "
        f"{n_records} held-in instructions: the mean NLL rise on the category itself, on the other categories, "
        f"and when as many random {unit}s are zeroed with the same count per layer (mean of several seeds). "
        f"The own-category rise is at least twice the random rise for {len(strong)} of {len(frame)} categories"
        f"{' (' + ', '.join(strong) + ')' if strong else ''}; p-values are one-sided Wilcoxon signed-rank tests "
        f"over records ({short} ablation vs random ablation). Specificity is another matter: the own-category rise "
        f"exceeds the rise on the other categories for {int((frame['rise_own'] > frame['rise_others']).sum())} of "
        f"{len(frame)} categories (mean {frame['rise_own'].mean():.2f} vs {frame['rise_others'].mean():.2f} nats), "
        f"as much of each set is shared with the other categories (see the general {unit}s)."
    )
    return Section(title=f"Critical role of {short} (ablation)", reading=reading,
                   figures=[plot_critical_role(frame, short)], tables=[frame])


def expert_routing_section(stats) -> Section:
    """Routing of an MoE model: the share of counted tokens each expert of each layer receives, and
    which expert each category over-uses most relative to all categories."""
    import plotly.express as px

    counts = stats.expert_counts.double()  # record x layer x expert
    tokens = float(stats.tokens.sum())
    pooled = counts.sum(0) / max(tokens, 1.0)  # share of tokens (sums to top-k per layer)
    n_layers, n_experts = pooled.shape
    top_k = float(pooled.sum(1).mean())
    fig = px.imshow(pooled.numpy(), labels={"x": "expert", "y": "layer", "color": "share of tokens"},
                    color_continuous_scale="Blues", aspect="auto",
                    title="Share of instruction and input tokens routed to each expert")
    rows = []
    for cat in stats.categories:
        idx = [r for r, c in enumerate(stats.record_categories) if c == cat]
        share = counts[idx].sum(0) / max(float(stats.tokens[idx].sum()), 1.0)
        lift = share - pooled
        flat = int(lift.flatten().argmax())
        rows.append({"category": cat, "tokens": int(stats.tokens[idx].sum()), "layer": flat // n_experts,
                     "expert": flat % n_experts, "share in category": float(share.flatten()[flat]),
                     "share overall": float(pooled.flatten()[flat])})
    table = pd.DataFrame(rows)
    busiest = float(pooled.max())
    reading = (
        f"The router sends each token to {top_k:.3g} of {n_experts} experts per layer, so a perfectly balanced "
        f"layer gives every expert a share of {top_k / n_experts:.3f}. Over {int(tokens):,} instruction and "
        f"input tokens the shares range from {float(pooled.min()):.3f} to {busiest:.3f}. The table names, per "
        f"category, the expert whose share rises most above its overall share: "
        + "; ".join(f"{r['category']} layer {r['layer']} expert {r['expert']} ({r['share in category']:.3f} vs "
                    f"{r['share overall']:.3f})" for r in rows) + "."
    )
    return Section(title="Expert routing by layer", reading=reading, figures=[fig], tables=[table])


def comparison_section(diff: SetComparison, before: str, after: str, train_note: str = "") -> Section:
    """How fine-tuning moved each category's ISNs."""
    summary = diff.summary
    layers = diff.layers.groupby("layer")[["before", "after", "delta"]].sum()
    gained = layers["delta"].sort_values()
    reading = (
        f"ISNs of the same categories in {before} (before) and {after} (after). {train_note} The Jaccard "
        f"overlap of a category's set before and after ranges from {summary['jaccard'].min():.2f} to "
        f"{summary['jaccard'].max():.2f} (mean {summary['jaccard'].mean():.2f}). Summed over categories, layer "
        f"{int(gained.index[-1])} gained the most ISNs ({int(gained.iloc[-1]):+d}) and layer {int(gained.index[0])} "
        f"lost the most ({int(gained.iloc[0]):+d}); the paper reports a stable layer distribution with more "
        "specialised units after tuning."
    )
    return Section(title="Before vs after fine-tuning", reading=reading,
                   figures=[diff.plot_jaccard(), diff.plot_layers()], tables=[summary])


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:0} .meta{color:#666;margin-top:.3em} section{margin:2.5em 0;border-top:1px solid #ddd}
.reading{background:#f6f8fa;border-left:4px solid #4c78a8;padding:.6em 1em;line-height:1.5}
table{border-collapse:collapse;font-size:.85em;margin:1em 0} td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f0f0f0} nav a{margin-right:1em}
"""


def write_report(sections: Sequence[Section], path, *, title: str = "instr_interp report",
                 meta: str = "") -> Path:
    """Write one self-contained HTML page (plotly.js embedded once) and return its path."""
    import plotly.offline

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>",
        f"<script type='text/javascript'>{plotly.offline.get_plotlyjs()}</script></head><body>",
        f"<h1>{html.escape(title)}</h1><p class='meta'>{html.escape(meta)} · generated "
        f"{time.strftime('%Y-%m-%d %H:%M')}</p>",
        "<nav>" + "".join(f"<a href='#s{i}'>{html.escape(s.title)}</a>" for i, s in enumerate(sections)) + "</nav>",
    ]
    for i, sec in enumerate(sections):
        parts.append(f"<section id='s{i}'><h2>{html.escape(sec.title)}</h2>")
        parts.append(f"<p class='reading'>{html.escape(sec.reading)}</p>")
        for fig in sec.figures:
            parts.append(fig.to_html(full_html=False, include_plotlyjs=False))
        for table in sec.tables:
            # an undefined value (a std of one record, a test without data) shows as a dash
            parts.append(table.to_html(index=False, border=0, float_format=lambda x: f"{x:.4g}", na_rep="–"))
        parts.append(sec.html + "</section>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts))
    return path
