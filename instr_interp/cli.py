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
    from .report.page import write_report
    from .report.stages import Plan, run_stages

    start = time.perf_counter()
    data = _load_data(args.data)
    if args.quick:
        data = data.sample(per_category=6, seed=0)
    plan = Plan(
        model=args.model,
        data=data,
        out=Path(args.out),
        quick=args.quick,
        device=args.device,
        batch_size=args.batch_size,
        top=args.top,
        top_experts=args.top_experts,
        finetune=not args.no_finetune,
        after=args.after,
    )
    sections = run_stages(plan)
    seconds = time.perf_counter() - start
    timing = ", ".join(f"{name} {t:.0f} s" for name, t in plan.timings.items())
    path = write_report(
        sections,
        plan.out / "index.html",
        title="instr_interp report",
        meta=f"model {args.model} · data {data.name} ({len(data)} records) · "
        f"{'quick' if args.quick else 'full'} run in {seconds / 60:.1f} min ({timing})",
    )
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
    from .sparcom.selection import find_isns

    sets = find_isns(
        load_model(args.model, device=args.device),
        _load_data(args.data),
        top=args.top,
        rule=args.rule,
        select=args.select,
        threshold=args.threshold,
        tie_break=args.tie_break,
        regions=tuple(args.regions),
        format=args.format,
        batch_size=args.batch_size,
        expert_denominator=args.expert_denominator,
    )
    _write_sets(sets, Path(args.out))
    return 0


def cmd_ises(args) -> int:
    from .models import load_model
    from .sparcom.experts import find_ises

    sets = find_ises(
        load_model(args.model, device=args.device),
        _load_data(args.data),
        top=args.top,
        per_layer=args.per_layer,
        select=args.select,
        threshold=args.threshold,
        tie_break=args.tie_break,
        weighting=args.weighting,
        regions=tuple(args.regions),
        format=args.format,
        batch_size=args.batch_size,
    )
    _write_sets(sets, Path(args.out))
    return 0


def cmd_finetune(args) -> int:
    from .vectors.instruction import InstructionVector
    from .vectors.training import finetune

    guidance = [InstructionVector.load(p) for p in args.iv] or None
    result = finetune(
        args.model,
        _load_data(args.data),
        args.out,
        method=args.method,
        epochs=args.epochs,
        batch_size=args.batch_size,
        iv_guidance=guidance,
        kl_weight=args.kl_weight if guidance else None,
    )
    print(
        f"saved the tuned model to {result.path.resolve()} ({result.steps} steps, {result.seconds:.0f} s); "
        f"load it with ii.load_model({str(result.path)!r})"
    )
    return 0


def cmd_compare(args) -> int:
    from .results import load
    from .sparcom.compare import compare
    from .sparcom.neurons import NeuronSets

    loaded = []
    for path in (args.before, args.after):
        sets = load(path)
        if not isinstance(sets, NeuronSets):
            raise ValueError(
                f"{path} holds a {type(sets).__name__} result, not neuron or expert sets; "
                "run `instr-interp isns` (or ises) to make them."
            )
        loaded.append(sets)
    diff = compare(*loaded)
    out = Path(args.out)
    diff.save(out)
    diff.summary.to_csv(out / "summary.csv", index=False)
    diff.plot_layers().write_html(out / "layers.html", include_plotlyjs=True)
    print(diff.summary.to_string(index=False))
    print(f"saved to {out.resolve()}")
    return 0


def cmd_attribute(args) -> int:
    from .models import load_model
    from .shift.attribution import attribute_many, compare_scores

    data = _load_data(args.data)
    if args.per_category:
        data = data.sample(per_category=args.per_category, seed=0)
    out = Path(args.out)
    sets = []
    for name in [args.model, *([args.base] if args.base else [])]:
        result = attribute_many(
            load_model(name, device=args.device), data, max_new_tokens=args.max_new_tokens
        )
        target = out if name == args.model else out / "base"
        result.save(target)
        scores = result.to_frame()
        scores.to_csv(target / "scores.csv", index=False)
        sets.append(result)
        print(
            f"{name}: instruction score {scores['instruction_score'].mean():.3f} "
            f"± {scores['instruction_score'].std():.3f} over {len(scores)} records -> {target}"
        )
    if args.base:
        table = compare_scores(sets[1], sets[0])
        table.to_csv(out / "comparison.csv", index=False)
        print(table.to_string(index=False))
        from .shift.score_tests import compare_models

        paired = compare_models(sets[1], sets[0])  # same prompts: paired tests, bootstrap CI, power
        paired.save(out / "paired")
        print(repr(paired))
    return 0


