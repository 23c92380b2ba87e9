"""Instruction-specific neurons of MoE models: units (layer, expert, neuron) (METHODS.md section 2).

A neuron inside routed expert e fires on a token only when the token is routed to e (and its gate
pre-activation is positive). Its firing frequency on an instruction is its count over a
denominator chosen by ``expert_denominator``:

- ``"all"`` (default): all counted tokens of the instruction, p_eij(I) = (1/T) sum_t 1[fires] 1[routed]
  — METHODS.md's (and SPARCOM's) formula. A neuron ranks high when its expert is used often *and*
  it fires there, so the sets reflect both routing and firing; every unit of a record shares one
  denominator, as in the dense rule.
- ``"routed"``: the counted tokens routed to the neuron's expert. Firing given routing only; a
  neuron of an expert that took one token and fired there has p = 1, so rarely used experts flood
  the top of the ranking with frequencies from one or two tokens. Offered for the conditional
  question, not the default.

Always-on neurons (a shared expert, the MLP of a dense layer of a mixed stack) follow the dense
rule over all counted tokens under both. ``select="top"`` keeps the top ``top`` fraction of all
units (routed + always-on); ``select="threshold"`` keeps every unit at or above a frequency.
"""

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from ..engine import run
from .expert_firing import ExpertFiring, ExpertStats
from .neurons import NeuronSets
from .selection import _KEYED, check_select, check_tie_break, tie_decided_share, tie_key, top_neurons

__all__ = ["Denominator", "find_expert_isns", "sets_from_expert_neurons"]

Denominator = Literal["all", "routed"]


def _check_denominator(expert_denominator: str) -> None:
    if expert_denominator not in ("all", "routed"):
        raise ValueError(f"Unknown expert_denominator {expert_denominator!r}; choose 'all' or 'routed'.")


def _layer_key(act: Tensor, widths, tie_break: str) -> Tensor:
    """The flat tie-break key of the units, normalised within each layer (all its expert slots) by
    :func:`~instr_interp.sparcom.selection.tie_key`."""
    out, start = [], 0
    for layer in widths:
        size = int(sum(layer))
        out.append(tie_key(act[start : start + size][None], tie_break))
        start += size
    return torch.cat(out)


def _choose(
    counts: Tensor, denom: Tensor, act, k, tie_break, select, threshold
) -> tuple[Tensor, int, float | None]:
    """One set: flat unit indices, units tied at the cut, share decided by the tie-break."""
    if select == "threshold":
        need = torch.clamp(torch.ceil(threshold * denom.double() - 1e-9), min=1).long()
        return ((denom > 0) & (counts >= need)).nonzero().flatten(), 0, None
    # the ranking key: integer counts where every unit shares one denominator (exact), else the rank
    # of the frequency (IEEE division is correctly rounded, so equal fractions tie exactly, and
    # fractions of counts this small never collide); units with no routed token rank at 0
    key = counts
    if not bool((denom == denom[0]).all()):
        key = torch.unique(counts.double() / denom.clamp(min=1).double(), return_inverse=True)[1]
    flat, n_tied = top_neurons(key, act, k, "raw" if act is not None else tie_break)  # act: normalised
    return flat, n_tied, tie_decided_share(key, flat)


