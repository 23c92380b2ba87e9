"""Study ``attribution``: Wu et al.'s instruction-score comparison, base vs tuned, at an adequate size.

The authors' design (``src/run_instruct_following.py``, ``generator.py``): every model gets the raw
prompt (no chat template; here ``format="plain"``), generates its own greedy response, and that
response is attributed to the prompt by the same model; the comparison is over the same prompts.
So here: each model generates greedily (up to ``max_new_tokens``) and attributes its own response;
the scores are paired by prompt. An empty response is kept with score 0. One unit of the study is
one prompt under one model (``Store.unit``), so an interrupted run resumes.

Sizes: ``full`` runs ``gemma-3-270m`` vs ``gemma-3-270m-tuned`` on 102 HexaInst prompts (17 per
category, ``sample(per_category=17, seed=0)``) with responses of up to 128 tokens; ``tiny`` runs a
tiny random model against a perturbed copy of itself on 6 prompts, 6 tokens (a seconds-long check).
"""

import time

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..data.dataset import InstructionRecord, hexainst
from ..data.encoding import Region
from ..engine.generation import generate_responses
from ..shift.attribution import attribute, empty_attribution
from ..shift.score_tests import PAPER_MODEL_EFFECT, compare_models

__all__ = ["run", "DESIGNS"]

DESIGNS = {
    "full": {
        "base": "gemma-3-270m",
        "tuned": "gemma-3-270m-tuned",
        "per_category": 17,
        "max_new_tokens": 128,
    },
    "tiny": {"base": "tiny", "tuned": "tiny-perturbed", "per_category": 1, "max_new_tokens": 6},
}


def _tiny(name: str):
    """The tiny stand-ins: a random tiny model, and the same model with its weights perturbed (a
    'tuned copy' with the same tokenizer and shapes)."""
    from ..models import tiny_model

    model = tiny_model(seed=0)
    if name == "tiny-perturbed":
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * p.std().nan_to_num() * torch.randn(p.shape, generator=gen))
        model.instr_interp_name = name
    return model


def _load(name: str):
    if name in ("tiny", "tiny-perturbed"):
        return _tiny(name)
    from ..models import load_model

    return load_model(name, dtype=torch.float32)


def _unit(model, rec: InstructionRecord, *, max_new_tokens: int, format: str) -> dict:
    """Generate the model's greedy response to ``rec`` and attribute it; the scores and sizes."""
    start, cpu = time.perf_counter(), time.process_time()
    (filled,) = generate_responses(model, [rec], max_new_tokens=max_new_tokens, format=format, progress=False)
    if filled.response.strip():
        attr = attribute(model, filled, format=format)
    else:
        attr = empty_attribution(model, filled, format=format)
    return {
        "id": rec.id,
        "category": rec.category,
        "response": filled.response,
        "generated_tokens": int(filled.meta.get("generated_tokens", 0)),
        "n_prompt": len(attr.prompt_positions),
        "n_instruction": int(attr.instruction_mask.sum()),
        "n_template": int((attr.prompt_regions == Region.TEMPLATE).sum()),
        "n_response": len(attr.response_positions),
        "instruction_score": attr.score(),
        "score_without_template": attr.score(exclude_template=True),
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu,  # the process's CPU time: the shared machine's load aside
    }


def _json(summary: dict) -> dict:
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in summary.items()}


def run(
    store,
    size: str,
    progress: bool,
    *,
    base: str | None = None,
    tuned: str | None = None,
    per_category: int | None = None,
    max_new_tokens: int | None = None,
    format: str = "plain",
    seed: int = 0,
) -> dict:
    """Run the study (see the module docstring); the keyword arguments override the size's design."""
    design = dict(DESIGNS[size])
    overrides = {"base": base, "tuned": tuned, "per_category": per_category, "max_new_tokens": max_new_tokens}
    design.update({k: v for k, v in overrides.items() if v is not None})
    data = hexainst().sample(per_category=design["per_category"], seed=seed)
    frames = {}
    for label in ("base", "tuned"):
        held = {}  # the model, loaded at the first unit not yet stored (a resumed run may need none)

        def compute(rec, name=design[label], held=held):
            if "model" not in held:
                held["model"] = _load(name)
            return _unit(held["model"], rec, max_new_tokens=design["max_new_tokens"], format=format)

        rows = [
            store.unit(f"{label}-{rec.id}", lambda rec=rec: compute(rec))
            for rec in tqdm(data, desc=f"attribution study: {label} ({design[label]})", disable=not progress)
        ]
        frames[label] = pd.DataFrame(rows)
        frames[label].attrs["name"] = design[label]
        held.clear()
    result = {}
    for variant, column in (
        ("all_prompt_tokens", "instruction_score"),
        ("without_template", "score_without_template"),
    ):
        pair = [
            f.rename(columns={column: "_s"}).assign(instruction_score=lambda x: x["_s"])
            for f in frames.values()
        ]
        for f, original in zip(pair, frames.values()):
            f.attrs["name"] = original.attrs["name"]
        result[variant] = _json(compare_models(pair[0], pair[1], effect=PAPER_MODEL_EFFECT).summary)
    # per category: the same paired comparison on that category's prompts (interval and p per category)
    categories = []
    for category in sorted(frames["base"]["category"].unique()):
        part = [f[f["category"] == category] for f in frames.values()]
        c = compare_models(part[0], part[1], effect=PAPER_MODEL_EFFECT).summary
        categories.append(
            {"category": category}
            | {k: c[k] for k in ("n", "mean_a", "mean_b", "difference", "ci_low", "ci_high", "paired_p")}
        )
    return {
        "design": {
            **design,
            "format": format,
            "data": f"hexainst().sample(per_category={design['per_category']}, seed={seed})",
            "n_prompts": len(data),
            "responses": "each model's own greedy response, attributed by that model (as the authors)",
        },
        "comparison": result,
        "per_category": [_json(row) for row in categories],
        "responses": {
            label: {
                "median_tokens": float(f["n_response"].median()),
                "min_tokens": int(f["n_response"].min()),
                "empty": int((f["n_response"] == 0).sum()),
                "at_cap": int((f["generated_tokens"] >= design["max_new_tokens"]).sum()),
            }
            for label, f in frames.items()
        },
        "seconds_per_prompt": {label: float(f["seconds"].mean()) for label, f in frames.items()},
        "cpu_seconds_per_prompt": {label: float(f["cpu_seconds"].mean()) for label, f in frames.items()},
    }
