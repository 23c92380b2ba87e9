"""IV-guided fine-tuning and the forgetting report on the bundled SmolLM2-135M-Instruct."""

from types import SimpleNamespace

import pytest
import torch

import instr_interp as ii
from instr_interp.vectors.tasks import icl_task
from instr_interp.vectors.training import finetune, hf_source, iv_addition, last_prompt_positions

pytestmark = pytest.mark.slow
NAME = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def smol():
    return ii.load_model(NAME, device="cpu")


def test_hf_reference_hook_equals_add_vector_on_the_bridge(smol):
    """The training reference (HF layers[ℓ] output + θ) is the bridge's blocks.ℓ.hook_resid_post + θ."""
    from transformers import AutoModelForCausalLM

    from instr_interp.vectors.instruction import add_vector

    hf = AutoModelForCausalLM.from_pretrained(hf_source(NAME), dtype=torch.float32).eval()
    records = icl_task("antonym").records()[:4]
    b = ii.encode(records, smol.tokenizer, with_response=True).batch(list(range(4)), "right")
    last = last_prompt_positions(b.regions)
    vec = 4.0 * torch.randn(576, generator=torch.Generator().manual_seed(0))
    rows = torch.arange(4)
    with torch.no_grad(), iv_addition(hf, {10: vec}, last):
        hf_logits = hf(input_ids=b.tokens, attention_mask=b.attention_mask.long()).logits[rows, last]
    with torch.no_grad(), add_vector(smol, vec, layer=10, last=last):
        bridge_logits = smol(b.tokens)[rows, last]
    with torch.no_grad():
        plain = smol(b.tokens)[rows, last]
    torch.testing.assert_close(hf_logits, bridge_logits, atol=2e-3, rtol=1e-3)
    assert (hf_logits - plain).abs().max() > 0.1  # the vector does change the prediction


@pytest.mark.filterwarnings("ignore::UserWarning")  # the teacher check: a random vector cannot do the task
def test_guided_finetune_on_smollm2(tmp_path):
    """Step 0 of a progressive run trains the steered model itself (LoRA B = 0): KL = 0 exactly; without
    the progressive intervention the first KL is the steering's own effect, > 0, and the head term
    (against the frozen model without the vector) is 0 exactly."""
    data = icl_task("antonym").records()[:8]
    iv = SimpleNamespace(
        task="antonym",
        vector=4.0 * torch.randn(576, generator=torch.Generator().manual_seed(0)),
        layer=10,
        top_heads=torch.tensor([[14, 1], [20, 5]]),
    )
    kw = dict(
        epochs=1, batch_size=4, lr=1e-3, iv_guidance=iv, kl_weight=5.0, head_consistency=1.0, progress=False
    )
    prog = finetune(NAME, data, tmp_path / "p", progressive=True, **kw)
    assert prog.components["kl"][0] == pytest.approx(0.0, abs=1e-5)
    assert prog.components["seq_kl"][0] == pytest.approx(0.0, abs=1e-4)
    assert prog.components["head"][0] > 0  # heads after layer 10 see the vector, the reference does not
    flat = finetune(NAME, data, tmp_path / "f", **kw)
    assert flat.components["kl"][0] > 1e-3
    assert flat.components["head"][0] == pytest.approx(0.0, abs=1e-8)
    assert "alpha" not in flat.components
    tuned = ii.load_model(str(prog.path), device="cpu")
    assert tuned.cfg.n_layers == 30


def test_forgetting_report_of_a_model_against_itself(smol):
    from instr_interp.vectors.forgetting import forgetting_report

    task = icl_task("present_past")
    report = forgetting_report(smol, smol, [task], general=ii.hexainst(), n=8, general_n=6, progress=False)
    assert (report.to_frame()["change"] == 0).all()
    f = report.to_frame().set_index(["set", "metric"])
    assert f.loc[("present_past", "accuracy"), "before"] >= 0.5  # 3-shot past tense works on SmolLM2
    # the instruction makes the answer likelier than the bare query does, on average
    assert f.loc[("general", "instruction_nll"), "before"] < f.loc[("general", "knowledge_nll"), "before"]
