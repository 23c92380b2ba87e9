"""Sequential fine-tuning with and without instruction-vector guidance: how much is forgotten.

:func:`forgetting_demo` is the demonstration of METHODS.md §8 ("IV-guided fine-tuning"):

1. Task 1 is learned with plain LoRA (a shared starting point M1).
2. Later tasks are learned in sequence twice: plainly, and IV-guided (the new task's instruction
   vector computed on the pre-task model; KL to the vector-steered pre-task model at the last prompt
   token plus the progressive intervention).
3. Forgetting: M1 against each chain's final model on the earlier tasks' held-out pairs and on
   general HexaInst instructions (accuracy, format accuracy, instruction and knowledge NLL).
4. Suppressed, not erased: task 1's vector from the original model added to each final model.

``scripts/forgetting_demo.py`` runs it from the command line; the report runs it with small settings.
"""

import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from ..data.dataset import hexainst
from ..models import load_model
from .forgetting import forgetting_report, measure_forgetting
from .instruction import add_vector, instruction_vector
from .tasks import evaluate_task, icl_task
from .training import finetune

__all__ = ["forgetting_demo"]


def _log(msg: str, t0: float) -> None:
    print(f"  [{time.perf_counter() - t0:6.0f} s] {msg}", flush=True)


def _vector(model, task, settings):
    return instruction_vector(
        model,
        task,
        method="atp",
        k=10,
        n_means=settings["n_means"],
        n_prompts=settings["n_prompts"],
        sweep=True,
        candidate_layers=settings["layers"],
        n_val=8,
        progress=False,
    )


def forgetting_demo(
    model_name: str = "smollm2-135m-instruct",
    task_names=("antonym", "present_past", "country_capital"),
    *,
    epochs: int = 2,
    batch_size: int = 8,
    lr: float = 1e-3,
    kl_weight: float = 5.0,
    seq_kl_weight: float = 0.0,
    head_consistency: float = 0.0,
    n_val: int = 20,
    n_train: int | None = None,
    general_n: int = 40,
    n_means: int = 30,
    n_prompts: int = 15,
    layers=(6, 8, 10, 12, 14),
    workdir=None,
) -> dict:
    """Run the sequential fine-tuning demonstration; returns a JSON-ready dict of every number.

    Args:
        model_name: the model to tune (a bundled alias or local directory).
        task_names: built-in tasks (:data:`instr_interp.tasks.ICL_TASKS`) learned in this order.
        epochs, batch_size, lr: LoRA fine-tuning per task.
        kl_weight, seq_kl_weight, head_consistency: IV guidance weights (see :func:`instr_interp.finetune`).
        n_val: held-out pairs per task; n_train: train on at most this many of the other pairs (all
            when None); general_n: general HexaInst records scored.
        n_means, n_prompts, layers: instruction-vector settings (attribution patching, layer sweep).
        workdir: where the tuned models are kept (default: a temporary directory, removed at the end).

    Returns:
        ``forgetting`` rows (run, set, metric, before, after, change), ``suppressed`` rows, training
        losses, timings and a one-sentence ``verdict``; :func:`instr_interp.report.sections_vectors.forgetting_section`
        turns it into report sections.
    """
    settings = {"n_means": n_means, "n_prompts": n_prompts, "layers": list(layers)}
    task_names = list(task_names)
    t0 = time.perf_counter()
    work = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="forgetting_demo_"))
    tasks, train, val = _split_tasks(task_names, n_val, n_train)
    general = hexainst()
    timings: dict[str, float] = {}
    ft_kwargs = dict(epochs=epochs, batch_size=batch_size, lr=lr, progress=False)
    eval_kwargs = dict(general=general, general_n=general_n, shots=3, progress=False)

    iv1, original, original_with = _original_model(
        model_name, tasks[0].name, train[0], val[0], settings, timings, t0
    )

    start = time.perf_counter()
    m1 = finetune(model_name, train[0].records(), work / "m1", **ft_kwargs)
    timings["finetune_task1_plain"] = time.perf_counter() - start
    _log(f"M1 = {tasks[0].name} tuned ({m1.steps} steps, loss {m1.losses[0]:.2f} -> {m1.losses[-1]:.2f})", t0)
    earlier = val[:-1]
    before = measure_forgetting(str(m1.path), earlier, **eval_kwargs)
    _log("M1 scored", t0)

    weights = dict(kl_weight=kl_weight, seq_kl_weight=seq_kl_weight, head_consistency=head_consistency)
    runs: dict[str, dict] = {}
    for run in ("plain", "iv-guided"):
        info, prev = _tune_chain(run, m1.path, tasks, train, settings, weights, ft_kwargs, work, timings, t0)
        info.update(_score_chain(prev, run, before, earlier, tasks, val, iv1, original, eval_kwargs))
        runs[run] = info
        _log(f"{run}: scored; forgetting table:\n{info['report'].forgetting().round(3).to_string()}", t0)

    results = {
        "model": model_name,
        "tasks": task_names,
        "settings": {
            "steps_per_task": m1.steps,
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "kl_weight": kl_weight,
            "seq_kl_weight": seq_kl_weight,
            "head_consistency": head_consistency,
            "temperature": 2.0,
            "progressive": True,
            "n_val": n_val,
            "general_n": general_n,
            "train_pairs": [len(t) for t in train],
            "vector": {
                "method": "atp",
                "k": 10,
                "n_means": n_means,
                "n_prompts": n_prompts,
                "candidate_layers": list(layers),
            },
        },
        "vector_layer": iv1.layer,
        "vector_norm": float(iv1.vector.norm()),
        "vector_top_heads": iv1.top_heads.tolist(),
        "original": {**original, "zero_shot_with_vector": original_with},
        "forgetting": [
            {"run": run, **rec}
            for run, info in runs.items()
            for rec in info["report"].to_frame().to_dict("records")
        ],
        "own_task_accuracy_few_shot": {r: runs[r]["own"] for r in runs},
        "suppressed": [s for r in runs for s in runs[r]["suppressed"]],
        "training": {
            r: {k: runs[r][k] for k in ("steps", "losses", "components", "vectors", "seconds")} for r in runs
        },
        "timings_s": timings,
        "total_s": time.perf_counter() - t0,
        "verdict": _verdict(runs, tasks[0].name),
    }
    if workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return results


