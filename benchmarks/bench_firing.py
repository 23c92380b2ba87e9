"""Benchmark the NeuronFiring statistics pass against a bare transformers forward and run_with_cache.

For each model, over exactly the batches ``instr_interp.engine.plan_batches`` makes of the full
HexaInst encoding (right-padded, each record at its bucket width), interleaved per repeat:

  (a) stats  -- ``instr_interp.run(model, encoded, [NeuronFiring(per_record=False)], ...)``
  (b) hf     -- a separately loaded plain HF model of the same checkpoint (default attention
               implementation), ``hf(input_ids, attention_mask, position_ids)`` with full logits
  (c) cache  -- ``model.run_with_cache(tokens, attention_mask=..., names_filter=<mlp.hook_pre names>)``

and, with ``--diagnose``, two extra measurements that say where the stats-pass time goes:

  (d) noop   -- ``instr_interp.run`` with a probe on the same hook sites whose update does nothing
  (e) hf_body -- the separately loaded HF model's decoder only (``hf.model``: no lm_head), i.e.
               roughly the work the stats pass actually has to do

Peak memory (``ru_maxrss``) of the stats pass is measured in a fresh subprocess per configuration
(this script with the hidden ``--memory-probe`` flag), for the dataset replicated 1x and 8x, with
``per_record`` False and True.

``--random-7b`` (GPU only): a random-weight 7B-class Llama in bf16; times a hooked bridge forward
that counts ``act > 0`` at every ``mlp.hook_pre`` vs the bare HF forward. Separate from the above.

Import order matters: ``instr_interp`` is imported before torch so that it can set
``MKL_CBWR=AUTO,STRICT`` (the engine's reproducibility mode), unless MKL_CBWR is already set.
"""

import argparse
import copy
import json
import os
import platform
import resource

# Peak RSS before torch is imported: shows what the process inherited (see measure_memory).
_START_MAXRSS_KB = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import shlex  # noqa: E402
import statistics
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import torch

import instr_interp  # noqa: I001  (must come before torch: sets MKL_CBWR)
from instr_interp import NeuronFiring, Probe, cache_dir, encode, hexainst, load_instructions, load_model
from instr_interp.engine import blas_reproducible, plan_batches

HERE = Path(__file__).resolve().parent
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


# ---------------------------------------------------------------------------------------------
# helpers


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def machine_facts(device: str) -> dict:
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import transformer_lens
    import transformers

    facts = {
        "cpu_model": cpu,
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "transformer_lens": getattr(transformer_lens, "__version__", None)
        or _dist_version("transformer-lens"),
        "torch_num_threads": torch.get_num_threads(),
        "MKL_CBWR": os.environ.get("MKL_CBWR"),
        "mkl_strict_reproducible": blas_reproducible(),
        "device": device,
    }
    facts.update(_instr_interp_source())
    if device.startswith("cuda") and torch.cuda.is_available():
        facts["gpu"] = torch.cuda.get_device_name(0)
    return facts