def cmd_concepts(args) -> int:
    from .models import load_model
    from .shift.concepts import concept_shares, ffn_concepts

    model = load_model(args.model, device=args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shares = concept_shares(model, n_groups=args.n_groups, n_components=args.components)
    shares.to_csv(out / "shares.csv", index=False)
    for layer in args.layers or []:
        concepts = ffn_concepts(model, layer, n_components=args.components)
        concepts.save(out / f"layer{layer}")
        concepts.plot().write_html(out / f"layer{layer}.html", include_plotlyjs=True)
    print(shares.to_string(index=False))
    print(f"saved to {out.resolve()}")
    return 0


def cmd_wordpairs(args) -> int:
    from .models import load_model
    from .shift.vocabulary import INSTRUCTION_VERBS, frequent_words, general_verbs
    from .shift.wordpairs import instruction_verb_shift, model_word_pairs, reference_judge, verb_pair_counts

    judge = None if args.judge is None else "own" if args.judge == "own" else reference_judge(args.judge)
    vocabulary = list(
        dict.fromkeys(frequent_words(args.vocab_size) + list(INSTRUCTION_VERBS) + general_verbs())
    )
    out = Path(args.out)
    model = load_model(args.model, device=args.device)
    pairs = model_word_pairs(model, vocabulary=vocabulary, top_dims=args.top_dims, similarity=judge)
    pairs.save(out)
    verb_pair_counts(pairs, n_groups=min(3, model.cfg.n_layers)).to_csv(out / "verb_pairs.csv", index=False)
    if args.base:
        base = model_word_pairs(
            load_model(args.base, device=args.device),
            vocabulary=vocabulary,
            top_dims=args.top_dims,
            similarity=judge,
        )
        base.save(out / "base")
        shift = instruction_verb_shift(base, pairs, group=8)
        shift.to_csv(out / "verb_shift.csv", index=False)
        print(shift.to_string(index=False))
    print(f"saved to {out.resolve()}")
    return 0


def cmd_iv(args) -> int:
    from .models import load_model
    from .vectors.instruction import instruction_vector, vector_scores
    from .vectors.tasks import icl_task

    model = load_model(args.model, device=args.device)
    out = Path(args.out)
    vectors, held_out = [], []
    for name in args.tasks:
        train, val = icl_task(name).split(seed=0, n_val=args.n_val)
        iv = instruction_vector(model, train, method=args.method, k=args.k)
        iv.save(out / name)
        iv.plot().write_html(out / f"{name}_heads.html", include_plotlyjs=True)
        vectors.append(iv)
        held_out.append(val)
    scores = vector_scores(model, vectors, held_out)
    scores.to_csv(out / "scores.csv", index=False)
    print(scores.to_string(index=False))
    print(f"saved to {out.resolve()} (reload a vector with ii.InstructionVector.load)")
    return 0


def cmd_forgetting(args) -> int:
    import json

    from .vectors.continual import forgetting_demo

    results = forgetting_demo(args.model, args.tasks, epochs=args.epochs, kl_weight=args.kl_weight)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    print(results["verdict"])
    print(f"saved to {(out / 'results.json').resolve()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``instr-interp`` argument parser: one sub-command per analysis."""
    parser = argparse.ArgumentParser(
        prog="instr-interp",
        description="Find and compare the parts of a language model that make it follow instructions.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (
        _add_report,
        _add_isns,
        _add_ises,
        _add_finetune,
        _add_compare,
        _add_attribute,
        _add_concepts,
        _add_wordpairs,
        _add_iv,
        _add_forgetting,
        _add_study,
    ):
        add(sub)
    return parser


def _common_args(p, top_default: int | float) -> None:
    """The arguments shared by ``isns`` and ``ises``."""
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model (default: {DEFAULT_MODEL})")
    p.add_argument("--data", default=None, help="instruction file; default: the built-in HexaInst set")
    p.add_argument("--out", required=True, help="output directory for the result files")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    p.add_argument("--batch-size", type=int, default=16, help="records per forward pass (default 16)")
    p.add_argument(
        "--top", type=float, default=top_default, help=f"fraction kept per set (default {top_default})"
    )


def _model_args(p) -> None:
    """The model, output and device arguments of the per-analysis commands."""
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model (default: {DEFAULT_MODEL})")
    p.add_argument("--out", required=True, help="output directory for the result files")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")


def _add_report(sub) -> None:
    """``instr-interp report``."""
    rep = sub.add_parser(
        "report",
        help="run the analyses on a model and write a self-contained HTML report",
        description="Run the analyses on a model and instruction set, then write OUT/index.html "
        "(opens offline). Finished results are cached in OUT/cache, so a re-run is fast.",
    )
    rep.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"bundled alias, local HF directory or hub name (default: {DEFAULT_MODEL})",
    )
    rep.add_argument(
        "--data",
        default=None,
        help="instruction file (.json/.jsonl/.csv with id, category, instruction[, input, "
        "response, source]); default: the built-in HexaInst set",
    )
    rep.add_argument(
        "--quick",
        action="store_true",
        help="6 instructions per category and smaller settings everywhere (3-4 minutes on a 2-core CPU; the full report takes 12-18 minutes)",
    )
    rep.add_argument("--out", default="report", help="output directory (default: report/)")
    rep.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    rep.add_argument("--batch-size", type=int, default=16, help="records per forward pass (default 16)")
    rep.add_argument(
        "--no-finetune",
        action="store_true",
        help="leave out the tuned model (gemma-3-270m-tuned) and the before/after sections",
    )
    rep.add_argument(
        "--after",
        choices=["tuned", "lora-qv"],
        default="tuned",
        help="the after model: tuned (default: gemma-3-270m-tuned, every linear layer tuned on the tuning set) "
        "or lora-qv (a short q/v LoRA trained here, the old path)",
    )
    rep.add_argument(
        "--top",
        type=float,
        default=0.01,
        help="fraction of all neurons kept as instruction-specific (default 0.01)",
    )
    rep.add_argument(
        "--top-experts",
        type=float,
        default=0.1,
        help="MoE models: fraction of all layer x expert units kept as instruction-specific "
        "experts (default 0.1)",
    )
    rep.set_defaults(func=cmd_report)


def _add_isns(sub) -> None:
    """``instr-interp isns``."""
    isns = sub.add_parser(
        "isns",
        help="find instruction-specific neurons and save them",
        description="Find instruction-specific neurons per instruction and category; writes the "
        "sets (safetensors + manifest), overlap.csv, layers.csv and overlap.html to --out.",
    )
    _common_args(isns, 0.01)
    isns.add_argument("--rule", choices=["pooled", "majority"], default="pooled", help="category-set rule")
    _selection_args(isns, ["top", "threshold", "lape"])
    isns.add_argument(
        "--expert-denominator",
        choices=["all", "routed"],
        default="all",
        help="MoE models: an expert neuron's firing frequency over all counted tokens, or over those routed to its expert",
    )
    isns.set_defaults(func=cmd_isns)


def _add_ises(sub) -> None:
    """``instr-interp ises``."""
    ises = sub.add_parser(
        "ises",
        help="find instruction-specific experts of an MoE model and save them",
        description="Find instruction-specific experts (MoE models only); same outputs as isns.",
    )
    _common_args(ises, 0.1)
    ises.add_argument(
        "--per-layer", type=int, default=None, help="keep the top N experts of every layer instead"
    )
    _selection_args(ises, ["top", "threshold"])
    ises.add_argument(
        "--weighting",
        choices=["binary", "weight"],
        default="binary",
        help="expert frequency: share of tokens routed (binary) or summed routing weight",
    )
    ises.set_defaults(func=cmd_ises)


def _selection_args(p, selects: list[str]) -> None:
    """The selection-rule arguments of ``isns`` and ``ises``."""
    from .sparcom.selection import TIE_BREAKS

    p.add_argument(
        "--select",
        choices=selects,
        default="top",
        help="top: the --top fraction of all units; threshold: every unit firing on >= --threshold of "
        "the tokens"
        + (
            "; lape: LAPE's low-entropy rule over the categories (category sets only)"
            if "lape" in selects
            else ""
        ),
    )
    p.add_argument("--threshold", type=float, default=None, help="firing frequency for --select threshold")
    p.add_argument(
        "--tie-break",
        choices=list(TIE_BREAKS),
        default="layer_rank",
        help="ties at the --top cut: the secondary key's rank (layer_rank) or z-score (layer_z) within "
        "its layer, the raw key, the index, or keep all",
    )
    p.add_argument(
        "--regions",
        nargs="+",
        default=["instruction", "input"],
        help="token regions counted (default: instruction input)",
    )
    p.add_argument(
        "--format",
        choices=["auto", "chat", "alpaca", "plain"],
        default="auto",
        help="prompt format (use one format for two models that are compared)",
    )


def _add_finetune(sub) -> None:
    """``instr-interp finetune``."""
    ft = sub.add_parser(
        "finetune",
        help="instruction-tune a model on reference responses and save it",
        description="Supervised fine-tuning on response tokens (LoRA or full); the saved directory "
        "loads with `--model DIR` in the other commands.",
    )
    ft.add_argument(
        "--model", default="gemma-3-270m", help="model to tune (default: gemma-3-270m, the base model)"
    )
    ft.add_argument("--data", default=None, help="instruction file with responses; default: HexaInst")
    ft.add_argument("--out", required=True, help="directory for the tuned model")
    ft.add_argument("--method", choices=["lora", "full"], default="lora")
    ft.add_argument("--epochs", type=int, default=1)
    ft.add_argument("--batch-size", type=int, default=8)
    ft.add_argument(
        "--iv",
        nargs="*",
        default=[],
        metavar="DIR",
        help="instruction vectors (saved by `instr-interp iv`) to guide training against forgetting",
    )
    ft.add_argument(
        "--kl-weight", type=float, default=5.0, help="weight of the IV-guided KL term (with --iv)"
    )
    ft.set_defaults(func=cmd_finetune)


def _add_compare(sub) -> None:
    """``instr-interp compare``."""
    cmp = sub.add_parser(
        "compare",
        help="compare saved neuron/expert sets before and after fine-tuning",
        description="Compare two saved results of `isns` (or `ises`) on the same architecture.",
    )
    cmp.add_argument(
        "--before", required=True, help="directory written by `instr-interp isns` on the base model"
    )
    cmp.add_argument("--after", required=True, help="the same on the tuned model")
    cmp.add_argument("--out", required=True, help="output directory")
    cmp.set_defaults(func=cmd_compare)


def _add_attribute(sub) -> None:
    """``instr-interp attribute``."""
    att = sub.add_parser(
        "attribute",
        help="gradient input->output attribution and instruction scores",
        description="Each model answers the instructions greedily; every response token's "
        "probability is attributed to the prompt tokens (gradient x input). Writes the scores "
        "(scores.csv) and, with --base, one-sided Welch, paired t and Wilcoxon tests that --model scores "
        "higher, with a bootstrap interval and the design's power (paired/). Every model gets the plain prompt.",
    )
    _model_args(att)
    att.add_argument("--data", default=None, help="instruction file; default: the built-in HexaInst set")
    att.add_argument("--per-category", type=int, default=5, help="records per category (0: all; default 5)")
    att.add_argument("--base", default=None, help="a base model to compare with (e.g. gemma-3-270m)")
    att.add_argument(
        "--max-new-tokens", type=int, default=32, help="length of the greedy responses (default 32)"
    )
    att.set_defaults(func=cmd_attribute)


def _add_concepts(sub) -> None:
    """``instr-interp concepts``."""
    con = sub.add_parser(
        "concepts",
        help="FFN concepts: PCA of each layer's down-projection, labelled",
        description="Principal components of the MLP value vectors, read through the words they "
        "align with and labelled offline (task / linguistic level); writes shares.csv per "
        "layer group, and the components of --layers.",
    )
    _model_args(con)
    con.add_argument(
        "--n-groups",
        type=int,
        default=None,
        help="layer groups by depth (default: blocks of 4 layers, the authors')",
    )
    con.add_argument("--components", type=int, default=300, help="components per layer (default 300)")
    con.add_argument("--layers", type=int, nargs="*", help="also save these layers' components and top words")
    con.set_defaults(func=cmd_concepts)


def _add_wordpairs(sub) -> None:
    """``instr-interp wordpairs``."""
    wp = sub.add_parser(
        "wordpairs",
        help="word pairs each attention head relates (W_Q/W_K)",
        description="Related word pairs that each head's query/key weights connect; with --base, "
        "the instruction-verb test (do tuned heads gain pairs with instruction verbs?).",
    )
    _model_args(wp)
    wp.add_argument("--base", default=None, help="the base model of --model (same architecture)")
    wp.add_argument(
        "--top-dims",
        type=int,
        default=None,
        help="dimensions per head (default: every dimension, the authors')",
    )
    wp.add_argument("--vocab-size", type=int, default=3000, help="frequent English words used (default 3000)")
    wp.add_argument(
        "--judge",
        default=None,
        help="relatedness judge: a model whose input embeddings judge both models (default: the bundled "
        "smollm2-135m-instruct), or 'own' for each model's own embeddings (not for --base comparisons)",
    )
    wp.set_defaults(func=cmd_wordpairs)


def _add_iv(sub) -> None:
    """``instr-interp iv``."""
    iv = sub.add_parser(
        "iv",
        help="instruction vectors of word tasks from causal attention heads",
        description="For each task: head effects, top heads, the vector and its injection layer; "
        "scores.csv compares zero-shot accuracy without, with the vector, and with random heads.",
    )
    _model_args(iv)
    iv.add_argument(
        "--tasks",
        nargs="+",
        default=["antonym", "country_capital"],
        help="built-in tasks (see ii.ICL_TASKS); default: antonym country_capital",
    )
    iv.add_argument(
        "--method", choices=["atp", "exact"], default="atp", help="head-effect method (default atp)"
    )
    iv.add_argument("-k", type=int, default=10, help="heads summed into the vector (default 10)")
    iv.add_argument("--n-val", type=int, default=20, help="held-out pairs per task (default 20)")
    iv.set_defaults(func=cmd_iv)


def _add_forgetting(sub) -> None:
    """``instr-interp forgetting``."""
    fg = sub.add_parser(
        "forgetting",
        help="sequential fine-tuning, plain vs IV-guided: what is forgotten",
        description="Tunes --model on the tasks in order, plainly and with instruction-vector "
        "guidance, and measures forgetting of the first task and of general instructions "
        "(about 15 minutes on a 2-core CPU with the defaults).",
    )
    _model_args(fg)
    fg.add_argument("--tasks", nargs="+", default=["antonym", "present_past", "country_capital"])
    fg.add_argument("--epochs", type=int, default=2)
    fg.add_argument("--kl-weight", type=float, default=5.0)
    fg.set_defaults(func=cmd_forgetting)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, OSError) as err:
        print(f"instr-interp: error: {err}", file=sys.stderr)
        return 2


