"""Routing and per-expert neuron firing of MoE models, counted in one pass.

Routing comes from the router hooks (``hook_expert_indices``/``hook_expert_weights``, tokens
flattened over batch x position, padding included and masked here). No toolkit exposes the neurons
inside fused experts, so their gate pre-activations are recomputed from the block input, the
routing indices and the fused ``experts.gate_up_proj`` weights, only on tokens routed to the expert.

Memory. Expert-neuron counts are kept sparse, on the CPU: one row of ``d_expert`` counts per
(record, layer, expert) that the record routed at least one counted token to, in the narrowest
integer type that holds the longest record (uint8 up to 255 tokens, int16 up to 32,767). For R
records that hit H experts per layer on average, L sparse layers, d = ``d_expert``:
``bytes ~= R * L * H * (d * b + 12)`` with b = 1 or 2 (add ``4 * d`` per row for
``activation_sums``, float32), plus the always-on counts ``R * L * d_always_on * b`` (and
``* 4`` more for their sums). H <= min(E, k * T) for T counted tokens. The dense layout it
replaces took ``R * L * E * d * 4`` bytes (Qwen1.5-MoE-A2.7B, R = 1,200: 9.7 GB).
"""

from dataclasses import dataclass, field
from typing import Literal

import pandas as pd
import torch
from jaxtyping import Float, Int, Integer
from torch import Tensor

from ..data.encoding import region_names
from ..engine import BatchContext, Probe
from ..hooks import HookSite, hook_site, moe_layers
from ..models import model_facts
from ..results import Result
from ..units import expert_gate_weights, unit_starts, unit_widths
from .firing import activation_fn

__all__ = ["ExpertFiring", "ExpertStats", "expert_gate_weights", "unit_widths"]  # the last two from units


