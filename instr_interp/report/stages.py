"""The report's stages: each runs one analysis with the report's settings, caches its result under
``OUT/cache`` and returns report sections. ``instr-interp report`` chains them; the sub-commands of
the command line call the same analyses directly.

Every stage takes a :class:`Plan` (the models and sizes, full or quick) and returns a list of
:class:`~instr_interp.report.page.Section`. A finished result is saved before the next stage starts, so
an interrupted report resumes where it stopped and a re-run only re-renders the page.
"""

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pandas as pd

from ..files import write_atomic

__all__ = ["Plan", "cached", "STAGES", "run_stages"]

BASE = "gemma-3-270m"  # the bundled base model
TUNED = "gemma-3-270m-tuned"  # its instruction tune (shipped adapter), the "after" of every before/after
BEFORE_AFTER_FORMAT = (
    "alpaca"  # one prompt format for both models (their shared tokenizer has no chat template)
)
N_PERMUTATIONS = 1000  # label shuffles of the ISN/ISE overlap permutation test
QUICK_PAIR_LAYERS = 8  # the quick report's word pairs: the first block of 8 layers (all dimensions cost ~8x)


@dataclass(kw_only=True)
class Plan:
    """What the report runs: models, data and sizes (``quick`` shrinks every size)."""

    model: str
    data: object  # InstructionDataset
    out: Path
    quick: bool = False
    device: str | None = None
    batch_size: int = 16
    top: float = 0.01  # ISNs: this share of all layer x neuron units
    top_experts: float = 0.1  # ISEs of an MoE model: this share of all layer x expert units
    finetune: bool = True  # include the tuned model and the before/after sections
    after: str = "tuned"  # "tuned": gemma-3-270m-tuned; "lora-qv": a q/v LoRA trained here (the old path)
    timings: dict[str, float] = field(default_factory=dict)
    _models: dict = field(default_factory=dict)

    @property
    def cache(self) -> Path:
        return self.out / "cache" / ("quick" if self.quick else "full")

    def size(self, full, quick):
        return quick if self.quick else full

    def load(self, name: str):
        """Load a model once per report (the bridge is reused by every stage)."""
        from ..models import load_model

        if name not in self._models:
            self._models[name] = load_model(name, device=self.device)
        return self._models[name]

    @property
    def tuned(self) -> str:
        """The after model's name: the tuned alias, or the folder of the q/v LoRA trained here."""
        from ..models import cache_dir

        if self.after == "tuned":
            return TUNED
        if self.after != "lora-qv":
            raise ValueError(f"Plan.after must be 'tuned' or 'lora-qv', not {self.after!r}.")
        return str(cache_dir() / f"{BASE}-tuneset-lora-qv{'-quick' if self.quick else ''}")


def done_marker(path: Path) -> Path:
    """The completion marker of a cached stage result: written last, after the result itself."""
    return path.with_name(path.name + ".done")


def cached(path: Path, compute: Callable, save: Callable, load: Callable, what: str):
    """``load(path)`` when a finished result is there, else ``compute()``, saved with ``save(value, path)``.

    A result counts as finished only when its completion marker (:func:`done_marker`) exists, which
    is written after ``save`` returns: a result half-written by a crash or a full disk is computed again.
    """
    marker = done_marker(path)
    if marker.exists() and path.exists():
        print(f"  {what}: reusing {path}")
        return load(path)
    if path.exists():
        print(f"  {what}: {path} has no completion marker (an interrupted save); computing it again")
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    save(value, path)
    write_atomic(marker, time.strftime("%Y-%m-%dT%H:%M:%S\n"))
    return value


def _csv(path):
    return pd.read_csv(path)


def _to_csv(frame, path):
    write_atomic(path, frame.to_csv(index=False))


def _key(*parts) -> str:
    return "-".join(str(p).replace("/", "_") for p in parts)


# ------------------------------------------------------------------------------------------------
# Stages


