"""Report sections for instruction vectors and forgetting after sequential fine-tuning.

Each function only renders computed results: head effects and zero-shot scores
(:func:`~instr_interp.vectors.instruction.vector_scores`), and the forgetting demonstration's results
(:func:`~instr_interp.vectors.continual.forgetting_demo`).
"""

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from ..vectors.instruction import InstructionVector
from .page import Section

__all__ = ["forgetting_section", "vector_change_section", "vector_section"]


def vector_section(
    vectors: Sequence[InstructionVector], scores: pd.DataFrame | None = None, *, min_lift: float = 0.2
) -> list:
    """Report sections: head-effect heatmaps and top heads per task, and (with ``scores`` from
    :func:`~instr_interp.vectors.instruction.vector_scores`) zero-shot accuracy without / with the vector /
    with a random-head vector.

    Args:
        vectors: the instruction vectors to show, one section each.
        scores: their held-out scores, if computed.
        min_lift: the reading counts the tasks whose accuracy rises by at least this much with the vector.

    Returns:
        A list of :class:`~instr_interp.report.page.Section`.
    """
    if not vectors:
        raise ValueError("vector_section needs at least one InstructionVector.")
    sections = [_heads_section(iv) for iv in vectors]
    if scores is not None:
        sections.append(_scores_section(scores, min_lift))
    return sections


def vector_change_section(frame: pd.DataFrame, before: str, after: str) -> Section:
    """The base model's and its tune's instruction vectors side by side (``frame`` from
    :func:`~instr_interp.vectors.compare.compare_vectors`)."""
    parts = []
    for r in frame.itertuples():
        parts.append(
            f"{r.task}: with its own vector {before} scores {r.with_vector_before:.2f} on {r.n_before} held-out "
            f"zero-shot pairs (95% interval {r.with_vector_before_low:.2f}-{r.with_vector_before_high:.2f}; "
            f"{r.zero_shot_before:.2f} without, {r.random_heads_before:.2f} with random heads) and {after} "
            f"{r.with_vector_after:.2f} ({r.with_vector_after_low:.2f}-{r.with_vector_after_high:.2f}; "
            f"{r.zero_shot_after:.2f} without, {r.random_heads_after:.2f} with random heads); the vectors sit "
            f"after layers {r.layer_before} and {r.layer_after}, share {r.shared_top_heads} of {r.k} top heads "
            f"and have cosine similarity {r.cosine:.2f}"
        )
    reading = (
        f"Instruction vectors built the same way (few-shot prompts, the same tasks and held-out pairs) on "
        f"{before} and on {after}. " + "; ".join(parts) + ". Overlapping intervals mean this sample cannot "
        "tell the two models' vectors apart in effect."
    )
    return Section(
        title="Instruction vectors before vs after tuning", reading=reading, tables=[frame.round(3)]
    )


def _heads_section(iv: InstructionVector) -> Section:
    """One task's head-effect heatmap and top heads, with their reading."""
    table = iv.to_frame()
    share = iv.top_share()
    layers = sorted({a for a, _ in iv.top_heads.tolist()})
    best = table.iloc[0] if len(table) else None
    reading = (
        f"For the {iv.task!r} task the {len(iv.top_heads)} heads with the largest average indirect effect "
        f"sit in layers {layers}. "
        + (
            f"The strongest, L{int(best.layer)}H{int(best['head'])}, raises the probability of the correct "
            f"first answer token by {best.effect:.3f} on average when its mean output is patched into a "
            f"corrupted prompt; the top heads hold {share:.0%} of the total positive effect. "
            if best is not None and bool(torch.isfinite(iv.head_effects).any())
            else ""
        )
        + f"The vector (norm {float(iv.vector.norm()):.2f}) is added after layer {iv.layer}"
        + (
            f" at scale {iv.scale:g}, chosen by a validation sweep over layers and scales "
            f"(validation accuracy {float(iv.sweep['accuracy'].max()):.2f})."
            if iv.sweep is not None
            else "."
        )
    )
    return Section(title=f"Causal heads: {iv.task}", reading=reading, figures=[iv.plot()], tables=[table])


