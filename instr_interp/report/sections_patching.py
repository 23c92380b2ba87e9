"""Report sections for cross-model patching: where did instruction tuning act?

Only renders :class:`~instr_interp.sweeps.TuningEffects` (its ``gaps()``, ``to_frame()``, ``top()``
and ``plot()``); every number comes from those public methods.
"""

from ..sweeps.tuning import TuningEffects
from .page import Section

__all__ = ["tuning_sections"]

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


def _metric_reading(effects: TuningEffects, metric: str, clear: bool) -> str:
    parts = []
    for direction, verb in (
        ("restore", "patching the tuned model's"),
        ("remove", "patching the base model's"),
    ):
        top = effects.top(1, metric=metric, direction=direction)
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


def tuning_sections(effects: TuningEffects) -> list[Section]:
    """A section on the base→tuned gaps, and one per metric with the per-layer effects of patching
    attention and MLP outputs in both directions (and the strongest heads where heads were swept)."""
    gaps = effects.gaps()
    base, tuned = effects.settings.get("base", "base"), effects.settings.get("tuned", "tuned")
    intro = Section(
        title="Where tuning acted: the base→tuned gap",
        reading=(
            f"{len(effects.ids)} records, {base} (base) and {tuned} (tuned). Effects are oriented toward the "
            "tuned model (lower NLL counts as toward it). "
            + " ".join(_gap_sentence(row) for row in gaps.itertuples())
        ),
        tables=[gaps],
    )
    sections = [intro]
    frame = effects.to_frame()
    for row in gaps.itertuples():
        part = frame[frame.metric == row.metric]
        tables = [
            effects.top(10, metric=row.metric, direction="restore"),
            effects.top(10, metric=row.metric, direction="remove"),
        ]
        heads = part[part.component == "heads"]
        if len(heads):
            tables.append(heads[heads.direction == "restore"].sort_values("effect", ascending=False).head(10))
        sections.append(
            Section(
                title=f"Where tuning acted: {_NAMES.get(row.metric, row.metric)}",
                reading=_metric_reading(effects, row.metric, bool(row.gap_clear)),
                figures=[effects.plot(row.metric)],
                tables=tables,
            )
        )
    return sections
