import json

import pytest
import torch

import instr_interp as ii
from instr_interp.sparcom.compare import SetComparison, compare
from instr_interp.vectors.training import FinetuneResult, finetune
from tests.unit.test_neurons import hand_sets


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny")
    ii.models.tiny_hf_model(seed=0).save_pretrained(path)
    ii.models.tiny_tokenizer().save_pretrained(path)
    return path


@pytest.mark.parametrize("method", ["lora", "full"])
def test_finetune_lowers_response_loss_and_reloads(tiny_dir, small_data, tmp_path, method):
    before = ii.response_nll(ii.load_model(str(tiny_dir), device="cpu"), small_data, progress=False)
    result = finetune(
        str(tiny_dir),
        small_data,
        tmp_path / method,
        method=method,
        epochs=3,
        batch_size=8,
        lr=5e-3 if method == "lora" else 1e-3,
        progress=False,
    )
    assert result.steps == 9 and len(result.losses) == 9
    tuned = ii.load_model(str(result.path), device="cpu")
    after = ii.response_nll(tuned, small_data, progress=False)
    assert after["nll"].mean() < before["nll"].mean() - 0.05
    back = FinetuneResult.load(result.path)
    assert back.losses == result.losses and back.method == method
    assert json.loads((result.path / "instr_interp_finetune.json").read_text())["settings"]["seed"] == 0


def test_finetune_is_seeded(tiny_dir, small_data, tmp_path):
    a = finetune(str(tiny_dir), small_data[:8], tmp_path / "a", epochs=1, batch_size=4, progress=False)
    b = finetune(str(tiny_dir), small_data[:8], tmp_path / "b", epochs=1, batch_size=4, progress=False)
    assert a.losses == b.losses


def test_finetune_rejects_bad_input(tiny_dir, tmp_path):
    with pytest.raises(ValueError, match="reference responses"):
        finetune(str(tiny_dir), [{"id": "x", "category": "math", "instruction": "Add."}], tmp_path / "x")
    with pytest.raises(TypeError, match="model name or directory"):
        finetune(
            ii.tiny_model(),
            [{"id": "x", "category": "math", "instruction": "Add.", "response": "1"}],
            tmp_path,
        )


def test_compare_hand_computed(tmp_path):
    before = hand_sets()
    after = hand_sets()
    after.category_sets["A"] = torch.tensor([[0, 0], [1, 0]])
    diff = compare(before, after)
    row = diff.summary.set_index("category").loc["A"]
    # before A = {(0,0),(0,1),(1,1)}, after A = {(0,0),(1,0)}: kept 1, union 4
    assert (row["before"], row["after"], row["kept"]) == (3, 2, 1) and row["jaccard"] == pytest.approx(0.25)
    assert diff.summary.set_index("category").loc["B", "jaccard"] == 1.0
    layers = diff.layers.set_index(["category", "layer"])
    assert layers.loc[("A", 0), "delta"] == -1 and layers.loc[("A", 1), "delta"] == 0
    diff.save(tmp_path / "cmp")
    back = SetComparison.load(tmp_path / "cmp")
    assert back.summary.equals(diff.summary) and back.layers.equals(diff.layers)
    assert len(diff.plot_layers().data) == 2


def test_response_loss_equals_transformers_loss(small_data):
    from instr_interp.vectors.training import _batches, response_loss

    hf = ii.models.tiny_hf_model(seed=2)
    enc = ii.encode(small_data[:6], ii.models.tiny_tokenizer(), with_response=True)
    tokens, mask, labels = next(_batches(enc, list(range(6)), 6))
    torch.testing.assert_close(
        response_loss(hf, tokens, mask, labels),
        hf(input_ids=tokens, attention_mask=mask, labels=labels).loss,
        rtol=1e-5,
        atol=1e-6,
    )


def test_finetune_stops_on_a_non_finite_loss_and_saves_nothing(small_data, tmp_path):
    hf = ii.models.tiny_hf_model(seed=0)
    with torch.no_grad():
        hf.model.layers[1].mlp.down_proj.weight[0, 0] = float("nan")
    hf.save_pretrained(tmp_path / "broken")
    ii.models.tiny_tokenizer().save_pretrained(tmp_path / "broken")
    with pytest.raises(
        FloatingPointError, match=r"step 0 of \d+ gave a non-finite loss \(nan\).*nothing is saved"
    ):
        finetune(
            str(tmp_path / "broken"), small_data[:8], tmp_path / "out", epochs=1, batch_size=4, progress=False
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken"]


def test_finetune_replaces_an_existing_model_whole(tiny_dir, small_data, tmp_path):
    out = tmp_path / "model"
    first = finetune(str(tiny_dir), small_data[:8], out, epochs=1, batch_size=4, progress=False)
    second = finetune(str(tiny_dir), small_data[:8], out, epochs=2, batch_size=4, progress=False)
    assert second.steps == 2 * first.steps
    assert json.loads((out / "instr_interp_finetune.json").read_text())["steps"] == second.steps
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging or old folder left
