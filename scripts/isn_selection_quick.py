"""The numbers of docs/neurons.md for the selection rules and overlap statistics, on SmolLM2-135M-Instruct
and the quick sample (6 records per category; about 3 CPU minutes on 1 thread):

    MKL_CBWR=AUTO,STRICT OMP_NUM_THREADS=1 python scripts/isn_selection_quick.py [out.json]
"""

import json
import sys

import instr_interp as ii  # before torch (MKL reproducible mode)
from instr_interp.sparcom.selection import sets_from_firing


def main(out: str | None = None) -> dict:
    data = ii.hexainst().sample(per_category=6, seed=0)
    model = ii.load_model("smollm2-135m-instruct", device="cpu")
    sets, stats = ii.find_isns(model, data, keep_frequencies=True, progress=False, batch_size=8)
    result = {}
    for tie_break in ("layer_rank", "layer_z", "raw", "index"):
        s = sets_from_firing(stats, tie_break=tie_break)
        layers = s.layer_distribution().groupby("layer")["count"].sum()
        table = s.overlap("pairwise").to_numpy()
        off = (table.sum() - table.trace()) / (table.size - len(table))
        result[tie_break] = {
            "tie_summary": s.tie_summary(),
            "layers 0-9 / 10-19 / 20-29": [int(layers.iloc[a : a + 10].sum()) for a in (0, 10, 20)],
            "diagonal excess": float(table.trace() / len(table) - off),
            "general": len(s.general()),
        }
    for threshold in (0.9, 1.0):
        s = sets_from_firing(stats, select="threshold", threshold=threshold)
        result[f"threshold {threshold}"] = {
            "instruction sets": s.size_summary(),
            "category sets": {c: len(v) for c, v in s.category_sets.items()},
        }
    s = sets_from_firing(stats, select="lape")
    result["lape"] = {
        "category sets": {c: len(v) for c, v in s.category_sets.items()},
        "tie_decided": s.tie_decided,
        "per layer": s.layer_distribution().groupby("layer")["count"].sum().tolist(),
    }
    tokens, groups = ii.counted_tokens(stats), data.template_groups()
    for name, kwargs in (("plain", {"n_bins": 1}), ("length", {}), ("length+template", {"groups": groups})):
        test = ii.overlap_test(sets, tokens, **kwargs)
        result[f"overlap {name}"] = {
            "test": test.test.iloc[0].to_dict(),
            "per category": test.per_category.round(3).to_dict("records"),
        }
    change = ii.compare_with_intervals(
        stats, stats, threshold=0.9, n_boot=200, n_splits=50, groups=groups, progress=False
    )
    result["threshold 0.9 noise floor"] = change.noise.round(3).to_dict("records")
    result["threshold 0.9 sizes"] = change.summary[
        ["category", "before", "before_low", "before_high"]
    ].to_dict("records")
    text = json.dumps(result, indent=1, default=str)
    if out:
        with open(out, "w") as f:
            f.write(text)
    print(text)
    return result


if __name__ == "__main__":
    main(*sys.argv[1:])
