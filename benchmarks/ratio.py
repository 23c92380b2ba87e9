"""Side-by-side timing of the statistics pass against a bare transformers forward (same batches).

For each model, interleaved per repeat over the batches the engine plans (right-padded, bucket
widths): ``bare`` = a plain HF model, full logits; ``body`` = its decoder only (no lm_head);
``stats`` = ``instr_interp.run`` with ``NeuronFiring``; ``noop`` = the same pass with a probe that
does nothing (the cost of the bridge and the early stop alone). Prints medians and ratios to bare.

    python benchmarks/ratio.py --per-category 20 --repeats 3 --threads 1
"""

import argparse
import json
import platform
import time

import instr_interp as ii  # before torch: sets MKL_CBWR (see instr_interp.engine.passes)

# isort: split
import torch
from transformers import AutoModelForCausalLM

from instr_interp.engine import plan_batches


class Noop(ii.NeuronFiring):
    def update(self, site, act, ctx):
        pass


def measure(alias, per_category, repeats, batch_size):
    model = ii.load_model(alias, device="cpu")
    hf = AutoModelForCausalLM.from_pretrained(ii.cache_dir() / alias, dtype=torch.float32).eval()
    data = ii.hexainst().sample(per_category=per_category, seed=0)
    enc = ii.encode(data, model.tokenizer)
    batches = [enc.batch(ids, "right", width=w) for w, ids in plan_batches(enc, batch_size)]

    def bare():
        with torch.no_grad():
            for b in batches:
                hf(input_ids=b.tokens, attention_mask=b.attention_mask.long(), position_ids=b.position_ids())

    def body():
        with torch.no_grad():
            for b in batches:
                hf.model(
                    input_ids=b.tokens, attention_mask=b.attention_mask.long(), position_ids=b.position_ids()
                )

    def stats():
        ii.run(model, enc, [ii.NeuronFiring(per_record=True)], batch_size=batch_size, progress=False)

    def noop():
        ii.run(model, enc, [Noop(per_record=True)], batch_size=batch_size, progress=False)

    fns = {"bare": bare, "body": body, "stats": stats, "noop": noop}
    bare()  # warm-up
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    real = int(sum(b.attention_mask.sum() for b in batches))
    return {
        "model": alias,
        "records": len(enc),
        "batches": len(batches),
        "real_tokens": real,
        "median_s": med,
        "ratio_to_bare": {k: v / med["bare"] for k, v in med.items()},
        "tokens_per_s": {k: real / v for k, v in med.items()},
        "times_s": times,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["smollm2-135m-instruct", "gemma-3-270m"])
    ap.add_argument("--per-category", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "mkl_strict": ii.blas_reproducible(),
        },
        "runs": [measure(m, args.per_category, args.repeats, args.batch_size) for m in args.models],
    }
    for run in results["runs"]:
        ratios = ", ".join(f"{k} {v:.3f}" for k, v in run["ratio_to_bare"].items())
        print(
            f"{run['model']}: {run['records']} records, {run['real_tokens']} tokens; ratio to bare: {ratios}"
        )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