def neurons_stage(plan: Plan) -> list:
    """Dataset, the shared activation pass, ISN sets and their critical role (ISEs for an MoE model)."""
    from ..data.encoding import encode
    from ..models import model_facts
    from ..sparcom.firing import FiringStats, NeuronFiring
    from ..sparcom.selection import sets_from_firing
    from .sections_sparcom import dataset_section, firing_section

    model = plan.load(plan.model)
    encoded = encode(plan.data, model.tokenizer)
    if model_facts(model).moe:
        return [dataset_section(plan.data, encoded), *_expert_sections(plan, model, encoded)]

    stats = _statistics(plan, model, encoded, NeuronFiring(activation_sums=True), "firing", FiringStats.load)
    rule = partial(sets_from_firing, top=plan.top)
    sets = rule(stats)
    return [
        dataset_section(plan.data, encoded),
        firing_section(stats),
        *_set_sections(plan, model, sets, stats, rule),
    ]


def _statistics(plan: Plan, model, encoded, probe, name: str, load: Callable, key: tuple = ()):
    """One activation pass with ``probe`` over the report's data, cached as ``name`` (with ``key``
    naming the model and format; default the report's model)."""
    from ..engine import run

    def compute():
        (done,) = run(model, encoded, [probe], batch_size=plan.batch_size)
        return done.result()

    return cached(
        plan.cache / _key(name, *(key or (plan.model,)), plan.data.fingerprint()),
        compute,
        lambda v, p: v.save(p),
        load,
        f"{name} statistics",
    )


def _set_sections(plan: Plan, model, sets, stats, rule: Callable) -> list:
    """Overlap, layers, general/unique and the critical role of ISN or ISE sets (``rule(stats)``); the
    critical role re-identifies the sets with ``rule`` on the records it does not evaluate on."""
    from ..sparcom.ablation import critical_role
    from ..sparcom.critical import KINDS, CriticalRole
    from .sections_sparcom import critical_role_section, isn_sections

    result = cached(
        plan.cache
        / _key("critical-role", sets.short, plan.model, plan.data.fingerprint(), sets.settings["top"]),
        lambda: critical_role(
            model,
            plan.data,
            rule,
            stats=stats,
            split=plan.size(8, 1),  # held-out records per category
            n_control=20,
            kinds=plan.size(KINDS, ("category", "general")),
            batch_size=plan.batch_size,
        ),
        lambda v, p: v.save(p),
        CriticalRole.load,
        f"critical role of {sets.short}",
    )
    test = sets.permutation_test(n_permutations=N_PERMUTATIONS)
    held = plan.size(8, 1)
    sections = [
        *isn_sections(sets, test),
        critical_role_section(result.view(), origin=f"live run, {held} held-out record(s) per category"),
    ]
    return sections + _critical_study(plan, sets.short)


def _critical_study(plan: Plan, short: str) -> list:
    """The committed ``instr-interp study critical`` (an adequate size), for the model it ran on."""
    import json

    from ..studies import study_path
    from ..studies.critical import COMMAND, DESIGNS
    from .sections_sparcom import critical_role_section

    path = study_path("critical")
    if short != "ISNs" or plan.model != DESIGNS["full"]["model"] or not path.exists():
        return []
    study = json.loads(path.read_text())
    return [critical_role_section(study["view"], origin=f"the committed `{COMMAND}` ({study['design']})")]


def _expert_sections(plan: Plan, model, encoded) -> list:
    """Routing statistics, ISE sets (the top ``plan.top_experts`` of the layer x expert units) and their role."""
    from ..sparcom.experts import ExpertFiring, ExpertStats, sets_from_expert_stats
    from .sections_sparcom import expert_routing_section

    stats = _statistics(plan, model, encoded, ExpertFiring(neurons=False), "routing", ExpertStats.load)
    rule = partial(sets_from_expert_stats, top=plan.top_experts)
    sets = rule(stats)
    return [expert_routing_section(stats), *_set_sections(plan, model, sets, stats, rule)]


