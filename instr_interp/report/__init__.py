"""Presentation: the HTML report (:mod:`.page`), its sections per analysis family
(:mod:`.sections_sparcom`, :mod:`.sections_shift`, :mod:`.sections_vectors`), the papers' reference
numbers (:mod:`.paper_numbers`) and the pipeline that runs the analyses for it (:mod:`.stages`).

Nothing below this package imports it: analyses return results, and only this package renders them.
"""

from .page import Section, write_report

__all__ = ["Section", "write_report"]
