"""The statistics pass of two source trees of instr_interp side by side (e.g. before and after a
change), in fresh processes, interleaved A B A B, on SmolLM2-135M-Instruct with one thread.

    python benchmarks/bench_versions.py --a /path/to/old/tree --b . --repeats 4

Each process loads the bundled model, encodes the same HexaInst sample, warms up on a few records, then
times one `run(model, encoded, [NeuronFiring()])`. It prints the seconds and a hash of the counts: the
two trees must give identical counts. Writes benchmarks/results/versions_<name>.json.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import hashlib, json, time, torch
import instr_interp as ii
torch.set_num_threads(1)
model = ii.load_model("smollm2-135m-instruct", device="cpu")
data = ii.hexainst().sample(per_category=PER, seed=0)
enc = ii.encode(data, model.tokenizer)
ii.run(model, ii.encode(data[:4], model.tokenizer), [ii.NeuronFiring()], progress=False, batch_size=16)
start = time.perf_counter()
(probe,) = ii.run(model, enc, [ii.NeuronFiring()], progress=False, batch_size=16)
seconds = time.perf_counter() - start
counts = probe.result().counts
print(json.dumps({"seconds": seconds, "counts": hashlib.sha256(counts.numpy().tobytes()).hexdigest()[:16],
                  "file": ii.__file__}))
"""


def once(tree: str, per: int) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(tree).resolve()),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    out = subprocess.run(
        [sys.executable, "-c", CHILD.replace("PER", str(per))],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", required=True, help="the reference source tree (a checkout of instr_interp)")
    parser.add_argument("--b", default=".", help="the tree under test")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--per-category", type=int, default=10)
    parser.add_argument("--name", default="stats_pass")
    args = parser.parse_args()
    runs = {"a": [], "b": []}
    for r in range(args.repeats):
        for side in ("a", "b"):
            res = once(getattr(args, side), args.per_category)
            runs[side].append(res)
            print(
                f"repeat {r} {side}: {res['seconds']:.2f} s counts {res['counts']} ({res['file']})",
                flush=True,
            )
    ratios = [b["seconds"] / a["seconds"] for a, b in zip(runs["a"], runs["b"])]
    same = len({x["counts"] for x in runs["a"] + runs["b"]}) == 1
    summary = {
        "a": str(Path(args.a).resolve()),
        "b": str(Path(args.b).resolve()),
        "per_category": args.per_category,
        "seconds_a": [x["seconds"] for x in runs["a"]],
        "seconds_b": [x["seconds"] for x in runs["b"]],
        "ratios_b_over_a": ratios,
        "median_ratio": statistics.median(ratios),
        "identical_counts": same,
    }
    print(json.dumps(summary, indent=1))
    Path(__file__).with_name("results").joinpath(f"versions_{args.name}.json").write_text(
        json.dumps(summary, indent=1)
    )


if __name__ == "__main__":
    main()
