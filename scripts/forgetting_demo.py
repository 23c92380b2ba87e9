"""Forgetting under sequential LoRA fine-tuning, plain vs IV-guided (see instr_interp/continual.py
for the steps); writes benchmarks/results/forgetting_demo.json.

Run (about 15 minutes on one CPU thread):
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python scripts/forgetting_demo.py
"""

import argparse
import json
import time
from pathlib import Path

import instr_interp  # noqa: F401  (before torch: sets MKL_CBWR)
from instr_interp.vectors.continual import forgetting_demo

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--tasks", nargs="+", default=["antonym", "present_past", "country_capital"])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--kl-weight", type=float, default=5.0)
    p.add_argument("--seq-kl-weight", type=float, default=0.0)
    p.add_argument("--head-consistency", type=float, default=0.0)
    p.add_argument("--n-val", type=int, default=20)
    p.add_argument("--general-n", type=int, default=40)
    p.add_argument("--n-means", type=int, default=30)
    p.add_argument("--n-prompts", type=int, default=15)
    p.add_argument("--layers", type=int, nargs="+", default=[6, 8, 10, 12, 14])
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "forgetting_demo.json"))
    args = p.parse_args()
    t0 = time.perf_counter()
    results = forgetting_demo(
        args.model,
        args.tasks,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        kl_weight=args.kl_weight,
        seq_kl_weight=args.seq_kl_weight,
        head_consistency=args.head_consistency,
        n_val=args.n_val,
        general_n=args.general_n,
        n_means=args.n_means,
        n_prompts=args.n_prompts,
        layers=args.layers,
    )
    results["command"] = "OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python scripts/forgetting_demo.py"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=float))
    print(f"{results['verdict']}\nwrote {out} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
