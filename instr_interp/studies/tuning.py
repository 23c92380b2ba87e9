"""``instr-interp study tuning``: where did tuning act, at an adequate size (:func:`where_tuning_acted`).

Design. ``gemma-3-270m`` (base) and ``gemma-3-270m-tuned`` read the same HexaInst records in one
format (alpaca; their shared tokenizer has no chat template): 10 records per category drawn
(``sample(per_category=10, seed=0)``) from the records outside the tune's development split, which
chose its number of steps (so no analysed record ever influenced the tune). Each layer's attention
output, MLP output and each head's ``z`` is patched in both directions (restore: tuned into base;
remove: base into tuned) over all positions, scored by reference-response NLL, stopping and
first-token accuracy; intervals are percentile bootstraps over records (1,000 resamples).

Units (resumable): one per component and block of layers (6 layers for attention/MLP outputs, 3
for heads), keyed by the tuned adapter's hash, each a :class:`TuningEffects` over its block; the
summary is the combined result's ``gaps()`` and ``to_frame()``, which the report renders.
"""

from tqdm.auto import tqdm

from ..models import TUNED, tiny_model
from ..sweeps.tuning import TuningEffects, where_tuning_acted
from .following import analysis_records, model_pair

__all__ = ["run", "SIZES", "COMMAND"]

COMMAND = "instr-interp study tuning"

SIZES = {
    "full": dict(
        per_category=10,
        components=("attn_out", "mlp_out", "heads"),
        block={"attn_out": 6, "mlp_out": 6, "heads": 3},
        batch_size=4,
        n_boot=1000,
    ),
    "tiny": dict(
        per_category=1,
        components=("attn_out", "heads"),
        block={"attn_out": 1, "heads": 2},
        batch_size=2,
        n_boot=200,
    ),
}


def run(store, size: str, progress: bool) -> dict:
    plan = SIZES[size]
    data = analysis_records().sample(per_category=plan["per_category"], seed=0)
    models = None
    n_layers = tiny_model(seed=0).cfg.n_layers if size == "tiny" else 18
    units = [
        (component, list(range(start, min(start + plan["block"][component], n_layers))))
        for component in plan["components"]
        for start in range(0, n_layers, plan["block"][component])
    ]
    sha = TUNED["gemma-3-270m-tuned"].sha256[:12]
    parts = []
    for component, layers in tqdm(units, desc="where tuning acted (units)", disable=not progress):

        def compute(component=component, layers=layers):
            nonlocal models
            models = models or model_pair(size)
            if models[0].cfg.n_layers != n_layers:
                raise RuntimeError(f"Expected {n_layers} layers, the model has {models[0].cfg.n_layers}.")
            effects = where_tuning_acted(
                *models,
                data,
                components=[component],
                layers=layers,
                batch_size=plan["batch_size"],
                n_boot=plan["n_boot"],
                progress=False,
            )
            return effects.to_json()

        key = f"{component}-layers{layers[0]}-{layers[-1]}-{data.fingerprint()[:8]}-{sha}"
        parts.append(TuningEffects.from_json(store.unit(key, compute), store.root / f"{key}.json"))
    effects = TuningEffects.combine(parts)
    gaps, frame = effects.gaps(), effects.to_frame()
    return {
        "models": [effects.settings["base"], effects.settings["tuned"]],
        "records": len(effects.ids),
        "per_category": plan["per_category"],
        "components": list(plan["components"]),
        "positions": effects.settings["positions"],
        "n_boot": plan["n_boot"],
        "gaps": gaps.to_dict("records"),
        "effects": frame.to_dict("records"),
    }
