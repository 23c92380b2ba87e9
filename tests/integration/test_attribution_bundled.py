"""Attribution on the bundled SmolLM2: equal to plain per-token autograd on an unseen record."""

import pytest
import torch
from transformers import AutoModelForCausalLM

import instr_interp as ii
from instr_interp.engine.generation import generate_responses
from instr_interp.shift.attribution import attribute

pytestmark = pytest.mark.slow

# Not in HexaInst: an unseen record.
UNSEEN = ii.InstructionRecord(
    id="unseen-1",
    category="generation",
    instruction="Write one sentence describing a lighthouse at night.",
    source="test",
)


@pytest.fixture(scope="module")
def smol():
    return ii.load_model("smollm2-135m-instruct", device="cpu")


@pytest.fixture(scope="module")
def smol_hf():
    """A separate plain transformers copy (the bridge wraps its own HF modules in place)."""
    return AutoModelForCausalLM.from_pretrained(
        ii.cache_dir() / "smollm2-135m-instruct", dtype=torch.float32, local_files_only=True
    ).eval()


def test_attribution_equals_plain_per_token_autograd(smol, smol_hf):
    rec = generate_responses(smol, [UNSEEN], max_new_tokens=8, progress=False)[0]
    assert rec.meta["generated_tokens"] == 8 and rec.response
    attr = attribute(smol, rec)
    ids = attr.input_ids.tolist()
    assert 6 <= len(attr.response_positions) <= 10  # the 8 generated tokens, re-tokenised from text
    assert (
        attr.prompt_positions[0].item() == 1 and ids[0] == smol.tokenizer.bos_token_id
    )  # <|im_start|> dropped
    tokens = torch.tensor([ids])
    cols = []
    for m in attr.response_positions.tolist():  # one forward per response token, plain HF
        emb = smol_hf.get_input_embeddings()(tokens).detach().requires_grad_(True)
        p = torch.softmax(smol_hf(inputs_embeds=emb).logits[0, m - 1].double(), -1)[ids[m]]
        (grad,) = torch.autograd.grad(p, emb)
        cols.append((grad[0] * emb[0]).sum(-1)[attr.prompt_positions])
    ref = torch.stack(cols, 1).detach()
    assert ((attr.matrix.double() - ref).norm() / ref.norm()).item() <= 1e-3
    assert (
        smol.tokenizer.decode(attr.input_ids[attr.prompt_positions[attr.instruction_mask]])
        == UNSEEN.instruction
    )
    assert 0 <= attr.instruction_score and attr.density.max().item() == pytest.approx(1.0)


def test_generation_batch_invariant(smol):
    data = ii.hexainst().sample(per_category=1, seed=3)
    one = generate_responses(smol, data, max_new_tokens=6, batch_size=1, progress=False)
    many = generate_responses(smol, data, max_new_tokens=6, batch_size=6, progress=False)
    assert [r.response for r in one] == [r.response for r in many]
