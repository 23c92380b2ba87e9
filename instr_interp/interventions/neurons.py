"""Interventions as context managers over TransformerLens hooks. They compose (nest freely) and
remove exactly the hooks they added when the ``with`` block ends, also on errors."""

import contextlib

import torch
from jaxtyping import Float
from torch import Tensor

from ..checks import check_units
from ..data.encoding import region_names
from ..engine import BatchContext, Probe, run
from ..hooks import HookSite, hook_names, hook_site, is_moe
from ..models import model_facts
from .expert_neurons import ablate_expert_neurons

__all__ = ["ablate_neurons", "mean_activations", "MeanActivation"]


def _by_layer(neurons, n_layers: int, d_mlp: int) -> dict[int, Tensor]:
    neurons = check_units(neurons, (n_layers, d_mlp), names=("layer", "neuron"), what="neurons")
    return {int(layer): neurons[neurons[:, 0] == layer, 1] for layer in neurons[:, 0].unique().tolist()}


@contextlib.contextmanager
def ablate_neurons(model, neurons, mode: str = "zero", means: Tensor | None = None):
    """Zero (or set to their mean) the given MLP neurons' activations, after the activation function.

    The neuron's value is its entry of ``mlp.hook_post`` (act(gate) * up, the input of the down
    projection); setting it to 0 removes the neuron's contribution to the residual stream.

    Args:
        neurons: ``[n, 2]`` tensor of ``(layer, neuron)``, e.g. ``isn.category_sets["code"]``. MoE
            models: ``[n, 3]`` of ``(layer, expert, neuron)``, ablated inside the fused expert
            computation (composes with ``ablate_experts``; see
            :func:`~instr_interp.interventions.expert_neurons.ablate_expert_neurons`).
        mode: ``"zero"`` or ``"mean"`` (needs ``means`` ``[layer, d_mlp]`` from :func:`mean_activations`;
            MoE: the flat ``[n_units]`` means of ``mean_expert_activations``).

    Examples:
        >>> import instr_interp as ii, torch
        >>> model = ii.tiny_model()
        >>> with ablate_neurons(model, torch.tensor([[0, 3], [1, 5]])):
        ...     logits = model(torch.tensor([[1, 2, 3]]))
    """
    if is_moe(model):
        with ablate_expert_neurons(model, neurons, mode, means) as hooked:
            yield hooked
        return
    facts = model_facts(model)
    groups = _by_layer(neurons, facts.n_layers, facts.d_mlp)
    if mode == "mean":
        if means is None or tuple(means.shape) != (facts.n_layers, facts.d_mlp):
            raise ValueError(
                f"mode='mean' needs means of shape ({facts.n_layers}, {facts.d_mlp}); "
                "compute them with ii.mean_activations(model, data)."
            )
    elif mode != "zero":
        raise ValueError(f"Unknown mode {mode!r}; choose 'zero' or 'mean'.")

    def make(layer: int, idx: Tensor):
        def hook(act, hook=None):
            act = act.clone()
            value = 0.0 if mode == "zero" else means[layer, idx].to(act.device, act.dtype)
            act[..., idx.to(act.device)] = value
            return act

        return hook

    fwd = [(hook_site(model, "mlp_post", layer).name, make(layer, idx)) for layer, idx in groups.items()]
    with model.hooks(fwd_hooks=fwd):
        yield model


class MeanActivation(Probe):
    """Mean of ``mlp.hook_post`` per layer and neuron over the tokens of ``regions``."""

    name = "mean_activation"

    def __init__(self, regions=("instruction", "input")):
        super().__init__()
        self.regions = region_names(regions)

    def sites(self, model) -> list[HookSite]:
        return hook_names(model, "mlp_post")

    def setup(self, model, encoded, device) -> None:
        facts = model_facts(model)
        self.state = {
            "sum": torch.zeros(facts.n_layers, facts.d_mlp, dtype=torch.float64, device=device),
            "tokens": torch.zeros((), dtype=torch.float64, device=device),
        }

    def update(self, site: HookSite, act: Float[Tensor, "batch pos d_mlp"], ctx: BatchContext) -> None:
        mask = ctx.mask(self.regions)
        self.state["sum"][site.layer] += torch.where(mask[..., None], act, 0.0).double().sum((0, 1))
        if site.layer == 0:
            self.state["tokens"] += mask.sum()

    def result(self) -> Tensor:
        return (self.state["sum"] / self.state["tokens"].clamp(min=1)).float().cpu()


def mean_activations(
    model, data, *, regions=("instruction", "input"), batch_size: int = 16, progress: bool = True
) -> Float[Tensor, "layer d_mlp"]:
    """Mean neuron activation (``mlp.hook_post``) over the tokens of ``regions``, for mean ablation."""
    (probe,) = run(model, data, [MeanActivation(regions)], batch_size=batch_size, progress=progress)
    return probe.result()
