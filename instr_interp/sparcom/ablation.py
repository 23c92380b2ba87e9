"""The critical role of ISNs (or ISEs): ablate a category's neurons (or experts), measure the rise in
reference NLL on that category, on the others, and under random units with the same per-layer counts."""

import numpy as np
import pandas as pd
import torch

from ..data.dataset import load_instructions
from ..data.encoding import EncodedDataset
from ..engine.likelihood import response_nll
from ..interventions.neurons import ablate_neurons
from .neurons import NeuronSets

__all__ = ["critical_role", "critical_role_summary", "random_like", "plot_critical_role"]


def random_like(
    neurons: torch.Tensor, d_mlp: int, seed: int, widths: list[list[int]] | None = None
) -> torch.Tensor:
    """Random units (neurons, or experts with ``d_mlp`` = experts per layer) with the same number per
    layer as ``neurons`` (seeded, no repeats). MoE neuron sets (``widths`` given, units
    ``(layer, expert, neuron)``): the same number per (layer, expert slot), drawn within that slot."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    if widths is not None:
        for (layer, slot), count in zip(*torch.unique(neurons[:, :2], dim=0, return_counts=True)):
            picks = torch.randperm(widths[int(layer)][int(slot)], generator=gen)[: int(count)]
            out.append(
                torch.stack([torch.full_like(picks, int(layer)), torch.full_like(picks, int(slot)), picks], 1)
            )
        return torch.cat(out) if out else neurons.new_zeros((0, 3))
    for layer, count in zip(*torch.unique(neurons[:, 0], return_counts=True)):
        picks = torch.randperm(d_mlp, generator=gen)[: int(count)]
        out.append(torch.stack([torch.full_like(picks, int(layer)), picks], 1))
    return torch.cat(out) if out else neurons.new_zeros((0, 2))


def critical_role(
    model, data, sets: NeuronSets, *, seeds: int = 3, batch_size: int = 4, progress: bool = False
) -> pd.DataFrame:
    """Per category C: zero S(C) and measure the NLL rise of the reference responses.

    ``sets`` are ISNs (:class:`NeuronSets`: the neurons' post-activations are zeroed) or ISEs
    (:class:`~instr_interp.experts.ExpertSets`: the experts' routing weights are zeroed, see
    :func:`~instr_interp.experts.ablate_experts`); random units are drawn the same way.

    Columns: ``baseline`` (mean NLL on C), ``rise_own`` (on C), ``rise_others`` (mean over the other
    categories' records), ``rise_random`` (zeroing random neurons with the same per-layer counts, mean
    over ``seeds``), ``excess`` = rise_own − rise_random (nats/token; a difference, never a ratio,
    whose denominator could be ≤ 0), ``p_value`` of a one-sided Wilcoxon signed-rank test that
    per-record NLL under ISN ablation exceeds that under random ablation, and ``test_note``: why the
    p-value is NaN when the test is undefined (fewer than 2 records, or every difference 0).
    """
    from scipy.stats import wilcoxon

    data = load_instructions(data) if not isinstance(data, EncodedDataset) else data.data
    missing = [r.id for r in data if not r.response]
    if missing:
        raise ValueError(f"critical_role needs reference responses; missing for {missing[:5]}.")
    from .experts import ExpertSets, ablate_experts

    ablate = ablate_experts if isinstance(sets, ExpertSets) else ablate_neurons
    base = response_nll(model, data, batch_size=batch_size, progress=progress).set_index("id")
    rows = []
    for cat, neurons in sets.category_sets.items():
        if cat not in set(base["category"]):
            continue
        own_ids = base.index[base["category"] == cat]
        with ablate(model, neurons):
            abl = response_nll(model, data, batch_size=batch_size, progress=progress).set_index("id")
        rise = abl["nll"] - base["nll"]
        own = data.filter(category=cat)
        random_nll = []
        for seed in range(seeds):
            with ablate(model, random_like(neurons, sets.d_mlp, seed, getattr(sets, "widths", None))):
                random_nll.append(
                    response_nll(model, own, batch_size=batch_size, progress=progress).set_index("id")["nll"]
                )
        random_mean = pd.concat(random_nll, axis=1).mean(axis=1)
        diff = (abl.loc[own_ids, "nll"] - random_mean.loc[own_ids]).to_numpy()
        p_value, note = float("nan"), ""
        if len(diff) < 2:
            note = f"undefined: {len(diff)} record(s) in the category"
        elif not np.any(diff != 0):
            note = "undefined: every record's NLL is the same under both ablations"
        else:
            p_value = float(wilcoxon(diff, alternative="greater").pvalue)
        rise_random = float((random_mean.loc[own_ids] - base.loc[own_ids, "nll"]).mean())
        rows.append(
            {
                "category": cat,
                "n_records": len(own_ids),
                "n_units": len(neurons),
                "baseline": float(base.loc[own_ids, "nll"].mean()),
                "rise_own": float(rise.loc[own_ids].mean()),
                "rise_others": float(rise.drop(own_ids).mean()) if len(rise) > len(own_ids) else float("nan"),
                "rise_random": rise_random,
                "excess": float(rise.loc[own_ids].mean()) - rise_random,
                "p_value": p_value,
                "test_note": note,
            }
        )
    return pd.DataFrame(rows)


def critical_role_summary(frame: pd.DataFrame, *, alpha: float = 0.05) -> dict:
    """What a :func:`critical_role` frame says over all categories.

    Args:
        frame: the frame of :func:`critical_role`.
        alpha: a category is ``above_random`` when its own-category rise exceeds the random rise
            (``excess > 0``) with a defined one-sided Wilcoxon p-value below ``alpha``.

    Returns:
        A dict: ``above_random`` (those categories, in frame order), ``powerless`` (categories with too
        few records for the test to reach ``alpha`` at all: its smallest attainable p-value, 1 / 2^n for
        n records, is at least ``alpha``), ``tested`` (how many categories
        have a defined test), ``specific`` (how many categories rise more on themselves than on the
        other categories), ``mean_own`` and ``mean_others`` (mean over categories of ``rise_own`` and
        ``rise_others``; NaN rows left out) and ``alpha``.

    Examples:
        >>> import pandas as pd
        >>> f = pd.DataFrame({"category": ["a", "b", "c"], "rise_own": [0.5, 0.1, 0.2], "rise_others": [0.2, 0.3, 0.1],
        ...                   "excess": [0.3, -0.1, 0.1], "p_value": [0.01, 0.9, float("nan")]})
        >>> s = critical_role_summary(f)
        >>> s["above_random"], s["tested"], s["specific"], round(s["mean_own"], 2)
        (['a'], 2, 2, 0.27)
    """
    need = {"category", "rise_own", "rise_others", "excess", "p_value"}
    if not need <= set(frame.columns):
        raise ValueError(
            f"frame needs columns {sorted(need)} (from critical_role); got {list(frame.columns)}."
        )
    above = (frame["excess"] > 0) & (frame["p_value"] < alpha)
    # the exact one-sided signed-rank test cannot go below 1 / 2^n with n records
    powerless = frame[0.5 ** frame["n_records"] >= alpha]["category"].tolist() if "n_records" in frame else []
    return {
        "above_random": frame[above]["category"].tolist(),
        "powerless": powerless,
        "tested": int(frame["p_value"].notna().sum()),
        "specific": int((frame["rise_own"] > frame["rise_others"]).sum()),
        "mean_own": float(frame["rise_own"].mean()),
        "mean_others": float(frame["rise_others"].mean()),
        "alpha": alpha,
    }


def plot_critical_role(frame: pd.DataFrame, unit: str = "ISNs"):
    """Grouped bars: NLL rise on own category, on others, and under random units."""
    import plotly.express as px

    long = frame.melt(
        id_vars="category",
        value_vars=["rise_own", "rise_others", "rise_random"],
        var_name="ablation",
        value_name="NLL rise (nats/token)",
    )
    return px.bar(
        long,
        x="category",
        y="NLL rise (nats/token)",
        color="ablation",
        barmode="group",
        title=f"Zeroing a category's {unit}: rise in reference-response NLL",
    )
