"""The package reaches TransformerLens / transformers internals only through ``instr_interp.compat``
(and builds hook names only in ``instr_interp.hooks``): a scan of every module's syntax tree."""

import ast
import re
from pathlib import Path

import pytest
import torch

import instr_interp as ii
from instr_interp import compat
from instr_interp.hooks import ATTENTION_INNER_HOOKS, NORM_INNER_HOOKS
from instr_interp.models import tiny_hf_model, tiny_tokenizer

PACKAGE = Path(ii.__file__).resolve().parent
SEAM = {"compat.py", "hooks.py", "models.py"}  # may import transformer_lens
HOOK_NAMES = {"compat.py", "hooks.py"}  # may spell hook names

# Attributes that belong to TransformerLens's bridge, torch's hook registries or transformers' internals.
INTERNAL_ATTRIBUTES = {
    "original_component",
    "_original_component",
    "original_model",
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_attn_implementation",
    "_attn_implementation_internal",
    "_modules",
    "boot_transformers",
    "boot_native",
    "hook_dict",
    "init_kwargs",
    "hf_quantizer",
    "quantization_config",
    "sliding_window",
}
# A whole string literal that is a hook name: "hook_embed", "blocks.3.mlp.hook_post", "unembed.hook_in",
# or the static parts of one built with an f-string ("blocks.", ".attn.hook_z").
HOOK_NAME = re.compile(r"^[\w.{}]*\.hook_\w+$|^blocks\.(?:\d+\.)?[\w.]*hook_\w*$")
# Hook points named without a dot (top-level or a component's attribute): listed, so that function
# names such as "hook_site" in __all__ are not mistaken for them.
BARE_HOOKS = {"hook_embed", "hook_pos_embed", "hook_tokens", *ATTENTION_INNER_HOOKS, *NORM_INNER_HOOKS}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def violations(path: Path) -> list[str]:
    """Every place in one module that reaches past the seam, as ``file:line: what``."""
    rel = path.relative_to(PACKAGE).as_posix()
    tree = ast.parse(path.read_text(), filename=str(path))
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if rel not in SEAM:
            if isinstance(node, ast.Import):
                found += [
                    f"{rel}:{line}: imports {a.name}"
                    for a in node.names
                    if a.name.split(".")[0] == "transformer_lens"
                ]
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "transformer_lens":
                found.append(f"{rel}:{line}: imports from {node.module}")
        if rel == "compat.py":
            continue
        if (
            isinstance(node, ast.Attribute)
            and node.attr in INTERNAL_ATTRIBUTES
            and not (rel == "hooks.py" and node.attr == "hook_dict")
        ):
            found.append(f"{rel}:{line}: accesses .{node.attr}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "object"
            and node.func.attr in ("__setattr__", "__delattr__")
        ):
            found.append(f"{rel}:{line}: bypasses __setattr__ with object.{node.func.attr}")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            if node.value in INTERNAL_ATTRIBUTES or "_original_component" in node.value:
                found.append(f"{rel}:{line}: names the internal {node.value!r}")
            elif rel not in HOOK_NAMES and (HOOK_NAME.match(node.value) or node.value in BARE_HOOKS):
                found.append(f"{rel}:{line}: spells the hook name {node.value!r} (build it in hooks.py)")
    return found


def test_the_scanner_catches_each_kind_of_violation():
    bad = PACKAGE / "_seam_probe_tmp.py"
    bad.write_text(
        "from transformer_lens.model_bridge import TransformerBridge\n"
        "import transformer_lens\n"
        "def f(model, m, layer):\n"
        "    a = model.original_model\n"
        "    b = m._forward_hooks\n"
        "    c = getattr(m, 'original_component', m)\n"
        "    object.__setattr__(m, 'forward', None)\n"
        "    d = model.hook_dict['blocks.0.hook_resid_pre']\n"
        "    e = f'blocks.{layer}.attn.hook_z'\n"
        "    return 'unembed.hook_in', 'hook_embed', 'hook_embed (input of the first block)', 'hook_site'\n"
    )
    try:
        found = violations(bad)
    finally:
        bad.unlink()
    kinds = sorted(v.split(": ", 1)[1] for v in found)
    assert kinds == sorted(
        [
            "imports from transformer_lens.model_bridge",
            "imports transformer_lens",
            "accesses .original_model",
            "accesses ._forward_hooks",
            "names the internal 'original_component'",
            "bypasses __setattr__ with object.__setattr__",
            "accesses .hook_dict",
            "spells the hook name 'blocks.0.hook_resid_pre' (build it in hooks.py)",
            "spells the hook name '.attn.hook_z' (build it in hooks.py)",
            "spells the hook name 'unembed.hook_in' (build it in hooks.py)",
            "spells the hook name 'hook_embed' (build it in hooks.py)",
        ]
    )


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_module_stays_behind_the_seam(path):
    assert violations(path) == []


