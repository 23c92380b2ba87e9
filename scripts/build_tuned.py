"""Build the shipped adapter of ``gemma-3-270m-tuned``: Gemma-3-270M base after the toolkit's own LoRA
tune on the built-in tuning set (``ii.tuneset()``), less a held-out tenth kept for evaluation.

The number of steps was chosen on a development split of HexaInst (``DEV``; see
``scripts/tune_dev_curve.py`` and benchmarks/results/tune_dev_curve.json): past it the tune learns the
tuning set's own phrasing and its NLL on other references rises again. Evaluations of the tuned model
use the other side of that split.

Run (CPU; about 5 minutes on 2 cores):
    .venv/bin/python scripts/build_tuned.py

Writes instr_interp/checkpoints/gemma-3-270m-tuned/{adapter_config.json, adapter_model.safetensors,
training.json} and prints the adapter's SHA-256, to record in ``instr_interp.models.TUNED``.
"""

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import instr_interp as ii
from instr_interp.models import file_sha256
from instr_interp.vectors.training import finetune

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "instr_interp" / "checkpoints" / "gemma-3-270m-tuned"
SETTINGS = dict(
    method="lora",
    target_modules="all-linear",
    lora_r=8,
    lora_alpha=16,
    lr=1e-4,
    epochs=1,
    batch_size=8,
    max_length=192,
    seed=0,
    max_steps=50,  # the dev-curve step with the largest smallest per-category NLL drop
)
HELD_OUT = dict(fraction=0.1, seed=0)  # ii.tuneset().split(**HELD_OUT)[1] is never trained on
DEV = dict(n_eval=20, seed=0)  # ii.hexainst().split(**DEV)[1] chose max_steps; evaluations use [0]


def main() -> None:
    train, held_out = ii.tuneset().split(**HELD_OUT)
    work = Path(tempfile.mkdtemp(prefix="build-tuned-"))
    start = time.perf_counter()
    result = finetune("gemma-3-270m", train, work / "merged", adapter_out=work / "adapter", **SETTINGS)
    OUT.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(work / "adapter" / "adapter_model.safetensors", OUT / "adapter_model.safetensors")
    config = json.loads((work / "adapter" / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "gemma-3-270m"  # not this machine's cache path
    config["target_modules"] = sorted(config["target_modules"])  # peft writes a set: order varies by run
    (OUT / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    log = {
        "command": "python scripts/build_tuned.py",
        "base": "gemma-3-270m",
        "settings": result.settings,
        "train_records": len(train),
        "held_out": {"split": HELD_OUT, "ids": held_out.ids},
        "dev": {
            "split": DEV,
            "chosen_by": "scripts/tune_dev_curve.py (benchmarks/results/tune_dev_curve.json)",
        },
        "steps": result.steps,
        "losses": [round(x, 5) for x in result.losses],
        "seconds": round(time.perf_counter() - start, 1),
        "adapter_sha256": file_sha256(OUT / "adapter_model.safetensors"),
        "versions": {
            m.__name__: getattr(m, "__version__", "?")
            for m in map(__import__, ("torch", "transformers", "peft"))
        },
    }
    (OUT / "training.json").write_text(json.dumps(log, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    print(
        f"adapter sha256 {log['adapter_sha256']} ({result.steps} steps, {log['seconds']:.0f} s)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
