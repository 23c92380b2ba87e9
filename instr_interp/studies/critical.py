"""``instr-interp study critical``: the critical role of ISNs at an adequate size (:func:`critical_role`).

Design (``full``). SmolLM2-135M-Instruct (the report's default model) on all 360 HexaInst records,
split by :meth:`InstructionDataset.split` with ``n_eval=10`` (seed 0): 10 evaluation records per
category, the rest identify the sets (records sharing a template or an instruction stay on one
side). The sets are the report's (``sets_from_firing(stats, top=0.01)``: 1% of all layer × neuron
units per category). Every kind of set is zeroed (each category's set, its unique neurons, its
neurons outside the general set, and the general set), each against 20 control sets matched per
layer in count, firing frequency and mean activation; intervals are bootstrap intervals over the
evaluation records (1,000 resamples).

Units (resumable): the names of the sets, then one unit per set, each a :class:`CriticalRole` of that
set alone (a set's controls are seeded by its name, so the parts combine into exactly one run's
result). The firing statistics of the identification records are computed in the process (a few
minutes) when a unit is missing. The summary is the combined result's :meth:`CriticalRole.view`, which the report renders.
"""

from functools import partial

from tqdm.auto import tqdm

from ..data.dataset import hexainst
from ..models import load_model, tiny_model
from ..sparcom.ablation import critical_role, identification_stats
from ..sparcom.critical import KINDS, CriticalRole, ablation_sets
from ..sparcom.selection import sets_from_firing

__all__ = ["run", "DESIGNS", "COMMAND"]

COMMAND = "instr-interp study critical"

DESIGNS = {
    "full": dict(
        model="smollm2-135m-instruct", categories=None, per_category=None, n_eval=10, top=0.01, batch_size=8
    ),
    "tiny": dict(model="tiny", categories=("code", "math"), per_category=3, n_eval=1, top=0.02, batch_size=4),
}


def run(store, size: str, progress: bool) -> dict:
    design = DESIGNS[size]
    data = hexainst()
    if design["categories"]:
        data = data.filter(category=list(design["categories"]))
    if design["per_category"]:
        data = data.sample(per_category=design["per_category"], seed=0)
    identify, evaluate = data.split(None, n_eval=design["n_eval"], seed=0)
    rule = partial(sets_from_firing, top=design["top"])
    state = {}
    tag = f"{design['model']}-{data.fingerprint()[:8]}-top{design['top']}"

    def prepared():
        if not state:
            state["model"] = tiny_model(seed=0) if design["model"] == "tiny" else load_model(design["model"])
            state["stats"] = identification_stats(state["model"], identify, design["batch_size"], progress)
        return state["model"], state["stats"]

    def set_names():
        return [name for name, *_ in ablation_sets(rule(prepared()[1]), KINDS)]

    def compute(name):
        model, stats = prepared()
        result = critical_role(
            model,
            identify,
            rule,
            stats=stats,
            eval_data=evaluate,
            names=[name],
            n_control=20,
            batch_size=design["batch_size"],
            progress=progress,
        )
        return result.to_json()

    parts = []
    for name in tqdm(store.unit(f"sets-{tag}", set_names), desc="critical role (sets)", disable=not progress):
        key = f"set-{name.replace(' ', '_')}-{tag}"
        parts.append(
            CriticalRole.from_json(
                store.unit(key, lambda name=name: compute(name)), store.root / f"{key}.json"
            )
        )
    result = CriticalRole.combine(parts)
    return {
        "model": design["model"],
        "design": (
            f"{result.settings['model']}, sets (top {design['top']:.0%} per category) from "
            f"{len(identify)} HexaInst records, zeroed on {len(evaluate)} others ({design['n_eval']} per category), "
            f"{result.n_control} matched controls per set"
        ),
        "view": result.view(),
    }
