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


def _firing(model, data, out: Path, batch_size: int):
    """Firing statistics, cached in ``out/cache`` by model and data fingerprint."""
    from .data.encoding import encode
    from .engine import run
    from .probes import FiringStats, NeuronFiring

    encoded = encode(data, model.tokenizer)
    key = f"{model.instr_interp_name}-{data.fingerprint()}".replace("/", "_")
    cached = out / "cache" / f"firing-{key}"
    if (cached / "manifest.json").exists():
        print(f"firing statistics: reusing {cached}")
        return FiringStats.load(cached), encoded
    (probe,) = run(model, encoded, [NeuronFiring()], batch_size=batch_size)
    stats = probe.result()
    stats.save(cached)
    return stats, encoded


def cmd_report(args) -> int:
    from .models import load_model
    from .report import dataset_section, firing_section, write_report

    start = time.perf_counter()
    out = Path(args.out)
    data = _load_data(args.data)
    if args.quick:
        data = data.sample(per_category=10, seed=0)
    print(f"[1/3] loading {args.model}")
    model = load_model(args.model, device=args.device)
    print(f"[2/3] shared activation pass over {len(data)} instructions")
    stats, encoded = _firing(model, data, out, args.batch_size)
    print("[3/3] writing the report")
    sections = [dataset_section(data, encoded), firing_section(stats)]
    path = write_report(sections, out / "index.html", title="instr_interp report",
                        meta=f"model {args.model} · data {data.name} ({len(data)} records)")
    print(f"done in {time.perf_counter() - start:.1f} s")
    print(f"report: {path.resolve()}")
    return 0


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
    rep.set_defaults(func=cmd_report)
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
