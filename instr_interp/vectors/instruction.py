"""Instruction (function) vectors from causal attention heads (METHODS.md §8 steps 3-4; steps 1-2,
head means and head effects, are in :mod:`instr_interp.vectors.heads`).

3. :func:`instruction_vector`: the sum over the top-``k`` heads of ``W_O[layer, head] @ mean`` —
   their additive contribution to the residual stream (no bias), plus the layer to add it at.
4. :func:`add_vector`: add the vector to ``blocks.L.hook_resid_post`` at the last prompt token,
   every position, or a mask.

GQA: ``W_O`` maps the concatenated *query* heads, so a vector sums per-query-head contributions.
"""

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from ..checks import check_layer, check_layers, check_units
from ..interventions.vectors import add_vector
from ..models import model_facts
from ..results import Result
from .heads import Method, check_means, head_effects, head_means, random_heads, top_heads
from .prompts import RESPONSE_TOKENS, check_form, check_score, filtered_queries, instruction_accuracy
from .tasks import Task, evaluate_task

__all__ = [
    "InstructionVector",
    "add_vector",
    "instruction_vector",
    "sweep_layers",
    "vector_scores",
    "vector_from_heads",
]


def vector_from_heads(
    model, means: Float[Tensor, "layer head d_head"], heads: Int[Tensor, "k 2"]
) -> Float[Tensor, " d_model"]:
    """Sum over ``heads`` of the head's mean placed in its slot of the concatenated head outputs
    and multiplied by the output projection: ``sum W_O[layer, head] @ means[layer, head]`` (no bias)."""
    check_means(model, means)
    heads = check_units(heads, means.shape[:2], names=("layer", "head"), what="heads")
    w_o = model.W_O  # [layer head d_head d_model]
    vec = torch.zeros(w_o.shape[-1], dtype=torch.float64)
    with torch.no_grad():
        for layer, head in heads.tolist():
            vec += (means[layer, head].double().to(w_o.device) @ w_o[layer, head].double()).cpu()
    return vec.float()


# ---------------------------------------------------------------------------------------------
# The vector


