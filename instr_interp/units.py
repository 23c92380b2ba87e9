"""The unit layout of MoE models: which neurons exist in each (layer, expert slot).

A layer has ``n_experts`` routed-expert slots and one always-on slot last (the shared expert, or the
whole MLP of a dense layer in a mixed dense/MoE stack; width 0 where there is none). Units are
numbered flat: layer, then slot, then neuron (``unit_starts``).
"""

import torch
from jaxtyping import Float, Int
from torch import Tensor

from . import compat
from .hooks import moe_layers
from .models import model_facts

__all__ = ["expert_gate_weights", "unit_starts", "unit_widths"]


def unit_starts(widths: list[list[int]]) -> Int[Tensor, "layer slot"]:
    """Flat index of the first unit of every (layer, slot) of an MoE layout (see :class:`NeuronSets`)."""
    sizes = torch.tensor(widths, dtype=torch.long)
    return (sizes.flatten().cumsum(0) - sizes.flatten()).reshape(sizes.shape)


def _params(model, layer: int) -> dict[str, Tensor]:
    """The MLP/MoE block's parameters under their Hugging Face names (bridge wrappers removed)."""
    return compat.hf_parameters(model.blocks[layer].mlp)


def _one(params: dict[str, Tensor], suffix: str) -> Tensor | None:
    found = [v for k, v in params.items() if k.endswith(suffix)]
    return found[0] if found else None


def expert_gate_weights(model, layer: int) -> Float[Tensor, "expert d_mlp d_model"]:
    """The gate projections of all experts of an MoE layer (the first half of ``gate_up_proj``)."""
    params = _params(model, layer)
    weight = _one(params, "experts.gate_up_proj")
    experts = compat.wrapped_module(compat.wrapped_module(model.blocks[layer].mlp).experts)
    if (
        weight is None
        or getattr(experts, "is_transposed", False)
        or not getattr(experts, "is_concatenated", True)
    ):
        raise ValueError(
            f"Layer {layer} has no fused [expert, 2 d_mlp, d_model] experts.gate_up_proj (concatenated, not "
            f"transposed; Mixtral / OLMoE / Qwen2-MoE layout); parameters: {sorted(params)[:8]}."
        )
    return weight[:, : weight.shape[1] // 2]


def unit_widths(model) -> list[list[int]]:
    """Neurons per (layer, expert slot): ``n_experts`` routed-expert widths, then the width of the
    layer's always-on MLP (shared expert, or the MLP of a dense layer of a mixed stack; 0 if none).

    Examples:
        >>> from instr_interp import tiny_model
        >>> unit_widths(tiny_model(moe="qwen2_moe"))
        [[128, 128, 128, 128, 128], [128, 128, 128, 128, 128]]
    """
    facts = model_facts(model)
    sparse = set(moe_layers(model))
    widths = []
    for layer in range(facts.n_layers):
        params = _params(model, layer)
        if layer in sparse:
            gate = expert_gate_weights(model, layer)
            shared = _one(params, "shared_expert.gate_proj.weight")
            widths.append([gate.shape[1]] * gate.shape[0] + [0 if shared is None else shared.shape[0]])
        else:
            dense = _one(params, "gate_proj.weight")
            if dense is None:
                raise ValueError(f"Dense layer {layer} has no gate_proj; parameters: {sorted(params)[:8]}.")
            widths.append([0] * facts.n_experts + [dense.shape[0]])
    return widths