def _tuned_model(plan: Plan) -> dict:
    """Facts about the after model: the shipped tune's training log, or (``after="lora-qv"``) a q/v
    LoRA of the base model trained here on the tuning set (once, kept in the model cache)."""
    import json

    from ..data.dataset import tuneset
    from ..models import TUNED as SHIPPED
    from ..vectors.training import FinetuneResult, finetune

    if plan.after == "tuned":
        log = json.loads((SHIPPED[TUNED].folder / "training.json").read_text())
        settings = log["settings"]
        return {
            "how": f"LoRA (r {settings['lora_r']}, every linear layer of every block)",
            "steps": log["steps"],
            "records": log["train_records"],
            "first_loss": log["losses"][0],
            "last_loss": sum(log["losses"][-20:]) / len(log["losses"][-20:]),
            "seconds": log["seconds"],
        }
    if (Path(plan.tuned) / "instr_interp_finetune.json").exists():
        print(f"  fine-tuned model: reusing {plan.tuned}")
        result = FinetuneResult.load(plan.tuned)
    else:
        train = tuneset().sample(per_category=plan.size(20, 2), seed=0)
        result = finetune(BASE, train, plan.tuned, method="lora", epochs=1, batch_size=8)
    return {
        "how": "LoRA (r 8, q/v projections only)",
        "steps": result.steps,
        "records": result.settings["records"],
        "first_loss": result.losses[0],
        "last_loss": sum(result.losses[-20:]) / len(result.losses[-20:]),
        "seconds": result.seconds,
    }


def isn_change(before, after, data, *, quick: bool = False):
    """The before/after comparison of ISN sets as the report makes it (threshold 0.9 sets, template
    groups resampled whole, training records refused; 1,000 bootstrap replicates and 100 split-halves,
    200 and 30 when ``quick``), from the two models' firing statistics on ``data``."""
    from ..data.dataset import tuneset
    from ..sparcom.change import compare_with_intervals

    return compare_with_intervals(
        before,
        after,
        select="threshold",
        threshold=0.9,
        groups=data.template_groups(),
        training_ids=tuneset().ids,  # an analysed training record would be an error
        n_boot=200 if quick else 1000,
        n_splits=30 if quick else 100,
        progress=False,
    )


def before_after_stage(plan: Plan) -> list:
    """ISN sets of the base model and of its tuned version, compared with bootstrap intervals and
    split-half noise floors (threshold sets, so sizes can change)."""
    from ..data.encoding import encode
    from ..sparcom.firing import FiringStats, NeuronFiring
    from .sections_sparcom import set_change_section

    facts = _tuned_model(plan)
    stats = {}
    for label, name in (("before", BASE), ("after", plan.tuned)):
        model = plan.load(name)
        encoded = encode(plan.data, model.tokenizer, format=BEFORE_AFTER_FORMAT)
        stats[label] = _statistics(
            plan,
            model,
            encoded,
            NeuronFiring(),
            "firing",
            FiringStats.load,
            key=(label, name, BEFORE_AFTER_FORMAT),
        )
    change = isn_change(stats["before"], stats["after"], plan.data, quick=plan.quick)
    note = (
        f"The after model is the base model tuned with {facts['how']} for {facts['steps']} steps on "
        f"{facts['records']} records of the built-in tuning set, which shares no instruction with the "
        f"analysis records ({facts['seconds'] / 60:.0f} CPU minutes; response loss {facts['first_loss']:.2f} "
        f"at the first step, {facts['last_loss']:.2f} averaged over the last twenty)."
    )
    return [set_change_section(change, f"{BASE} (base)", TUNED, note)]


def tuning_stage(plan: Plan) -> list:
    """Evidence that the after model follows instructions better: the committed summary of
    ``instr-interp study following`` (too slow for the report at an adequate size)."""
    import json

    from ..studies import study_path
    from .sections_tuning import following_section

    path = study_path("following")
    summary = json.loads(path.read_text()) if path.exists() and plan.after == "tuned" else None
    return [following_section(summary, "instr-interp study following")]