@dataclass(kw_only=True, repr=False)
class InstructionVector(Result):
    """A task's instruction (function) vector and the heads it is built from.

    ``head_means`` holds the mean ``z`` of *every* head (``[layer, head, d_head]``) so other head sets
    (e.g. random controls) can be built from the same means; ``head_effects`` is NaN where not
    computed (layers skipped, or ``heads=`` given).
    """

    task: str
    head_effects: Float[Tensor, "layer head"]
    top_heads: Int[Tensor, "k 2"]
    head_means: Float[Tensor, "layer head d_head"]
    vector: Float[Tensor, " d_model"]
    layer: int
    scale: float = 1.0  # add_vector's default multiplier (chosen by the sweep)
    sweep: pd.DataFrame | None = None  # validation sweep: layer, scale, accuracy, p_target
    settings: dict = field(default_factory=dict)

    def _facts(self) -> dict[str, object]:
        heads = ", ".join(f"L{a}H{b}" for a, b in self.top_heads.tolist()[:5])
        n_layers, n_heads = self.head_effects.shape
        return {
            "task": self.task,
            "vector": f"d_model {self.vector.shape[0]}, norm {float(self.vector.norm()):.3f}, added after layer "
            f"{self.layer} x {self.scale:g}",
            "top heads": f"{len(self.top_heads)} of {n_layers} x {n_heads}: {heads}"
            + ("..." if len(self.top_heads) > 5 else ""),
        }

    def plot(self):
        """Heatmap of the head effects ``[layer, head]`` with the top heads marked."""
        import plotly.graph_objects as go

        eff = self.head_effects.double().numpy()
        fig = go.Figure(
            go.Heatmap(
                z=eff,
                colorscale="RdBu",
                zmid=0,
                colorbar=dict(title="AIE"),
                x=list(range(eff.shape[1])),
                y=list(range(eff.shape[0])),
            )
        )
        tops = self.top_heads.tolist()
        fig.add_trace(
            go.Scatter(
                x=[h for _, h in tops],
                y=[layer for layer, _ in tops],
                mode="markers",
                marker=dict(symbol="x", color="black", size=9),
                name="top heads",
            )
        )
        fig.update_layout(
            title=f"Average indirect effect of each head ({self.task})",
            xaxis_title="head",
            yaxis_title="layer",
            yaxis_autorange="reversed",
        )
        return fig

    def top_share(self) -> float:
        """Share of the total positive head effect (over the computed heads) held by the top heads;
        NaN when no effect was computed (``heads=`` given)."""
        finite = torch.isfinite(self.head_effects)
        if not finite.any():
            return float("nan")
        top = self.head_effects[self.top_heads[:, 0], self.top_heads[:, 1]].clamp(min=0).sum()
        return float(top / self.head_effects[finite].clamp(min=0).sum().clamp(min=1e-12))

    def to_frame(self) -> pd.DataFrame:
        """The top heads with their effects."""
        rows = [
            {"layer": a, "head": b, "effect": float(self.head_effects[a, b])}
            for a, b in self.top_heads.tolist()
        ]
        return pd.DataFrame(rows)

    def _saved(self):
        tensors = {
            "head_effects": self.head_effects,
            "top_heads": self.top_heads,
            "head_means": self.head_means,
            "vector": self.vector,
        }
        meta = {
            "task": self.task,
            "layer": self.layer,
            "scale": self.scale,
            "sweep": None if self.sweep is None else self.sweep.to_dict(orient="list"),
            "settings": self.settings,
        }
        return tensors, meta

    @classmethod
    def _from_saved(cls, tensors, meta, path) -> "InstructionVector":
        return cls(
            task=meta["task"],
            head_effects=tensors["head_effects"],
            top_heads=tensors["top_heads"],
            head_means=tensors["head_means"],
            vector=tensors["vector"],
            layer=int(meta["layer"]),
            scale=float(meta["scale"]),
            sweep=None if meta["sweep"] is None else pd.DataFrame(meta["sweep"]),
            settings=meta["settings"],
        )


def sweep_layers(
    model,
    vector: Float[Tensor, " d_model"],
    task: Task,
    *,
    layers: Sequence[int] | None = None,
    scale: float | Sequence[float] = 1.0,
    batch_size: int = 16,
    progress: bool = True,
    form: str = "few_shot",
    score: str = "first_token",
    score_dropped: bool = False,
) -> pd.DataFrame:
    """Zero-shot accuracy and mean answer probability on ``task`` with ``scale * vector`` added at
    the last prompt token after each candidate layer (for each scale, if several).

    ``form="few_shot"`` scores the bare ``Q: x\nA:`` prompts by first-token accuracy;
    ``form="instruction"`` the task's instruction prompts in the model's own format (chat template
    where it has one) by ``score`` (``"first_token"`` or ``"in_response"``, see
    :func:`instr_interp.vectors.prompts.instruction_accuracy`; ``p_target`` is NaN for
    ``"in_response"``), without their instruction when ``score_dropped``."""
    check_form(form, None)
    check_score(form, score, score_dropped)
    layers = range(model.cfg.n_layers) if layers is None else check_layers(model, layers)
    scales = [scale] if isinstance(scale, (int, float)) else list(scale)
    rows = []
    grid = [(layer, s) for s in scales for layer in layers]
    for layer, s in tqdm(grid, desc="layer sweep", disable=not progress):
        with add_vector(model, vector, layer=layer, scale=s):
            accuracy, p_target = _zero_shot(model, task, form, batch_size, score, score_dropped)
        rows.append({"layer": int(layer), "scale": float(s), "accuracy": accuracy, "p_target": p_target})
    return pd.DataFrame(rows)


