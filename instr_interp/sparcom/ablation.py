"""The critical role of ISNs (or ISEs) by ablation, METHODS.md section 3 (:func:`critical_role`): identify
the sets on some records, zero them on *other* records, and measure the rise in reference-response NLL
on every category, against control sets matched per layer in count, firing frequency and mean
activation (:func:`matched_controls`, from the identification records' statistics,
:func:`unit_features`); or random units with the same per-layer counts (:func:`random_like`).

Every effect is a difference in nats/token (ablated − baseline) with a bootstrap interval over the
evaluation records; where categories are averaged each rise is divided by its category's baseline
NLL (positive), never by a rise (see :class:`~instr_interp.sparcom.critical.CriticalRole`)."""

import dataclasses
import zlib
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from ..checks import check_index
from ..data.dataset import InstructionDataset, load_instructions
from ..data.encoding import EncodedDataset, encode
from ..engine import run
from ..engine.likelihood import response_nll
from ..interventions.neurons import ablate_neurons
from ..models import model_facts
from .critical import KINDS, CriticalRole, ablation_sets
from .experts import ExpertFiring, ExpertSets, ExpertStats, ablate_experts, sets_from_expert_stats
from .firing import FiringStats, NeuronFiring
from .neurons import NeuronSets
from .selection import sets_from_firing

__all__ = [
    "critical_role",
    "identification_stats",
    "check_disjoint",
    "matched_controls",
    "unit_features",
    "subset_stats",
    "random_like",
]


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


def unit_features(stats: FiringStats | ExpertStats) -> Float[Tensor, "layer unit 2"]:
    """Per unit, over all records of ``stats``: ``[..., 0]`` the firing frequency (share of counted
    tokens on which the neuron fires; for experts, the share routed to the expert) and ``[..., 1]``
    the mean activation per counted token (``act_fn(gate)`` summed by ``NeuronFiring(activation_sums=True)``;
    for experts, the routing weight, 0 on tokens not routed there).

    Examples:
        >>> s = FiringStats(counts=torch.tensor([[[2, 0]], [[1, 1]]], dtype=torch.int32), tokens=torch.tensor([2, 2]),
        ...                 category_counts=torch.tensor([[[3, 1]]]), category_tokens=torch.tensor([4]),
        ...                 activation_sums=torch.tensor([[[1.0, -0.5]], [[1.0, 0.5]]], dtype=torch.float64),
        ...                 ids=["a", "b"], record_categories=["x", "x"], categories=["x"], layers=[0])
        >>> unit_features(s)[0].tolist()
        [[0.75, 0.5], [0.25, 0.0]]
    """
    if isinstance(stats, FiringStats):
        if stats.activation_sums is None or stats.counts is None:
            raise ValueError(
                "Matching controls needs per-record counts and activation sums: run "
                "NeuronFiring(per_record=True, activation_sums=True)."
            )
        if list(stats.layers) != list(range(len(stats.layers))):
            raise ValueError(f"stats must cover every layer from 0; got layers {stats.layers}.")
        counts, sums = stats.counts.double().sum(0), stats.activation_sums.sum(0)
    elif isinstance(stats, ExpertStats):
        counts, sums = stats.expert_counts.double().sum(0), stats.expert_weights.double().sum(0)
    else:
        raise TypeError(f"stats must be FiringStats or ExpertStats; got {type(stats).__name__}.")
    tokens = float(stats.tokens.sum())
    if tokens <= 0:
        raise ValueError("stats hold no counted tokens; the features are undefined.")
    return torch.stack([counts / tokens, sums / tokens], -1)


def subset_stats(stats: FiringStats | ExpertStats, ids) -> FiringStats | ExpertStats:
    """The statistics of the records ``ids`` only (in ``stats``' order); category totals are recounted
    from the kept records, so sets chosen from the subset see nothing of the other records."""
    ids = set(ids)
    missing = ids - set(stats.ids)
    if missing:
        raise ValueError(f"stats have no records {sorted(missing)[:5]}; they cover {len(stats.ids)} records.")
    rows = [r for r, rid in enumerate(stats.ids) if rid in ids]
    cats = [c for c in stats.categories if any(stats.record_categories[r] == c for r in rows)]
    keep = {
        "ids": [stats.ids[r] for r in rows],
        "record_categories": [stats.record_categories[r] for r in rows],
        "categories": cats,
        "settings": {**stats.settings, "records": len(rows)},
    }
    per_record = [f.name for f in dataclasses.fields(stats) if isinstance(getattr(stats, f.name), Tensor)]
    for name in per_record:
        value = getattr(stats, name)
        if name in ("category_counts", "category_tokens"):
            continue
        keep[name] = value[rows]
    if isinstance(stats, FiringStats):
        if stats.counts is None:
            raise ValueError("subset_stats needs per-record counts (NeuronFiring(per_record=True)).")
        index = torch.tensor([cats.index(stats.record_categories[r]) for r in rows])
        keep["category_counts"] = torch.zeros(
            len(cats), *stats.counts.shape[1:], dtype=stats.category_counts.dtype
        ).index_add_(0, index, stats.counts[rows].to(stats.category_counts.dtype))
        keep["category_tokens"] = torch.zeros(len(cats), dtype=stats.tokens.dtype).index_add_(
            0, index, stats.tokens[rows]
        )
    return dataclasses.replace(stats, **keep)


