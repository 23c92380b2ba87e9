"""Where does the time of the NeuronFiring statistics pass go? (diagnostic for bench_firing.py)

On a subset of HexaInst (every ``--every``-th record, all bucket widths represented), interleaved
over ``--repeats``, on the same planned batches:

  stats        instr_interp.run with NeuronFiring(per_record=False)
  stats_timed  the same, with the time spent inside NeuronFiring.update summed
  noop         instr_interp.run with a probe on the same sites whose update does nothing
  bridge_nohook the bridge forward with no hooks at all (full depth, return_type=None)
  hf_sdpa      a separately loaded plain HF model (default attention = sdpa), full logits
  hf_eager     the same checkpoint loaded with attn_implementation="eager", full logits
  hf_sdpa_body / hf_eager_body   the decoder only (hf.model: no lm_head)

and one torch.profiler table of a stats pass (top operators by self CPU time).
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

import instr_interp  # noqa: I001  (before torch: MKL_CBWR)
from instr_interp import NeuronFiring, cache_dir, encode, hexainst, load_instructions, load_model
from instr_interp.engine import plan_batches

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_firing import DTYPES, NoOpProbe, machine_facts  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--every", type=int, default=6, help="keep every N-th HexaInst record")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    ap.add_argument("--no-profiler", action="store_true")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads(N)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM

    dtype, device = DTYPES[args.dtype], args.device
    model = load_model(args.model, device=device, dtype=dtype)
    path = cache_dir() / args.model
    hf_sdpa = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
    hf_eager = (
        AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="eager").to(device).eval()
    )

    rows = [r for i, r in enumerate(hexainst().to_dicts()) if i % args.every == 0]
    encoded = encode(load_instructions(rows), model.tokenizer)
    plan = plan_batches(encoded, args.batch_size)
    batches = [encoded.batch(idx, "right", width=w).to(device) for w, idx in plan]
    real = int(sum(int(b.attention_mask.sum()) for b in batches))
    print(
        f"{args.model}: {len(encoded)} records, {len(batches)} batches, widths {[w for w, _ in plan]}, "
        f"{real} real tokens",
        flush=True,
    )

    update_time = [0.0]
    orig_update = NeuronFiring.update

    def timed_update(self, site, act, ctx):
        s = time.perf_counter()
        orig_update(self, site, act, ctx)
        update_time[0] += time.perf_counter() - s

    class TimedFiring(NeuronFiring):
        update = timed_update

    def stats():
        instr_interp.run(
            model, encoded, [NeuronFiring(per_record=False)], batch_size=args.batch_size, progress=False
        )

    def stats_timed():
        instr_interp.run(
            model, encoded, [TimedFiring(per_record=False)], batch_size=args.batch_size, progress=False
        )

    def noop():
        instr_interp.run(model, encoded, [NoOpProbe()], batch_size=args.batch_size, progress=False)

    def bridge_nohook():
        with torch.no_grad():
            for b in batches:
                model(
                    b.tokens,
                    attention_mask=b.attention_mask.long(),
                    position_ids=b.position_ids(),
                    return_type=None,
                )

    def hf_run(m):
        def f():
            with torch.no_grad():
                for b in batches:
                    m(
                        input_ids=b.tokens,
                        attention_mask=b.attention_mask.long(),
                        position_ids=b.position_ids(),
                    )

        return f

    methods = {
        "stats": stats,
        "stats_timed": stats_timed,
        "noop": noop,
        "bridge_nohook": bridge_nohook,
        "hf_sdpa": hf_run(hf_sdpa),
        "hf_eager": hf_run(hf_eager),
        "hf_sdpa_body": hf_run(hf_sdpa.model),
        "hf_eager_body": hf_run(hf_eager.model),
    }
    for fn in methods.values():  # warm-up
        fn()
    times = {k: [] for k in methods}
    upd = []
    for rep in range(args.repeats):
        for key, fn in methods.items():
            update_time[0] = 0.0
            s = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - s)
            if key == "stats_timed":
                upd.append(update_time[0])
        print(f"repeat {rep + 1}: " + ", ".join(f"{k}={v[-1]:.2f}s" for k, v in times.items()), flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {
        "machine": machine_facts(device),
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "model": args.model,
        "records": len(encoded),
        "batches": len(batches),
        "real_tokens": real,
        "times_s": times,
        "median_s": med,
        "update_seconds_inside_stats_timed": upd,
        "median_update_s": statistics.median(upd),
    }
    print(json.dumps({"median_s": med, "median_update_s": out["median_update_s"]}, indent=1), flush=True)

    if not args.no_profiler:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            stats()
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30)
        print(table, flush=True)
        out["profiler_table"] = table
    dest = (
        args.out
        or Path(__file__).resolve().parent / "results" / f"profile_{args.model}_{device}_{args.dtype}.json"
    )
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=1))
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
