"""LAPE (Tang et al. 2024, "Language-Specific Neurons"), transferred from languages to categories.

The reference (``RUCAIBox/Language-Specific-Neurons``, ``identify.py``) takes, per neuron, its
activation probability in each language (share of that language's tokens on which it fires),
normalises these probabilities over the languages, and keeps the neurons of lowest entropy. Here a
category plays the part of a language. The reference's defaults are ours:

- ``top_rate = 0.01``: keep the 1% of all layers x neurons with the lowest entropy;
- ``filter_rate = 0.95``: before that, drop every neuron none of whose category probabilities
  exceeds the 95th percentile of all (neuron, category) probabilities;
- ``activation_bar_ratio = 0.95``: a kept neuron belongs to every category whose probability exceeds
  the 95th percentile of all probabilities (a neuron may belong to several categories).

Where the reference leaves an order open (``topk`` over equal entropies), ties are broken by the
neuron's largest category probability (descending), then by index; the share of each set decided
this way is reported.
"""

import math

import torch
from jaxtyping import Float, Int, Real
from torch import Tensor

from ..checks import check_fraction

__all__ = ["lape_entropy", "lape_sets"]


def lape_entropy(probs: Float[Tensor, "unit category"]) -> Float[Tensor, " unit"]:
    """Entropy (nats) of each unit's activation probabilities normalised over the categories; a unit
    that never fires gets probability 0 in every category and entropy 0 (as in the reference, which
    maps its NaN to 0).

    Examples:
        >>> lape_entropy(torch.tensor([[0.5, 0.5], [0.2, 0.0], [0.0, 0.0]], dtype=torch.float64)).tolist()
        [0.6931471805599453, 0.0, 0.0]
    """
    total = probs.sum(-1, keepdim=True)
    normed = torch.where(total > 0, probs / torch.where(total > 0, total, 1.0), torch.zeros_like(probs))
    logs = torch.where(normed > 0, normed.log(), torch.zeros_like(normed))
    return 0.0 - (normed * logs).sum(-1)  # 0.0 - x: no -0.0


def _kth(values: Tensor, ratio: float) -> float:
    """The reference's ``kthvalue(round(len * ratio))`` (at least the first value)."""
    k = min(max(1, round(values.numel() * ratio)), values.numel())
    return float(values.flatten().kthvalue(k).values)


def lape_sets(
    counts: Real[Tensor, "category unit"],
    tokens: Real[Tensor, " category"],
    *,
    top_rate: float = 0.01,
    filter_rate: float = 0.95,
    activation_bar_ratio: float = 0.95,
) -> tuple[list[Int[Tensor, " n"]], int, list[float]]:
    """LAPE category sets from pooled firing counts.

    Args:
        counts: per category, the tokens on which each (flat) unit fired.
        tokens: per category, the counted tokens (each > 0).

    Returns:
        ``(sets, n_tied, decided)``: one sorted flat index tensor per category; how many units tied
        with the last one kept at the entropy cut; per category, the share of its set decided by the
        tie-break at that cut (0 when every tied unit was kept).
    """
    for value, what in (
        (top_rate, "top_rate"),
        (filter_rate, "filter_rate"),
        (activation_bar_ratio, "activation_bar_ratio"),
    ):
        check_fraction(value, what=what)
    if counts.ndim != 2 or tokens.shape != (counts.shape[0],):
        raise ValueError(
            f"counts must be [category, unit] and tokens [category]; got {tuple(counts.shape)}, {tuple(tokens.shape)}."
        )
    if counts.shape[0] < 2:
        raise ValueError("LAPE compares categories: it needs at least 2 categories.")
    if bool((tokens <= 0).any()):
        raise ValueError("Every category needs counted tokens for LAPE (a category has 0).")
    probs = (counts.double() / tokens.double()[:, None]).T  # [unit category]
    entropy = lape_entropy(probs)
    floor = _kth(probs, filter_rate)
    entropy = torch.where((probs > floor).any(-1), entropy, torch.full_like(entropy, math.inf))
    n = entropy.numel()
    k = max(1, round(n * top_rate))
    order = torch.arange(n)
    order = order[torch.sort(probs.max(-1).values, descending=True, stable=True).indices]
    order = order[torch.sort(entropy[order], stable=True).indices]
    kept = order[:k]
    cut = entropy[kept[-1]]
    tied_total = int((entropy == cut).sum())
    tied_kept = int((entropy[kept] == cut).sum())
    bar = _kth(probs, activation_bar_ratio)
    sets, decided = [], []
    for c in range(probs.shape[1]):
        members = torch.sort(kept[probs[kept, c] > bar]).values
        at_cut = int((entropy[members] == cut).sum())
        decided.append(at_cut / len(members) if len(members) and tied_total > tied_kept else 0.0)
        sets.append(members)
    return sets, tied_total, decided