def matched_controls(
    units: Int[Tensor, "n 2"],
    features: Float[Tensor, "layer unit feature"],
    n_control: int = 20,
    *,
    k_nearest: int = 10,
    seed: int | Sequence[int] = 0,
) -> list[Int[Tensor, "n 2"]]:
    """``n_control`` control sets matched to ``units`` within each layer.

    Within a layer, features are standardised over all its units (z-scores; a constant feature is
    left centred). Each unit of the set gets a control among its ``k_nearest`` nearest units of the
    same layer (Euclidean distance on the standardised features), drawn uniformly, never one of the
    set's own units and never a unit already drawn for the same control set (when all k nearest are
    taken, the nearest free unit). So every control set has exactly the set's count per layer. Draws
    repeat only when fewer than ``n_control`` different sets exist (e.g. a few experts per layer);
    each draw is tried up to 50 times to differ from the earlier ones.

    Args:
        units: ``[n, 2]`` (layer, unit) pairs of the ablated set.
        features: ``[layer, unit, f]`` per-unit features, e.g. :func:`unit_features`.
        n_control: number of control sets.
        k_nearest: candidates per unit (smaller: closer matches, fewer different sets).
        seed: random seed (an int or a sequence of ints, as for ``numpy.random.default_rng``).

    Examples:
        >>> feats = torch.stack([torch.arange(8.0), torch.zeros(8)], -1)[None]  # one layer, 8 units
        >>> controls = matched_controls(torch.tensor([[0, 4]]), feats, 2, k_nearest=2, seed=0)
        >>> sorted(int(c[0, 1]) for c in controls)  # the two nearest units of unit 4
        [3, 5]
    """
    n_control = check_index(n_control, what="n_control")
    k_nearest = check_index(k_nearest, what="k_nearest")
    if n_control < 1 or k_nearest < 1:
        raise ValueError(f"n_control and k_nearest must be at least 1; got {n_control} and {k_nearest}.")
    units = torch.as_tensor(units).long()
    n_layers, width = features.shape[:2]
    rng = np.random.default_rng(seed)
    plans = []  # per layer: (layer, ranked candidates per set unit)
    for layer in sorted(set(units[:, 0].tolist())):
        if not 0 <= layer < n_layers:
            raise ValueError(f"units name layer {layer}; features cover layers [0, {n_layers}).")
        own = sorted(units[units[:, 0] == layer, 1].tolist())
        free = np.setdiff1d(np.arange(width), own)
        if len(free) < len(own):
            raise ValueError(
                f"Layer {layer}: the set holds {len(own)} of {width} units, leaving {len(free)} to match it; "
                "a control set with the same count cannot avoid the set's own units."
            )
        f = features[layer].double().numpy()
        z = (f - f.mean(0)) / np.where(f.std(0) > 0, f.std(0), 1.0)
        dist = np.linalg.norm(z[own][:, None, :] - z[free][None, :, :], axis=-1)
        plans.append((layer, free[np.argsort(dist, axis=1, kind="stable")]))
    draws, seen = [], set()
    for _ in range(n_control):
        for _attempt in range(50):
            picked = []
            for layer, ranked in plans:
                taken: set[int] = set()
                for row in rng.permutation(len(ranked)):
                    near = [int(j) for j in ranked[row, :k_nearest] if int(j) not in taken]
                    choice = (
                        int(rng.choice(near))
                        if near
                        else next(int(j) for j in ranked[row] if int(j) not in taken)
                    )
                    taken.add(choice)
                    picked += [(layer, choice)]
            key = tuple(sorted(picked))
            if key not in seen:
                break
        seen.add(key)
        draws.append(torch.tensor(key, dtype=torch.long).reshape(-1, 2))
    return draws


def _records(data) -> InstructionDataset:
    return data.data if isinstance(data, EncodedDataset) else load_instructions(data)


