"""Memory of MoE expert-neuron counts (ExpertFiring / find_isns on an MoE model) on a random model with
Qwen1.5-MoE-A2.7B's per-layer shape: hidden 2048, 60 experts of 1,408 neurons (top-4), a shared
expert of 5,632, 16 heads. Random init, not trained; the full 24 layers do not fit this machine's
RAM at fp32 (~57 GB), so it builds ``--layers`` of them and extrapolates linearly in layers. The
vocabulary is SmolLM2's tokenizer (the counts do not depend on it; embeddings are the only cost).

    python benchmarks/bench_moe_memory.py --layers 2 --per-category 2

Start it from a shell (``ru_maxrss`` of a child inherits a large parent's peak). Prints one JSON
line: the bytes the sparse rows and the always-on counts take, the mean number of experts a record
hits per layer (H), the formula's prediction, the dense layout's size, peak RSS growth during the
pass (VmHWM reset after loading), and the extrapolation to 24 layers x 1,200 records.
"""

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: F401
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

import instr_interp as ii  # noqa: E402,I001  (before torch: MKL_CBWR)
from instr_interp.models import _boot, _load_tokenizer, cache_dir  # noqa: E402
from instr_interp.sparcom.expert_firing import ExpertFiring  # noqa: E402

QWEN15_MOE = dict(
    hidden_size=2048,
    intermediate_size=5632,
    moe_intermediate_size=1408,
    shared_expert_intermediate_size=5632,
    num_experts=60,
    num_experts_per_tok=4,
    num_attention_heads=16,
    num_key_value_heads=16,
    norm_topk_prob=False,
)


def kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--per-category", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--records-target", type=int, default=1200)
    parser.add_argument("--layers-target", type=int, default=24)
    parser.add_argument("--activation-sums", action="store_true", help="also keep the tie-break sums")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import transformers as tf

    tokenizer = _load_tokenizer(cache_dir() / "smollm2-135m-instruct", True)
    config = tf.Qwen2MoeConfig(
        **QWEN15_MOE,
        num_hidden_layers=args.layers,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config.architectures = ["Qwen2MoeForCausalLM"]
    t0 = time.perf_counter()
    torch.manual_seed(0)
    hf = tf.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model = _boot("random/qwen1.5-moe-a2.7b-shaped", hf, tokenizer, torch.device("cpu"), None)
    load_s = time.perf_counter() - t0
    data = ii.hexainst().sample(per_category=args.per_category, seed=0)
    encoded = ii.encode(data, model.tokenizer)
    rss_loaded = kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    t0 = time.perf_counter()
    (probe,) = ii.run(
        model,
        encoded,
        [ExpertFiring(activation_sums=args.activation_sums)],
        batch_size=args.batch_size,
        progress=False,
    )
    stats = probe.result()
    pass_s = time.perf_counter() - t0
    peak_growth = kib("VmHWM") - rss_loaded
    rows = stats.neuron_counts
    n_rec, n_layers, n_exp = stats.expert_counts.shape
    d, d_shared = rows.shape[1], stats.shared_counts.shape[-1]
    b = rows.element_size()
    hits = len(rows) / (n_rec * n_layers)  # experts hit per record and layer
    sparse_bytes = rows.nbytes + stats.neuron_index.nbytes
    if stats.neuron_activation is not None:
        sparse_bytes += stats.neuron_activation.nbytes
    shared_bytes = stats.shared_counts.nbytes
    if stats.shared_activation is not None:
        shared_bytes += stats.shared_activation.nbytes
    per_row = d * b + 12 + (4 * d if stats.neuron_activation is not None else 0)
    per_always_on = d_shared * b + (4 * d_shared if stats.shared_activation is not None else 0)
    formula = n_rec * n_layers * hits * per_row + n_rec * n_layers * per_always_on
    scale = (args.records_target / n_rec) * (args.layers_target / n_layers)
    tokens = stats.tokens.double()
    print(
        json.dumps(
            {
                "model": "Qwen2MoeConfig, Qwen1.5-MoE-A2.7B per-layer shape, random init, fp32",
                "layers": n_layers,
                "records": n_rec,
                "counted_tokens_per_record": {"mean": float(tokens.mean()), "max": int(tokens.max())},
                "count_dtype": str(rows.dtype),
                "activation_sums": stats.neuron_activation is not None,
                "experts_hit_per_record_layer": round(hits, 2),
                "sparse_rows_bytes": sparse_bytes,
                "always_on_bytes": shared_bytes,
                "formula_bytes": int(formula),
                "dense_layout_bytes": n_rec * n_layers * n_exp * d * 4,
                "peak_rss_growth_bytes": peak_growth * 1024,
                "rss_after_load_bytes": rss_loaded * 1024,
                "extrapolated_GB": {
                    "target": f"{args.records_target} records x {args.layers_target} layers",
                    "sparse_rows": round(sparse_bytes * scale / 1e9, 3),
                    "always_on": round(shared_bytes * scale / 1e9, 3),
                    "sparse_rows_worst_case_H_60": round(
                        args.records_target * args.layers_target * n_exp * per_row / 1e9, 3
                    ),
                    "dense_layout": round(args.records_target * args.layers_target * n_exp * d * 4 / 1e9, 3),
                },
                "load_s": round(load_s, 1),
                "pass_s": round(pass_s, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
