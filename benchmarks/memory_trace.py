"""Peak RSS of one pass over HexaInst in this (fresh) process, for comparing the statistics pass with a
bare transformers forward. This is a diagnostic companion to bench_firing.py's memory probes.

    python benchmarks/memory_trace.py --model smollm2-135m-instruct --method stats
    python benchmarks/memory_trace.py --model smollm2-135m-instruct --method hf        # full logits
    python benchmarks/memory_trace.py --model smollm2-135m-instruct --method hf_body   # no lm_head

Start it from a shell, not from a large Python process: on Linux a child started directly by a big
process inherits that process's peak RSS in ``ru_maxrss``.

Prints one JSON line: RSS after load, peak RSS during the pass (VmHWM, reset after loading), the
final ``ru_maxrss``, and for ``stats`` the RSS and VmHWM sampled after each batch (by a probe on
the last layer).
"""

import resource

_START = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

import instr_interp  # noqa: E402,I001  (before torch: MKL_CBWR)
from instr_interp import NeuronFiring, Probe, cache_dir, encode, hexainst, load_model  # noqa: E402
from instr_interp.engine import plan_batches  # noqa: E402


def status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class RssSampler(Probe):
    """Samples VmRSS / VmHWM (KiB) at the last layer of each batch; counts nothing."""

    name = "rss_sampler"

    def __init__(self, layer: int):
        super().__init__()
        self.layer = layer
        self.samples: list[tuple[int, int, int, int]] = []

    def sites(self, model):
        return [s for s in NeuronFiring(layers=[self.layer]).sites(model)]

    def setup(self, model, encoded, device):
        self.state = {}

    def update(self, site, act, ctx):
        self.samples.append(
            (int(ctx.batch.tokens.shape[0]), int(ctx.batch.tokens.shape[1]), status("VmRSS"), status("VmHWM"))
        )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--method", choices=["stats", "stats_per_record", "hf", "hf_body"], default="stats")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.method.startswith("stats"):
        model = load_model(args.model, device="cpu")
        tokenizer = model.tokenizer
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = cache_dir() / args.model
        tokenizer = AutoTokenizer.from_pretrained(path)
        hf = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    encoded = encode(hexainst(), tokenizer)
    after_load = {
        "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "rss_kb": status("VmRSS"),
    }
    hwm_reset = reset_hwm()
    start = time.perf_counter()
    trace = None
    if args.method.startswith("stats"):
        sampler = RssSampler(int(model.cfg.n_layers) - 1)
        instr_interp.run(
            model,
            encoded,
            [NeuronFiring(per_record=args.method == "stats_per_record"), sampler],
            batch_size=args.batch_size,
            progress=False,
        )
        trace = sampler.samples
    else:
        runner = hf if args.method == "hf" else hf.model
        with torch.no_grad():
            for width, idx in plan_batches(encoded, args.batch_size):
                b = encoded.batch(idx, "right", width=width)
                runner(
                    input_ids=b.tokens, attention_mask=b.attention_mask.long(), position_ids=b.position_ids()
                )
    print(
        json.dumps(
            {
                "model": args.model,
                "method": args.method,
                "threads": torch.get_num_threads(),
                "ru_maxrss_at_start_kb": _START,
                "after_load": after_load,
                "vm_hwm_during_pass_kb": status("VmHWM") if hwm_reset else None,
                "ru_maxrss_end_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "rss_end_kb": status("VmRSS"),
                "pass_seconds": time.perf_counter() - start,
                "per_batch_bsz_width_rss_hwm_kb": trace,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