def cmd_study(args) -> int:
    from .studies import run_study

    path = run_study(
        args.name,
        size=args.size,
        out=Path(args.out) if args.out else None,
        work=Path(args.work) if args.work else None,
    )
    print(f"study {args.name} ({args.size}) written to {path.resolve()}")
    return 0


def _add_study(sub) -> None:
    """``instr-interp study NAME``."""
    from .studies import SIZES, STUDIES

    p = sub.add_parser(
        "study",
        help="run a study (an analysis at an adequate size, resumable) and write its JSON summary",
        description="Run a study and write study_NAME.json (default folder benchmarks/results). "
        "Finished units are kept in --work, so an interrupted study resumes.",
    )
    p.add_argument("name", help=f"the study: {', '.join(sorted(STUDIES)) or 'none registered'}")
    p.add_argument(
        "--size", choices=SIZES, default="full", help="full (default) or tiny (a seconds-long check)"
    )
    p.add_argument("--out", default=None, help="folder for the summary JSON (default benchmarks/results)")
    p.add_argument(
        "--work",
        default=None,
        help="folder for resumable per-unit results (default: benchmarks/results/study_units/NAME for a "
        "full run, committed with the summary; the user cache for a tiny one)",
    )
    p.set_defaults(func=cmd_study)


if __name__ == "__main__":
    sys.exit(main())
