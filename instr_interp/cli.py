"""Command line: ``instr-interp report`` runs the analyses and writes a self-contained HTML report."""

import argparse
import sys
import time
from pathlib import Path

__all__ = ["main"]

DEFAULT_MODEL = "smollm2-135m-instruct"


def _load_data(spec: str | None):
    from .data.dataset import hexainst, load_instructions

    return hexainst() if spec in (None, "hexainst") else load_instructions(spec)


def cmd_report(args) -> int:
    from .pipeline import Plan, run_stages
    from .report import write_report

    start = time.perf_counter()
    data = _load_data(args.data)
    if args.quick:
        data = data.sample(per_category=10, seed=0)
    plan = Plan(model=args.model, data=data, out=Path(args.out), quick=args.quick, device=args.device,
                batch_size=args.batch_size, top=args.top, finetune=not args.no_finetune)
    sections = run_stages(plan)
    seconds = time.perf_counter() - start
    timing = ", ".join(f"{name} {t:.0f} s" for name, t in plan.timings.items())
    path = write_report(sections, plan.out / "index.html", title="instr_interp report",
                        meta=f"model {args.model} · data {data.name} ({len(data)} records) · "
                        f"{'quick' if args.quick else 'full'} run in {seconds / 60:.1f} min ({timing})")
    print(f"done in {seconds:.1f} s ({timing})")
    print(f"report: {path.resolve()}")
    return 0


def _write_sets(sets, out: Path) -> None:
    sets.save(out)
    sets.overlap().to_csv(out / "overlap.csv")
    sets.layer_distribution().to_csv(out / "layers.csv", index=False)
    sets.plot_overlap().write_html(out / "overlap.html", include_plotlyjs=True)
    print(f"saved {type(sets).__name__} to {out.resolve()} (reload with ii.{type(sets).__name__}.load)")


def cmd_isns(args) -> int:
    from .models import load_model
    from .neurons import find_isns

    sets = find_isns(load_model(args.model, device=args.device), _load_data(args.data), top=args.top,
                     rule=args.rule, batch_size=args.batch_size)
    _write_sets(sets, Path(args.out))
    return 0


def cmd_ises(args) -> int:
    from .experts import find_ises
    from .models import load_model

    sets = find_ises(load_model(args.model, device=args.device), _load_data(args.data), top=args.top,
                     per_layer=args.per_layer, batch_size=args.batch_size)
    _write_sets(sets, Path(args.out))
    return 0


def cmd_finetune(args) -> int:
    from .training import finetune

    result = finetune(args.model, _load_data(args.data), args.out, method=args.method, epochs=args.epochs,
                      batch_size=args.batch_size)
    print(f"saved the tuned model to {result.path.resolve()} ({result.steps} steps, {result.seconds:.0f} s); "
          f"load it with ii.load_model({str(result.path)!r})")
    return 0


def cmd_compare(args) -> int:
    from .compare import compare
    from .experts import ExpertSets
    from .neurons import NeuronSets
    from .results import load_result

    loaded = []
    for path in (args.before, args.after):
        _, meta = load_result(path, json_kind(path))
        loaded.append((ExpertSets if meta["kind"] == "ExpertSets" else NeuronSets).load(path))
    diff = compare(*loaded)
    out = Path(args.out)
    diff.save(out)
    diff.summary.to_csv(out / "summary.csv", index=False)
    diff.plot_layers().write_html(out / "layers.html", include_plotlyjs=True)
    print(diff.summary.to_string(index=False))
    print(f"saved to {out.resolve()}")
    return 0


def json_kind(path) -> str:
    import json

    manifest = Path(path) / "manifest.json"
    if not manifest.exists():
        raise FileNotFoundError(f"No saved result at {path}; run `instr-interp isns` (or ises) first.")
    return json.loads(manifest.read_text())["kind"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="instr-interp",
        description="Find and compare the parts of a language model that make it follow instructions.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser(
        "report",
        help="run the analyses on a model and write a self-contained HTML report",
        description="Run the analyses on a model and instruction set, then write OUT/index.html "
        "(opens offline). Finished results are cached in OUT/cache, so a re-run is fast.",
    )
    rep.add_argument("--model", default=DEFAULT_MODEL,
                     help=f"bundled alias, local HF directory or hub name (default: {DEFAULT_MODEL})")
    rep.add_argument("--data", default=None,
                     help="instruction file (.json/.jsonl/.csv with id, category, instruction[, input, "
                     "response, source]); default: the built-in HexaInst set")
    rep.add_argument("--quick", action="store_true", help="10 instructions per category (a minute or two)")
    rep.add_argument("--out", default="report", help="output directory (default: report/)")
    rep.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    rep.add_argument("--batch-size", type=int, default=16, help="records per forward pass (default 16)")
    rep.add_argument("--no-finetune", action="store_true",
                     help="skip fine-tuning Gemma-3-270M (trained once, then cached) and the before/after sections")
    rep.add_argument("--top", type=float, default=0.01,
                     help="fraction of all neurons kept as instruction-specific (default 0.01)")
    rep.set_defaults(func=cmd_report)

    def common(p, top_default):
        p.add_argument("--model", default=DEFAULT_MODEL, help=f"model (default: {DEFAULT_MODEL})")
        p.add_argument("--data", default=None, help="instruction file; default: the built-in HexaInst set")
        p.add_argument("--out", required=True, help="output directory for the result files")
        p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
        p.add_argument("--batch-size", type=int, default=16, help="records per forward pass (default 16)")
        p.add_argument("--top", type=float, default=top_default, help=f"fraction kept per set (default {top_default})")

    isns = sub.add_parser("isns", help="find instruction-specific neurons and save them",
                          description="Find instruction-specific neurons per instruction and category; writes the "
                          "sets (safetensors + manifest), overlap.csv, layers.csv and overlap.html to --out.")
    common(isns, 0.01)
    isns.add_argument("--rule", choices=["pooled", "majority"], default="pooled", help="category-set rule")
    isns.set_defaults(func=cmd_isns)
    ises = sub.add_parser("ises", help="find instruction-specific experts of an MoE model and save them",
                          description="Find instruction-specific experts (MoE models only); same outputs as isns.")
    common(ises, 0.1)
    ises.add_argument("--per-layer", type=int, default=None, help="keep the top N experts of every layer instead")
    ises.set_defaults(func=cmd_ises)
    ft = sub.add_parser("finetune", help="instruction-tune a model on reference responses and save it",
                        description="Supervised fine-tuning on response tokens (LoRA or full); the saved directory "
                        "loads with `--model DIR` in the other commands.")
    ft.add_argument("--model", default="gemma-3-270m", help="model to tune (default: gemma-3-270m, the base model)")
    ft.add_argument("--data", default=None, help="instruction file with responses; default: HexaInst")
    ft.add_argument("--out", required=True, help="directory for the tuned model")
    ft.add_argument("--method", choices=["lora", "full"], default="lora")
    ft.add_argument("--epochs", type=int, default=1)
    ft.add_argument("--batch-size", type=int, default=8)
    ft.set_defaults(func=cmd_finetune)
    cmp = sub.add_parser("compare", help="compare saved neuron/expert sets before and after fine-tuning",
                         description="Compare two saved results of `isns` (or `ises`) on the same architecture.")
    cmp.add_argument("--before", required=True, help="directory written by `instr-interp isns` on the base model")
    cmp.add_argument("--after", required=True, help="the same on the tuned model")
    cmp.add_argument("--out", required=True, help="output directory")
    cmp.set_defaults(func=cmd_compare)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, OSError) as err:
        print(f"instr-interp: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
