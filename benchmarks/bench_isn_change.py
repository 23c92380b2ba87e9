"""ISN sets of Gemma-3-270M base vs gemma-3-270m-tuned on all of HexaInst, with bootstrap intervals and
split-half noise floors: the report's before/after stage at its full size (threshold 0.9 sets, one
prompt format for both, template groups resampled whole, 1,000 bootstrap replicates, 100 split-halves).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_isn_change.py --out benchmarks/results/isn_change_gemma.json

Writes the SetChange frames (summary, noise, differences; per-layer counts summed over categories) as JSON.
"""

import argparse
import json
import time
from pathlib import Path

import instr_interp as ii
from instr_interp.data.encoding import encode
from instr_interp.engine import run
from instr_interp.report.stages import BASE, BEFORE_AFTER_FORMAT, TUNED, isn_change
from instr_interp.sparcom.firing import NeuronFiring


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    a = p.parse_args()
    start = time.perf_counter()
    data = ii.hexainst()
    stats = {}
    for name in (BASE, TUNED):
        model = ii.load_model(name)
        (probe,) = run(model, encode(data, model.tokenizer, format=BEFORE_AFTER_FORMAT), [NeuronFiring()])
        stats[name] = probe.result()
    change = isn_change(stats[BASE], stats[TUNED], data)
    out = {
        "command": f"python benchmarks/bench_isn_change.py --out {a.out}",
        "models": [BASE, TUNED],
        "format": BEFORE_AFTER_FORMAT,
        "records": len(data),
        "settings": change.settings,
        "seconds": round(time.perf_counter() - start, 1),
        "summary": change.summary.to_dict("records"),
        "noise": change.noise.to_dict("records"),
        "differences": change.differences.to_dict("records"),
        "layers": change.layers.to_dict("records"),
    }
    Path(a.out).write_text(json.dumps(out, indent=1, default=str) + "\n")
    print(change.summary.round(3).to_string())
    print(change.differences.round(3).to_string())


if __name__ == "__main__":
    main()