def _scores_section(scores: pd.DataFrame, min_lift: float) -> Section:
    """Held-out zero-shot accuracy without / with the vector / with a random-head vector."""
    import plotly.graph_objects as go

    need = {"task", "zero_shot", "with_vector", "random_heads"}
    if not need <= set(scores.columns):
        raise ValueError(
            f"scores needs columns {sorted(need)} (from vector_scores); got {list(scores.columns)}."
        )
    fig = go.Figure(
        [
            go.Bar(name=col.replace("_", " "), x=scores["task"], y=scores[col])
            for col in ("zero_shot", "with_vector", "random_heads")
        ]
    )
    fig.update_layout(
        barmode="group",
        yaxis_title="zero-shot first-token accuracy",
        title="Instruction vectors: held-out zero-shot accuracy",
    )
    lifted = scores[scores["with_vector"] - scores["zero_shot"] >= min_lift]["task"].tolist()
    beats = scores[scores["with_vector"] > scores["random_heads"]]["task"].tolist()
    parts = [
        f"{r.task}: {r.zero_shot:.2f} → {r.with_vector:.2f} (random heads {r.random_heads:.2f})"
        for r in scores.itertuples()
    ]
    reading = (
        "Zero-shot accuracy on held-out pairs without and with the vector added at the last prompt "
        "token, and with a vector built the same way from as many random heads: "
        + "; ".join(parts)
        + f". The vector lifts accuracy by at least {min_lift:g} on {len(lifted)} of {len(scores)} tasks and "
        f"beats the random-head control on {len(beats)}."
    )
    return Section(
        title="Instruction vectors restore zero-shot behaviour",
        reading=reading,
        figures=[fig],
        tables=[scores],
    )


def forgetting_section(results) -> list:
    """Report sections from the forgetting demonstration's results (``scripts/forgetting_demo.py``).

    Args:
        results: the demo's result dict, or the path of its JSON (``benchmarks/results/forgetting_demo.json``).

    Returns:
        A list of :class:`~instr_interp.report.page.Section`: plain vs IV-guided forgetting, and the
        "suppressed, not erased" test.
    """
    import plotly.express as px

    if isinstance(results, (str, Path)):
        results = json.loads(Path(results).read_text())
    frame = pd.DataFrame(results["forgetting"])  # run, set, kind, metric, before, after, change
    first = results["tasks"][0]
    table = frame.pivot_table(index=["set", "metric"], columns="run", values="after").reset_index()
    base = frame.drop_duplicates(["set", "metric"]).set_index(["set", "metric"])["before"]
    table.insert(2, "before", [base[(s, m)] for s, m in zip(table["set"], table["metric"])])

    def change(run, set_, metric):
        row = frame[(frame["run"] == run) & (frame["set"] == set_) & (frame["metric"] == metric)]
        return float(row["change"].iloc[0])

    runs = list(dict.fromkeys(frame["run"]))
    parts = []
    for name in runs:
        parts.append(
            f"{name}: task-1 ({first}) format accuracy {change(name, first, 'format_accuracy'):+.2f}, few-shot accuracy "
            f"{change(name, first, 'accuracy'):+.2f}, instruction NLL {change(name, first, 'instruction_nll'):+.2f} and "
            f"knowledge NLL {change(name, first, 'knowledge_nll'):+.2f} nats/token; general instructions: "
            f"instruction NLL {change(name, 'general', 'instruction_nll'):+.2f}, knowledge NLL "
            f"{change(name, 'general', 'knowledge_nll'):+.2f}"
        )
    reading = (
        f"{results['model']} was LoRA-tuned in sequence on {', '.join(results['tasks'])} "
        f"({results['settings']['steps_per_task']} steps each), once plainly and once with instruction-vector "
        f"guidance (KL to the pre-task model steered by the new task's vector, weight "
        f"{results['settings']['kl_weight']}, plus the progressive intervention). Changes from the model after "
        f"task 1 to the end of the sequence — " + "; ".join(parts) + ". " + results.get("verdict", "")
    )
    fig = px.bar(
        frame,
        x="set",
        y="change",
        color="run",
        barmode="group",
        facet_row="metric",
        title="Forgetting after sequential fine-tuning: plain vs IV-guided (after − before)",
    )
    fig.update_yaxes(matches=None)
    sections = [
        Section(
            title="Forgetting: plain vs IV-guided fine-tuning",
            reading=reading,
            figures=[fig],
            tables=[table.round(3)],
        )
    ]
    sup = results.get("suppressed")
    if sup:
        sup_frame = pd.DataFrame(sup)
        sup_reading = (
            f"Suppressed, not erased: the instruction vector of {first}, computed on the model before any "
            f"fine-tuning, added after layer {results['vector_layer']} at the last prompt token of the model tuned on "
            f"the later tasks. "
            + "; ".join(
                f"{r['run']} ({r['form']}): accuracy {r['without']:.2f} without, {r['with']:.2f} with the vector "
                f"(before fine-tuning {r['original']:.2f})"
                for r in sup
            )
            + "."
        )
        sections.append(
            Section(
                title="Forgotten tasks come back with the pre-fine-tuning vector",
                reading=sup_reading,
                tables=[sup_frame.round(3)],
            )
        )
    return sections


