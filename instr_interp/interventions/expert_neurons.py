"""Ablating neurons of MoE models, units ``(layer, expert, neuron)`` (``expert == n_experts``: the
layer's always-on MLP, i.e. the shared expert or a dense layer's MLP).

A routed expert's neurons live inside the fused expert computation, which no hook exposes. A torch
forward hook on the Hugging Face experts module reads the exact arguments the experts got (block
input, top-k indices, top-k weights, after any rerouting by ``ablate_experts``) and subtracts, for
every token routed to the expert, ``w * (h_i - m_i) * down[:, i]`` for each ablated neuron ``i``
(``h_i = act(gate_i x) * up_i x``, ``m_i`` = 0 or its mean): the same output as zeroing (or fixing)
``h_i`` inside the expert, up to float rounding. Always-on neurons use the ``hook_post`` hooks.
"""

import contextlib

import torch
from jaxtyping import Float
from torch import Tensor

from .. import compat
from ..checks import check_units
from ..data.encoding import region_names
from ..engine import BatchContext, Probe, run
from ..hooks import HookSite, hook_site, moe_layers
from ..models import model_facts
from ..units import unit_starts, unit_widths

__all__ = ["ablate_expert_neurons", "mean_expert_activations", "MeanExpertActivation"]


def _experts_module(model, layer: int):
    experts = compat.wrapped_module(compat.wrapped_module(model.blocks[layer].mlp).experts)
    if (
        getattr(experts, "is_transposed", False)
        or not getattr(experts, "is_concatenated", True)
        or not hasattr(experts, "gate_up_proj")
    ):
        raise ValueError(
            f"Layer {layer}'s experts ({type(experts).__name__}) are not fused [expert, 2 d_mlp, d_model] "
            "gate_up_proj weights; expert-neuron ablation supports Mixtral, OLMoE and Qwen2-MoE layouts."
        )
    return experts


def check_expert_units(model, units, widths: list[list[int]]) -> Tensor:
    """Validated ``[n, 3]`` (layer, expert, neuron) units of an MoE model's layout ``widths``."""
    width = max(max(w) for w in widths)
    units = check_units(
        units, (len(widths), len(widths[0]), width), names=("layer", "expert", "neuron"), what="neurons"
    )
    limits = torch.tensor(widths)[units[:, 0], units[:, 1]] if len(units) else torch.zeros(0)
    bad = (units[:, 2] >= limits).nonzero().flatten() if len(units) else []
    if len(bad):
        r = int(bad[0])
        layer, e, i = units[r].tolist()
        raise ValueError(
            f"neurons must be valid indices: neuron {i} is out of range [0, {int(limits[r])}) for "
            f"layer {layer} expert slot {e} (row {r}; slot {len(widths[0]) - 1} is the always-on MLP)."
        )
    return units


@contextlib.contextmanager
def ablate_expert_neurons(model, neurons, mode: str = "zero", means: Tensor | None = None):
    """Zero (or set to their mean) MoE neurons; see :func:`instr_interp.ablate_neurons`.

    Args:
        neurons: ``[n, 3]`` of ``(layer, expert, neuron)``, e.g. an MoE ``isn.category_sets["code"]``.
        mode: ``"zero"`` or ``"mean"`` (needs ``means``, a flat ``[n_units]`` tensor from
            :func:`mean_expert_activations`, in ``NeuronSets.flat`` order).
    """
    widths = unit_widths(model)
    units = check_expert_units(model, neurons, widths)
    n_units = int(sum(map(sum, widths)))
    if mode == "mean":
        if means is None or tuple(means.shape) != (n_units,):
            raise ValueError(
                f"mode='mean' needs means of shape ({n_units},) (one per unit of the MoE layout); "
                "compute them with ii.mean_expert_activations(model, data)."
            )
    elif mode != "zero":
        raise ValueError(f"Unknown mode {mode!r}; choose 'zero' or 'mean'.")
    starts = unit_starts(widths)
    n_exp = len(widths[0]) - 1
    sparse = set(moe_layers(model))

    def value(layer, slot, idx):
        return 0.0 if mode == "zero" else means[starts[layer, slot] + idx]

    fwd, handles = [], []
    for layer, slot in units[:, :2].unique(dim=0).tolist():
        idx = units[(units[:, 0] == layer) & (units[:, 1] == slot), 2]
        if slot == n_exp:
            kind = "shared_expert_post" if layer in sparse else "mlp_post"
            fwd.append((hook_site(model, kind, layer).name, _set_post(idx, value(layer, slot, idx))))
        else:
            experts = _experts_module(model, layer)
            hook = _subtract(experts, slot, idx, value(layer, slot, idx))
            handles.append(experts.register_forward_hook(hook))
    try:
        with model.hooks(fwd_hooks=fwd):
            yield model
    finally:
        for h in handles:
            h.remove()