def _zero_shot(
    model, task: Task, form: str, batch_size: int, score: str = "first_token", score_dropped: bool = False
) -> tuple[float, float]:
    """Zero-shot accuracy and mean answer probability (NaN for ``score="in_response"``) in the use
    form of a vector of ``form``."""
    if form == "instruction":
        return instruction_accuracy(
            model, task, batch_size=batch_size, metric=score, drop_instruction=score_dropped
        )
    score = evaluate_task(model, task, batch_size=batch_size, progress=False)
    return score.accuracy, float(score.frame["p_target"].mean())


def instruction_vector(
    model,
    task: Task,
    *,
    k: int = 10,
    layer: int | None = None,
    heads: Int[Tensor, "k 2"] | Sequence[Sequence[int]] | None = None,
    method: Method = "atp",
    means: Float[Tensor, "layer head d_head"] | None = None,
    shots: int = 5,
    n_means: int = 100,
    n_prompts: int = 25,
    sweep: bool = True,
    n_val: int = 10,
    candidate_layers: Sequence[int] | None = None,
    scales: Sequence[float] = (1.0, 2.0),
    seed: int = 0,
    batch_size: int = 8,
    progress: bool = True,
    form: str = "few_shot",
    corruption: str | None = None,
    protocol: str = "default",
    only_correct: bool | None = None,
    score: str = "first_token",
    score_dropped: bool = False,
) -> "InstructionVector":
    """Build a task's instruction vector from its most causal heads.

    Args:
        task: the task; with ``layer=None`` and ``sweep=True`` its pairs are split (``seed``) into a
            validation part of ``n_val`` pairs for the layer sweep and the rest for means and effects.
        k: number of top heads.
        layer: injection layer (the vector is added at ``blocks.{layer}.hook_resid_post``). None:
            sweep ``candidate_layers`` (default all) and keep the best zero-shot validation accuracy
            (ties: higher mean answer probability, then the earlier layer); with ``sweep=False``,
            ``n_layers // 3``. The sweep also picks the vector's ``scale`` among ``scales``
            (ties: the smaller); without a sweep the scale is 1.
        heads: build from these ``(layer, head)`` rows instead of the top heads (universal sets,
            random controls from :func:`random_heads`); effects are then not computed (NaN).
        method: head-effect method for ranking heads, ``"atp"`` (default: one forward and one backward;
            measured on SmolLM2 to pick heads whose vector works, see docs/vectors.md) or ``"exact"``
            (the reference; ``n_layers`` forwards of ``n_heads`` x the prompts, ~30x slower there).
        means: reuse head means (e.g. ``other_iv.head_means``) instead of computing them.
        shots: demonstrations in the clean (means) and corrupted (effects) prompts.
        n_means: clean prompts for the means (only correctly answered ones count).
        n_prompts: corrupted prompts for the effects.
        form: the prompts means and effects are built on, and the validation sweep's form:
            ``"few_shot"`` (raw ``Q: x\nA:`` with ``shots`` demonstrations, validated zero-shot on
            ``Q: x\nA:``) or ``"instruction"`` (zero-shot: the task's instruction and the query in
            the model's own prompt format, the chat template where it has one, as ``finetune``
            trains on them; validated in that format). See :mod:`instr_interp.vectors.prompts`.
        corruption: the corrupted prompts of the effects: ``"shuffle"`` (few-shot labels shuffled;
            the default for ``"few_shot"``) or ``"drop_instruction"`` (the instruction prompt
            without its instruction; the default for ``"instruction"``).
        protocol: ``"default"`` or ``"todd"`` (Todd et al.'s: 10 shots, the queries filtered to
            those the model answers right at 10 shots, means over ``n_means`` random prompts of
            filtered queries, all counted; needs ``form="few_shot"``).

        only_correct: average the means only over the clean prompts the model answers right (first
            answer token). Default: yes for ``"few_shot"``; no for ``"instruction"`` (a chat model
            rarely starts its reply with the bare answer, and Jiang et al. keep low-NLL prompts
            rather than correct ones for generation tasks) and for ``protocol="todd"`` (its queries
            are filtered already).
        score: the validation sweep's metric with ``form="instruction"``: ``"first_token"`` (the
            argmax at the last prompt token is the first response token) or ``"in_response"`` (the
            answer is a whole word or phrase of the greedy response of at most 16 tokens; for chat
            models that answer in a sentence). See :func:`instr_interp.vectors.prompts.instruction_accuracy`.
            With ``"in_response"`` there is no answer probability, so sweep ties go to the smaller
            scale, then the earlier layer. ``form="few_shot"`` allows only ``"first_token"``.
        score_dropped: validate on the validation pairs' prompts without their instruction (the query
            alone as the user turn), where the vector has the task to restore; needs
            ``form="instruction"``.

    The chosen ``scale`` is carried by the vector: :func:`add_vector` and ``finetune`` use it.

    Returns:
        An :class:`InstructionVector`.
    """
    facts = model_facts(model)
    corruption = check_form(form, corruption)
    check_score(form, score, score_dropped)
    if protocol not in ("default", "todd"):
        raise ValueError(f"protocol must be 'default' or 'todd'; got {protocol!r}.")
    if protocol == "todd" and form != "few_shot":
        raise ValueError("protocol='todd' builds from few-shot prompts; use form='few_shot'.")
    layer = None if layer is None else check_layer(model, layer)  # before any pass
    if candidate_layers is not None:
        check_layers(model, candidate_layers, what="candidate_layers")
    if heads is not None:
        heads = check_units(heads, (facts.n_layers, facts.n_heads), names=("layer", "head"), what="heads")
    do_sweep = layer is None and sweep
    train, val = task.split(seed, n_val) if do_sweep else (task, None)
    n_correct = None
    shots = 10 if protocol == "todd" else shots
    if only_correct is None:
        only_correct = form == "few_shot" and protocol != "todd"
    common = dict(form=form, shots=shots, seed=seed, batch_size=batch_size, progress=progress)
    mean_queries = effect_queries = None
    if protocol == "todd":
        kw = dict(shots=shots, batch_size=batch_size, progress=progress)
        mean_queries = filtered_queries(model, train, n=n_means, seed=seed, **kw)
        effect_queries = filtered_queries(model, train, n=n_prompts, seed=seed + 1, **kw)
    if means is None:
        means, n_correct = head_means(
            model,
            train,
            n_prompts=n_means,
            queries=mean_queries,
            only_correct=only_correct,
            **common,
        )
    check_means(model, means)
    if heads is None:
        effects = head_effects(
            model,
            train,
            method=method,
            means=means,
            n_prompts=n_prompts,
            corruption=corruption,
            queries=effect_queries,
            **common,
        )
        chosen = top_heads(effects, k)
    else:
        chosen = heads
        effects = torch.full((facts.n_layers, facts.n_heads), float("nan"))
    vector = vector_from_heads(model, means, chosen)
    table, scale = None, 1.0
    if do_sweep:
        table, layer, scale = _best_layer(
            model, vector, val, candidate_layers, scales, batch_size, progress, form, score, score_dropped
        )
    elif layer is None:
        layer = facts.n_layers // 3
    layer = check_layer(model, int(layer))
    settings = {
        "k": len(chosen),
        "method": method if heads is None else "given heads",
        "shots": shots,
        "n_means": n_means,
        "n_correct": n_correct,
        "n_prompts": n_prompts,
        "seed": seed,
        "n_val": n_val if do_sweep else 0,
        "model": facts.name,
        "form": form,
        "corruption": corruption,
        "protocol": protocol,
        "only_correct": only_correct,
        "score": score,
        "score_dropped": score_dropped,
        "score_max_new_tokens": RESPONSE_TOKENS if score == "in_response" else None,
        "scale": scale,
        "candidate_layers": list(candidate_layers) if candidate_layers is not None else "all",
    }
    return InstructionVector(
        task=task.name,
        head_effects=effects,
        top_heads=chosen,
        head_means=means.float(),
        vector=vector,
        layer=layer,
        scale=scale,
        sweep=table,
        settings=settings,
    )


