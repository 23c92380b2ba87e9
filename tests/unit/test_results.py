"""The result base: compact reprs, one to_frame(), save -> ii.load round trips, atomic saves, load errors."""

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

import instr_interp as ii
from instr_interp import results
from instr_interp.shift.attribution import Attribution, AttributionSet, attribute, attribute_many
from instr_interp.shift.concepts import Concepts, ffn_concepts
from instr_interp.shift.wordpairs import WordPairs, head_word_pairs
from instr_interp.sparcom.compare import SetComparison, compare
from instr_interp.sparcom.experts import ExpertSets, ExpertStats, find_ises
from instr_interp.sparcom.firing import FiringStats
from instr_interp.sparcom.neurons import NeuronSets
from instr_interp.sparcom.selection import find_isns
from instr_interp.vectors.forgetting import ForgettingReport
from instr_interp.vectors.instruction import InstructionVector
from instr_interp.vectors.tasks import Task, TaskScore, evaluate_task
from instr_interp.vectors.training import FinetuneResult

ALL = (
    FiringStats,
    NeuronSets,
    ExpertStats,
    ExpertSets,
    SetComparison,
    Attribution,
    AttributionSet,
    Concepts,
    WordPairs,
    TaskScore,
    InstructionVector,
    FinetuneResult,
    ForgettingReport,
)
WORDS = [
    "cat",
    "dog",
    "sun",
    "moon",
    "tree",
    "leaf",
    "rock",
    "sand",
    "fish",
    "bird",
    "rain",
    "snow",
    "wind",
    "fire",
    "milk",
    "bread",
    "apple",
    "grape",
    "stone",
    "cloud",
    "river",
    "lake",
    "hill",
    "road",
]

# ------------------------------------------------------------------------------------------------
# SmolLM2-135M-sized results, built synthetically (30 layers x 1536 neurons, 9 heads, d_model 576,
# 360 records in 6 categories)

L, D_MLP, N_HEADS, D_HEAD, D_MODEL, N_REC = 30, 1536, 9, 64, 576, 360
CATS = ["classification", "code", "general_qa", "generation", "math", "summarization"]
IDS = [f"{CATS[i % 6]}-{i:03d}" for i in range(N_REC)]
REC_CATS = [CATS[i % 6] for i in range(N_REC)]
SETTINGS = {"model": "smollm2-135m-instruct", "regions": ["instruction", "input"], "top": 0.01, "k": 460}