class ExpertFiring(Probe):
    """Per record: tokens routed to each expert (count and summed routing weight) and, per expert,
    the tokens routed there on which each of its neurons fired (gate pre-activation > 0); the neurons
    of always-on MLPs (shared experts, dense layers of mixed stacks) by the dense rule.

    Args:
        regions: token regions counted.
        neurons: also count neurons (sparse rows, see the module docstring for memory).
        activation_sums: also keep per-neuron sums of ``act(gate)`` over the counted tokens (routed
            ones for experts), the key of the activation tie-breaks (``layer_rank``, ``layer_z``, ``raw``).

    The expert-neuron rows are kept outside ``state`` (they are not sums of fixed shape), so this
    probe refuses checkpointed and multi-rank passes when ``neurons=True``.
    """

    name = "expert_firing"

    def __init__(
        self, regions=("instruction", "input"), *, neurons: bool = True, activation_sums: bool = False
    ):
        super().__init__()
        self.regions = region_names(regions)
        self.neurons = neurons
        self.activation_sums = activation_sums and neurons
        self.reducible = not neurons

    def config(self) -> dict:
        return {
            "probe": "ExpertFiring",
            "regions": list(self.regions),
            "neurons": self.neurons,
            "activation_sums": self.activation_sums,
        }

    def sites(self, model) -> list[HookSite]:
        facts = model_facts(model)
        sparse = moe_layers(model)
        if not sparse:
            raise ValueError(f"{facts.architecture} is not an MoE model; use find_isns for dense MLPs.")
        sites = []
        for layer in range(facts.n_layers):
            if layer not in sparse:
                sites += [hook_site(model, "mlp_pre", layer)] if self.neurons else []
                continue
            sites += [hook_site(model, k, layer) for k in ("mlp_in", "expert_weights", "expert_indices")]
            if self.neurons and facts.shared_experts:
                sites.append(hook_site(model, "shared_expert_pre", layer))
        return sites

    def setup(self, model, encoded, device) -> None:
        facts = self.facts = model_facts(model)
        n, L, E = len(encoded), facts.n_layers, facts.n_experts
        self.encoded = encoded
        self.act = activation_fn(facts.act_fn)
        self.first = moe_layers(model)[0]
        self.gates = {layer: expert_gate_weights(model, layer).detach() for layer in moe_layers(model)}
        self.widths = unit_widths(model) if self.neurons else None
        longest = max((len(r.tokens) for r in encoded), default=0)
        self.dtype = torch.uint8 if longest <= 255 else torch.int16 if longest <= 32767 else torch.int32
        self.rows: list[tuple[Tensor, Tensor, Tensor | None]] = []
        self.scratch: dict[tuple[int, str], Tensor] = {}
        self.state = {
            "tokens": torch.zeros(n, dtype=torch.int64, device=device),
            "expert_counts": torch.zeros(n, L, E, dtype=torch.int64, device=device),
            "expert_weights": torch.zeros(n, L, E, dtype=torch.float64, device=device),
        }
        if self.neurons:
            width = max(w[-1] for w in self.widths)
            if width:
                self.state["shared_counts"] = torch.zeros(n, L, width, dtype=self.dtype, device=device)
                if self.activation_sums:
                    self.state["shared_activation"] = torch.zeros(
                        n, L, width, dtype=torch.float32, device=device
                    )

    def update(self, site: HookSite, act: Tensor, ctx: BatchContext) -> None:
        mask = ctx.mask(self.regions)  # [batch pos]
        batch, pos = mask.shape
        idx = ctx.batch.index
        layer = site.layer
        if site.kind == "mlp_in":
            self.scratch[(layer, "x")] = act.reshape(batch * pos, -1)
            if layer == self.first:
                self.state["tokens"][idx] += mask.sum(1)
            return
        if site.kind == "expert_weights":
            self.scratch[(layer, "w")] = act
            return
        if site.kind in ("shared_expert_pre", "mlp_pre"):  # always-on neurons: the dense rule
            act = act.reshape(batch, pos, -1)
            fired = (act > 0) & mask[..., None]
            self.state["shared_counts"][idx, layer, : act.shape[-1]] += fired.sum(1).to(self.dtype)
            if self.activation_sums:
                values = torch.where(mask[..., None], self.act(act), 0.0).double().sum(1)
                self.state["shared_activation"][idx, layer, : act.shape[-1]] += values.float()
            return
        # expert_indices: the last routing hook of the layer
        flat_mask = mask.reshape(-1)
        E = self.facts.n_experts
        routed = torch.zeros(batch * pos, E, dtype=torch.bool, device=act.device)
        routed.scatter_(1, act.long(), True)
        routed &= flat_mask[:, None]
        per_record = routed.reshape(batch, pos, E).sum(1)
        self.state["expert_counts"][idx, layer] += per_record
        weights = torch.where(routed, self.scratch.pop((layer, "w")), 0.0).double()
        self.state["expert_weights"][idx, layer] += weights.reshape(batch, pos, E).sum(1)
        x = self.scratch.pop((layer, "x"))
        if self.neurons:
            self._count_neurons(layer, x, routed, per_record, idx, pos)

    def _count_neurons(self, layer, x, routed, per_record, idx, pos) -> None:
        gate = self.gates[layer]
        for e in range(gate.shape[0]):
            tokens = routed[:, e].nonzero().flatten()
            if len(tokens) == 0:
                continue
            pre = x[tokens] @ gate[e].T  # [tokens d_expert]
            owner = tokens // pos  # the batch row of each token
            counts = torch.zeros(per_record.shape[0], pre.shape[1], dtype=torch.int32, device=x.device)
            counts.index_add_(0, owner, (pre > 0).to(torch.int32))
            hit = (per_record[:, e] > 0).nonzero().flatten()
            sums = None
            if self.activation_sums:
                acc = torch.zeros(counts.shape, dtype=torch.float64, device=x.device)
                acc.index_add_(0, owner, self.act(pre).double())
                sums = acc[hit].float().cpu()
            keys = torch.stack(
                [idx[hit].cpu(), torch.full_like(hit.cpu(), layer), torch.full_like(hit.cpu(), e)], 1
            )
            self.rows.append((keys.int(), counts[hit].to(self.dtype).cpu(), sums))

    def result(self) -> "ExpertStats":
        enc = self.encoded
        state = {k: v.cpu() for k, v in self.state.items()}
        if self.neurons:
            d = max(max(w[:-1], default=0) for w in self.widths)
            keys = torch.cat([r[0] for r in self.rows]) if self.rows else torch.zeros(0, 3, dtype=torch.int32)
            values = (
                torch.cat([r[1] for r in self.rows]) if self.rows else torch.zeros(0, d, dtype=self.dtype)
            )
            _, L, E = state["expert_counts"].shape
            order = torch.argsort((keys[:, 0].long() * L + keys[:, 1]) * E + keys[:, 2])
            state |= {"neuron_index": keys[order], "neuron_counts": values[order]}
            if self.activation_sums:
                sums = torch.cat([r[2] for r in self.rows]) if self.rows else torch.zeros(0, d)
                state["neuron_activation"] = sums[order]
            self.rows = []
        return ExpertStats(
            **state,
            ids=[r.id for r in enc.records],
            record_categories=[r.category for r in enc.records],
            categories=list(enc.categories),
            widths=self.widths,
            settings={"regions": list(self.regions), "model": self.facts.name, "data": enc.fingerprint},
        )


