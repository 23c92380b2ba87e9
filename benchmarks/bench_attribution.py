"""Gradient input→output attribution: speed against the per-token loop, and instruction scores.

``speed``: on SmolLM2-135M-Instruct, for a few HexaInst records and their greedy responses
(``--max-new-tokens``), time ``instr_interp.attribute`` (one forward, batched backward; and ``mode="forward"``, one dual
forward per prompt token) against
the plain per-token loop (one forward + one backward per response token, the full sequence
each time) and a prefix loop (the same, but each forward runs only up to the predicting
position), interleaved per repeat; report medians, ratios and the largest relative difference.
With ``--loop-tokens K`` the two loops run only for K evenly spaced response tokens (the first and
last included) and their times are scaled by n_response / K: the full-sequence loop costs the same
for every token, so the scaled time estimates the whole loop; the prefix loop's cost grows with the
position, and evenly spaced positions estimate its mean. Values are compared on those K columns.

``scores``: instruction scores of each model on its own greedy responses (Wu et al.), per
category and overall, with the one-sided Welch t-test of the second model > the first.

    python benchmarks/bench_attribution.py speed --records 3 --repeats 3 --threads 1
    python benchmarks/bench_attribution.py speed --ids qa-t-019 --repeats 1 --max-new-tokens 256 --loop-tokens 32
    python benchmarks/bench_attribution.py scores --per-category 5 --threads 1

Run with ``MKL_CBWR=AUTO,STRICT`` in the environment (torch is imported before instr_interp here).
"""

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

import torch

import instr_interp as ii
from instr_interp.engine.generation import generate_responses
from instr_interp.shift.attribution import attribute, attribute_many, compare_scores

RESULTS = Path(__file__).parent / "results"


def machine(threads: int) -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": threads,
        "cpu_count": os.cpu_count(),
        "MKL_CBWR": os.environ.get("MKL_CBWR"),
        "instr_interp_path": str(Path(ii.__file__).parent),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def per_token_loop(model, attr, prefix: bool, columns=None) -> torch.Tensor:
    """One forward (through the bridge, embedding as a leaf via hook_embed) and one backward per token
    (per response token, or only those at the indices ``columns`` of ``attr.response_positions``)."""
    ids = attr.input_ids[None]
    held = {}

    def leaf(act, hook=None):
        held["e"] = act.detach().clone().requires_grad_(True)
        return held["e"]

    cols = []
    positions = attr.response_positions if columns is None else attr.response_positions[columns]
    for m in positions.tolist():
        tokens = ids[:, :m] if prefix else ids
        with torch.enable_grad(), model.hooks(fwd_hooks=[("hook_embed", leaf)]):
            logits = model(tokens)
            p = torch.softmax(logits[0, m - 1], -1)[ids[0, m]]
            (grad,) = torch.autograd.grad(p, held["e"])
        cols.append((grad[0] * held["e"][0].detach()).sum(-1)[attr.prompt_positions])
    return torch.stack(cols, 1)