def _best_layer(
    model,
    vector,
    val: Task,
    candidate_layers,
    scales,
    batch_size: int,
    progress: bool,
    form: str,
    score: str,
    score_dropped: bool,
):
    """The layer sweep of :func:`instruction_vector`: the sweep table, and the layer and scale with the
    best zero-shot validation accuracy (ties: higher answer probability where there is one, smaller
    scale, earlier layer)."""
    table = sweep_layers(
        model,
        vector,
        val,
        layers=candidate_layers,
        scale=scales,
        batch_size=batch_size,
        progress=progress,
        form=form,
        score=score,
        score_dropped=score_dropped,
    )
    best = table.sort_values(
        ["accuracy", "p_target", "scale", "layer"], ascending=[False, False, True, True]
    ).iloc[0]
    if not (table["accuracy"] > 0).any() and table["p_target"].isna().all():
        warnings.warn(
            f"instruction_vector: no candidate layer and scale gave a correct validation answer ({len(val.pairs)} "
            f"pairs, score {score!r}); layer {int(best['layer'])} and scale {best['scale']:g} are tie-breaks, not a "
            "choice the data made. Check the vector's prompts and the score, or pass layer= yourself.",
            UserWarning,
            stacklevel=3,
        )
    return table, int(best["layer"]), float(best["scale"])


