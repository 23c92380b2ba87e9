"""The papers' reference numbers quoted in the report, each with its source.

Sections read these instead of writing the numbers into their prose; METHODS.md gives the context.
"""

__all__ = ["PAPER_NUMBERS"]

PAPER_NUMBERS: dict[str, dict] = {
    # Wu et al. 2024 (arXiv 2310.00492), instruction scores on LIMA prompts, recomputed from the
    # authors' released attribution matrices (METHODS.md, section on input-output attribution).
    "instruction_score_lima": {
        "source": "Wu et al. 2024, arXiv 2310.00492, LIMA prompts",
        "tuned": "Vicuna-7B",
        "tuned_mean": 1.556,
        "tuned_std": 0.484,
        "base": "LLaMA-7B",
        "base_mean": 1.266,
        "base_std": 0.429,
    },
}
