"""Cached reload time of the bundled models, as a user meets it: a fresh Python process that imports
instr_interp and calls ``load_model`` on an already converted model.

Each repeat runs two processes per model side by side: ``once`` is ``load_model`` as it is (the
tokenizer is read once, with ``add_bos_token=True``); ``twice`` replaces that tokenizer load with a
plain ``AutoTokenizer.from_pretrained``, as the code did before, so that TransformerLens reads the
tokenizer files a second time. Prints the median seconds inside the process (import + load) and
the wall time of the whole process.

    python benchmarks/load_time.py --repeats 3 --out benchmarks/results/load_time.json
"""

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time

CHILD = r"""
import sys, time
start = time.perf_counter()
import instr_interp as ii
if sys.argv[2] == "twice":
    from transformers import AutoTokenizer
    ii.models._load_tokenizer = lambda source, offline: AutoTokenizer.from_pretrained(source, local_files_only=offline)
ii.load_model(sys.argv[1], device="cpu")
print(time.perf_counter() - start)
"""


def one(alias: str, mode: str) -> tuple[float, float]:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, alias, mode], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1]), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["smollm2-135m-instruct", "gemma-3-270m"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    rows = []
    for alias in args.models:
        one(alias, "once")  # converts the model if needed and warms the file cache
        times = {"once": [], "twice": []}
        for _ in range(args.repeats):
            for mode in ("once", "twice"):  # interleaved, so drift hits both alike
                times[mode].append(one(alias, mode))
        row = {"model": alias}
        for mode, values in times.items():
            row[f"{mode}_load_s"] = statistics.median(v[0] for v in values)
            row[f"{mode}_process_s"] = statistics.median(v[1] for v in values)
            row[f"{mode}_all"] = values
        row["ratio"] = row["once_load_s"] / row["twice_load_s"]
        rows.append(row)
        print(
            f"{alias}: import + load {row['once_load_s']:.2f} s (tokenizer read twice: {row['twice_load_s']:.2f} s, "
            f"ratio {row['ratio']:.2f}); whole process {row['once_process_s']:.2f} s"
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(
                {
                    "machine": platform.platform(),
                    "processor": platform.processor(),
                    "repeats": args.repeats,
                    "rows": rows,
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
