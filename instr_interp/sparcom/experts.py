"""Instruction-specific experts (ISEs) and per-expert neuron firing for MoE models.

Routing comes from the router hooks (``hook_expert_indices``/``hook_expert_weights``, tokens
flattened over batch x position, padding included and masked here). No toolkit exposes the neurons
inside fused experts, so their gate pre-activations are recomputed from the block input, the
routing indices and the fused ``experts.gate_up_proj`` weights, only on tokens routed to the expert.
"""

import contextlib
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor

from .. import compat
from ..checks import check_units
from ..data.encoding import region_names
from ..engine import BatchContext, Probe
from ..hooks import HookSite, hook_names, hook_site
from ..models import model_facts
from ..results import Result
from .neurons import NeuronSets

__all__ = [
    "ExpertFiring",
    "ExpertStats",
    "ExpertSets",
    "expert_gate_weights",
    "ablate_experts",
]


def _params(model, layer: int) -> dict[str, Tensor]:
    """The MoE block's parameters under their Hugging Face names (bridge wrappers removed)."""
    return compat.hf_parameters(model.blocks[layer].mlp)


def expert_gate_weights(model, layer: int) -> Float[Tensor, "expert d_mlp d_model"]:
    """The gate projections of all experts of an MoE layer (the first half of ``gate_up_proj``)."""
    params = _params(model, layer)
    fused = [v for k, v in params.items() if k.endswith("experts.gate_up_proj")]
    if not fused:
        raise ValueError(
            f"Layer {layer} has no fused experts.gate_up_proj; parameters: {sorted(params)[:8]}."
        )
    weight = fused[0]
    return weight[:, : weight.shape[1] // 2]


class ExpertFiring(Probe):
    """Per record: tokens routed to each expert (count and summed routing weight) and, per expert,
    the tokens routed there on which each of its neurons fired; shared experts by the dense rule."""

    name = "expert_firing"

    def __init__(self, regions=("instruction", "input"), *, neurons: bool = True):
        super().__init__()
        self.regions = region_names(regions)
        self.neurons = neurons

    def config(self) -> dict:
        return {"probe": "ExpertFiring", "regions": list(self.regions), "neurons": self.neurons}

    def sites(self, model) -> list[HookSite]:
        facts = model_facts(model)
        if not facts.moe:
            raise ValueError(f"{facts.architecture} is not an MoE model; use find_isns for dense MLPs.")
        sites = (
            hook_names(model, "mlp_in")
            + hook_names(model, "expert_weights")
            + hook_names(model, "expert_indices")
        )
        if facts.shared_experts:
            sites += hook_names(model, "shared_expert_pre")
        return sites

    def setup(self, model, encoded, device) -> None:
        facts = self.facts = model_facts(model)
        n, L, E = len(encoded), facts.n_layers, facts.n_experts
        self.encoded = encoded
        self.gates = (
            [expert_gate_weights(model, layer).detach() for layer in range(L)] if self.neurons else None
        )
        self.scratch: dict[tuple[int, str], Tensor] = {}
        self.state = {
            "tokens": torch.zeros(n, dtype=torch.int64, device=device),
            "expert_counts": torch.zeros(n, L, E, dtype=torch.int64, device=device),
            "expert_weights": torch.zeros(n, L, E, dtype=torch.float64, device=device),
        }
        if self.neurons:
            self.state["neuron_counts"] = torch.zeros(n, L, E, facts.d_mlp, dtype=torch.int32, device=device)
        if facts.shared_experts:
            params = _params(model, 0)
            (d_shared,) = {
                v.shape[0] for k, v in params.items() if k.endswith("shared_expert.gate_proj.weight")
            }
            self.state["shared_counts"] = torch.zeros(n, L, d_shared, dtype=torch.int32, device=device)

    def update(self, site: HookSite, act: Tensor, ctx: BatchContext) -> None:
        mask = ctx.mask(self.regions)  # [batch pos]
        batch, pos = mask.shape
        idx = ctx.batch.index
        layer = site.layer
        if site.kind == "mlp_in":
            self.scratch[(layer, "x")] = act.reshape(batch * pos, -1)
            if layer == 0:
                self.state["tokens"][idx] += mask.sum(1)
            return
        if site.kind == "expert_weights":
            self.scratch[(layer, "w")] = act
            return
        if site.kind == "shared_expert_pre":
            fired = (act.reshape(batch, pos, -1) > 0) & mask[..., None]
            self.state["shared_counts"][idx, layer] += fired.sum(1, dtype=torch.int32)
            return
        # expert_indices: the last routing hook of the layer
        flat_mask = mask.reshape(-1)
        E = self.facts.n_experts
        routed = torch.zeros(batch * pos, E, dtype=torch.bool, device=act.device)
        routed.scatter_(1, act.long(), True)
        routed &= flat_mask[:, None]
        self.state["expert_counts"][idx, layer] += routed.reshape(batch, pos, E).sum(1)
        weights = torch.where(routed, self.scratch.pop((layer, "w")), 0.0).double()
        self.state["expert_weights"][idx, layer] += weights.reshape(batch, pos, E).sum(1)
        x = self.scratch.pop((layer, "x"))
        if not self.neurons:
            return
        gate = self.gates[layer]
        for e in range(E):
            rows = routed[:, e].nonzero().flatten()
            if len(rows) == 0:
                continue
            fired = (x[rows] @ gate[e].T > 0).to(torch.int32)  # [rows d_mlp]
            per_row = torch.zeros(batch, fired.shape[1], dtype=torch.int32, device=act.device)
            per_row.index_add_(0, rows // pos, fired)
            self.state["neuron_counts"][idx, layer, e] += per_row

    def result(self) -> "ExpertStats":
        enc = self.encoded
        return ExpertStats(
            **{k: v.cpu() for k, v in self.state.items()},
            ids=[r.id for r in enc.records],
            record_categories=[r.category for r in enc.records],
            categories=list(enc.categories),
            settings={"regions": list(self.regions), "model": self.facts.name, "data": enc.fingerprint},
        )


@dataclass(kw_only=True, repr=False)
class ExpertStats(Result):
    """Routing and per-expert neuron firing counts per record."""

    tokens: Int[Tensor, " record"]
    expert_counts: Int[Tensor, "record layer expert"]
    expert_weights: Float[Tensor, "record layer expert"]
    ids: list[str]
    record_categories: list[str]
    categories: list[str]
    neuron_counts: Int[Tensor, "record layer expert d_mlp"] | None = None
    shared_counts: Int[Tensor, "record layer d_shared"] | None = None
    settings: dict = field(default_factory=dict)

    def expert_frequency(
        self, weighting: Literal["binary", "weight"] = "binary"
    ) -> Float[Tensor, "record layer expert"]:
        """f_ej(I): share of counted tokens routed to expert e of layer j (or mean routing weight)."""
        values = self.expert_counts.double() if weighting == "binary" else self.expert_weights
        return values / self.tokens.clamp(min=1).double()[:, None, None]

    def routing_share(self, category: str | None = None) -> Float[Tensor, "layer expert"]:
        """Share of the counted tokens (of one category, or of all records) routed to each expert.

        Each layer's shares sum to the router's top-k (every token goes to k experts).
        """
        counts = self.expert_counts.double()
        if category is not None:
            if category not in self.categories:
                raise ValueError(f"Unknown category {category!r}; choose from {self.categories}.")
            idx = [r for r, c in enumerate(self.record_categories) if c == category]
            counts, tokens = counts[idx], self.tokens[idx]
        else:
            tokens = self.tokens
        return counts.sum(0) / max(float(tokens.sum()), 1.0)

    def routing_lift(self) -> pd.DataFrame:
        """Per category, the (layer, expert) whose routing share rises most above its share over all
        categories (the max-lift expert; the first in layer-major order on ties).

        Returns:
            One row per category: ``category, tokens, layer, expert, share in category, share overall``.
        """
        pooled = self.routing_share()
        n_experts = pooled.shape[1]
        rows = []
        for cat in self.categories:
            share = self.routing_share(cat)
            flat = int((share - pooled).flatten().argmax())
            rows.append(
                {
                    "category": cat,
                    "tokens": int(
                        self.tokens[[r for r, c in enumerate(self.record_categories) if c == cat]].sum()
                    ),
                    "layer": flat // n_experts,
                    "expert": flat % n_experts,
                    "share in category": float(share.flatten()[flat]),
                    "share overall": float(pooled.flatten()[flat]),
                }
            )
        return pd.DataFrame(
            rows, columns=["category", "tokens", "layer", "expert", "share in category", "share overall"]
        )

    def to_frame(self) -> pd.DataFrame:
        """Routing per category, layer and expert: routed tokens and their share of the category's
        counted tokens (pooled over the category's records)."""
        rows = []
        for cat in self.categories:
            idx = [r for r, c in enumerate(self.record_categories) if c == cat]
            routed, total = self.expert_counts[idx].sum(0).tolist(), max(int(self.tokens[idx].sum()), 1)
            rows += [
                (cat, layer, e, n, n / total) for layer, row in enumerate(routed) for e, n in enumerate(row)
            ]
        return pd.DataFrame(rows, columns=["category", "layer", "expert", "tokens", "frequency"])

    def _facts(self) -> dict[str, object]:
        _, n_layers, n_experts = self.expert_counts.shape
        kept = [k for k in ("neuron_counts", "shared_counts") if getattr(self, k) is not None]
        return {
            "records": len(self.ids),
            "units": f"{n_layers} layers x {n_experts} experts",
            "counted tokens": f"{int(self.tokens.sum()):,} ({', '.join(self.settings.get('regions', []))})",
            "also kept": ", ".join(kept) or "routing only",
        }

    def _saved(self):
        names = ("tokens", "expert_counts", "expert_weights", "neuron_counts", "shared_counts")
        return (
            {k: getattr(self, k) for k in names if getattr(self, k) is not None},
            {
                "ids": self.ids,
                "record_categories": self.record_categories,
                "categories": self.categories,
                "settings": self.settings,
            },
        )

    @classmethod
    def _from_saved(cls, tensors, meta, path) -> "ExpertStats":
        return cls(
            **tensors,
            ids=meta["ids"],
            record_categories=meta["record_categories"],
            categories=meta["categories"],
            settings=meta["settings"],
        )


class ExpertSets(NeuronSets):
    """ISE sets: the same set algebra as :class:`NeuronSets`, with units ``(layer, expert)``
    (``d_mlp`` holds the number of experts per layer)."""

    unit = "expert"
    short = "ISEs"

    @property
    def n_experts(self) -> int:
        return self.d_mlp


@contextlib.contextmanager
def ablate_experts(model, experts, *, renormalize: bool = False):
    """Reroute tokens away from the given experts by zeroing their routing weights.

    Args:
        experts: ``[n, 2]`` tensor of ``(layer, expert)``, e.g. ``ise.category_sets["code"]``.
        renormalize: rescale each token's remaining top-k weights to their original sum.
    """
    facts = model_facts(model)
    experts = check_units(
        experts, (facts.n_layers, facts.n_experts), names=("layer", "expert"), what="experts"
    )

    def make(idx):
        def hook(weights, hook=None):
            out = weights.clone()
            out[:, idx.to(out.device)] = 0
            if renormalize:
                kept = out.sum(-1, keepdim=True)
                out = out * (weights.sum(-1, keepdim=True) / kept.clamp(min=1e-12))
            return out

        return hook

    fwd = [
        (hook_site(model, "expert_weights", int(layer)).name, make(experts[experts[:, 0] == layer, 1]))
        for layer in experts[:, 0].unique().tolist()
    ]
    with model.hooks(fwd_hooks=fwd):
        yield model


_MOVED = ("find_ises", "sets_from_expert_stats", "expert_sets_from_pooled")


def __getattr__(name: str):
    """Selecting ISEs lives in :mod:`instr_interp.sparcom.expert_selection`; its functions are still
    importable from here (loaded on first use, so the two modules do not import each other at load)."""
    if name in _MOVED:
        from . import expert_selection

        return getattr(expert_selection, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