def _split_tasks(task_names: list[str], n_val: int, n_train: int | None):
    """The built-in tasks, their training splits (cut to ``n_train`` pairs) and held-out splits."""
    tasks = [icl_task(name) for name in task_names]
    splits = [t.split(seed=0, n_val=n_val) for t in tasks]
    train, val = [s[0] for s in splits], [s[1] for s in splits]
    if n_train is not None:
        if n_train < 1:
            raise ValueError(f"n_train must be >= 1 (or None for all pairs), got {n_train}.")
        train = [replace(t, pairs=t.pairs[:n_train]) for t in train]
    return tasks, train, val


def _original_model(model_name: str, first: str, train, val, settings: dict, timings: dict, t0: float):
    """Task 1's instruction vector on the original model, and the original model's zero- and
    few-shot accuracy on task 1 (and zero-shot with the vector added)."""
    m0 = load_model(model_name, device="cpu")
    start = time.perf_counter()
    iv1 = _vector(m0, train, settings)
    timings["instruction_vector"] = time.perf_counter() - start
    _log(f"task-1 vector: {iv1}", t0)
    original = {
        form: evaluate_task(m0, val, form=form, shots=3 if form == "few_shot" else 0, progress=False).accuracy
        for form in ("zero_shot", "few_shot")
    }
    with add_vector(m0, iv1):
        original_with = evaluate_task(m0, val, progress=False).accuracy
    _log(f"original model on {first}: {original}, zero-shot with its vector {original_with:.2f}", t0)
    return iv1, original, original_with