def patching_stage(plan: Plan) -> list:
    """Where did tuning act? Cross-model patching between the base model and its tune, per layer
    component and head: the committed summary of ``instr-interp study tuning`` (too slow for the
    report at an adequate size) and, in the quick report, a small live run
    (:func:`~instr_interp.sweeps.where_tuning_acted`) on this machine's models."""
    import json

    import pandas as pd

    from ..studies import study_path
    from ..studies.tuning import COMMAND
    from ..sweeps.tuning import TuningEffects, where_tuning_acted
    from .page import Section
    from .sections_patching import tuning_sections

    sections = []
    path = study_path("tuning")
    if plan.after == "tuned" and path.exists():
        study = json.loads(path.read_text())
        base, tuned = study["models"]
        sections += tuning_sections(
            pd.DataFrame(study["gaps"]),
            pd.DataFrame(study["effects"]),
            records=study["records"],
            base=base,
            tuned=tuned,
            origin=f"the committed `{COMMAND}`, {study['per_category']} records per category",
        )
        sections += _layer_relation(pd.DataFrame(study["effects"]), path.parent / "isn_change_gemma.json")
    else:
        sections.append(
            Section(
                title="Where tuning acted",
                reading=f"The full-size patching study has not been run for this pair; run `{COMMAND}`.",
            )
        )
    if not plan.quick:
        return sections
    _tuned_model(plan)
    data = plan.data.sample(per_category=1, seed=0)
    components = ("attn_out", "mlp_out")  # quick: no heads
    effects = cached(
        plan.cache / _key("tuning", plan.tuned, data.fingerprint(), *components, "every3"),
        lambda: where_tuning_acted(
            plan.load(BASE),
            plan.load(plan.tuned),
            data,
            components=components,
            layers=range(0, plan.load(BASE).cfg.n_layers, 3),  # quick: every third layer
            batch_size=plan.batch_size,
        ),
        lambda v, p: v.save(p),
        TuningEffects.load,
        "where tuning acted",
    )
    return sections + tuning_sections(
        effects.gaps(),
        effects.to_frame(),
        records=len(effects.ids),
        base=effects.settings["base"],
        tuned=effects.settings["tuned"],
        origin="quick live run on this machine: every third layer, no heads, one record per category",
    )


def _layer_relation(effects, isn_path) -> list:
    """The tuning study's per-layer effects against the committed full-size ISN change of the same pair
    (``benchmarks/bench_isn_change.py``): per layer, the net change in each category's ISN count, in
    absolute value, summed over categories."""
    import json

    import pandas as pd

    from ..sweeps.tuning import layer_relation
    from .sections_patching import layer_relation_section

    if not isn_path.exists():
        return []
    layers = pd.DataFrame(json.loads(isn_path.read_text())["layers"])
    change = layers.assign(moved=(layers["after"] - layers["before"]).abs()).groupby("layer")["moved"].sum()
    return [
        layer_relation_section(
            layer_relation(effects, change.to_dict()),
            change="the net change in the layer's ISN count (absolute, summed over categories)",
            origin=f"the tuning study and the committed `{isn_path.name}`",
        )
    ]


def _models_compared(plan: Plan) -> dict[str, str]:
    """Label -> model name: the instruction-tuned default, the base model and (with fine-tuning) its tune."""
    models = {f"{BASE} (base)": BASE}
    if plan.finetune:
        models[f"{TUNED} (ours)"] = plan.tuned
    models[plan.model] = plan.model
    return models


def attribution_stage(plan: Plan) -> list:
    """One attributed example, and instruction scores of base vs instruction-tuned models."""
    from ..shift.attribution import Attribution, AttributionSet, attribute, attribute_many
    from ..shift.score_tests import compare_models
    from .sections_shift import attribution_sections

    model = plan.load(plan.model)
    subset = plan.data.sample(per_category=plan.size(2, 1), seed=11)
    example = cached(
        plan.cache / _key("attribution-example", plan.model, subset[0].id, "plain"),
        lambda: attribute(model, subset[0], max_new_tokens=plan.size(32, 12)),
        lambda v, p: v.save(p),
        Attribution.load,
        "attribution example",
    )
    sets = {}
    for label, name in _models_compared(plan).items():
        sets[label] = cached(
            plan.cache / _key("attribution", name, subset.fingerprint(), "plain"),
            lambda name=name: attribute_many(plan.load(name), subset, max_new_tokens=plan.size(16, 6)),
            lambda v, p: v.save(p),
            AttributionSet.load,
            f"instruction scores ({label})",
        )
    reference = next(iter(sets.values()))
    # every model on the same prompts in one (plain) format: paired and Welch tests, with this sample's power
    tests = {label: compare_models(reference, s) for label, s in list(sets.items())[1:]}
    return attribution_sections(example, sets, tests) + _attribution_study()


