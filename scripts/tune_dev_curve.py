"""Reference-response NLL on a development split of HexaInst along the tune that
``scripts/build_tuned.py`` runs, to choose its number of steps (issue 13).

The development records are HexaInst's ``split(n_eval=20, seed=0)`` evaluation side (20 per category);
the tuned model's reported NLL (docs/tuned_model.md, ``instr-interp study following``,
``tests/integration/test_tuned.py``) uses the other side only, so the step count is chosen on records
that the evaluation does not reuse. The tune is ``finetune`` with ``build_tuned.py``'s settings, scored
through its ``on_step`` hook.

Run (CPU, about 8 s a step on 2 cores plus about 1 min per evaluation):
    .venv/bin/python scripts/tune_dev_curve.py --evals 20,30,40,60 --out benchmarks/results/tune_dev_curve.json
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

import instr_interp as ii
from instr_interp.data.encoding import encode
from instr_interp.engine.likelihood import response_token_nll

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_tuned import DEV, HELD_OUT, SETTINGS  # noqa: E402


def dev_nll(model, encoded, batch_size: int = 8) -> dict[str, float]:
    """Mean over records of the per-token NLL of the reference response (end token not scored), per
    category, from a plain transformers forward."""
    per_record = []
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            b = encoded.batch(list(range(start, min(start + batch_size, len(encoded)))), "right")
            logits = model(input_ids=b.tokens, attention_mask=b.attention_mask.long()).logits
            total, count = response_token_nll(logits, b.tokens, b.regions)
            per_record += (total / count).tolist()
    by: dict[str, list[float]] = {}
    for rec, value in zip(encoded.records, per_record):
        by.setdefault(rec.category, []).append(value)
    return {c: sum(v) / len(v) for c, v in sorted(by.items())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--evals", default="20,30,40,60", help="steps after which the dev NLL is measured")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    evals = sorted({int(x) for x in a.evals.split(",")})
    train = ii.tuneset().split(**HELD_OUT)[0]
    dev = ii.hexainst().split(**DEV)[1]
    tokenizer = ii.load_model("gemma-3-270m").tokenizer
    enc_dev = encode(dev, tokenizer, format="alpaca", with_response=True)
    log = {
        "command": f"python scripts/tune_dev_curve.py --evals {a.evals} --out {a.out}",
        "settings": SETTINGS,
        "tuneset": ii.tuneset().fingerprint(),
        "dev": {**DEV, "records": len(dev)},
        "nll": {},
    }

    def score(step, model):
        model.eval()
        if not log["nll"]:  # the base model: LoRA switched off
            with model.disable_adapter():
                log["nll"][0] = dev_nll(model, enc_dev)
        if step in evals:
            log["nll"][step] = dev_nll(model, enc_dev)
            gain = {c: log["nll"][0][c] - v for c, v in log["nll"][step].items()}
            print(
                step,
                {c: round(v, 3) for c, v in gain.items()},
                "mean",
                round(sum(gain.values()) / 6, 3),
                flush=True,
            )
            Path(a.out).write_text(json.dumps(log, indent=1) + "\n")
        model.train()

    settings = {**SETTINGS, "max_steps": evals[-1]}
    ii.finetune("gemma-3-270m", train, tempfile.mkdtemp(prefix="dev-curve-"), on_step=score, **settings)


if __name__ == "__main__":
    main()