@dataclass(kw_only=True, repr=False)
class ExpertStats(Result):
    """Routing and per-expert neuron firing counts per record.

    Expert neurons are sparse: row ``i`` of ``neuron_counts [row d_expert]`` holds, for the
    (record, layer, expert) in ``neuron_index[i]``, how many counted tokens routed to that expert
    fired each neuron (rows only where the record routed a counted token there; sorted).
    ``shared_counts [record layer d_always_on]`` counts the always-on neurons (shared expert, or the
    MLP of a dense layer; zero-padded past each layer's width, see ``widths``).
    """

    tokens: Int[Tensor, " record"]
    expert_counts: Int[Tensor, "record layer expert"]
    expert_weights: Float[Tensor, "record layer expert"]
    ids: list[str]
    record_categories: list[str]
    categories: list[str]
    neuron_index: Int[Tensor, "row 3"] | None = None
    neuron_counts: Integer[Tensor, "row d_expert"] | None = None
    neuron_activation: Float[Tensor, "row d_expert"] | None = None
    shared_counts: Integer[Tensor, "record layer d_shared"] | None = None
    shared_activation: Float[Tensor, "record layer d_shared"] | None = None
    widths: list[list[int]] | None = None
    settings: dict = field(default_factory=dict)

    def dense_neuron_counts(self) -> Int[Tensor, "record layer expert d_expert"]:
        """The sparse expert-neuron counts as one dense int32 tensor (small models only)."""
        if self.neuron_counts is None:
            raise ValueError("Neuron counts were not kept; run ExpertFiring(neurons=True).")
        out = torch.zeros(*self.expert_counts.shape, self.neuron_counts.shape[1], dtype=torch.int32)
        rec, layer, exp = self.neuron_index.long().unbind(1)
        out[rec, layer, exp] = self.neuron_counts.to(torch.int32)
        return out

    def unit_values(self, records: list[int], what: Literal["counts", "activation"] = "counts") -> Tensor:
        """Counts (int64) or activation sums (float64) of ``records`` summed, over all units in the
        flat order of :attr:`widths` (layer, then expert slot, then neuron; see ``NeuronSets.flat``)."""
        if self.widths is None or self.neuron_counts is None:
            raise ValueError("Neuron counts were not kept; run ExpertFiring(neurons=True).")
        rows_v, shared = (
            (self.neuron_counts, self.shared_counts)
            if what == "counts"
            else (self.neuron_activation, self.shared_activation)
        )
        if rows_v is None:
            raise ValueError("Activation sums were not kept; run ExpertFiring(activation_sums=True).")
        dtype = torch.int64 if what == "counts" else torch.float64
        starts = unit_starts(self.widths)
        out = torch.zeros(int(sum(map(sum, self.widths))), dtype=dtype)
        rec = self.neuron_index[:, 0].long()
        for r in records:  # rows are sorted by record
            lo, hi = torch.searchsorted(rec, torch.tensor([r, r + 1])).tolist()
            keys = self.neuron_index[lo:hi].long()
            cols = starts[keys[:, 1], keys[:, 2]][:, None] + torch.arange(rows_v.shape[1])
            out.index_add_(0, cols.flatten(), rows_v[lo:hi].to(dtype).flatten())
            if shared is not None:
                for layer, w in enumerate(self.widths):
                    if w[-1]:
                        out[starts[layer, -1] : starts[layer, -1] + w[-1]] += shared[r, layer, : w[-1]].to(
                            dtype
                        )
        return out

    def unit_denominators(self, records: list[int], kind: Literal["routed", "all"]) -> Int[Tensor, " unit"]:
        """Per unit, the tokens its frequency is over (summed over ``records``): the counted tokens
        (``"all"``), or for expert neurons the counted tokens routed to their expert (``"routed"``)."""
        tokens = int(self.tokens[records].sum())
        widths = torch.tensor(self.widths, dtype=torch.long)
        per_slot = torch.full(widths.shape, tokens, dtype=torch.long)
        if kind == "routed":
            per_slot[:, :-1] = self.expert_counts[records].sum(0)
        return torch.repeat_interleave(per_slot.flatten(), widths.flatten())

    def expert_frequency(
        self, weighting: Literal["binary", "weight"] = "binary"
    ) -> Float[Tensor, "record layer expert"]:
        """f_ej(I): share of counted tokens routed to expert e of layer j (or mean routing weight)."""
        values = self.expert_counts.double() if weighting == "binary" else self.expert_weights
        return values / self.tokens.clamp(min=1).double()[:, None, None]

    def routing_share(self, category: str | None = None) -> Float[Tensor, "layer expert"]:
        """Share of the counted tokens (of one category, or of all records) routed to each expert.

        Each sparse layer's shares sum to the router's top-k (every token goes to k experts).
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
            own = [r for r, c in enumerate(self.record_categories) if c == cat]
            rows.append(
                {
                    "category": cat,
                    "tokens": int(self.tokens[own].sum()),
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

    _TENSORS = (
        "tokens",
        "expert_counts",
        "expert_weights",
        "neuron_index",
        "neuron_counts",
        "neuron_activation",
        "shared_counts",
        "shared_activation",
    )

    def _saved(self):
        return (
            {k: getattr(self, k) for k in self._TENSORS if getattr(self, k) is not None},
            {
                "ids": self.ids,
                "record_categories": self.record_categories,
                "categories": self.categories,
                "widths": self.widths,
                "settings": self.settings,
            },
        )

    @classmethod
    def _from_saved(cls, tensors, meta, path) -> "ExpertStats":
        return cls(
            **{k: v for k, v in tensors.items() if k in cls._TENSORS},
            ids=meta["ids"],
            record_categories=meta["record_categories"],
            categories=meta["categories"],
            widths=meta.get("widths"),
            settings=meta["settings"],
        )