# ---------------------------------------------------------------------------------------------
# Evaluation table


def vector_scores(
    model,
    vectors: Sequence[InstructionVector],
    tasks: Sequence[Task],
    *,
    n_random: int = 3,
    scale: float | None = None,
    batch_size: int = 16,
    progress: bool = True,
    form: str = "few_shot",
    score: str = "first_token",
    score_dropped: bool = False,
) -> pd.DataFrame:
    """Zero-shot accuracy per task: no vector, with the task's vector, and with vectors
    from as many random heads (same means, same layer; mean over ``n_random`` seeds).

    Args:
        vectors: one :class:`InstructionVector` per task (matched by position).
        tasks: held-out pairs to score (e.g. the second part of ``task.split(...)``).
        form: score bare ``Q: x\nA:`` prompts (``"few_shot"``) or the task's instruction prompts
            in the model's own format (``"instruction"``).
        score: with ``form="instruction"``, ``"first_token"`` (first-response-token accuracy) or
            ``"in_response"`` (the answer is a whole word or phrase of the greedy response); see
            :func:`instr_interp.vectors.prompts.instruction_accuracy`.
        score_dropped: with ``form="instruction"``, score the prompts without their instruction
            (the query alone as the user turn).

    Returns:
        One row per task: ``task, n, layer, scale, k, zero_shot, with_vector, random_heads, lift,
        score, score_dropped``.
    """
    if len(vectors) != len(tasks):
        raise ValueError(f"Got {len(vectors)} vectors for {len(tasks)} tasks; pass one vector per task.")
    check_form(form, None)
    check_score(form, score, score_dropped)
    scored = dict(score=score, score_dropped=score_dropped)
    rows = []
    for iv, task in zip(vectors, tasks):
        base = _zero_shot(model, task, form, batch_size, **scored)[0]
        with add_vector(model, iv, scale=scale):
            steered = _zero_shot(model, task, form, batch_size, **scored)[0]
        controls = []
        for seed in tqdm(range(n_random), desc=f"random heads {task.name}", disable=not progress):
            heads = random_heads(model, len(iv.top_heads), seed=seed)
            with add_vector(
                model,
                vector_from_heads(model, iv.head_means, heads),
                layer=iv.layer,
                scale=iv.scale if scale is None else scale,
            ):
                controls.append(_zero_shot(model, task, form, batch_size, **scored)[0])
        rows.append(
            {
                "task": task.name,
                "n": len(task),
                "layer": iv.layer,
                "scale": iv.scale if scale is None else scale,
                "k": len(iv.top_heads),
                "zero_shot": base,
                "with_vector": steered,
                "random_heads": sum(controls) / len(controls) if controls else float("nan"),
                "lift": steered - base,
                **scored,
            }
        )
    return pd.DataFrame(rows)
