"""A neuron sweep over one layer: batched (the batch repeated once per neuron of a chunk, one forward
per chunk) vs one neuron at a time (``patch`` + ``response_nll``, one forward per neuron), side by side.

Both mean-patch each neuron of ``--units`` neurons of ``--layer`` (means of ``mlp.hook_post`` over the
same records' instruction tokens) at every position and score the reference-response NLL of each
record; the values must agree. Timing interleaves the two methods (batched, one-at-a-time, ...)
and reports medians and their ratio.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/bench_neuron_sweep.py --records 2 --units 16 --repeats 2
"""

import os

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")  # before torch (see instr_interp.engine.passes)

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

import instr_interp as ii
from instr_interp.engine.likelihood import response_nll
from instr_interp.interventions import patch
from instr_interp.sweeps import patch_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--records", type=int, default=2)
    parser.add_argument("--units", type=int, default=16)
    parser.add_argument("--layer", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/neuron_sweep.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = ii.load_model(args.model, device="cpu")
    data = ii.hexainst().sample(per_category=1, seed=0)[: args.records]
    means = ii.mean_activations(model, data, progress=False)
    units = torch.linspace(0, model.cfg.d_mlp - 1, args.units).long()

    def batched():
        return patch_sweep(
            model,
            data,
            source="mean",
            means=means,
            over="neuron",
            layer=args.layer,
            units=units,
            metric="nll",
            batch_size=args.records,
            unit_batch=args.records * args.units,
            progress=False,
        ).values[0]

    def one_at_a_time():
        rows = []
        for n in units.tolist():
            with patch(model, "mlp_post", "mean", layers=[args.layer], means=means, units=[n]):
                rows.append(
                    torch.tensor(
                        response_nll(model, data, batch_size=args.records, progress=False)["nll"].to_numpy()
                    )
                )
        return torch.stack(rows)

    times = {"batched": [], "one_at_a_time": []}
    values = {}
    for _ in range(args.repeats):
        for name, fn in (("batched", batched), ("one_at_a_time", one_at_a_time)):
            start = time.perf_counter()
            values[name] = fn()
            times[name].append(time.perf_counter() - start)
    diff = float((values["batched"] - values["one_at_a_time"]).abs().max())
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {
        "model": args.model,
        "layer": args.layer,
        "records": args.records,
        "units": units.tolist(),
        "forwards": {"batched": 1 + 1, "one_at_a_time": len(units)},  # batched: unpatched + one chunk
        "seconds": times,
        "median_seconds": med,
        "ratio_one_at_a_time_over_batched": med["one_at_a_time"] / med["batched"],
        "max_abs_difference_nll": diff,
        "threads": args.threads,
        "machine": platform.processor() or platform.machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(
        json.dumps(
            {
                k: out[k]
                for k in ("median_seconds", "ratio_one_at_a_time_over_batched", "max_abs_difference_nll")
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
