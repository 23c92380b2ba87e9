"""``instr-interp study forgetting``: does instruction-vector guidance reduce forgetting? (METHODS §8)

Design. A model M0 learns one new task with multi-token answers (``past_sentence``, sentences) by
LoRA, once plainly and once IV-guided with every term (Jiang et al.'s defaults: last-token KL 20,
sequence KL 0.1, head consistency 1, θ at the attention output), plus one run per term with that
term removed; each arm with several seeds (the data order and LoRA init). The regime follows the
reference as far as the CPU allows: lr 1e-4 with 10% linear warm-up, several epochs, LoRA on every
linear layer. The new task's instruction vector is built once on M0 from zero-shot instruction
prompts in the model's chat format (``form="instruction"``), as the reference extracts it.

Forgetting, as the paper separates it: on items of the other multi-token tasks (capital_sentence,
plural_list, antonym_explain) and general HexaInst instructions, the change (tuned − M0) of

- the *instruction* NLL −log P(y | c, x) per response token (instruction c and input x), and
- the *knowledge* NLL −log P(y | x) per response token (the instruction dropped),

plus the new task's held-out instruction NLL (did it learn). Each arm's mean change comes with a
95% interval from a two-level bootstrap over seeds and items; guided − plain differences are paired
by seed and item.

Units (resumable): ``vector`` (the instruction vector and the teacher check), ``m0`` (the base
scores), ``{arm}-seed{s}`` (one training run and its scores; its tuned model is deleted after scoring).
"""

import shutil

import numpy as np
from tqdm.auto import tqdm

from ..data.dataset import InstructionDataset, hexainst
from ..engine.likelihood import response_nll
from ..models import load_model
from ..stats import bootstrap_seeds_items
from ..vectors.forgetting import knowledge_records
from ..vectors.instruction import InstructionVector, instruction_vector
from ..vectors.long_tasks import long_task
from ..vectors.prompts import instruction_records
from ..vectors.training import finetune

__all__ = ["ARMS", "SIZES", "run"]

ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

# arm -> finetune's guidance arguments (None: plain tuning)
ARMS: dict[str, dict | None] = {
    "plain": None,
    "guided": {},
    "no_kl": {"kl_weight": 0.0},
    "no_seq_kl": {"seq_kl_weight": 0.0},
    "no_head": {"head_consistency": 0.0},
}

SIZES = {
    "tiny": dict(
        model="tiny",
        new="past_sentence",
        old=("capital_sentence", "antonym_explain"),
        n_train=8,
        n_eval=3,
        general_n=3,
        epochs=1,
        batch_size=4,
        lr=1e-4,
        seeds=(0, 1),
        n_val=3,
        n_means=4,
        n_prompts=3,
        k=3,
        only_correct=False,
    ),
    "full": dict(
        model="smollm2-135m-instruct",
        new="past_sentence",
        old=("capital_sentence", "plural_list", "antonym_explain"),
        n_train=40,
        n_eval=16,
        general_n=24,
        epochs=3,
        batch_size=4,
        lr=1e-4,
        seeds=(0, 1, 2),
        n_val=8,
        n_means=32,
        n_prompts=16,
        k=10,
        only_correct=None,
    ),
}


def _model_source(store, cfg) -> str:
    """The model to tune: a bundled alias, or (tiny) a random tiny model written under the store."""
    if cfg["model"] != "tiny":
        return cfg["model"]
    from ..tiny import tiny_hf_model, tiny_tokenizer

    path = store.root / "tiny-model"
    if not (path / "config.json").exists():
        tiny_hf_model(seed=0).save_pretrained(path)
        tiny_tokenizer().save_pretrained(path)
    return str(path)


def _splits(cfg):
    """The new task's training and held-out pairs, the old tasks' evaluated items and general records."""
    new = long_task(cfg["new"])
    train = new.pairs[: cfg["n_train"]]
    held = new.pairs[cfg["n_train"] : cfg["n_train"] + cfg["n_eval"]]
    sets = {"new:" + new.name: instruction_records(new, held)}
    for name in cfg["old"]:
        task = long_task(name)
        sets[name] = instruction_records(task, task.pairs[: cfg["n_eval"]])
    general = [r for r in hexainst() if r.input.strip() and r.response][: cfg["general_n"]]
    sets["general"] = InstructionDataset(general, name="general")
    return new, train, sets


def _scores(model, sets: dict, batch_size: int) -> dict:
    """Per set: the instruction and knowledge NLL of every item (nats per response token)."""
    out = {}
    for name, records in sets.items():
        out[name] = {
            "instruction_nll": response_nll(model, records, batch_size=batch_size, progress=False)[
                "nll"
            ].tolist()
        }
        if not name.startswith("new:"):
            know = knowledge_records(records)
            out[name]["knowledge_nll"] = response_nll(model, know, batch_size=batch_size, progress=False)[
                "nll"
            ].tolist()
    return out


