"""A self-contained HTML report: the :class:`Section` type and the page writer.

The sections themselves are built per analysis family in :mod:`~instr_interp.report.sections_sparcom`,
:mod:`~instr_interp.report.sections_shift` and :mod:`~instr_interp.report.sections_vectors`. The page
embeds plotly.js once and works offline.
"""

import html
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..files import write_atomic

__all__ = ["Section", "write_report"]


@dataclass(kw_only=True)
class Section:
    """One report section: a title, a plain-language reading, figures and tables."""

    title: str
    reading: str
    figures: list = field(default_factory=list)  # plotly Figures
    tables: list[pd.DataFrame] = field(default_factory=list)
    html: str = ""  # extra raw HTML (e.g. circuitsvis views)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:0} .meta{color:#666;margin-top:.3em} section{margin:2.5em 0;border-top:1px solid #ddd}
.reading{background:#f6f8fa;border-left:4px solid #4c78a8;padding:.6em 1em;line-height:1.5}
table{border-collapse:collapse;font-size:.85em;margin:1em 0} td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f0f0f0} nav a{margin-right:1em}
"""


def write_report(
    sections: Sequence[Section], path, *, title: str = "instr_interp report", meta: str = ""
) -> Path:
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
        "<nav>"
        + "".join(f"<a href='#s{i}'>{html.escape(s.title)}</a>" for i, s in enumerate(sections))
        + "</nav>",
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
    return write_atomic(path, "\n".join(parts))