def _tune_chain(
    run: str,
    start_path: Path,
    tasks,
    train,
    settings: dict,
    weights: dict,
    ft_kwargs: dict,
    work: Path,
    timings: dict,
    t0: float,
) -> tuple[dict, Path]:
    """Learn the later tasks in sequence from ``start_path`` (IV-guided when ``run`` says so);
    returns what training logged and the final model's folder."""
    prev, info = start_path, {"steps": [], "losses": [], "vectors": [], "seconds": 0.0, "components": []}
    for task, tr in zip(tasks[1:], train[1:]):
        guidance = None
        if run == "iv-guided":
            pre = load_model(str(prev), device="cpu")
            start = time.perf_counter()
            guidance = _vector(pre, tr, settings)
            timings[f"instruction_vector_{task.name}"] = time.perf_counter() - start
            info["vectors"].append(
                {
                    "task": task.name,
                    "layer": guidance.layer,
                    "norm": float(guidance.vector.norm()),
                    "top_heads": guidance.top_heads.tolist(),
                }
            )
            del pre
        start = time.perf_counter()
        res = finetune(
            str(prev),
            tr.records(),
            work / f"{run}-{task.name}",
            iv_guidance=guidance,
            kl_weight=weights["kl_weight"] if guidance is not None else None,
            seq_kl_weight=weights["seq_kl_weight"] if guidance is not None else 0.0,
            head_consistency=weights["head_consistency"] if guidance is not None else 0.0,
            # the demonstration's original design (before issue 17's reference defaults)
            progressive=guidance is not None,
            site="resid_post",
            warmup=0.0,
            kl_t2=True,
            **ft_kwargs,
        )
        seconds = time.perf_counter() - start
        timings[f"finetune_{task.name}_{run}"] = seconds
        info["steps"].append(res.steps)
        info["losses"].append(res.losses)
        info["components"].append(res.components)
        info["seconds"] += seconds
        _log(
            f"{run}: {task.name} tuned in {seconds:.0f} s (loss {res.losses[0]:.2f} -> {res.losses[-1]:.2f})",
            t0,
        )
        prev = res.path
    return info, prev


def _score_chain(
    path: Path, run: str, before, earlier, tasks, val, iv1, original: dict, eval_kwargs: dict
) -> dict:
    """A chain's final model scored: its forgetting report against M1 (``before``), its few-shot
    accuracy on every task, and task 1 with and without task 1's original vector."""
    final = load_model(str(path), device="cpu")
    return dict(
        report=forgetting_report(before, final, earlier, **eval_kwargs),
        own={t.name: evaluate_task(final, v, shots=3, progress=False).accuracy for t, v in zip(tasks, val)},
        suppressed=_suppressed(final, run, val[0], iv1, original),
    )


def _suppressed(final, run: str, val, iv1, original: dict) -> list[dict]:
    """Task 1's zero- and few-shot accuracy on the final model, without and with task 1's original
    vector added (suppressed, not erased)."""
    suppressed = []
    for form, shots in (("zero_shot", 0), ("few_shot", 3)):
        without = evaluate_task(final, val, form=form, shots=shots, progress=False).accuracy
        with add_vector(final, iv1):
            with_vec = evaluate_task(final, val, form=form, shots=shots, progress=False).accuracy
        suppressed.append(
            {"run": run, "form": form, "original": original[form], "without": without, "with": with_vec}
        )
    return suppressed


def _verdict(runs: dict, first: str) -> str:
    """One sentence comparing the forgetting of task 1 under plain and IV-guided tuning."""

    def change(run, metric, set_=first):
        f = runs[run]["report"].to_frame()
        return float(f[(f["set"] == set_) & (f["metric"] == metric)]["change"].iloc[0])

    fa = {r: change(r, "format_accuracy") for r in runs}
    nll = {r: change(r, "instruction_nll") for r in runs}
    gen = {r: change(r, "instruction_nll", "general") for r in runs}
    return (
        f"Task-1 ({first}) format accuracy changed by {fa['plain']:+.2f} with plain tuning and {fa['iv-guided']:+.2f} "
        f"with IV guidance; its instruction NLL by {nll['plain']:+.2f} vs {nll['iv-guided']:+.2f} nats/token; the "
        f"general instructions' NLL by {gen['plain']:+.2f} vs {gen['iv-guided']:+.2f}. "
        + (
            "IV guidance reduced the forgetting of task 1 on both measures."
            if fa["iv-guided"] > fa["plain"] and nll["iv-guided"] < nll["plain"]
            else "IV guidance did not reduce the forgetting of task 1 on both measures in this setting."
        )
    )