def _instr_interp_source() -> dict:
    """Which instr_interp was benchmarked: its path and commit (a COMMIT file next to a pinned
    snapshot, else ``git rev-parse HEAD`` of the checkout, with a dirty flag for instr_interp/)."""
    pkg = Path(instr_interp.__file__).resolve().parent
    out = {"instr_interp_path": str(pkg), "instr_interp_commit": None, "instr_interp_dirty": None}
    if (pkg / "COMMIT").exists():
        out["instr_interp_commit"] = (pkg / "COMMIT").read_text().strip()
        out["instr_interp_dirty"] = False
        return out
    try:
        git = ["git", "-C", str(pkg.parent)]
        out["instr_interp_commit"] = subprocess.run(
            git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        out["instr_interp_dirty"] = bool(
            subprocess.run(
                git + ["status", "--porcelain", "--", str(pkg)], capture_output=True, text=True
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        pass
    return out


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def replicated(factor: int):
    """HexaInst replicated ``factor`` times, each copy with new unique ids."""
    rows = hexainst().to_dicts()
    if factor == 1:
        return load_instructions(rows, name="hexainst")
    out = [{**r, "id": f"{r['id']}~rep{k}"} for k in range(factor) for r in rows]
    return load_instructions(out, name=f"hexainst_x{factor}")


class NoOpProbe(Probe):
    """Same hook sites as NeuronFiring, but the update does nothing (measures engine + hook cost)."""

    name = "noop"

    def sites(self, model):
        return NeuronFiring().sites(model)

    def setup(self, model, encoded, device):
        self.state = {}

    def update(self, site, act, ctx):
        return None


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return ""


def load_plain_hf(alias: str, dtype: torch.dtype, device: str):
    from transformers import AutoModelForCausalLM

    path = cache_dir() / alias
    hf = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)
    return hf.to(device).eval()


def attn_impl(module) -> str | None:
    cfg = getattr(module, "config", None)
    return getattr(cfg, "_attn_implementation", None) if cfg is not None else None


# ---------------------------------------------------------------------------------------------
# timing


def bench_model(alias: str, args) -> dict:
    device, dtype = args.device, DTYPES[args.dtype]
    print(f"\n=== {alias} ({args.dtype}, {device}) ===", flush=True)
    t0 = time.perf_counter()
    model = load_model(alias, device=device, dtype=dtype)
    hf = load_plain_hf(alias, dtype, device)
    print(f"loaded bridge + plain HF in {time.perf_counter() - t0:.1f} s", flush=True)

    encoded = encode(hexainst(), model.tokenizer)
    plan = plan_batches(encoded, args.batch_size)
    batches = [encoded.batch(idx, "right", width=w).to(device) for w, idx in plan]
    real_tokens = int(sum(int(b.attention_mask.sum()) for b in batches))
    padded_tokens = int(sum(b.tokens.numel() for b in batches))
    names = [s.name for s in NeuronFiring().sites(model)]
    print(
        f"{len(encoded)} records, {len(batches)} batches, {real_tokens} real / {padded_tokens} padded "
        f"tokens, {len(names)} hook sites ({names[0]} ...)",
        flush=True,
    )

    def run_stats():
        (probe,) = instr_interp.run(
            model, encoded, [NeuronFiring(per_record=False)], batch_size=args.batch_size, progress=False
        )
        return probe

    def run_noop():
        instr_interp.run(model, encoded, [NoOpProbe()], batch_size=args.batch_size, progress=False)

    def run_hf():
        with torch.no_grad():
            for b in batches:
                hf(input_ids=b.tokens, attention_mask=b.attention_mask.long(), position_ids=b.position_ids())

    def run_hf_body():
        body = hf.model
        with torch.no_grad():
            for b in batches:
                body(
                    input_ids=b.tokens, attention_mask=b.attention_mask.long(), position_ids=b.position_ids()
                )

    def run_cache():
        with torch.no_grad():
            for b in batches:
                _, cache = model.run_with_cache(
                    b.tokens, attention_mask=b.attention_mask.long(), names_filter=names
                )
                del cache

    methods = {"a_stats": run_stats, "b_hf": run_hf, "c_run_with_cache": run_cache}
    if args.diagnose:
        methods["d_noop_probe"] = run_noop
        methods["e_hf_body"] = run_hf_body

    # Warm up every method on the smallest and the widest batch (not timed).
    with torch.no_grad():
        for b in (batches[0], batches[-1]):
            hf(input_ids=b.tokens, attention_mask=b.attention_mask.long(), position_ids=b.position_ids())
            model.run_with_cache(b.tokens, attention_mask=b.attention_mask.long(), names_filter=names)
            model(
                b.tokens,
                attention_mask=b.attention_mask.long(),
                position_ids=b.position_ids(),
                return_type=None,
            )

    times: dict[str, list[float]] = {k: [] for k in methods}
    # Process CPU seconds per measurement: cpu/wall close to torch.get_num_threads() means the
    # process had the cores to itself; much lower means other load on the machine.
    cpu: dict[str, list[float]] = {k: [] for k in methods}
    loadavg: list[str] = []
    for rep in range(args.repeats):
        for key, fn in methods.items():
            sync(device)
            c0, start = time.process_time(), time.perf_counter()
            fn()
            sync(device)
            elapsed = time.perf_counter() - start
            times[key].append(elapsed)
            cpu[key].append(time.process_time() - c0)
            print(
                f"  repeat {rep + 1}/{args.repeats} {key:18s} {elapsed:8.2f} s  (cpu/wall "
                f"{cpu[key][-1] / elapsed:.2f})",
                flush=True,
            )
        loadavg.append(_loadavg())

    # Sanity: the stats pass counted the tokens it should have.
    probe = run_stats()
    counted = int(probe.state["tokens"].sum())

    med = {k: statistics.median(v) for k, v in times.items()}
    out = {
        "model": alias,
        "dtype": args.dtype,
        "device": device,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "n_records": len(encoded),
        "n_batches": len(batches),
        "real_tokens": real_tokens,
        "padded_tokens": padded_tokens,
        "counted_tokens_instruction_input": counted,
        "n_hook_sites": len(names),
        "n_layers": int(model.cfg.n_layers),
        "d_mlp": int(model.cfg.d_mlp),
        "d_vocab": int(model.cfg.d_vocab),
        "attn_impl_bridge": attn_impl(model.original_model),
        "attn_impl_plain_hf": attn_impl(hf),
        "times_s": times,
        "cpu_s": cpu,
        "loadavg_after_each_repeat": loadavg,
        "median_s": med,
        "min_s": {k: min(v) for k, v in times.items()},
        "ratio_a_over_b": med["a_stats"] / med["b_hf"],
        "ratio_c_over_b": med["c_run_with_cache"] / med["b_hf"],
        "tokens_per_s_real": {k: real_tokens / v for k, v in med.items()},
    }
    if args.diagnose:
        out["ratio_d_over_b"] = med["d_noop_probe"] / med["b_hf"]
        out["ratio_a_over_e"] = med["a_stats"] / med["e_hf_body"]
        out["ratio_d_over_e"] = med["d_noop_probe"] / med["e_hf_body"]
    print("  median: " + ", ".join(f"{k}={v:.2f}s" for k, v in med.items()), flush=True)
    print(f"  a/b={out['ratio_a_over_b']:.3f}  c/b={out['ratio_c_over_b']:.3f}", flush=True)
    del model, hf
    return out


# ---------------------------------------------------------------------------------------------
# memory (one fresh process per configuration)


def _vm_hwm_kb() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _vm_rss_kb() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def memory_probe(args) -> None:
    """Child process: load the model, encode, run the stats pass; print one JSON line."""
    device, dtype = args.device, DTYPES[args.dtype]
    model = load_model(args.models[0], device=device, dtype=dtype)
    encoded = encode(replicated(args.replicate), model.tokenizer)
    after_load_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    after_load_rss = _vm_rss_kb()
    # Reset the kernel's peak-RSS mark (VmHWM) so the pass's own peak is visible as well.
    try:
        Path("/proc/self/clear_refs").write_text("5")
        hwm_reset = True
    except OSError:
        hwm_reset = False
    start = time.perf_counter()
    (probe,) = instr_interp.run(
        model,
        encoded,
        [NeuronFiring(per_record=bool(args.per_record))],
        batch_size=args.batch_size,
        progress=False,
    )
    elapsed = time.perf_counter() - start
    state_bytes = sum(v.numel() * v.element_size() for v in probe.state.values())
    print(
        "MEMORY_PROBE "
        + json.dumps(
            {
                "model": args.models[0],
                "replicate": args.replicate,
                "per_record": bool(args.per_record),
                "n_records": len(encoded),
                "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "ru_maxrss_at_start_kb": _START_MAXRSS_KB,
                "ru_maxrss_after_load_kb": after_load_maxrss,
                "rss_after_load_kb": after_load_rss,
                "vm_hwm_since_load_kb": _vm_hwm_kb() if hwm_reset else None,
                "probe_state_bytes": state_bytes,
                "pass_seconds": elapsed,
                "torch_num_threads": torch.get_num_threads(),
            }
        ),
        flush=True,
    )


def measure_memory(alias: str, args) -> dict:
    out: dict = {}
    for per_record in (False, True):
        rows = {}
        for rep in (1, 8):
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--memory-probe",
                "--models",
                alias,
                "--replicate",
                str(rep),
                "--per-record",
                str(int(per_record)),
                "--batch-size",
                str(args.batch_size),
                "--device",
                args.device,
                "--dtype",
                args.dtype,
            ]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            print(f"  memory probe: {alias} per_record={per_record} x{rep} ...", flush=True)
            # Linux carries the parent's peak RSS into ru_maxrss of a child started straight from it
            # (at exec, the kernel records the high-water mark of the mm being replaced: the
            # parent's, under vfork). Starting the child from a small shell that forks first keeps
            # the child's ru_maxrss its own.
            proc = subprocess.run(
                ["/bin/sh", "-c", shlex.join(cmd) + "; exit $?"], capture_output=True, text=True
            )
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("MEMORY_PROBE ")), None)
            if proc.returncode != 0 or line is None:
                raise RuntimeError(f"memory probe failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
            rows[f"x{rep}"] = json.loads(line[len("MEMORY_PROBE ") :])
            r = rows[f"x{rep}"]
            print(
                f"    ru_maxrss {r['ru_maxrss_kb'] / 1024:.0f} MiB (after load "
                f"{r['ru_maxrss_after_load_kb'] / 1024:.0f} MiB; VmHWM since load "
                f"{(r['vm_hwm_since_load_kb'] or 0) / 1024:.0f} MiB), pass {r['pass_seconds']:.1f} s",
                flush=True,
            )
        one, eight = rows["x1"]["ru_maxrss_kb"], rows["x8"]["ru_maxrss_kb"]
        rows["growth_pct_ru_maxrss"] = 100.0 * (eight - one) / one
        h1, h8 = rows["x1"]["vm_hwm_since_load_kb"], rows["x8"]["vm_hwm_since_load_kb"]
        if h1 and h8:
            rows["growth_pct_vm_hwm_since_load"] = 100.0 * (h8 - h1) / h1
        out[f"per_record_{per_record}"] = rows
    return out


# ---------------------------------------------------------------------------------------------
# random 7B on a GPU (separate)


def bench_random_7b(args) -> dict:
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM, LlamaConfig

    from instr_interp.models import tiny_tokenizer

    device = args.device
    if not device.startswith("cuda"):
        print("warning: --random-7b is meant for a GPU; running on", device, flush=True)
    cfg = LlamaConfig(
        hidden_size=4096,
        intermediate_size=11008,
        num_attention_heads=32,
        num_key_value_heads=32,
        num_hidden_layers=args.random_7b_layers,
        vocab_size=32000,
        max_position_embeddings=4096,
    )
    cfg.architectures = ["LlamaForCausalLM"]
    torch.manual_seed(0)
    with torch.device(device):
        hf = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    hf.eval()
    # The bridge replaces submodules of the module it wraps, so the bare forward runs on its own copy.
    bare = copy.deepcopy(hf).eval()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = TransformerBridge.boot_transformers(
            "llama-7b-random", hf_model=hf, tokenizer=tiny_tokenizer(), device=device, dtype=torch.bfloat16
        )
    model.eval()
    weights_bytes = torch.cuda.memory_allocated() if device.startswith("cuda") else None
    n_layers, d_mlp = cfg.num_hidden_layers, cfg.intermediate_size
    bsz, width = args.random_7b_shape
    gen = torch.Generator(device="cpu").manual_seed(0)
    tokens = torch.randint(0, cfg.vocab_size, (bsz, width), generator=gen).to(device)
    counts = torch.zeros(n_layers, bsz, d_mlp, dtype=torch.int64, device=device)

    def make_hook(layer):
        def hook(act, hook=None):
            counts[layer] += (act > 0).sum(1)
            return None

        return hook

    fwd_hooks = [(f"blocks.{layer}.mlp.hook_pre", make_hook(layer)) for layer in range(n_layers)]

    def hooked():
        with torch.no_grad(), model.hooks(fwd_hooks=fwd_hooks):
            model(tokens, return_type=None)

    def plain():
        with torch.no_grad():
            bare(tokens)

    methods = {"hooked_firing": hooked, "bare_hf": plain}
    for fn in methods.values():  # warm-up
        fn()
    sync(device)
    times = {k: [] for k in methods}
    peak = {}
    for _rep in range(args.repeats):
        for key, fn in methods.items():
            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            sync(device)
            start = time.perf_counter()
            for _ in range(args.random_7b_iters):
                fn()
            sync(device)
            times[key].append((time.perf_counter() - start) / args.random_7b_iters)
            if device.startswith("cuda"):
                peak[key] = max(peak.get(key, 0), torch.cuda.max_memory_allocated())
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {
        "config": {
            "hidden": 4096,
            "intermediate": d_mlp,
            "heads": 32,
            "kv_heads": 32,
            "layers": n_layers,
            "vocab": 32000,
            "dtype": "bfloat16",
            "batch": bsz,
            "width": width,
        },
        "attn_impl_bridge": attn_impl(hf),
        "attn_impl_bare": attn_impl(bare),
        "iters_per_repeat": args.random_7b_iters,
        "seconds_per_forward": times,
        "median_s": med,
        "tokens_per_s": {k: bsz * width / v for k, v in med.items()},
        "ratio_hooked_over_bare": med["hooked_firing"] / med["bare_hf"],
        "memory_allocated_after_load_bytes (both copies)": weights_bytes,
        "max_memory_allocated_bytes": peak or None,
        "counted_positive": int(counts.sum()),
    }
    print(json.dumps(out, indent=1), flush=True)
    return out


# ---------------------------------------------------------------------------------------------


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["smollm2-135m-instruct", "gemma-3-270m"])
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON output (default benchmarks/results/firing_<device>_<dtype>.json)",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads(N) before anything runs (default: torch's own default); "
        "passed on to the memory-probe subprocesses",
    )
    ap.add_argument(
        "--diagnose",
        action="store_true",
        help="also time (d) the pass with a no-op probe and (e) the HF decoder without lm_head",
    )
    ap.add_argument("--skip-timing", action="store_true", help="only the memory probes")
    ap.add_argument("--skip-memory", action="store_true", help="only the timings")
    ap.add_argument(
        "--random-7b",
        action="store_true",
        help="GPU only: random-weight 7B-class Llama, hooked firing forward vs bare HF forward",
    )
    ap.add_argument("--random-7b-layers", type=int, default=32, help=argparse.SUPPRESS)
    ap.add_argument("--random-7b-shape", type=int, nargs=2, default=[16, 256], help=argparse.SUPPRESS)
    ap.add_argument("--random-7b-iters", type=int, default=5, help=argparse.SUPPRESS)
    # hidden: one memory measurement in this (fresh) process
    ap.add_argument("--memory-probe", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--replicate", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--per-record", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.memory_probe:
        memory_probe(args)
        return

    result = {
        "machine": machine_facts(args.device),
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "argv": sys.argv[1:],
        "models": {},
    }
    print(json.dumps(result["machine"], indent=1), flush=True)
    if args.random_7b:
        result["random_7b"] = bench_random_7b(args)
        default_name = f"random7b_{args.device}.json"
    else:
        for alias in args.models:
            entry = {}
            if not args.skip_timing:
                entry["timing"] = bench_model(alias, args)
            if not args.skip_memory:
                entry["memory"] = measure_memory(alias, args)
            result["models"][alias] = entry
        default_name = f"firing_{args.device}_{args.dtype}.json"
    out = args.out or HERE / "results" / default_name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {out}", flush=True)


if __name__ == "__main__":
    main()
