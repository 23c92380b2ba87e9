"""The report's section on the after model: is ``gemma-3-270m-tuned`` a better instruction follower
than its base? It renders the committed summary of ``instr-interp study following``."""

import pandas as pd

from .page import Section

__all__ = ["following_section"]


def _table(rows: list[dict], what: str) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame.insert(0, "measure", what)
    return frame.round(3)


def following_section(summary: dict | None, command: str) -> Section:
    """Base vs tuned on the same records and prompt format (``summary``: the study's JSON, or None
    when it has not been run)."""
    title = "The after model: does the tune follow instructions better?"
    if summary is None:
        return Section(
            title=title,
            reading=f"The comparison has not been run here; run `{command}` (it writes the summary this section shows).",
        )
    base, tuned = summary["models"]
    overall = {row["category"]: row for row in summary["nll"]}["all"]
    correct = {row["category"]: row for row in summary["correct"]}["all"]
    stopped = {row["category"]: row for row in summary["stopped"]}["all"]
    reading = (
        f"Both models read the same records in the same prompt format ({summary['format']}; the shared tokenizer "
        f"has no chat template). On {summary['nll_records']} analysis records, which the tune never saw (the "
        f"development records that chose its number of steps left out), "
        f"{tuned}'s reference-response NLL minus {base}'s is {overall['difference']:+.2f} nats/token "
        f"(95% bootstrap interval {overall['ci_low']:+.2f} to {overall['ci_high']:+.2f}; each category weighted "
        f"equally); it is lower in {summary['categories_lower']} of {summary['categories']} categories, with an "
        f"interval below zero in {summary['categories_lower_ci']}. On {correct['n']} verifiable held-out "
        f"records (tuning templates never trained on), {tuned} answers {correct['tuned']:.0%} correctly against "
        f"{base}'s {correct['base']:.0%} (difference {correct['difference']:+.2f}, interval "
        f"{correct['ci_low']:+.2f} to {correct['ci_high']:+.2f}); {stopped['tuned']:.0%} of its greedy responses "
        f"stop by themselves within {summary['max_new_tokens']} tokens against {stopped['base']:.0%} "
        f"(difference {stopped['difference']:+.2f}, interval {stopped['ci_low']:+.2f} to {stopped['ci_high']:+.2f})."
    )
    tables = [
        _table(summary["nll"], "reference NLL (nats/token)"),
        _table(summary["correct"], "correct (verifiable records)"),
        _table(summary["stopped"], "stops by itself"),
        pd.DataFrame(summary["examples"]),
    ]
    return Section(title=title, reading=reading, tables=tables)