def _sets(cls, width: int, k: int, gen) -> NeuronSets:
    def pick():
        flat = torch.randperm(L * width, generator=gen)[:k].sort().values
        return torch.stack([flat // width, flat % width], 1)

    return cls(
        instruction_sets={i: pick() for i in IDS},
        category_sets={c: pick() for c in CATS},
        record_categories=dict(zip(IDS, REC_CATS)),
        n_layers=L,
        d_mlp=width,
        ties={i: 3 for i in IDS},
        settings=SETTINGS,
    )


def _attribution(i: int, n_prompt: int, n_response: int, gen) -> Attribution:
    n = n_prompt + n_response
    return Attribution(
        input_ids=torch.randint(0, 49152, (n,), generator=gen),
        tokens=[f" w{j}" for j in range(n)],
        prompt_positions=torch.arange(n_prompt),
        response_positions=torch.arange(n_prompt, n),
        matrix=torch.randn(n_prompt, n_response, generator=gen),
        instruction_mask=torch.arange(n_prompt) < n_prompt // 2,
        probs=torch.rand(n_response, generator=gen),
        id=IDS[i],
        category=REC_CATS[i],
        source="handwritten",
        settings={"model": "smollm2-135m-instruct", "target": "prob"},
    )


def smollm2_sized() -> dict[type, ii.Result]:
    gen = torch.Generator().manual_seed(0)
    counts = torch.randint(0, 40, (N_REC, L, D_MLP), generator=gen, dtype=torch.int32)
    tokens = torch.randint(40, 80, (N_REC,), generator=gen)
    firing = FiringStats(
        counts=counts,
        tokens=tokens,
        category_counts=counts.view(60, 6, L, D_MLP).sum(0).long(),
        category_tokens=tokens.view(60, 6).sum(0),
        ids=IDS,
        record_categories=REC_CATS,
        categories=CATS,
        layers=list(range(L)),
        settings=SETTINGS,
    )
    experts = torch.randint(0, 40, (N_REC, L, 8), generator=gen)
    expert_stats = ExpertStats(
        tokens=tokens,
        expert_counts=experts,
        expert_weights=experts.double() / 3,
        # sparse expert-neuron rows: one per (record, layer, expert), as ExpertFiring keeps them
        neuron_index=torch.cartesian_prod(torch.arange(N_REC), torch.arange(L), torch.arange(8)).int(),
        neuron_counts=torch.randint(0, 9, (N_REC * L * 8, 192), generator=gen, dtype=torch.int16),
        ids=IDS,
        record_categories=REC_CATS,
        categories=CATS,
        settings=SETTINGS,
    )
    isn, isn_after = _sets(NeuronSets, D_MLP, 460, gen), _sets(NeuronSets, D_MLP, 460, gen)
    n_pairs = 200_000
    pairs = torch.stack(
        [
            torch.randint(0, L, (n_pairs,), generator=gen),
            torch.randint(0, N_HEADS, (n_pairs,), generator=gen),
            torch.randint(0, D_HEAD, (n_pairs,), generator=gen),
            torch.randint(0, 3000, (n_pairs,), generator=gen),
            torch.randint(0, 3000, (n_pairs,), generator=gen),
        ],
        1,
    )
    top_dims = torch.stack(
        torch.meshgrid(torch.arange(L), torch.arange(N_HEADS), torch.arange(32), indexing="ij"), -1
    )
    task_frame = pd.DataFrame(
        {
            "x": IDS,
            "y": REC_CATS,
            "prompt": [f"Q: {x}\nA:" for x in IDS],
            "target": REC_CATS,
            "predicted": REC_CATS,
            "correct": [i % 3 > 0 for i in range(N_REC)],
            "p_target": torch.rand(N_REC, generator=gen).double().numpy(),
        }
    )
    return {
        FiringStats: firing,
        NeuronSets: isn,
        ExpertStats: expert_stats,
        ExpertSets: _sets(ExpertSets, 8, 24, gen),
        SetComparison: compare(isn, isn_after),
        Attribution: _attribution(0, 300, 64, gen),
        AttributionSet: AttributionSet(
            items=[_attribution(i, 60, 16, gen) for i in range(N_REC)],
            name="smollm2-135m-instruct",
            skipped=["x1", "x2"],
        ),
        Concepts: Concepts(
            layer=10,
            components=torch.randn(300, D_MODEL, generator=gen),
            singular_values=torch.rand(300, generator=gen),
            explained_variance_ratio=torch.full((300,), 0.002),
            top_word_ids=torch.randint(0, 30_000, (300, 50), generator=gen),
            top_scores=torch.randn(300, 50, generator=gen),
            words=[f"word{i}" for i in range(30_000)],
            labels=[{"task": "code" if i % 2 else "none", "level": "lexical"} for i in range(300)],
            settings=SETTINGS,
        ),
        WordPairs: WordPairs(
            words=[f"word{i}" for i in range(3000)],
            dim_pairs=pairs,
            scores=torch.rand(n_pairs, generator=gen),
            top_dims=top_dims.reshape(-1, 3),
            dim_energy=torch.rand(L * N_HEADS * 32, generator=gen),
            settings=SETTINGS,
        ),
        TaskScore: TaskScore(
            task="antonym",
            form="zero_shot",
            shots=0,
            accuracy=0.5,
            exact_match=None,
            frame=task_frame,
            settings=SETTINGS,
        ),
        InstructionVector: InstructionVector(
            task="antonym",
            head_effects=torch.randn(L, N_HEADS, generator=gen),
            top_heads=torch.tensor([[9, 1], [11, 4], [12, 0], [14, 8]] * 3),
            head_means=torch.randn(L, N_HEADS, D_HEAD, generator=gen),
            vector=torch.randn(D_MODEL, generator=gen),
            layer=10,
            scale=2.0,
            sweep=pd.DataFrame(
                {"layer": list(range(L)), "scale": [1.0] * L, "accuracy": [0.1] * L, "p_target": [0.2] * L}
            ),
            settings=SETTINGS,
        ),
        FinetuneResult: FinetuneResult(
            path=Path("/tmp/tuned"),
            base="gemma-3-270m",
            method="lora",
            steps=N_REC,
            losses=torch.rand(N_REC, generator=gen).tolist(),
            seconds=512.0,
            settings={"epochs": 1, "records": N_REC},
            components={"kl": torch.rand(N_REC, generator=gen).tolist()},
        ),
        ForgettingReport: ForgettingReport(
            frame=pd.DataFrame(
                [
                    {
                        "set": s,
                        "kind": "task",
                        "metric": m,
                        "n": 20,
                        "before": 0.5,
                        "after": 0.25,
                        "change": -0.25,
                    }
                    for s in ("antonym", "present_past", "general")
                    for m in ("format_accuracy", "instruction_nll")
                ]
            ),
            settings={"before": "smollm2-135m-instruct", "after": "tuned"},
        ),
    }


@pytest.fixture(scope="module")
def big():
    return smollm2_sized()


def test_every_result_class_inherits_the_base():
    assert set(results.result_kinds()) >= {cls.__name__ for cls in ALL}
    for cls in ALL:
        assert issubclass(cls, ii.Result)
        assert "to_frame" in vars(cls) or cls is ExpertSets, cls  # one to_frame, no .frame accessor
        assert not callable(getattr(cls, "frame", None)) and not isinstance(
            getattr(cls, "frame", None), property
        )


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_repr_is_compact_on_smollm2_sizes(big, cls):
    obj = big[cls]
    text = repr(obj)
    assert len(text) < 2000, (cls, len(text))
    assert text.splitlines()[0].startswith(cls.__name__) and "tensor(" not in text
    assert 2 <= len(text.splitlines()) <= 10
    assert isinstance(obj.to_frame(), pd.DataFrame)


def test_repr_shows_the_key_facts(big):
    text = repr(big[NeuronSets])
    assert "model smollm2-135m-instruct" in text and "30 layers x 1536 neurons = 46,080" in text
    assert "360 instruction sets of 460 neurons" in text
    assert "accuracy: 0.500" in repr(big[TaskScore])
    assert "L9H1" in repr(big[InstructionVector])


def test_repr_html_is_a_small_table(big):
    page = big[NeuronSets]._repr_html_()
    assert len(page) < 5000 and page.count("<table") == 2  # the facts, then the head of to_frame()
    assert "NeuronSets" in page and "46,080" in page and "classification" in page
    for cls in ALL:
        assert len(big[cls]._repr_html_()) < 10_000, cls


def test_to_frame_values(big):
    isn = big[NeuronSets]
    f = isn.to_frame()
    assert len(f) == 360 * 460 + 6 * 460
    rows = f[(f["kind"] == "instruction") & (f["set"] == IDS[7])][["layer", "neuron"]].to_numpy()
    assert (rows == isn.instruction_sets[IDS[7]].numpy()).all()
    assert list(big[ExpertSets].to_frame().columns) == ["kind", "set", "layer", "expert"]
    stats = big[ExpertStats]
    ef = stats.to_frame().set_index(["category", "layer", "expert"])
    rows_math = [r for r, c in enumerate(REC_CATS) if c == "math"]
    routed = int(stats.expert_counts[rows_math, 3, 5].sum())
    assert ef.loc[("math", 3, 5), "tokens"] == routed
    assert ef.loc[("math", 3, 5), "frequency"] == pytest.approx(routed / int(stats.tokens[rows_math].sum()))
    ft = big[FinetuneResult].to_frame()
    assert (
        ft["loss"].tolist() == big[FinetuneResult].losses
        and ft["kl"].tolist() == big[FinetuneResult].components["kl"]
    )
    att = big[Attribution]
    af = att.to_frame()
    assert af["density"].tolist() == att.density.tolist() and af["instruction"].sum() == 150
    firing = big[FiringStats].to_frame().set_index(["category", "layer"])
    expected = big[FiringStats].category_counts[1, 4].double() / big[FiringStats].category_tokens[1].double()
    assert firing.loc[("code", 4), "firing_rate"] == pytest.approx(float(expected.mean()))


# ------------------------------------------------------------------------------------------------
# Round trips through ii.load, on real tiny-model results where they are cheap


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b)
        return True
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if dataclasses.is_dataclass(a):
        return type(a) is type(b) and all(
            _equal(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
        )
    return a == b


@pytest.fixture(scope="module")
def real(tiny, small_data):
    data = small_data.sample(per_category=1, seed=0)
    isn, stats = find_isns(tiny, data, top=0.05, keep_frequencies=True, progress=False)
    isn_other = find_isns(ii.tiny_model(seed=1), data, top=0.05, progress=False)
    ise, expert_stats = find_ises(ii.tiny_model(moe=True), data, top=0.25, keep_stats=True, progress=False)
    task = Task(
        name="antonym",
        instruction="Give the opposite.",
        pairs=[("hot", "cold"), ("up", "down"), ("big", "small"), ("old", "new")],
    )
    out = {
        FiringStats: stats,
        NeuronSets: isn,
        ExpertStats: expert_stats,
        ExpertSets: ise,
        SetComparison: compare(isn, isn_other),
        Attribution: attribute(tiny, data[0], "Done."),
        AttributionSet: attribute_many(
            tiny, [{**r.to_dict(), "response": "A."} for r in data][:2], use_reference=True, progress=False
        ),
        Concepts: ffn_concepts(tiny, 0, n_components=5, top_words=4, vocabulary=WORDS),
        WordPairs: head_word_pairs(
            tiny, 0, 1, top_dims=2, top_words=4, vocabulary=WORDS, reference=WORDS, similarity="own"
        ),
        TaskScore: evaluate_task(tiny, task, shots=1, progress=False),
    }
    return {**smollm2_sized(), **out}


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_save_then_ii_load_round_trip(real, cls, tmp_path):
    obj = real[cls]
    where = obj.save(tmp_path / "result")
    assert where == tmp_path / "result" and isinstance(where, Path)
    assert json.loads((where / "manifest.json").read_text())["kind"] == cls.__name__
    back = ii.load(where)
    assert type(back) is cls
    assert _equal(obj, back)
    pd.testing.assert_frame_equal(back.to_frame(), obj.to_frame())
    assert _equal(cls.load(where), obj)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result"]  # no temporary folder left


def test_old_kind_names_still_load(real, tmp_path):
    for cls, old in ((TaskScore, "task_score"), (InstructionVector, "instruction_vector")):
        path = real[cls].save(tmp_path / old)
        manifest = json.loads((path / "manifest.json").read_text())
        (path / "manifest.json").write_text(json.dumps({**manifest, "kind": old}))
        assert _equal(ii.load(path), real[cls]) and _equal(cls.load(path), real[cls])


def test_finetune_model_folder_loads_as_finetune_result(tmp_path):
    meta = {
        "base": "tiny",
        "method": "lora",
        "steps": 2,
        "losses": [2.5, 2.0],
        "seconds": 1.5,
        "settings": {"lr": 0.1},
        "components": {},
    }
    (tmp_path / "instr_interp_finetune.json").write_text(json.dumps(meta))
    back = ii.load(tmp_path)
    assert isinstance(back, FinetuneResult) and back.path == tmp_path and back.losses == [2.5, 2.0]


# ------------------------------------------------------------------------------------------------
# Atomic saves


def _small_sets(seed: int) -> NeuronSets:
    gen = torch.Generator().manual_seed(seed)
    return NeuronSets(
        instruction_sets={"a": torch.randint(0, 4, (3, 2), generator=gen)},
        category_sets={"code": torch.randint(0, 4, (3, 2), generator=gen)},
        record_categories={"a": "code"},
        n_layers=4,
        d_mlp=4,
    )


def test_save_replaces_an_old_result_and_keeps_extra_files_working(tmp_path):
    path = _small_sets(0).save(tmp_path / "isn")
    (path / "overlap.csv").write_text("x\n1\n")  # callers add files after save (cli._write_sets)
    assert _equal(ii.load(path), _small_sets(0))
    new = _small_sets(1)
    new.save(path)
    assert _equal(ii.load(path), new) and not (path / "overlap.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["isn"]


def test_failure_mid_save_leaves_the_previous_result(tmp_path, monkeypatch):
    old = _small_sets(0)
    path = old.save(tmp_path / "isn")

    def broken(tensors, file):
        Path(file).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(results, "_write_tensors", broken)
    with pytest.raises(OSError, match="disk full"):
        _small_sets(1).save(path)
    with pytest.raises(OSError, match="disk full"):
        _small_sets(1).save(tmp_path / "fresh")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["isn"]  # no temp folder, no half-written result
    monkeypatch.undo()
    assert _equal(ii.load(path), old)


def test_save_never_replaces_a_folder_that_is_not_a_result(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=str(tmp_path)):
        _small_sets(0).save(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    with pytest.raises(FileExistsError, match="is a file"):
        _small_sets(0).save(tmp_path / "notes.txt")
    empty = tmp_path / "empty"
    empty.mkdir()
    inode = empty.stat().st_ino
    assert _equal(ii.load(_small_sets(0).save(empty)), _small_sets(0))
    assert empty.stat().st_ino == inode  # an empty folder is filled in place, not replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "notes.txt"]


def test_save_to_a_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _small_sets(0).save("isn") == Path("isn")
    (tmp_path / "sub").mkdir()
    assert _small_sets(1).save("sub/../isn") == Path("sub/../isn")
    assert _equal(ii.load(tmp_path / "isn"), _small_sets(1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["isn", "sub"]


# ------------------------------------------------------------------------------------------------
# Load errors name the folder and say what to do


def test_load_errors_name_the_folder(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=f"{missing}.*does not exist"):
        ii.load(missing)
    with pytest.raises(FileNotFoundError, match=f"{missing}.*does not exist"):
        NeuronSets.load(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=f"{empty}.*manifest.json is missing"):
        ii.load(empty)
    path = _small_sets(0).save(tmp_path / "isn")
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match=f"{path}.*not valid JSON.*Save the result again"):
        ii.load(path)
    (path / "manifest.json").write_text(json.dumps({"created": "today"}))
    with pytest.raises(ValueError, match=f"{path}.*names no result kind"):
        NeuronSets.load(path)
    (path / "manifest.json").write_text(json.dumps({"kind": "Mystery"}))
    with pytest.raises(ValueError, match="'Mystery' result, which this version"):
        ii.load(path)
    path = _small_sets(0).save(tmp_path / "isn2")
    (path / "tensors.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=f"{path}.*tensors.safetensors is missing"):
        ii.load(path)
    (path / "tensors.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=f"{path}.*damaged"):
        ii.load(path)
    path = _small_sets(0).save(tmp_path / "isn3")
    with pytest.raises(ValueError, match="holds a 'NeuronSets' result, not 'TaskScore'"):
        TaskScore.load(path)