def _attribution_study() -> list:
    """The committed summary of ``instr-interp study attribution`` (too slow for the report), if run."""
    import json

    from ..studies import study_path
    from .sections_shift import attribution_study_section

    path = study_path("attribution")
    if not path.exists():
        return []
    return [attribution_study_section(json.loads(path.read_text()), "instr-interp study attribution")]


def concepts_stage(plan: Plan) -> list:
    """FFN concept shares per layer group for the default model and the base model."""
    from ..models import model_facts
    from ..shift.concepts import concept_shares
    from .sections_shift import concepts_section

    shares = {}
    names = {plan.model: plan.model, f"{BASE} (base)": BASE}
    if plan.finetune:
        names[f"{TUNED} (ours)"] = plan.tuned
    moe = model_facts(plan.load(plan.model)).moe
    if moe:  # one down-projection per expert: no single FFN to take concepts from
        del names[plan.model]
    for label, name in names.items():
        shares[label] = cached(
            plan.cache / _key("concepts2", name) / "shares.csv",  # 2: explainable shares, 4-layer blocks
            lambda name=name: concept_shares(plan.load(name), n_components=plan.size(300, 50)),
            _to_csv,
            _csv,
            f"concept shares ({label})",
        )
    section = concepts_section(shares)
    if moe:
        section.reading += (
            f" {plan.model} is a mixture-of-experts model with one down-projection per expert, "
            "so its concepts are not shown; the base model's are, for reference."
        )
    if plan.finetune and plan.after == "lora-qv":
        section.reading += (
            " The q/v LoRA tune of the base model trains only the attention q/v projections, so its "
            "down-projections, and with them its concepts, are exactly the base model's."
        )
    return [section]


def wordpairs_stage(plan: Plan) -> list:
    """Attention-head word pairs of the default model and the base model, and the instruction-verb shift."""
    from ..shift.vocabulary import INSTRUCTION_VERBS, frequent_words, general_verbs
    from ..shift.wordpairs import WordPairs, instruction_verb_shift, model_word_pairs
    from .sections_shift import wordpairs_section

    general = general_verbs(plan.size(3000, 300))  # the authors' 3,000; the quick report's 300 most frequent
    vocabulary = list(dict.fromkeys(frequent_words(plan.size(3000, 600)) + list(INSTRUCTION_VERBS) + general))

    def extract(name):  # every head dimension, the authors' counting, one fixed judge (the default) for all
        model = plan.load(name)
        quick_layers = list(range(min(QUICK_PAIR_LAYERS, model.cfg.n_layers)))
        return model_word_pairs(model, vocabulary=vocabulary, layers=quick_layers if plan.quick else None)

    pairs = {}
    for label, name in _models_compared(plan).items():
        pairs[label] = cached(
            plan.cache / _key("wordpairs2", name, len(vocabulary)),
            lambda name=name: extract(name),
            lambda v, p: v.save(p),
            WordPairs.load,
            f"word pairs ({label})",
        )
    shift = None
    if plan.finetune:
        labels = list(pairs)
        shift = instruction_verb_shift(pairs[labels[0]], pairs[labels[1]], group=8, general=general)
    section = wordpairs_section(pairs, shift=shift)
    if plan.quick:
        section.reading += (
            f" The quick report reads only the first {QUICK_PAIR_LAYERS} layers of each model (every dimension of "
            "every head there) to bound its CPU time; the full report reads all layers."
        )
    return [section]


VECTOR_TASKS = ("antonym", "country_capital", "present_past")


