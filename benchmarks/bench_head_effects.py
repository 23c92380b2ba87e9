"""Exact head effects vs attribution patching (atp) on SmolLM2-135M-Instruct: time and agreement.

Both run on the same corrupted prompts with the same head means. Timing is interleaved in one
process (exact, atp, exact, atp, ...) and reported as medians and their ratio. The exact sweep
costs the same for every layer (one forward of ``n_heads x prompts`` rows per layer), so it is
timed on ``--time-layers`` layers and the all-layer cost is that per-layer median times
``n_layers`` (stated as such in the output). Agreement uses one exact sweep over ``--agree-layers`` (default all):
Spearman rank correlation over the union of both methods' top-20 heads, and over the top-20 heads
by exact effect.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/bench_head_effects.py --task antonym --repeats 3

With ``--lift TASK ...`` it instead measures what the vectors do: for each built-in task, 20 pairs
are held out (``split(seed=0, n_val=20)``; half the pairs for a task with fewer than 40, so that the
vector keeps as many to be built and validated on; its layer sweep uses 10 of those, or all but 5 where
fewer than 15 remain), ``instruction_vector`` runs with its defaults on the rest,
and the held-out zero-shot accuracy is scored without a vector, with it, and with vectors of as many
random heads (3 seeds) — :func:`instr_interp.vectors.vector_scores`. ``--form instruction`` builds
the vectors from zero-shot instruction prompts in the model's chat format (the instruction dropped as
the corruption) and scores held-out pairs in that format; ``--n-means``/``--n-effect-prompts`` size it.
With ``--form instruction``, ``--score in_response`` scores (in the layer sweep and on the held-out
pairs) whether the answer is a whole word of the greedy response rather than its first token, and
``--dropped`` scores the prompts without their instruction; both are in the output file name
(``..._instruction_in_response_dropped.json``). Each finished task is appended to
``<output>.partial.jsonl`` (removed when all are done), so an interrupted ``--lift`` run resumes.
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
from scipy.stats import spearmanr

import instr_interp as ii
from instr_interp.vectors.heads import head_effects, head_means
from instr_interp.vectors.instruction import instruction_vector, vector_scores
from instr_interp.vectors.tasks import ICL_TASKS, icl_task


def agreement(exact: torch.Tensor, atp: torch.Tensor, top: int = 20) -> dict:
    e, a = exact.flatten().numpy(), atp.flatten().numpy()
    top_e = set(torch.topk(exact.flatten(), top).indices.tolist())
    top_a = set(torch.topk(atp.flatten(), top).indices.tolist())
    union = sorted(top_e | top_a)
    by_exact = sorted(top_e)
    return {
        f"spearman_union_top{top}": float(spearmanr(e[union], a[union]).statistic),
        f"spearman_top{top}_by_exact": float(spearmanr(e[by_exact], a[by_exact]).statistic),
        "spearman_all_heads": float(spearmanr(e, a).statistic),
        f"overlap_top{top}": len(top_e & top_a),
        "top10_overlap": len(
            set(torch.topk(exact.flatten(), 10).indices.tolist())
            & set(torch.topk(atp.flatten(), 10).indices.tolist())
        ),
    }


def lift(
    model,
    tasks: list[str],
    out: Path,
    name: str,
    form: str = "few_shot",
    sizes: dict | None = None,
    score: str = "first_token",
    dropped: bool = False,
) -> None:
    sizes = sizes or {}
    scored = dict(score=score, score_dropped=dropped)
    suffix = "" if form == "few_shot" else f"_{form}"
    suffix += ("" if score == "first_token" else f"_{score}") + ("_dropped" if dropped else "")
    path = out / f"head_effects_iv_lift_{name}{suffix}.json"
    # finished tasks are appended here one JSON line each, so an interrupted run resumes
    partial = path.with_suffix(".partial.jsonl")
    done = {}
    if partial.exists():
        done = {row["task"]: row for row in map(json.loads, partial.read_text().splitlines()) if row}
    rows = []
    for task_name in tasks:
        if task_name in done:
            rows.append(done[task_name])
            continue
        start = time.perf_counter()
        task = icl_task(task_name)
        train, test = task.split(seed=0, n_val=min(20, len(task.pairs) // 2))
        n_val = min(10, len(train.pairs) - 5)
        iv = instruction_vector(model, train, form=form, n_val=n_val, progress=False, **sizes, **scored)
        row = vector_scores(model, [iv], [test], n_random=3, form=form, progress=False, **scored)
        row = row.iloc[0].to_dict()
        row.update(
            scale=iv.scale,
            n_val=n_val,
            n_correct_for_means=iv.settings["n_correct"],
            form=form,
            heads=iv.top_heads.tolist(),
            seconds=round(time.perf_counter() - start, 1),
        )
        print(json.dumps(row), flush=True)
        with partial.open("a") as f:
            f.write(json.dumps(row) + "\n")
        rows.append(row)
    path.write_text(json.dumps(rows, indent=1))
    partial.unlink(missing_ok=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--task", default="antonym")
    parser.add_argument("--n-prompts", type=int, default=25)
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--time-layers", type=int, nargs="+", default=[5, 20])
    parser.add_argument(
        "--agree-layers",
        type=int,
        nargs="*",
        default=None,
        help="layers of the exact sweep used for agreement (default all)",
    )
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--lift", nargs="*", default=None, help="measure vector lift on these tasks instead")
    parser.add_argument("--form", default="few_shot", choices=["few_shot", "instruction"])
    parser.add_argument("--n-means", type=int, default=100)
    parser.add_argument("--n-effect-prompts", type=int, default=25)
    parser.add_argument(
        "--score",
        default="first_token",
        choices=["first_token", "in_response"],
        help="with --form instruction: first-response-token accuracy or the answer within the greedy response",
    )
    parser.add_argument(
        "--dropped",
        action="store_true",
        help="with --form instruction: score the prompts without the instruction",
    )
    args = parser.parse_args()
    if args.form != "instruction" and (args.score != "first_token" or args.dropped):
        parser.error("--score in_response and --dropped need --form instruction")
    torch.set_num_threads(1)
    model = ii.load_model(args.model, device="cpu")
    if args.lift is not None:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        sizes = {"n_means": args.n_means, "n_prompts": args.n_effect_prompts}
        tasks = args.lift or list(ICL_TASKS)
        lift(model, tasks, Path(args.out), args.model, args.form, sizes, args.score, args.dropped)
        return
    train, _ = icl_task(args.task).split(seed=0, n_val=20)
    means, n_correct = head_means(model, train, shots=args.shots, progress=False)
    kw = dict(means=means, n_prompts=args.n_prompts, shots=args.shots, progress=False)

    exact_t, atp_t = [], []
    for r in range(args.repeats):
        start = time.perf_counter()
        head_effects(model, train, method="exact", layers=args.time_layers, **kw)
        exact_t.append((time.perf_counter() - start) / len(args.time_layers))
        start = time.perf_counter()
        atp = head_effects(model, train, method="atp", **kw)
        atp_t.append(time.perf_counter() - start)
        print(f"repeat {r}: exact {exact_t[-1]:.1f} s/layer, atp {atp_t[-1]:.1f} s (all layers)", flush=True)
    n_layers = model.cfg.n_layers
    exact_all = statistics.median(exact_t) * n_layers
    agree = list(range(n_layers)) if args.agree_layers is None else args.agree_layers
    start = time.perf_counter()
    exact = head_effects(model, train, method="exact", layers=agree, **kw)[agree]
    exact_full_s = time.perf_counter() - start
    result = {
        "model": args.model,
        "task": args.task,
        "n_prompts": args.n_prompts,
        "shots": args.shots,
        "n_correct_for_means": n_correct,
        "threads": 1,
        "platform": platform.processor() or platform.machine(),
        "exact_s_per_layer": exact_t,
        "atp_s": atp_t,
        "exact_all_layers_s_from_per_layer_median": exact_all,
        "agreement_layers": agree,
        "exact_agreement_layers_s_single_run": exact_full_s,
        "ratio_exact_over_atp": exact_all / statistics.median(atp_t),
        **agreement(exact, atp[agree]),
    }
    print(json.dumps(result, indent=1))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"head_effects_{args.model}_{args.task}.json").write_text(json.dumps(result, indent=1))
    torch.save({"exact": exact, "atp": atp}, f"/tmp/head_effects_{args.model}_{args.task}.pt")


if __name__ == "__main__":
    main()