def _vector(store, source, new, train, cfg) -> tuple[InstructionVector, dict]:
    path = store.root / "vector"

    def compute():
        model = load_model(source, device="cpu")
        task = type(new)(name=new.name, instruction=new.instruction, pairs=train)
        iv = instruction_vector(
            model,
            task,
            form="instruction",
            n_val=cfg["n_val"],
            n_means=cfg["n_means"],
            n_prompts=cfg["n_prompts"],
            k=cfg["k"],
            only_correct=cfg["only_correct"],
            progress=False,
        )
        iv.save(path)
        return {
            "layer": iv.layer,
            "scale": iv.scale,
            "top_heads": iv.top_heads.tolist(),
            "settings": iv.settings,
        }

    info = store.unit("vector", compute)
    return InstructionVector.load(path), info


def run(store, size: str, progress: bool) -> dict:
    """The study (see the module docstring); returns the summary JSON."""
    cfg = SIZES[size]
    source = _model_source(store, cfg)
    new, train, sets = _splits(cfg)
    iv, vector_info = _vector(store, source, new, train, cfg)
    bs = cfg["batch_size"]
    m0 = store.unit("m0", lambda: _scores(load_model(source, device="cpu"), sets, bs))
    data = instruction_records(new, train)
    runs = {}
    units = [(arm, seed) for arm in ARMS for seed in cfg["seeds"]]
    for arm, seed in tqdm(units, desc="forgetting study", disable=not progress):

        def compute(arm=arm, seed=seed):
            out = store.root / "models" / f"{arm}-seed{seed}"
            guidance = ARMS[arm]
            kwargs = dict(iv_guidance=iv, **guidance) if guidance is not None else {}
            result = finetune(
                source,
                data,
                out,
                epochs=cfg["epochs"],
                batch_size=bs,
                lr=cfg["lr"],
                warmup=0.1,
                seed=seed,
                target_modules=ALL_LINEAR,
                progress=False,
                **kwargs,
            )
            scores = _scores(load_model(str(out), device="cpu"), sets, bs)
            shutil.rmtree(out, ignore_errors=True)
            return {
                "scores": scores,
                "losses": result.losses,
                "components": result.components,
                "seconds": result.seconds,
                "teacher": result.settings.get("teacher"),
            }

        runs[(arm, seed)] = store.unit(f"{arm}-seed{seed}", compute)
    return _summary(cfg, m0, runs, vector_info)


def _changes(m0, runs, arm, seeds, name, metric) -> np.ndarray:
    base = np.asarray(m0[name][metric])
    return np.stack([np.asarray(runs[(arm, s)]["scores"][name][metric]) - base for s in seeds])


def _summary(cfg, m0, runs, vector_info) -> dict:
    seeds = list(cfg["seeds"])
    rows, diffs = [], []
    for name, metrics in m0.items():
        for metric in metrics:
            plain = _changes(m0, runs, "plain", seeds, name, metric)
            for arm in ARMS:
                change = _changes(m0, runs, arm, seeds, name, metric)
                mean, lo, hi = bootstrap_seeds_items(change)
                rows.append(
                    {
                        "arm": arm,
                        "set": name,
                        "metric": metric,
                        "before": float(np.mean(m0[name][metric])),
                        "change": mean,
                        "low": lo,
                        "high": hi,
                        "per_seed": change.mean(1).tolist(),
                        "n_items": change.shape[1],
                    }
                )
                if arm != "plain":
                    d, dlo, dhi = bootstrap_seeds_items(change - plain)
                    diffs.append(
                        {"arm": arm, "set": name, "metric": metric, "minus_plain": d, "low": dlo, "high": dhi}
                    )
    training = [
        {
            "arm": arm,
            "seed": seed,
            "ce_first": runs[(arm, seed)]["components"].get("ce", runs[(arm, seed)]["losses"])[0],
            "ce_last": runs[(arm, seed)]["components"].get("ce", runs[(arm, seed)]["losses"])[-1],
            "loss_last": runs[(arm, seed)]["losses"][-1],
            "seconds": runs[(arm, seed)]["seconds"],
            **{
                f"{k}_mean": float(np.mean(v))
                for k, v in runs[(arm, seed)]["components"].items()
                if k in ("kl", "seq_kl", "head")
            },
        }
        for arm, seed in runs
    ]
    teacher = next((r["teacher"] for r in runs.values() if r.get("teacher")), None)
    return {
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}
        | {"arms": {k: v for k, v in ARMS.items()}, "target_modules": list(ALL_LINEAR), "warmup": 0.1},
        "vector": vector_info,
        "teacher": teacher,
        "forgetting": rows,
        "guided_minus_plain": diffs,
        "training": training,
    }
