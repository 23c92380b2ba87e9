"""Study ``following``: is ``gemma-3-270m-tuned`` a better instruction follower than its base?

Both models see the same records in the same prompt format (the shared tokenizer has no chat
template, so the alpaca format): reference-response NLL on the analysis set (``hexainst``, which the
tune never saw) less the development records that chose the tune's number of steps, and greedy answers to the held-out tenth of the tuning set (template
families the tune never saw), judged where verifiable (math answers, code tests, classification
labels), with the share of responses that stop by themselves. One unit per category.
"""

import json

import pandas as pd
from tqdm.auto import tqdm

from ..data.dataset import hexainst, tuneset
from ..models import TUNED, load_model, tiny_model
from ..shift.following import FollowingComparison, compare_following


def splits() -> dict:
    """The tuned model's training log's splits: ``held_out`` (``tuneset().split(**held_out)[1]``, never
    trained on) and ``dev`` (``hexainst().split(**dev)[1]``, which chose the number of steps).

    Examples:
        >>> from instr_interp import hexainst
        >>> analysis, dev = hexainst().split(**splits()["dev"])
        >>> len(analysis) + len(dev), len(set(analysis.ids) & set(dev.ids))
        (360, 0)
    """
    log = json.loads((TUNED["gemma-3-270m-tuned"].folder / "training.json").read_text())
    return {"held_out": log["held_out"]["split"], "dev": log["dev"]["split"]}


SIZES = {
    "full": dict(nll_per_category=None, generate_per_category=None, max_new_tokens=96),
    "tiny": dict(nll_per_category=2, generate_per_category=1, max_new_tokens=4),
}


def analysis_records():
    """The HexaInst records the tune's studies analyse: all but the development split that chose its
    number of steps (so no analysed record influenced the tune)."""
    return hexainst().split(**splits()["dev"])[0]


def model_pair(size: str):
    """The (base, tuned) pair a study compares: the bundled Gemma-3-270M and its tune, or (``tiny``)
    two random tiny models of one architecture."""
    if size == "tiny":
        return tiny_model(seed=0), tiny_model(seed=1)
    return load_model("gemma-3-270m"), load_model("gemma-3-270m-tuned")


def run(store, size: str, progress: bool) -> dict:
    plan = SIZES[size]
    split = splits()
    analysis = analysis_records()
    held_out = tuneset().split(**split["held_out"])[1]
    if plan["nll_per_category"]:
        analysis = analysis.sample(per_category=plan["nll_per_category"], seed=0)
        held_out = held_out.sample(per_category=plan["generate_per_category"], seed=0)
    models = None
    parts = []
    for category in tqdm(analysis.categories, desc="following (per category)", disable=not progress):

        def compute(category=category):
            nonlocal models
            models = models or model_pair(size)
            # summarization has no held-out records (its templates share instructions, so the split
            # keeps them together on the training side): it answers its analysis records instead
            source = held_out if category in held_out.categories else analysis
            result = compare_following(
                *models,
                analysis.filter(category=category),
                generate=source.filter(category=category),
                max_new_tokens=plan["max_new_tokens"],
                progress=progress,
            )
            _, meta = result._saved()
            return meta

        # units are keyed by the shipped adapter, so a rebuilt tune is never read from an older run
        meta = store.unit(f"category-{category}-{TUNED['gemma-3-270m-tuned'].sha256[:12]}", compute)
        parts.append(FollowingComparison._from_saved({}, meta, None))
    merged = FollowingComparison(
        models=parts[0].models,
        format=parts[0].format,
        nll=pd.concat([p.nll for p in parts], ignore_index=True),
        generations=pd.concat([p.generations for p in parts], ignore_index=True),
        settings={**parts[0].settings, **split, "size": size},
    )
    nll = merged.nll_by_category()
    per_category = nll[nll.category != "all"]
    return {
        "models": merged.models,
        "categories_lower": int((per_category.difference < 0).sum()),
        "categories_lower_ci": int((per_category.ci_high < 0).sum()),
        "categories": len(per_category),
        "format": merged.format,
        "nll_records": len(merged.nll),
        "generated_records": len(merged.generations),
        "max_new_tokens": plan["max_new_tokens"],
        "nll": nll.to_dict("records"),
        "correct": merged.rates("correct").to_dict("records"),
        "stopped": merged.rates("stopped").to_dict("records"),
        "examples": merged.examples(n=2).to_dict("records"),
    }