def test_compat_reads_the_bridge_as_the_bridge_itself_does():
    tiny, moe = ii.tiny_model(), ii.tiny_model(moe="qwen2_moe")
    hf = compat.hf_model(tiny)
    assert hf is tiny.original_model and compat.hf_config(tiny) is hf.config
    assert type(compat.wrapped_module(tiny.blocks[0].attn)).__name__ == "LlamaAttention"
    assert compat.hf_model(torch.nn.Linear(1, 1)) is None
    plain = tiny_hf_model(seed=0)  # an independent copy with the same weights
    assert compat.wrapped_module(plain) is plain  # not a bridge: itself
    params = compat.hf_parameters(tiny.blocks[1].mlp)
    assert sorted(params) == sorted(k for k, _ in plain.model.layers[1].mlp.named_parameters())
    assert torch.equal(params["gate_proj.weight"], plain.model.layers[1].mlp.gate_proj.weight)
    assert compat.moe_config(tiny) == (0, 0, None, False)
    assert compat.moe_config(moe) == (4, 2, 128, True)
    assert compat.architecture(tiny) == "LlamaForCausalLM" and compat.n_kv_heads(tiny) == 2
    assert compat.rmsnorm_offset(tiny) is False
    assert compat.generation_eos_ids(tiny) == [0]
    assert compat.hf_decoder_layers(plain) is plain.model.layers
    assert compat.hf_attention_out_proj(plain, 1) is plain.model.layers[1].self_attn.o_proj
    assert compat.hf_body(plain) is plain.model and compat.hf_n_heads(plain) == 4
    assert compat.hf_logit_softcap(plain) is None
    with pytest.raises(ValueError, match="no decoder layers"):
        compat.hf_decoder_layers(torch.nn.Linear(1, 1))


def test_compat_hooks_and_forward_override_restore_the_module():
    lin = torch.nn.Linear(2, 2)
    assert not compat.has_hooks(lin)
    handle = lin.register_forward_hook(lambda *a: None)
    assert compat.has_hooks(lin)
    handle.remove()
    assert not compat.has_own_forward(lin)
    compat.override_forward(lin, lambda x: x * 0)
    assert compat.has_own_forward(lin) and lin(torch.ones(1, 2)).abs().sum() == 0
    compat.restore_forward(lin)
    assert not compat.has_own_forward(lin) and lin(torch.ones(1, 2)).abs().sum() > 0
    config = compat.hf_config(ii.tiny_model())
    fast = compat.with_attn_implementation(config, "sdpa")
    assert compat.attn_implementation(fast) == "sdpa" and fast is not config


def test_whole_model_hook_kinds_resolve_to_the_bridge_names():
    tiny = ii.tiny_model()
    assert ii.hook_site(tiny, "final_norm").name == "ln_final.hook_out"
    assert ii.hook_site(tiny, "unembed_in").name == "unembed.hook_in"
    assert [s.name for s in ii.hook_names(tiny, "final_norm")] == ["ln_final.hook_out"]
    assert ii.hook_site(tiny, "final_norm", 7).layer is None  # no layer: the argument is ignored


def test_compat_tokenizer_names_quantization_and_attention_config():
    tok = tiny_tokenizer()
    compat.name_tokenizer(tok, "other")  # keeps the name already set
    assert tok.init_kwargs["name_or_path"] == "instr-interp/tiny" and tok.init_kwargs["add_bos_token"] is True
    compat.name_tokenizer(tok, "other", adds_bos=False, overwrite=True)
    assert tok.init_kwargs["name_or_path"] == "other" and tok.init_kwargs["add_bos_token"] is False
    plain = tiny_hf_model(seed=0)
    plain.config.quantization_config = {"quant_method": "gguf"}
    compat.drop_quantization(plain)
    assert plain.hf_quantizer is None and not hasattr(plain.config, "quantization_config")
    attn = plain.model.layers[0].self_attn
    assert compat.attention_window(attn) is None
    original, other = attn.config, compat.with_attn_implementation(attn.config, "eager")
    with compat.attention_config(attn, other):
        assert attn.config is other
    assert attn.config is original