def speed(args) -> dict:
    model = ii.load_model("smollm2-135m-instruct", device="cpu")
    for p in model.parameters():
        p.requires_grad_(False)
    if args.ids:
        by_id = {r.id: r for r in ii.hexainst()}
        data = [by_id[i] for i in args.ids]
    else:
        data = ii.hexainst().sample(per_category=1, seed=args.seed)[: args.records]
    filled = generate_responses(
        model, data, max_new_tokens=args.max_new_tokens, format="plain", progress=False
    )
    rows = []
    for rec in filled:
        shape = attribute(model, rec)  # warm-up; gives the positions the loops use
        attribute(model, rec, mode="forward")  # warm-up (torch loads its forward-AD rules once)
        n = len(shape.response_positions)
        k = n if not args.loop_tokens else min(args.loop_tokens, n)
        columns = torch.linspace(0, n - 1, k).round().long().unique()
        scale = n / len(columns)
        times = {"batched": [], "forward": [], "loop": [], "prefix_loop": []}
        out = {}
        for _ in range(args.repeats):
            for name in times:
                start = time.perf_counter()
                if name == "batched":
                    out[name] = attribute(model, rec).matrix
                elif name == "forward":
                    out[name] = attribute(model, rec, mode="forward").matrix
                else:
                    out[name] = per_token_loop(model, shape, prefix=name == "prefix_loop", columns=columns)
                times[name].append(
                    (time.perf_counter() - start) * (1 if name in ("batched", "forward") else scale)
                )
        med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
        ref = out["loop"].double()
        batched = out["batched"][:, columns].double()
        row = {
            "id": rec.id,
            "n_prompt": int(out["batched"].shape[0]),
            "n_response": int(out["batched"].shape[1]),
            "loop_tokens_timed": len(columns),
            "loop_times_scaled_by": scale,
            "times_s": times,
            "median_s": med,
            "loop_over_batched": med["loop"] / med["batched"],
            "prefix_loop_over_batched": med["prefix_loop"] / med["batched"],
            "loop_over_forward": med["loop"] / med["forward"],
            "batched_over_forward": med["batched"] / med["forward"],
            "rel_err_forward_vs_loop": float((out["forward"][:, columns].double() - ref).norm() / ref.norm()),
            "rel_err_batched_vs_loop": float((batched - ref).norm() / ref.norm()),
            "rel_err_prefix_vs_loop": float((out["prefix_loop"].double() - ref).norm() / ref.norm()),
        }
        print(json.dumps({k: v for k, v in row.items() if k != "times_s"}), flush=True)
        rows.append(row)
    total = {k: sum(r["median_s"][k] for r in rows) for k in ("batched", "forward", "loop", "prefix_loop")}
    return {
        "benchmark": "attribution speed",
        "model": "smollm2-135m-instruct",
        "settings": vars(args) | {"func": None},
        "records": rows,
        "total_median_s": total,
        "loop_over_batched": total["loop"] / total["batched"],
        "prefix_loop_over_batched": total["prefix_loop"] / total["batched"],
        "loop_over_forward": total["loop"] / total["forward"],
        "machine": machine(args.threads),
    }


def scores(args) -> dict:
    data = ii.hexainst().sample(per_category=args.per_category, seed=args.seed)
    sets, timing = {}, {}
    for alias in args.models:
        model = ii.load_model(alias, device="cpu")
        start = time.perf_counter()
        sets[alias] = attribute_many(model, data, max_new_tokens=args.max_new_tokens, progress=True)
        timing[alias] = time.perf_counter() - start
        if args.save:
            sets[alias].save(Path(args.save) / alias)
        del model
    a, b = args.models
    table = compare_scores(sets[a], sets[b])
    print(table.to_string(), flush=True)
    return {
        "benchmark": "attribution instruction scores",
        "settings": vars(args) | {"func": None},
        "a": a,
        "b": b,
        "alternative": "b > a (one-sided Welch)",
        "table": table.to_dict(orient="records"),
        "per_record": {k: s.to_frame().to_dict(orient="records") for k, s in sets.items()},
        "skipped": {k: s.skipped for k, s in sets.items()},
        "wall_s": timing,
        "machine": machine(args.threads),
    }


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("speed")
    sp.add_argument("--records", type=int, default=3)
    sp.add_argument("--repeats", type=int, default=3)
    sp.add_argument("--max-new-tokens", type=int, default=32)
    sp.add_argument("--ids", nargs="*", default=None, help="HexaInst record ids (instead of --records)")
    sp.add_argument("--loop-tokens", type=int, default=0, help="time the loops on this many tokens (0: all)")
    sc = sub.add_parser("scores")
    sc.add_argument("--per-category", type=int, default=5)
    sc.add_argument("--max-new-tokens", type=int, default=32)
    sc.add_argument("--models", nargs=2, default=["gemma-3-270m", "smollm2-135m-instruct"])
    sc.add_argument("--save", default=None, help="directory to save the AttributionSets in")
    for p in (sp, sc):
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = speed(args) if args.cmd == "speed" else scores(args)
    out = Path(args.out) if args.out else RESULTS / f"attribution_{args.cmd}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