def _vectors(plan: Plan, name: str, splits) -> tuple[list, pd.DataFrame]:
    """Instruction vectors of model ``name`` for each ``(train, held_out)`` split, and their held-out
    zero-shot scores (cached)."""
    from ..vectors.instruction import InstructionVector, instruction_vector, vector_scores

    model = plan.load(name)
    vectors = [
        cached(
            plan.cache / _key("vector", name, train.name),
            lambda train=train: instruction_vector(
                model,
                train,
                method="atp",
                n_means=plan.size(40, 12),
                n_prompts=plan.size(25, 6),
                candidate_layers=plan.size(None, range(2, model.cfg.n_layers, 3)),
            ),
            lambda v, p: v.save(p),
            InstructionVector.load,
            f"instruction vector ({name}, {train.name})",
        )
        for train, _ in splits
    ]
    scores = cached(
        plan.cache / _key("vector-scores", name, *[train.name for train, _ in splits]) / "scores.csv",
        lambda: vector_scores(model, vectors, [val for _, val in splits], n_random=plan.size(3, 1)),
        _to_csv,
        _csv,
        f"vector scores ({name})",
    )
    return vectors, scores


def vectors_stage(plan: Plan) -> list:
    """Instruction vectors of built-in word tasks on the default model: head effects, top heads, and
    zero-shot accuracy without a vector, with it, and with random-head vectors on held-out pairs; with
    fine-tuning, the same for Gemma base and its tune, compared task by task."""
    from ..vectors.compare import compare_vectors
    from ..vectors.tasks import icl_task
    from .sections_vectors import vector_change_section, vector_section

    names = VECTOR_TASKS[: plan.size(3, 2)]
    splits = [icl_task(name).split(seed=0, n_val=plan.size(20, 12)) for name in names]
    sections = vector_section(*_vectors(plan, plan.model, splits))
    if plan.finetune:
        pair_splits = splits[: plan.size(len(splits), 1)]  # quick: one task for the Gemma pair
        before, after = _vectors(plan, BASE, pair_splits), _vectors(plan, plan.tuned, pair_splits)
        frame = compare_vectors(before[0], after[0], before[1], after[1])
        sections.append(vector_change_section(frame, f"{BASE} (base)", TUNED))
    return sections


def forgetting_stage(plan: Plan) -> list:
    """Sequential LoRA fine-tuning of the default model on two word tasks, plain vs IV-guided."""
    import json

    from ..vectors.continual import forgetting_demo
    from .sections_vectors import forgetting_section, forgetting_study_section

    path = plan.cache / _key("forgetting", plan.model) / "results.json"
    results = cached(
        path,
        lambda: forgetting_demo(
            plan.model,
            VECTOR_TASKS[:2],
            epochs=1,
            n_val=plan.size(12, 6),
            general_n=plan.size(16, 4),
            n_train=plan.size(None, 16),
            n_means=plan.size(20, 10),
            n_prompts=plan.size(10, 6),
            layers=plan.size((8, 10, 12), (10,)),
        ),
        lambda v, p: p.write_text(json.dumps(v, indent=1, default=float)),
        lambda p: json.loads(p.read_text()),
        "forgetting demonstration",
    )
    return forgetting_section(results) + forgetting_study_section()  # the study's JSON, if run


STAGES: dict[str, Callable[[Plan], list]] = {
    "neurons": neurons_stage,
    "tuned model": tuning_stage,
    "before/after": before_after_stage,
    "where tuning acted": patching_stage,
    "attribution": attribution_stage,
    "concepts": concepts_stage,
    "word pairs": wordpairs_stage,
    "instruction vectors": vectors_stage,
    "forgetting": forgetting_stage,
}


def run_stages(plan: Plan, stages: dict[str, Callable[[Plan], list]] | None = None) -> list:
    """Run the stages in order, printing each one's time; returns all sections."""
    stages = dict(stages or STAGES)
    if not plan.finetune:
        stages.pop("before/after", None)
        stages.pop("tuned model", None)
        stages.pop("where tuning acted", None)
    sections = []
    for i, (name, stage) in enumerate(stages.items(), 1):
        print(f"[{i}/{len(stages)}] {name}")
        start = time.perf_counter()
        sections += stage(plan)
        plan.timings[name] = time.perf_counter() - start
        print(f"  {name}: {plan.timings[name]:.0f} s")
    return sections
