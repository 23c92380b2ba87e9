"""Task evaluation and exact head effects on the native path vs the bridge path, side by side.

``native``: the row passes as they run now (``last_token_logits`` enters
``native_forward(model, causal=True)``: fused sdpa attention and native norms wherever no hook looks
inside). ``bridge``: the same code with ``native_forward`` replaced by a no-op, i.e. the bridge's
step-by-step attention and Python norms, which is how these passes ran before the forward stack was
unified. Both see the same batches (``plan_rows``, right padding, bucket widths). Repeats are
interleaved (native, bridge, native, bridge, ...) because the CPU is shared; the script reports
per-call medians, the median of the per-repeat ratios, and checks the numbers agree: first-token
accuracy and predictions equal, ``p_target`` and head effects ``allclose`` at ``atol=1e-6, rtol=1e-4``
(fp32 over 30 layers: differences of a few 1e-6 in probabilities, printed).

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/bench_forward_stack.py --repeats 3
"""

import os

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")  # before torch (see instr_interp.engine.passes)

import argparse
import contextlib
import json
import platform
import statistics
import time
from pathlib import Path

import torch

import instr_interp as ii
from instr_interp.engine import forward
from instr_interp.vectors.heads import head_effects
from instr_interp.vectors.tasks import evaluate_task, icl_task


@contextlib.contextmanager
def bridge_path():
    saved = forward.native_forward
    forward.native_forward = lambda model, causal=False: contextlib.nullcontext(0)
    try:
        yield
    finally:
        forward.native_forward = saved


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--task", default="antonym")
    parser.add_argument("--n", type=int, default=16, help="pairs scored by evaluate_task")
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--n-prompts", type=int, default=2, help="corrupted prompts for head effects")
    parser.add_argument("--layers", type=int, nargs="+", default=[10], help="layers of the exact sweep")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "forward_stack.json")
    args = parser.parse_args()
    torch.set_num_threads(1)

    model = ii.load_model(args.model, device="cpu")
    task = icl_task(args.task)
    facts = ii.model_facts(model)
    means = torch.zeros(facts.n_layers, facts.n_heads, facts.d_head)  # zero ablation of each head

    def evaluate():
        return evaluate_task(model, task, shots=args.shots, n=args.n, batch_size=8, progress=False)

    def effects():
        return head_effects(
            model,
            task,
            means=means,
            n_prompts=args.n_prompts,
            shots=args.shots,
            layers=args.layers,
            batch_size=4,
            progress=False,
        )

    runs = {"evaluate_task": evaluate, "head_effects_exact": effects}
    times: dict[str, dict[str, list[float]]] = {k: {"native": [], "bridge": []} for k in runs}
    outputs: dict[str, dict] = {k: {} for k in runs}
    for fn in runs.values():  # warm-up, untimed: first-call allocations on both paths
        fn()
        with bridge_path():
            fn()
    for repeat in range(args.repeats):
        for name, fn in runs.items():
            for side in ("native", "bridge"):
                with bridge_path() if side == "bridge" else contextlib.nullcontext():
                    seconds, out = timed(fn)
                times[name][side].append(seconds)
                outputs[name][side] = out
                print(f"repeat {repeat} {name:20s} {side:6s} {seconds:7.2f} s", flush=True)

    ev = outputs["evaluate_task"]
    p_native = torch.tensor(ev["native"].frame["p_target"].values)
    p_bridge = torch.tensor(ev["bridge"].frame["p_target"].values)
    assert list(ev["native"].frame["predicted"]) == list(ev["bridge"].frame["predicted"])
    assert ev["native"].accuracy == ev["bridge"].accuracy
    eff = outputs["head_effects_exact"]
    print(
        f"p_target max abs diff {float((p_native - p_bridge).abs().max()):.2e}, head effects max abs diff "
        f"{float((eff['native'] - eff['bridge']).nan_to_num().abs().max()):.2e}"
    )
    # fp32 over 30 layers: fused sdpa and the bridge's step-by-step attention round differently
    torch.testing.assert_close(p_native, p_bridge, atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(eff["native"], eff["bridge"], atol=1e-6, rtol=1e-4, equal_nan=True)

    summary = {}
    for name, sides in times.items():
        ratios = [n / b for n, b in zip(sides["native"], sides["bridge"])]
        summary[name] = {
            "native_median_s": statistics.median(sides["native"]),
            "bridge_median_s": statistics.median(sides["bridge"]),
            "median_ratio_native_over_bridge": statistics.median(ratios),
            "ratios": ratios,
        }
        print(
            f"{name}: native {summary[name]['native_median_s']:.2f} s, bridge {summary[name]['bridge_median_s']:.2f} s, "
            f"median ratio native/bridge {summary[name]['median_ratio_native_over_bridge']:.3f}"
        )
    diffs = {
        "p_target_max_abs_diff": float((p_native - p_bridge).abs().max()),
        "head_effects_max_abs_diff": float((eff["native"] - eff["bridge"]).nan_to_num().abs().max()),
        "accuracy": ev["native"].accuracy,
    }
    print(json.dumps(diffs))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "model": args.model,
                "task": args.task,
                "settings": vars(args) | {"out": args.out.name},
                "threads": 1,
                "machine": platform.processor() or platform.machine(),
                "summary": summary,
                "agreement": diffs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
