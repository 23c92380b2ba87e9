"""Print Markdown tables from a bench_firing.py result file (used to write RESULTS.md).

python benchmarks/results_tables.py benchmarks/results/firing_cpu_float32.json
"""

import json
import sys
from pathlib import Path

NAMES = {
    "a_stats": "(a) stats pass `run(..., [NeuronFiring(per_record=False)])`",
    "b_hf": "(b) bare HF forward, full logits",
    "c_run_with_cache": "(c) `run_with_cache(names_filter=mlp.hook_pre)`",
    "d_noop_probe": "(d) stats pass with a no-op probe",
    "e_hf_body": "(e) bare HF decoder, no lm_head",
}


def mib(kb):
    return f"{kb / 1024:.0f}" if kb is not None else "n/a"


def main(path):
    res = json.loads(Path(path).read_text())
    print("### Machine\n")
    print("| fact | value |\n|---|---|")
    for k, v in res["machine"].items():
        print(f"| {k} | {v} |")
    print(f"\nCommand: `{res['command']}`\n")
    for alias, entry in res["models"].items():
        print(f"### {alias}\n")
        t = entry.get("timing")
        if t:
            print(
                f"{t['n_records']} records, {t['n_batches']} batches, {t['real_tokens']} real tokens "
                f"({t['padded_tokens']} incl. padding), {t['n_layers']} layers x {t['d_mlp']} neurons, "
                f"vocab {t['d_vocab']}; attention: bridge `{t['attn_impl_bridge']}`, plain HF "
                f"`{t['attn_impl_plain_hf']}`; {t['repeats']} repeats.\n"
            )
            print("| method | median s | min s | all repeats s | real tokens/s (median) | CPU/wall |")
            print("|---|---|---|---|---|---|")
            for k, med in t["median_s"].items():
                reps = ", ".join(f"{x:.2f}" for x in t["times_s"][k])
                cw = [c / w for c, w in zip(t["cpu_s"][k], t["times_s"][k])]
                print(
                    f"| {NAMES.get(k, k)} | {med:.2f} | {t['min_s'][k]:.2f} | {reps} | "
                    f"{t['tokens_per_s_real'][k]:.0f} | {min(cw):.2f}–{max(cw):.2f} |"
                )
            ratios = {k: v for k, v in t.items() if k.startswith("ratio_")}
            print("\n| ratio (medians) | value |\n|---|---|")
            for k, v in ratios.items():
                print(f"| {k.removeprefix('ratio_').replace('_over_', ' / ')} | {v:.3f} |")
            print()
        m = entry.get("memory")
        if m:
            print(
                "| per_record | data | records | peak RSS `ru_maxrss` MiB | RSS after load MiB | "
                "peak RSS during pass (VmHWM reset after load) MiB | probe state MiB | pass s |"
            )
            print("|---|---|---|---|---|---|---|---|")
            for pr in ("per_record_False", "per_record_True"):
                rows = m[pr]
                for rep in ("x1", "x8"):
                    r = rows[rep]
                    print(
                        f"| {r['per_record']} | {rep} | {r['n_records']} | {mib(r['ru_maxrss_kb'])} | "
                        f"{mib(r['rss_after_load_kb'])} | {mib(r['vm_hwm_since_load_kb'])} | "
                        f"{r['probe_state_bytes'] / 2**20:.1f} | {r['pass_seconds']:.1f} |"
                    )
            print(
                "\n| per_record | growth 1x→8x of `ru_maxrss` | growth of pass peak (VmHWM) |\n|---|---|---|"
            )
            for pr in ("per_record_False", "per_record_True"):
                rows = m[pr]
                g2 = rows.get("growth_pct_vm_hwm_since_load")
                print(
                    f"| {pr.split('_')[-1]} | {rows['growth_pct_ru_maxrss']:+.1f}% | "
                    f"{'n/a' if g2 is None else f'{g2:+.1f}%'} |"
                )
            print()


if __name__ == "__main__":
    main(sys.argv[1])