def forgetting_study_section(results=None) -> list:
    """The forgetting study (``instr-interp study forgetting``) from its summary JSON
    (``benchmarks/results/study_forgetting.json`` by default); no section when it is absent.

    Reads, never computes: each arm's mean change in instruction and knowledge NLL on every set
    with its seed×item bootstrap interval, and each guided arm minus plain (the new task included).
    """
    import plotly.express as px

    from ..studies import study_path

    if results is None or isinstance(results, (str, Path)):
        path = Path(results) if results is not None else study_path("forgetting")
        if not path.exists():
            return []
        results = json.loads(path.read_text())
    frame = pd.DataFrame(results["forgetting"])
    diffs = pd.DataFrame(results["guided_minus_plain"])
    s = results["settings"]

    def interval(row) -> str:
        return f"{row['change']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}]"

    def diff_text(arm: str, metric: str, new: bool = False) -> str:
        part = diffs[
            (diffs["arm"] == arm) & (diffs["metric"] == metric) & (diffs["set"].str.startswith("new:") == new)
        ]
        return ", ".join(
            f"{r['set']} {r['minus_plain']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}]"
            for _, r in part.iterrows()
        )

    new = frame[frame["set"].str.startswith("new:")]
    learned = "; ".join(f"{r['arm']} {interval(r)}" for _, r in new.iterrows())
    teacher = results.get("teacher") or {}
    reading = (
        f"{s['model']} was LoRA-tuned (all linear layers, lr {s['lr']}, {s['warmup']:.0%} warm-up, "
        f"{s['epochs']} epochs of {s['n_train']} items, batch {s['batch_size']}, seeds {s['seeds']}) on the new "
        f"task {s['new']}, plainly and with instruction-vector guidance (all terms, and each term removed). "
        f"Change of the new task's held-out instruction NLL (nats/token, 95% interval over seeds and items): "
        f"{learned}. Guided minus plain on the new task: {diff_text('guided', 'instruction_nll', new=True)} "
        "(above 0: guidance learned the new task less, so less forgetting can be partly less learning)"
        + f". Guided minus plain, instruction NLL: {diff_text('guided', 'instruction_nll')}; knowledge NLL: "
        f"{diff_text('guided', 'knowledge_nll')} (an interval that excludes 0 is a difference; one that spans it "
        f"shows none at this size; with {len(s['seeds'])} seeds the seed level of each interval rests on few draws)."
        + (
            f" Teacher check: the steered pre-task model gets {teacher['accuracy']:.2f} of the training prompts' "
            f"first response tokens right (without the vector {teacher['accuracy_without']:.2f})."
            if teacher
            else ""
        )
    )
    fig = px.bar(
        frame.assign(err_plus=frame["high"] - frame["change"], err_minus=frame["change"] - frame["low"]),
        x="set",
        y="change",
        color="arm",
        barmode="group",
        facet_row="metric",
        error_y="err_plus",
        error_y_minus="err_minus",
        title="Forgetting study: change in NLL after tuning (tuned − base), 95% intervals over seeds and items",
    )
    fig.update_yaxes(matches=None)
    table = frame[["arm", "set", "metric", "before", "change", "low", "high"]].round(3)
    return [
        Section(
            title="Forgetting study: plain vs IV-guided, term by term",
            reading=reading,
            figures=[fig],
            tables=[table, diffs.round(3)],
        )
    ]
