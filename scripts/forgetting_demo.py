"""Forgetting under sequential LoRA fine-tuning, plain vs IV-guided, on SmolLM2-135M-Instruct.

1. Task 1 is learned with plain LoRA (shared starting point M1).
2. Later tasks are learned in sequence twice: plainly, and IV-guided (the new task's instruction
   vector computed on the pre-task model; KL to the vector-steered pre-task model at the last prompt
   token plus the progressive intervention).
3. Forgetting: M1 against each chain's final model on the earlier tasks' held-out pairs and on
   general HexaInst instructions (accuracy, format accuracy, instruction and knowledge NLL).
4. Suppressed, not erased: task 1's vector from the original model added to each final model.

Run (about 10 minutes on one CPU thread):
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python scripts/forgetting_demo.py
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import instr_interp as ii
from instr_interp.forgetting import forgetting_report, measure_forgetting
from instr_interp.tasks import evaluate_task, icl_task
from instr_interp.training import finetune
from instr_interp.vectors import add_vector, instruction_vector

ROOT = Path(__file__).resolve().parents[1]


def log(msg: str, t0: float) -> None:
    print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", flush=True)


def vector(model, task, args):
    return instruction_vector(model, task, method="atp", k=10, n_means=args.n_means, n_prompts=args.n_prompts,
                              sweep=True, candidate_layers=args.layers, n_val=8, progress=False)


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
    work = Path(tempfile.mkdtemp(prefix="forgetting_demo_"))
    tasks = [icl_task(name) for name in args.tasks]
    splits = [t.split(seed=0, n_val=args.n_val) for t in tasks]
    train, val = [s[0] for s in splits], [s[1] for s in splits]
    general = ii.hexainst()
    timings: dict[str, float] = {}
    ft_kwargs = dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, progress=False)
    eval_kwargs = dict(general=general, general_n=args.general_n, shots=3, progress=False)

    m0 = ii.load_model(args.model, device="cpu")
    start = time.perf_counter()
    iv1 = vector(m0, train[0], args)
    timings["instruction_vector"] = time.perf_counter() - start
    log(f"task-1 vector: {iv1}", t0)
    original = {form: evaluate_task(m0, val[0], form=form, shots=3 if form == "few_shot" else 0,
                                    progress=False).accuracy for form in ("zero_shot", "few_shot")}
    with add_vector(m0, iv1):
        original_with = evaluate_task(m0, val[0], progress=False).accuracy
    log(f"original model on {tasks[0].name}: {original}, zero-shot with its vector {original_with:.2f}", t0)
    del m0

    start = time.perf_counter()
    m1 = finetune(args.model, train[0].records(), work / "m1", **ft_kwargs)
    timings["finetune_task1_plain"] = time.perf_counter() - start
    log(f"M1 = {tasks[0].name} tuned ({m1.steps} steps, loss {m1.losses[0]:.2f} -> {m1.losses[-1]:.2f})", t0)
    earlier = val[:-1]
    before = measure_forgetting(str(m1.path), earlier, **eval_kwargs)
    log("M1 scored", t0)

    runs: dict[str, dict] = {}
    for run in ("plain", "iv-guided"):
        prev, info = m1.path, {"steps": [], "losses": [], "vectors": [], "seconds": 0.0, "components": []}
        for task, tr in zip(tasks[1:], train[1:]):
            guidance = None
            if run == "iv-guided":
                pre = ii.load_model(str(prev), device="cpu")
                start = time.perf_counter()
                guidance = vector(pre, tr, args)
                timings[f"instruction_vector_{task.name}"] = time.perf_counter() - start
                info["vectors"].append({"task": task.name, "layer": guidance.layer,
                                        "norm": float(guidance.vector.norm()),
                                        "top_heads": guidance.top_heads.tolist()})
                del pre
            start = time.perf_counter()
            res = finetune(str(prev), tr.records(), work / f"{run}-{task.name}", iv_guidance=guidance,
                           kl_weight=args.kl_weight if guidance is not None else None,
                           seq_kl_weight=args.seq_kl_weight if guidance is not None else 0.0,
                           head_consistency=args.head_consistency if guidance is not None else 0.0, **ft_kwargs)
            seconds = time.perf_counter() - start
            timings[f"finetune_{task.name}_{run}"] = seconds
            info["steps"].append(res.steps)
            info["losses"].append(res.losses)
            info["components"].append(res.components)
            info["seconds"] += seconds
            log(f"{run}: {task.name} tuned in {seconds:.0f} s (loss {res.losses[0]:.2f} -> {res.losses[-1]:.2f})", t0)
            prev = res.path
        final = ii.load_model(str(prev), device="cpu")
        report = forgetting_report(before, final, earlier, **eval_kwargs)
        own = {t.name: evaluate_task(final, v, shots=3, progress=False).accuracy for t, v in zip(tasks, val)}
        suppressed = []
        for form, shots in (("zero_shot", 0), ("few_shot", 3)):
            without = evaluate_task(final, val[0], form=form, shots=shots, progress=False).accuracy
            with add_vector(final, iv1):
                with_vec = evaluate_task(final, val[0], form=form, shots=shots, progress=False).accuracy
            suppressed.append({"run": run, "form": form, "original": original[form], "without": without,
                               "with": with_vec})
        info.update(report=report, own=own, suppressed=suppressed)
        runs[run] = info
        log(f"{run}: scored; forgetting table:\n{report.forgetting().round(3).to_string()}", t0)
        del final

    rows = []
    for run, info in runs.items():
        for rec in info["report"].frame.to_dict("records"):
            rows.append({"run": run, **rec})
    first = tasks[0].name

    def change(run, metric, set_=first):
        f = runs[run]["report"].frame
        return float(f[(f["set"] == set_) & (f["metric"] == metric)]["change"].iloc[0])

    fa = {r: change(r, "format_accuracy") for r in runs}
    nll = {r: change(r, "instruction_nll") for r in runs}
    gen = {r: change(r, "instruction_nll", "general") for r in runs}
    verdict = (
        f"Task-1 ({first}) format accuracy changed by {fa['plain']:+.2f} with plain tuning and {fa['iv-guided']:+.2f} "
        f"with IV guidance; its instruction NLL by {nll['plain']:+.2f} vs {nll['iv-guided']:+.2f} nats/token; the "
        f"general instructions' NLL by {gen['plain']:+.2f} vs {gen['iv-guided']:+.2f}. "
        + ("IV guidance reduced the forgetting of task 1 on both measures."
           if fa["iv-guided"] > fa["plain"] and nll["iv-guided"] < nll["plain"] else
           "IV guidance did not reduce the forgetting of task 1 on both measures in this setting."))
    results = {
        "model": args.model, "tasks": args.tasks,
        "settings": {"steps_per_task": m1.steps, "epochs": args.epochs, "batch_size": args.batch_size,
                     "lr": args.lr, "kl_weight": args.kl_weight, "seq_kl_weight": args.seq_kl_weight,
                     "head_consistency": args.head_consistency, "temperature": 2.0, "progressive": True,
                     "n_val": args.n_val, "general_n": args.general_n, "train_pairs": [len(t) for t in train],
                     "vector": {"method": "atp", "k": 10, "n_means": args.n_means, "n_prompts": args.n_prompts,
                                "candidate_layers": args.layers}},
        "vector_layer": iv1.layer, "vector_norm": float(iv1.vector.norm()), "vector_top_heads": iv1.top_heads.tolist(),
        "original": {**original, "zero_shot_with_vector": original_with},
        "forgetting": rows,
        "own_task_accuracy_few_shot": {r: runs[r]["own"] for r in runs},
        "suppressed": [s for r in runs for s in runs[r]["suppressed"]],
        "training": {r: {k: runs[r][k] for k in ("steps", "losses", "components", "vectors", "seconds")}
                     for r in runs},
        "timings_s": timings, "total_s": time.perf_counter() - t0, "verdict": verdict,
        "command": "OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python scripts/forgetting_demo.py",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=float))
    log(f"{verdict}\nwrote {out}", t0)


if __name__ == "__main__":
    main()