def sets_from_expert_neurons(
    stats: ExpertStats,
    *,
    top: float = 0.01,
    rule: Literal["pooled", "majority"] = "pooled",
    tie_break: str = "layer_rank",
    select: Literal["top", "threshold"] = "top",
    threshold: float | None = None,
    expert_denominator: str = "all",  # Denominator
) -> NeuronSets:
    """ISN sets with units (layer, expert, neuron) from :class:`ExpertStats` (see :func:`find_expert_isns`)."""
    if stats.neuron_counts is None or stats.widths is None:
        raise ValueError("Expert-neuron counts are needed; run ExpertFiring(neurons=True).")
    select, threshold = check_select(select, threshold, top, rule=rule)
    check_tie_break(tie_break)
    _check_denominator(expert_denominator)
    use_act = select == "top" and tie_break in _KEYED
    if use_act and stats.neuron_activation is None:
        raise ValueError(
            f"tie_break={tie_break!r} needs activation sums (ExpertFiring(activation_sums=True))."
        )
    n_units = int(sum(map(sum, stats.widths)))
    k = max(1, math.floor(top * n_units)) if select == "top" else None
    shell = NeuronSets(
        instruction_sets={},
        category_sets={},
        record_categories=dict(zip(stats.ids, stats.record_categories)),
        n_layers=len(stats.widths),
        d_mlp=max(max(w[:-1]) for w in stats.widths),
        widths=stats.widths,
        settings={
            **stats.settings,
            "select": select,
            "top": top if select == "top" else None,
            "threshold": threshold,
            "k": k,
            "rule": rule,
            "tie_break": tie_break if select == "top" else None,
            "expert_denominator": expert_denominator,
        },
    )

    def pick(records: list[int], label: str) -> Tensor:
        counts = stats.unit_values(records)
        act = (
            _layer_key(stats.unit_values(records, "activation"), stats.widths, tie_break) if use_act else None
        )
        denom = stats.unit_denominators(records, expert_denominator)
        flat, shell.ties[label], decided = _choose(counts, denom, act, k, tie_break, select, threshold)
        if decided is not None:
            shell.tie_decided[label] = decided
        return flat

    for r, rid in enumerate(stats.ids):
        if int(stats.tokens[r]) == 0:
            raise ValueError(
                f"Record {rid!r} has no counted tokens in regions {stats.settings.get('regions')}."
            )
        shell.instruction_sets[rid] = shell.units(pick([r], rid))
    for cat in stats.categories:
        rows = [r for r, c in enumerate(stats.record_categories) if c == cat]
        if rule == "pooled":
            flat = pick(rows, f"category:{cat}")
        else:
            votes = torch.zeros(n_units, dtype=torch.int64)
            for r in rows:
                votes[shell.flat(shell.instruction_sets[stats.ids[r]])] += 1
            flat, shell.ties[f"category:{cat}"] = (votes * 2 >= len(rows)).nonzero().flatten(), 0
        shell.category_sets[cat] = shell.units(flat)
    return shell


def find_expert_isns(
    model,
    data,
    *,
    top: float = 0.01,
    rule: Literal["pooled", "majority"] = "pooled",
    regions: Sequence[str] = ("instruction", "input"),
    tie_break: str = "layer_rank",
    select: Literal["top", "threshold"] = "top",
    threshold: float | None = None,
    expert_denominator: str = "all",  # Denominator
    batch_size: int = 16,
    padding_side: str = "right",
    keep_frequencies: bool = False,
    progress: bool = True,
):
    """Instruction-specific neurons of an MoE model, units ``(layer, expert, neuron)``.

    Called by :func:`~instr_interp.sparcom.selection.find_isns` for MoE models; the arguments are
    its arguments, plus ``expert_denominator`` (``"all"`` or ``"routed"``, see the module docstring).
    ``expert == n_experts`` names a layer's always-on MLP (shared expert, or a dense layer's MLP).

    Returns:
        :class:`NeuronSets` with ``widths`` set, or ``(sets, ExpertStats)`` with ``keep_frequencies``.
    """
    check_select(select, threshold, top, rule=rule)
    check_tie_break(tie_break)
    _check_denominator(expert_denominator)
    if select == "lape":
        raise ValueError("select='lape' is not defined for MoE expert neurons; use 'top' or 'threshold'.")
    probe = ExpertFiring(regions, neurons=True, activation_sums=select == "top" and tie_break in _KEYED)
    (probe,) = run(model, data, [probe], batch_size=batch_size, padding_side=padding_side, progress=progress)
    stats = probe.result()
    sets = sets_from_expert_neurons(
        stats,
        top=top,
        rule=rule,
        tie_break=tie_break,
        select=select,
        threshold=threshold,
        expert_denominator=expert_denominator,
    )
    return (sets, stats) if keep_frequencies else sets
