"""Tiny random models for tests and examples: a byte-level tokenizer built in memory, and small
Llama-style (dense or MoE) models with seeded random weights, all fully offline.

These are re-exported from :mod:`instr_interp.models` (``ii.models.tiny_model`` keeps working).
"""

import torch

from . import compat

__all__ = ["TINY_CHAT_TEMPLATE", "tiny_hf_model", "tiny_model", "tiny_tokenizer"]


TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def tiny_tokenizer(chat_template: bool = True):
    """A byte-level tokenizer built in memory (one token per UTF-8 byte, plus special tokens).

    Fast (offsets are available) and fully offline. Special tokens: ``<|endoftext|>`` (BOS,
    EOS and padding), ``<|im_start|>``, ``<|im_end|>``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2}
    for char in sorted(alphabet):
        vocab[char] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    core.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    if chat_template:
        tok.chat_template = TINY_CHAT_TEMPLATE
    # TransformerLens reloads a tokenizer by name unless it already adds BOS; say that it does
    # (encoding in this package never relies on the tokenizer adding BOS).
    compat.name_tokenizer(tok, "instr-interp/tiny", adds_bos=True, overwrite=True)
    return tok


def tiny_hf_model(
    seed: int = 0,
    moe: bool | str = False,
    *,
    n_layers: int = 2,
    d_model: int = 64,
    d_mlp: int = 128,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    n_experts: int = 4,
    top_k: int = 2,
    dense_layers: tuple[int, ...] = (),
):
    """The plain Hugging Face model behind :func:`tiny_model` (same arguments, same weights)."""
    import transformers as tf

    common = dict(
        vocab_size=len(tiny_tokenizer(False)),
        hidden_size=d_model,
        intermediate_size=d_mlp,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv_heads,
        max_position_embeddings=2048,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
        tie_word_embeddings=False,
        rms_norm_eps=1e-6,
    )
    kind = "mixtral" if moe is True else (moe or "llama")
    if dense_layers and kind != "qwen2_moe":
        raise ValueError(f"dense_layers (a mixed dense/MoE stack) needs moe='qwen2_moe'; got moe={moe!r}.")
    if kind == "llama":
        config = tf.LlamaConfig(**common)
    elif kind == "mixtral":
        config = tf.MixtralConfig(**common, num_local_experts=n_experts, num_experts_per_tok=top_k)
    elif kind == "olmoe":
        config = tf.OlmoeConfig(**common, num_experts=n_experts, num_experts_per_tok=top_k)
    elif kind == "qwen2_moe":
        config = tf.Qwen2MoeConfig(
            **common,
            num_experts=n_experts,
            num_experts_per_tok=top_k,
            moe_intermediate_size=d_mlp,
            shared_expert_intermediate_size=d_mlp,
            mlp_only_layers=list(dense_layers),
        )
    else:
        raise ValueError(f"moe={moe!r}: choose False, True, 'mixtral', 'olmoe' or 'qwen2_moe'.")
    config.architectures = [type(config).__name__.replace("Config", "ForCausalLM")]
    torch.manual_seed(seed)
    hf_model = tf.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():  # default inits are tiny (std 0.02); widen so activations are varied
        for param in hf_model.parameters():
            if param.ndim >= 2:
                param.normal_(0.0, 1.0 / param.shape[-1] ** 0.5)
    return hf_model.eval()


def tiny_model(
    seed: int = 0,
    moe: bool | str = False,
    *,
    chat_template: bool = True,
    device: str | torch.device = "cpu",
    **sizes,
):
    """A random Llama-style model (gated SiLU MLP, RMSNorm, rotary, GQA) as a bridge, for tests.

    Args:
        seed: weight seed; the same seed gives the same weights.
        moe: ``False`` for dense, ``True`` or ``"mixtral"`` for a Mixtral-style sparse MoE,
            ``"olmoe"`` or ``"qwen2_moe"`` for those architectures (Qwen2-MoE has a shared expert).
        chat_template: give the byte-level tokenizer a ChatML-style template.
        **sizes: ``n_layers`` (2), ``d_model`` (64), ``d_mlp`` (128, per expert for MoE),
            ``n_heads`` (4), ``n_kv_heads`` (2), ``n_experts`` (4), ``top_k`` (2), ``dense_layers``
            (``()``; Qwen2-MoE only: layers with a dense MLP of width ``d_mlp``, a mixed stack).

    Examples:
        >>> tiny = tiny_model(seed=0)
        >>> tiny.cfg.n_layers
        2
    """
    from .models import _boot  # models re-exports this module, so import it when called

    hf_model = tiny_hf_model(seed, moe, **sizes)
    kind = hf_model.config.model_type
    model = _boot(
        f"instr-interp/tiny-{kind}", hf_model, tiny_tokenizer(chat_template), torch.device(device), None
    )
    model.instr_interp_name = f"tiny-{kind}-seed{seed}"
    return model