def _set_post(idx: Tensor, value):
    def hook(act, hook=None):
        act = act.clone()
        fill = value if isinstance(value, float) else value.to(act.device, act.dtype)
        act[..., idx.to(act.device)] = fill
        return act

    return hook


def _subtract(experts, e: int, idx: Tensor, value):
    d = experts.gate_up_proj.shape[1] // 2

    def hook(module, args, output):
        x, top_idx, top_w = args[0], args[1], args[2]
        tokens, pos = (top_idx == e).nonzero(as_tuple=True)
        if len(tokens) == 0:
            return output
        i = idx.to(x.device)
        w_in = module.gate_up_proj[e]
        xs = x[tokens]
        h = module.act_fn(xs @ w_in[i].T) * (xs @ w_in[d + i].T)  # [tokens n_ablated]
        if not isinstance(value, float):
            h = h - value.to(h.device, h.dtype)
        delta = (h * top_w[tokens, pos, None].to(h.dtype)) @ module.down_proj[e][:, i].T
        return output.index_add(0, tokens, -delta.to(output.dtype))

    return hook


class MeanExpertActivation(Probe):
    """Mean activation (``act(gate) * up``) of every MoE unit over the counted tokens: routed expert
    neurons over the tokens routed to their expert (0 for an expert no counted token reached),
    always-on neurons over all counted tokens."""

    name = "mean_expert_activation"

    def __init__(self, regions=("instruction", "input")):
        super().__init__()
        self.regions = region_names(regions)

    def sites(self, model) -> list[HookSite]:
        sparse, facts = moe_layers(model), model_facts(model)
        sites = []
        for layer in range(facts.n_layers):
            if layer not in sparse:
                sites.append(hook_site(model, "mlp_post", layer))
                continue
            sites += [hook_site(model, "mlp_in", layer), hook_site(model, "expert_indices", layer)]
            if facts.shared_experts:
                sites.append(hook_site(model, "shared_expert_post", layer))
        return sites

    def setup(self, model, encoded, device) -> None:
        self.widths = unit_widths(model)
        self.experts = {layer: _experts_module(model, layer) for layer in moe_layers(model)}
        L, E = len(self.widths), len(self.widths[0]) - 1
        d = max(max(w[:-1]) for w in self.widths)
        width = max(w[-1] for w in self.widths)
        self.x: dict[int, Tensor] = {}
        self.state = {
            "routed_sum": torch.zeros(L, E, d, dtype=torch.float64, device=device),
            "routed": torch.zeros(L, E, dtype=torch.float64, device=device),
            "always_sum": torch.zeros(L, max(width, 1), dtype=torch.float64, device=device),
            "tokens": torch.zeros((), dtype=torch.float64, device=device),
        }

    def update(self, site: HookSite, act: Tensor, ctx: BatchContext) -> None:
        mask = ctx.mask(self.regions)
        batch, pos = mask.shape
        layer = site.layer
        if site.kind == "mlp_in":
            self.x[layer] = act.reshape(batch * pos, -1)
            return
        if site.kind in ("mlp_post", "shared_expert_post"):
            act = act.reshape(batch, pos, -1)
            self.state["always_sum"][layer, : act.shape[-1]] += (
                torch.where(mask[..., None], act, 0.0).double().sum((0, 1))
            )
            return
        if layer == min(self.experts):
            self.state["tokens"] += mask.sum()
        x, flat = self.x.pop(layer), mask.reshape(-1)
        experts = self.experts[layer]
        d = experts.gate_up_proj.shape[1] // 2
        for e in range(experts.gate_up_proj.shape[0]):
            tokens = ((act == e).any(-1) & flat).nonzero().flatten()
            if len(tokens) == 0:
                continue
            gate, up = (x[tokens] @ experts.gate_up_proj[e].T).split(d, dim=-1)
            self.state["routed_sum"][layer, e] += (experts.act_fn(gate) * up).double().sum(0)
            self.state["routed"][layer, e] += len(tokens)

    def result(self) -> Float[Tensor, " unit"]:
        s = {k: v.cpu() for k, v in self.state.items()}
        routed = s["routed_sum"] / s["routed"].clamp(min=1)[..., None]
        always = s["always_sum"] / s["tokens"].clamp(min=1)
        parts = []
        for layer, w in enumerate(self.widths):
            parts += [routed[layer, e, :n] for e, n in enumerate(w[:-1])] + [always[layer, : w[-1]]]
        return torch.cat(parts).float()


def mean_expert_activations(
    model, data, *, regions=("instruction", "input"), batch_size: int = 16, progress: bool = True
) -> Float[Tensor, " unit"]:
    """Mean activation of every MoE unit (flat, ``NeuronSets.flat`` order), for mean ablation."""
    (probe,) = run(model, data, [MeanExpertActivation(regions)], batch_size=batch_size, progress=progress)
    return probe.result()