def check_disjoint(identify: InstructionDataset, evaluate: InstructionDataset) -> None:
    """Raise when an evaluation record shares its id, or its instruction and input, with an
    identification record."""
    same_id = sorted(set(identify.ids) & set(evaluate.ids))
    seen = {(r.instruction.strip(), r.input.strip()): r.id for r in identify}
    same_text = [(r.id, seen[k]) for r in evaluate if (k := (r.instruction.strip(), r.input.strip())) in seen]
    if same_id or same_text:
        raise ValueError(
            "eval_data must be disjoint from the records that identified the sets: "
            + (f"shared ids {same_id[:5]}" if same_id else "")
            + ("; " if same_id and same_text else "")
            + (
                f"same instruction and input (eval id, identification id) {same_text[:5]}"
                if same_text
                else ""
            )
            + "."
        )


def identification_stats(model, data, batch_size: int, progress: bool):
    """The firing statistics (per-record firing counts and activation sums; routing statistics on an
    MoE model) that :func:`critical_role` identifies sets with and matches controls on."""
    probe = ExpertFiring(neurons=False) if model_facts(model).moe else NeuronFiring(activation_sums=True)
    (probe,) = run(model, data, [probe], batch_size=batch_size, progress=progress)
    return probe.result()


def critical_role(
    model,
    data,
    sets: NeuronSets | Callable | None = None,
    *,
    stats: FiringStats | ExpertStats | None = None,
    eval_data=None,
    split: float | int = 0.5,
    seed: int = 0,
    kinds: Sequence[str] = KINDS,
    names: Sequence[str] | None = None,
    n_control: int = 20,
    k_nearest: int = 10,
    n_boot: int = 1000,
    batch_size: int = 4,
    progress: bool = True,
) -> CriticalRole:
    """Zero sets of ISNs (or ISEs) on records that did not identify them; measure the NLL rise of the
    reference responses on every category, against matched control sets.

    Two ways to keep identification and evaluation apart:

    - ``eval_data=None`` (default): ``data`` is split by :meth:`InstructionDataset.split` (stratified by
      category, records sharing a template or instruction kept on one side, seeded by ``seed``):
      ``split`` a fraction (share of each category evaluated) or an int (evaluation records per
      category). The sets are identified here on the other side, by ``sets``: a rule mapping firing
      statistics to sets (default ``sets_from_firing(stats, top=0.01)``, or
      ``sets_from_expert_stats(stats, top=0.1)`` on an MoE model). Sets already identified cannot be
      used this way (they have seen every record).
    - ``eval_data=`` records: ``data`` are the identification records; ``sets`` are sets identified on
      exactly them (or a rule). Raises ``ValueError`` when an evaluation record shares an id, or an
      instruction and input, with them.

    ``stats`` (optional) are the firing (or routing) statistics of records that include the
    identification records (computed when None); only the identification records' part is used, for
    the rule and for matching the controls (:func:`~instr_interp.sparcom.ablation.unit_features`).

    ``names`` (optional) keeps only the sets of those names (e.g. ``["code", "general"]``; a set's
    controls are seeded by its name, so running sets separately and combining them with
    :meth:`CriticalRole.combine` gives the same result as one run).

    Each set of :func:`ablation_sets` (``kinds``) is zeroed (neurons after the activation function;
    experts' routing weights), then each of its ``n_control`` control sets, matched within each
    layer in count, firing frequency and mean activation (:func:`matched_controls`, ``k_nearest``;
    ``n_control`` at least 20, so that the smallest empirical p-value, 1 / (1 + n_control), is below 0.05).

    Returns:
        A :class:`CriticalRole` (frames ``matrix``, ``null``, ``p_values``, ``diagonal``).
    """
    if (
        isinstance(split, bool)
        or not isinstance(split, (int, float))
        or (isinstance(split, int) and split < 1)
        or (isinstance(split, float) and not 0 < split < 1)
    ):
        raise ValueError(
            f"split must be a fraction in (0, 1) or a number of records per category; got {split!r}."
        )
    if isinstance(n_control, bool) or not isinstance(n_control, int) or n_control < 20:
        raise ValueError(
            f"n_control must be an integer >= 20 (the smallest empirical p-value is 1 / (1 + n_control)); "
            f"got {n_control!r}."
        )
    if not kinds or any(k not in KINDS for k in kinds):
        raise ValueError(f"kinds must be a non-empty selection of {KINDS}; got {tuple(kinds)}.")
    data = _records(data)
    dense = not model_facts(model).moe
    given = isinstance(sets, NeuronSets)
    if given and getattr(sets, "widths", None) is not None:
        raise ValueError(
            "critical_role's matched controls are defined for dense neurons and for experts, not yet for "
            "neurons inside experts (units layer, expert, neuron); ablate those with ablate_neurons and "
            "compare with random_like(..., widths) yourself, or pass ISEs (find_ises)."
        )
    if sets is not None and not given and not callable(sets):
        raise ValueError(
            f"sets must be NeuronSets/ExpertSets, a rule stats -> sets, or None; got {type(sets).__name__}."
        )
    if eval_data is None:
        if given:
            raise ValueError(
                "sets that are already identified have seen every record of data; pass eval_data= (records "
                "disjoint from those that identified them) or a rule (a callable stats -> sets, e.g. "
                "functools.partial(sets_from_firing, top=0.01)) so that the sets are identified on one side of a split."
            )
        identify, evaluate = (
            data.split(None, n_eval=split, seed=seed)
            if isinstance(split, int)
            else data.split(split, seed=seed)
        )
    else:
        identify, evaluate = data, _records(eval_data)
        check_disjoint(identify, evaluate)
    missing = [r.id for r in evaluate if not r.response]
    if missing:
        raise ValueError(f"critical_role needs reference responses; missing for {missing[:5]}.")
    if given and set(sets.record_categories) != set(identify.ids):
        raise ValueError(
            f"sets were identified on {len(sets.record_categories)} records that are not the "
            f"{len(identify)} records of data; pass the records that identified them as data."
        )
    stats = (
        identification_stats(model, identify, batch_size, progress)
        if stats is None
        else subset_stats(stats, identify.ids)
    )
    if not given:
        default = partial(sets_from_firing, top=0.01) if dense else partial(sets_from_expert_stats, top=0.1)
        sets = (sets or default)(stats)
    experts = isinstance(sets, ExpertSets)
    if experts != isinstance(stats, ExpertStats):
        raise ValueError(
            f"{type(sets).__name__} need {'ExpertStats' if experts else 'FiringStats'} as stats."
        )
    features = unit_features(stats)
    chosen = ablation_sets(sets, kinds)
    if names is not None:
        unknown = sorted(set(names) - {c[0] for c in chosen})
        if unknown:
            raise ValueError(f"No set named {unknown} among {[c[0] for c in chosen]} (kinds {tuple(kinds)}).")
        chosen = [c for c in chosen if c[0] in set(names)]
    if not chosen:
        raise ValueError(f"Every set of kinds {tuple(kinds)} is empty; nothing to ablate.")
    controls = [  # seeded by the set's name: a set's controls do not depend on which other sets are run
        matched_controls(
            units, features, n_control, k_nearest=k_nearest, seed=[seed, zlib.crc32(name.encode())]
        )
        for name, _, _, units in chosen
    ]
    encoded = encode(evaluate, model.tokenizer, with_response=True)
    ablate = ablate_experts if experts else ablate_neurons
    done: dict[tuple, Tensor] = {}

    def nll(units: Tensor | None) -> Tensor:
        key = tuple(sorted(map(tuple, units.tolist()))) if units is not None else ()
        if key not in done:
            if units is None:
                frame = response_nll(model, encoded, batch_size=batch_size, progress=False)
            else:
                with ablate(model, units):
                    frame = response_nll(model, encoded, batch_size=batch_size, progress=False)
            done[key] = torch.tensor(frame["nll"].to_numpy(), dtype=torch.float64)
        return done[key]

    baseline = nll(None)
    if (baseline <= 0).any():
        raise ValueError("A baseline NLL is not positive; relative rises (rise / baseline) are undefined.")
    bar = tqdm(
        total=len(chosen) * (1 + n_control), desc="critical role", unit="ablation", disable=not progress
    )
    ablated, control = [], []
    for (_, _, _, units), draws in zip(chosen, controls):
        ablated.append(nll(units))
        bar.update(1)
        row = []
        for draw in draws:
            row.append(nll(draw))
            bar.update(1)
        control.append(torch.stack(row))
    bar.close()
    return CriticalRole(
        names=[c[0] for c in chosen],
        kinds=[c[1] for c in chosen],
        sources=[c[2] for c in chosen],
        units=[c[3] for c in chosen],
        controls=[torch.stack(d) for d in controls],
        record_ids=list(evaluate.ids),
        record_categories=[r.category for r in evaluate],
        categories=list(evaluate.categories),
        baseline=baseline,
        ablated=torch.stack(ablated),
        control=torch.stack(control),
        identified_on=list(identify.ids),
        unit=sets.unit,
        settings={
            "model": model_facts(model).name,
            "eval_data": evaluate.fingerprint(),
            "identify_data": identify.fingerprint(),
            "split": split if eval_data is None else None,
            "seed": seed,
            "n_control": n_control,
            "k_nearest": k_nearest,
            "n_boot": n_boot,
            "kinds": list(kinds),
            "names": None if names is None else list(names),
            "selection": {
                k: v for k, v in sets.settings.items() if isinstance(v, (str, int, float, bool, type(None)))
            },
        },
    )
