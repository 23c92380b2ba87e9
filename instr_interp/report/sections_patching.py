"""Report sections for cross-model patching: where did instruction tuning act?

Only renders the frames of :class:`~instr_interp.sweeps.TuningEffects` (``gaps()`` and
``to_frame()``, live or from the committed summary of ``instr-interp study tuning``) with
:func:`~instr_interp.sweeps.tuning.top_effects` and :func:`~instr_interp.sweeps.tuning.plot_effects`;
every number comes from those.
"""

import pandas as pd

from ..sweeps.tuning import plot_effects, top_effects
from .page import Section

__all__ = ["tuning_sections", "layer_relation_section"]

_NAMES = {
    "nll": "reference-response NLL",
    "stop": "probability of stopping after the reference response",
    "first_token": "first-token accuracy",
    "kl": "KL to the source model",
}


def _gap_sentence(row) -> str:
    name = _NAMES.get(row.metric, row.metric)
    text = (
        f"{name}: base {row.base:.3f}, tuned {row.tuned:.3f}; gap toward the tuned model {row.gap:+.3f} "
        f"(95% bootstrap interval {row.gap_low:+.3f} to {row.gap_high:+.3f} over records)"
    )
    if row.gap_clear:
        return text + "."
    return text + " — not clearly positive, so no fraction of the gap is formed for it; raw differences only."


def _metric_reading(frame: pd.DataFrame, metric: str, clear: bool) -> str:
    parts = []
    for direction, verb in (
        ("restore", "patching the tuned model's"),
        ("remove", "patching the base model's"),
    ):
        top = top_effects(frame, 1, metric=metric, direction=direction)
        if not len(top):
            continue
        best = top.iloc[0]
        where = f"{best.component} of layer {int(best.layer)}"
        if clear:
            amount = f"{best.fraction:.0%} of the gap (interval {best.fraction_low:.0%} to {best.fraction_high:.0%})"
        else:
            amount = f"a raw change of {best.effect:+.3f} (interval {best.effect_low:+.3f} to {best.effect_high:+.3f})"
        target = "into the base model" if direction == "restore" else "into the tuned model"
        parts.append(f"{verb} {where} {target} moves {_NAMES.get(metric, metric)} the most: {amount}")
    return "; ".join(parts) + "." if parts else ""


def tuning_sections(
    gaps: pd.DataFrame, frame: pd.DataFrame, *, records: int, base: str, tuned: str, origin: str
) -> list[Section]:
    """A section on the base→tuned gaps, and one per metric with the per-layer effects of patching
    attention and MLP outputs in both directions (and the strongest heads where heads were swept).
    ``gaps``/``frame``: ``TuningEffects.gaps()`` and ``.to_frame()``; ``origin`` says where they come
    from (the run's size, or the study's command)."""
    intro = Section(
        title=f"Where tuning acted: the base→tuned gap ({origin})",
        reading=(
            f"{records} records, {base} (base) and {tuned} (tuned); {origin}. Effects are oriented toward the "
            "tuned model (lower NLL counts as toward it). "
            + " ".join(_gap_sentence(row) for row in gaps.itertuples())
        ),
        tables=[gaps],
    )
    sections = [intro]
    for row in gaps.itertuples():
        part = frame[frame.metric == row.metric]
        tables = [
            top_effects(frame, 10, metric=row.metric, direction="restore"),
            top_effects(frame, 10, metric=row.metric, direction="remove"),
        ]
        heads = part[part.component == "heads"]
        if len(heads):
            tables.append(heads[heads.direction == "restore"].sort_values("effect", ascending=False).head(10))
        sections.append(
            Section(
                title=f"Where tuning acted: {_NAMES.get(row.metric, row.metric)} ({origin})",
                reading=_metric_reading(frame, row.metric, bool(row.gap_clear)),
                figures=[plot_effects(frame, row.metric)],
                tables=tables,
            )
        )
    return sections


def layer_relation_section(table: pd.DataFrame, *, change: str, origin: str) -> Section:
    """Whether the layers where patching matters are the layers where tuning changed the ISNs:
    :func:`~instr_interp.sweeps.tuning.layer_relation`'s table, with ``change`` naming the per-layer
    measure and ``origin`` where the two results come from."""
    parts = []
    for row in table.itertuples():
        what = f"{row.direction} {row.component}"
        if row.note:
            parts.append(f"{what}: {row.note}")
        else:
            parts.append(
                f"{what}: Spearman rho {row.rho:+.2f} over {row.layers} layers (permutation p = {row.p_value:.3f})"
            )
    return Section(
        title="Where tuning acted vs where the ISNs changed",
        reading=(
            f"Across layers, the effect of patching each layer's output (reference-response NLL, oriented toward "
            f"the tuned model) against {change} ({origin}). "
            + "; ".join(parts)
            + ". A correlation says the two "
            "rank layers alike; with 18 layers only a strong one (|rho| above about 0.47) can reach p < 0.05."
        ),
        tables=[table],
    )
