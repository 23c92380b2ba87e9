"""Tuned aliases: a shipped LoRA adapter merged into its base once, checked by hash, rebuilt when it changes."""

import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file

import instr_interp as ii
from instr_interp import models
from instr_interp.models import ADAPTER_STAMP, Tuned, alias_dir, file_sha256


@pytest.fixture
def tiny_alias(tmp_path, monkeypatch):
    """A cache holding a tiny base model, and an alias whose adapter lives in tmp_path/adapters."""
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    base = models.tiny_hf_model(seed=0)
    base.save_pretrained(tmp_path / "cache" / "tiny-base")
    models.tiny_tokenizer().save_pretrained(tmp_path / "cache" / "tiny-base")

    def write_adapter(seed: int) -> Tuned:
        torch.manual_seed(seed)
        peft = get_peft_model(
            models.tiny_hf_model(seed=0), LoraConfig(r=2, lora_alpha=4, target_modules="all-linear")
        )
        for name, param in peft.named_parameters():
            if "lora_B" in name:
                with (
                    torch.no_grad()
                ):  # peft starts B at zero: make the update non-trivial, and seed-dependent
                    param.copy_(0.1 * torch.randn(param.shape, generator=torch.Generator().manual_seed(seed)))
        peft.save_pretrained(tmp_path / "adapters" / "tiny-tuned")
        sha = file_sha256(tmp_path / "adapters" / "tiny-tuned" / "adapter_model.safetensors")
        tuned = Tuned(
            alias="tiny-tuned", base="tiny-base", adapter="tiny-tuned", sha256=sha, root=tmp_path / "adapters"
        )
        monkeypatch.setitem(models.TUNED, "tiny-tuned", tuned)
        return tuned

    return write_adapter, tmp_path


def test_the_merge_is_base_plus_the_low_rank_update_and_loads(tiny_alias):
    write_adapter, tmp = tiny_alias
    tuned = write_adapter(seed=1)
    target = alias_dir("tiny-tuned")
    assert (target / ADAPTER_STAMP).read_text() == tuned.sha256
    base = load_file(str(tmp / "cache" / "tiny-base" / "model.safetensors"))
    merged = load_file(str(target / "model.safetensors"))
    adapter = load_file(str(tuned.folder / "adapter_model.safetensors"))
    modules = {k.removesuffix(".lora_A.weight") for k in adapter if k.endswith(".lora_A.weight")}
    assert modules
    for module in modules:
        key = module.removeprefix("base_model.model.") + ".weight"
        delta = 2.0 * adapter[f"{module}.lora_B.weight"] @ adapter[f"{module}.lora_A.weight"]  # alpha / r = 2
        assert torch.allclose(merged[key], base[key] + delta, atol=1e-6)
        assert delta.abs().max() > 1e-3
    model = ii.load_model("tiny-tuned", device="cpu")
    assert model.instr_interp_name == "tiny-tuned"


def test_a_changed_adapter_is_merged_again_and_a_wrong_hash_refused(tiny_alias, monkeypatch):
    write_adapter, tmp = tiny_alias
    write_adapter(seed=1)
    first = load_file(str(alias_dir("tiny-tuned") / "model.safetensors"))
    tuned = write_adapter(seed=2)  # a new adapter with its new hash: the cached merge is stale
    second = load_file(str(alias_dir("tiny-tuned") / "model.safetensors"))
    assert any(not torch.equal(first[k], second[k]) for k in first)
    monkeypatch.setitem(models.TUNED, "tiny-tuned", Tuned(**{**tuned.__dict__, "sha256": "0" * 64}))
    with pytest.raises(ValueError, match="refusing to merge"):
        alias_dir("tiny-tuned")
    with pytest.raises(ValueError, match="not an alias"):
        alias_dir("no-such-alias")
