"""Peak memory of attribute() for one mode, alone in this process: SmolLM2-135M-Instruct, the greedy
256-token response to HexaInst qa-t-019 (plain format), ru_maxrss before and after attributing.

    MKL_CBWR=AUTO,STRICT OMP_NUM_THREADS=1 python benchmarks/bench_attribution_memory.py reverse
    MKL_CBWR=AUTO,STRICT OMP_NUM_THREADS=1 python benchmarks/bench_attribution_memory.py forward
"""

import json
import resource
import sys
import time

import torch

import instr_interp as ii
from instr_interp.engine.generation import generate_responses
from instr_interp.shift.attribution import attribute

torch.set_num_threads(1)
mode = sys.argv[1]
m = ii.load_model("smollm2-135m-instruct", device="cpu")
rec = {r.id: r for r in ii.hexainst()}["qa-t-019"]
(filled,) = generate_responses(m, [rec], max_new_tokens=256, format="plain", progress=False)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter()
a = attribute(m, filled, mode=mode)
print(
    json.dumps(
        {
            "mode": mode,
            "n_response": a.matrix.shape[1],
            "seconds": time.perf_counter() - t,
            "rss_before_mb": before,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )
)
