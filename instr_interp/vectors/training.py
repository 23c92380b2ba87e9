"""Supervised instruction tuning on reference responses (LoRA via peft, or full), saved so that
``load_model`` reloads it; optionally guided by instruction vectors (METHODS §8, Jiang et al.).

IV guidance follows Jiang et al.'s training code term by term (see :mod:`.guidance`): for a new task
c with instruction vector θ_c computed on the model *before* this task, the teacher is a frozen copy
of the pre-task model with θ_c (times the vector's ``.scale``) added at the last prompt token, at the
attention output of the vector's layer (``site="attn_out"``, the reference's) or after that block
(``site="resid_post"``). With guidance, by default (the reference's units and weights):

- ``kl``: 20 · KL(softmax(new/2) ‖ softmax(teacher/2)) at the last prompt token (no T²), counted
  while above 0.1;
- ``seq_kl``: 0.1 · the same KL summed over every non-padding position and divided by the batch
  size, counted while above 0.1;
- ``head``: 1 · Σ over the vector's top heads of the MSE between the head's output at the last
  prompt token in the training model and in the frozen model *without* θ, each head counted while
  above 0.01;
- no progressive intervention (an option: α(s)·θ_c on the training model over the first half);
- a linear learning-rate warm-up over the first 10% of the steps, then constant;
- a teacher check before training (:func:`.guidance.teacher_check`): the steered pre-task model's
  first-response-token accuracy and answer probability on the training prompts, with a warning when
  it cannot do the task.
"""

import contextlib
import copy
import json
import math
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch
from tqdm.auto import tqdm

from .. import compat
from ..data.dataset import load_instructions
from ..data.encoding import Region, encode
from ..files import publish_dir, staging_dir
from ..interventions.vectors import iv_addition
from ..models import BUNDLED, TUNED, _offline, alias_dir, save_model_dir
from ..results import MANIFEST, Result
from .guidance import (
    _Guidance,
    _guidance_record,
    _guided_loss,
    _response_ce,
    _top_heads,
    _vectors_by_layer,
    guidance_kl,
    last_prompt_positions,
    progressive_alpha,
    teacher_check,
)

__all__ = [
    "FinetuneResult",
    "finetune",
    "guidance_kl",
    "hf_source",
    "iv_addition",
    "last_prompt_positions",
    "progressive_alpha",
    "response_loss",
    "teacher_check",
]


@dataclass(kw_only=True, repr=False)
class FinetuneResult(Result):
    """Where the tuned model was saved, and how training went.

    ``finetune`` writes these facts beside the model (``instr_interp_finetune.json``), so
    ``FinetuneResult.load(model_dir)`` works on a tuned model folder as well as on a folder
    written by :meth:`save`.
    """

    path: Path
    base: str
    method: str
    steps: int
    losses: list[float]
    seconds: float
    settings: dict = field(default_factory=dict)
    components: dict[str, list[float]] = field(default_factory=dict)  # per-step loss terms (IV guidance)
    model: Any = field(default=None, repr=False)  # the trained HF model, only with keep_model=True

    def to_frame(self) -> pd.DataFrame:
        """One row per training step: the loss and, with IV guidance, each loss term."""
        frame = pd.DataFrame({"step": range(len(self.losses)), "loss": self.losses})
        for key, values in self.components.items():
            frame[key] = pd.Series(values, dtype="float64")
        return frame

    def _model(self) -> str:
        return self.base

    def _facts(self) -> dict[str, object]:
        loss = f"{self.losses[0]:.3f} -> {self.losses[-1]:.3f}" if self.losses else "-"
        return {
            "saved to": str(self.path),
            "training": f"{self.method}, {self.steps} steps in {self.seconds:.0f} s",
            "loss": f"{loss} (first -> last step)",
            "guidance": ", ".join(self.components) if self.components else "none",
        }

    def _saved(self):
        tensors = {"losses": torch.tensor(self.losses, dtype=torch.float64)}
        tensors |= {
            f"components/{k}": torch.tensor(v, dtype=torch.float64) for k, v in self.components.items()
        }
        return tensors, {
            "path": str(self.path),
            "base": self.base,
            "method": self.method,
            "steps": self.steps,
            "seconds": self.seconds,
            "settings": self.settings,
            "components": list(self.components),
        }

    @classmethod
    def _from_saved(cls, tensors, meta, path) -> "FinetuneResult":
        return cls(
            path=Path(meta["path"]),
            base=meta["base"],
            method=meta["method"],
            steps=meta["steps"],
            losses=tensors["losses"].tolist(),
            seconds=meta["seconds"],
            settings=meta["settings"],
            components={k: tensors[f"components/{k}"].tolist() for k in meta["components"]},
        )

    @classmethod
    def load(cls, path) -> "FinetuneResult":
        """Load from a folder written by :meth:`save`, or from a tuned model folder written by ``finetune``."""
        facts = Path(path) / "instr_interp_finetune.json"
        if (Path(path) / MANIFEST).exists() or not facts.exists():
            return super().load(path)
        meta = json.loads(facts.read_text())
        return cls(
            path=Path(path),
            **{k: meta[k] for k in ("base", "method", "steps", "losses", "seconds")},
            settings=meta["settings"],
            components=meta.get("components", {}),
        )


def hf_source(name: str) -> Path | str:
    """The directory (or hub name) a plain transformers model can be loaded from."""
    if name in BUNDLED or name in TUNED:
        return alias_dir(name)
    if Path(name).expanduser().is_dir():
        return Path(name).expanduser()
    return name


def response_loss(model, tokens, mask, labels):
    """Mean cross-entropy over response tokens, computing logits only where a target exists.

    Equal to ``model(..., labels=labels).loss``, but the unembedding (262k rows on Gemma 3) runs on
    the response positions alone instead of every position.
    """
    base = compat.unwrap_peft(model)
    hidden = compat.hf_body(base)(input_ids=tokens, attention_mask=mask).last_hidden_state
    return _response_ce(base, hidden, labels)


def response_labels(tokens, regions, attention_mask) -> torch.Tensor:
    """Training targets: the response tokens and the one token that ends each response (the format's
    end marker: ``<eos>`` after an alpaca or plain response, the chat template's end-of-turn token),
    so the tuned model learns to stop; -100 everywhere else.

    Examples:
        >>> R, T = int(Region.RESPONSE), int(Region.TEMPLATE)
        >>> response_labels(torch.tensor([[5, 6, 7, 8, 0]]), torch.tensor([[T, R, R, T, T]]),
        ...                 torch.tensor([[1, 1, 1, 1, 0]])).tolist()
        [[-100, 6, 7, 8, -100]]
    """
    response = regions == Region.RESPONSE
    after = torch.zeros_like(response)
    after[:, 1:] = response[:, :-1] & ~response[:, 1:]  # the first token after a response token
    keep = response | (after & attention_mask.bool())
    return torch.where(keep, tokens, -100)


def _batches_with_regions(encoded, order, batch_size):
    for start in range(0, len(order), batch_size):
        batch = encoded.batch(order[start : start + batch_size], "right")
        labels = response_labels(batch.tokens, batch.regions, batch.attention_mask)
        yield batch.tokens, batch.attention_mask.long(), labels, batch.last_prompt


def _batches(encoded, order, batch_size):
    for tokens, mask, labels, _ in _batches_with_regions(encoded, order, batch_size):
        yield tokens, mask, labels


def finetune(
    model_or_name,
    data,
    out,
    *,
    method: Literal["lora", "full"] = "lora",
    epochs: int = 1,
    lr: float | None = None,
    batch_size: int = 4,
    max_length: int = 256,
    seed: int = 0,
    lora_r: int = 8,
    lora_alpha: int = 16,
    target_modules: tuple[str, ...] | str = ("q_proj", "v_proj"),
    format: str = "auto",
    max_steps: int | None = None,
    adapter_out=None,
    iv_guidance=None,
    kl_weight: float | None = None,
    seq_kl_weight: float | None = None,
    temperature: float = 2.0,
    progressive: bool = False,
    head_consistency: float | None = None,
    kl_threshold: float = 0.1,
    head_threshold: float = 0.01,
    seq_kl_threshold: float = 0.1,
    kl_t2: bool = False,
    site: str = "attn_out",
    warmup: float | None = None,
    check_teacher: bool = True,
    teacher_min_accuracy: float = 0.5,
    keep_model: bool = False,
    on_step=None,
    progress: bool = True,
) -> FinetuneResult:
    """Supervised fine-tuning with cross-entropy on the response tokens, optionally IV-guided.

    Args:
        model_or_name: a bundled alias, a local HF directory, or a hub name (a bridge is not accepted:
            training runs on the plain transformers model, which is then saved).
        data: records with reference responses.
        out: directory for the tuned model (full weights; LoRA adapters are merged), its tokenizer
            and ``instr_interp_finetune.json`` (settings, per-step losses and loss terms, time).
        method: ``"lora"`` (peft, on ``target_modules``, rank ``lora_r``, scaling ``lora_alpha``) or ``"full"``.
        target_modules: module names for LoRA, or ``"all-linear"`` (every linear layer of the blocks:
            attention and MLP; peft's rule, which leaves the unembedding out).
        max_steps: stop after this many optimiser steps (default: every batch of every epoch).
        adapter_out: with LoRA, also save the trained adapter alone (peft's ``adapter_config.json``
            and ``adapter_model.safetensors``) to this directory before it is merged.
        lr: learning rate (default 2e-4 for LoRA, 2e-5 for full).
        iv_guidance: ``None`` (plain tuning) or one or more instruction vectors of the task being
            learned, computed on this (pre-task) model: objects with ``.vector`` (``d_model``),
            ``.layer``, optionally ``.scale`` (the vector is used times it, 1 without) and, for the
            head term, ``.top_heads`` (``[k, 2]`` of ``(layer, head)``). Vectors at the same layer
            are summed into one θ; vectors at different layers are each added at their own layer.
        kl_weight: weight of KL(softmax(new/T) ‖ softmax(teacher/T)) at the last prompt token (batch
            mean), counted on steps where it exceeds ``kl_threshold``. Default 20 with guidance
            (the reference's), 0 without.
        seq_kl_weight: weight of the same KL summed over all non-padding positions and divided by
            the batch size, counted while above ``seq_kl_threshold``. Default 0.1 with guidance.
        temperature: T of both KL terms.
        kl_t2: multiply both KL terms by T² (the distillation convention; the reference does not).
        progressive: add α(s)·θ to the training model too (α from 1 to 0 over the first half of the
            steps, see :func:`progressive_alpha`; not in the reference); the saved model carries no hook.
        head_consistency: weight of Σ over the top heads of the MSE between each head's output at
            the last prompt token in the training model and in the frozen model without θ, each
            head counted while above ``head_threshold``. Default 1.0 with guidance.
        site: where θ is added: ``"attn_out"`` (the attention output of the vector's layer, the
            reference's) or ``"resid_post"`` (after that block, :func:`add_vector`'s site).
        warmup: share of the steps with a linear learning-rate warm-up from 0 (then constant, as
            ``transformers.get_constant_schedule_with_warmup``). Default 0.1 with guidance (the
            reference's ``--warmup_ratio``), 0 without (plain tuning keeps a constant rate).
        check_teacher: with guidance, measure the steered pre-task model on the training prompts
            first (:func:`teacher_check`, recorded as ``settings["teacher"]``) and warn when its
            first-response-token accuracy is below ``teacher_min_accuracy``.
        keep_model: also return the trained (merged) HF model in ``result.model``.
        on_step: called as ``on_step(step, model)`` after each optimiser step (``step`` counts from 1;
            ``model`` is the training model, a peft model with LoRA), e.g. to score a development set
            along the run (``scripts/tune_dev_curve.py``); it must leave the model in training mode.

    Per-step loss terms (ungated values) go to ``result.components`` as ``ce``, ``kl``, ``seq_kl``,
    ``head`` (and ``alpha`` with ``progressive``).

    Returns:
        A :class:`FinetuneResult`; ``load_model(str(result.path))`` gives the tuned hooked model.

    Examples:
        >>> import tempfile, instr_interp as ii
        >>> d = tempfile.mkdtemp()
        >>> ii.models.tiny_hf_model().save_pretrained(d); _ = ii.models.tiny_tokenizer().save_pretrained(d)
        >>> r = finetune(d, ii.hexainst()[:4], d + "/ft", progress=False)
        >>> r.steps
        1
    """
    if not isinstance(model_or_name, str):
        raise TypeError(
            "finetune takes a model name or directory (it trains the plain transformers model); "
            f"got {type(model_or_name).__name__}. Pass e.g. 'gemma-3-270m' or a saved directory."
        )
    if method not in ("lora", "full"):
        raise ValueError(f"Unknown method {method!r}; choose 'lora' or 'full'.")
    if isinstance(target_modules, str) and target_modules != "all-linear":
        raise ValueError(
            f"target_modules={target_modules!r}: pass a tuple of module names or the string 'all-linear'."
        )
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1 (or None for every batch); got {max_steps}.")
    if adapter_out is not None and method != "lora":
        raise ValueError("adapter_out saves a LoRA adapter; it needs method='lora'.")
    kl_weight, seq_kl_weight, head_consistency, warmup = _checked_weights(
        iv_guidance, kl_weight, seq_kl_weight, head_consistency, temperature, warmup
    )
    if site not in ("attn_out", "resid_post"):
        raise ValueError(f"site must be 'attn_out' or 'resid_post'; got {site!r}.")
    data = load_instructions(data)
    missing = [r.id for r in data if not r.response]
    if missing:
        raise ValueError(f"finetune needs reference responses; missing for {missing[:5]}.")
    lr = lr if lr is not None else (2e-4 if method == "lora" else 2e-5)
    tokenizer, model = _load_plain(model_or_name, seed)
    guide = _guidance(
        model,
        iv_guidance,
        kl_weight=kl_weight,
        seq_kl_weight=seq_kl_weight,
        temperature=temperature,
        progressive=progressive,
        head_consistency=head_consistency,
        kl_threshold=kl_threshold,
        head_threshold=head_threshold,
        seq_kl_threshold=seq_kl_threshold,
        kl_t2=kl_t2,
        site=site,
    )
    encoded = encode(data, tokenizer, format=format, with_response=True, max_length=max_length)
    teacher = None
    if iv_guidance is not None and check_teacher:
        teacher = teacher_check(
            model, guide, encoded, batch_size=batch_size, min_accuracy=teacher_min_accuracy, progress=progress
        )
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(
                r=lora_r,
                lora_alpha=lora_alpha,
                lora_dropout=0.0,
                target_modules=target_modules if isinstance(target_modules, str) else list(target_modules),
            ),
        )
    model.train()
    steps = epochs * math.ceil(len(encoded) / batch_size)
    steps = min(steps, max_steps) if max_steps is not None else steps
    start = time.perf_counter()
    losses, components = _train(
        model,
        guide,
        encoded,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        steps=steps,
        warmup=warmup,
        out=out,
        on_step=on_step,
        progress=progress,
        desc=f"fine-tuning ({method}{', IV-guided' if guide.active() else ''})",
    )
    seconds = time.perf_counter() - start
    if method == "lora":
        if adapter_out is not None:
            _save_adapter(model, adapter_out)
        model = model.merge_and_unload()
    model.eval()
    out = Path(out)
    settings = {
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "max_length": max_length,
        "seed": seed,
        "lora_r": lora_r,
        "lora_alpha": lora_alpha,
        "target_modules": target_modules if isinstance(target_modules, str) else list(target_modules),
        "max_steps": max_steps,
        "data": data.fingerprint(),
        "records": len(data),
        "format": encoded.format,
        "iv_guidance": _guidance_record(iv_guidance),
        "kl_weight": kl_weight,
        "seq_kl_weight": seq_kl_weight,
        "temperature": temperature,
        "kl_scaled_by_t2": kl_t2,
        "seq_kl_reduction": "sum over non-padding positions / batch size",
        "progressive": guide.progressive,
        "head_consistency": head_consistency,
        "head_reference": "frozen pre-task model without the vector",
        "kl_threshold": kl_threshold,
        "seq_kl_threshold": seq_kl_threshold,
        "head_threshold": head_threshold,
        "head_consistency_heads": [list(h) for h in guide.heads],
        "site": site,
        "warmup": warmup,
        "warmup_steps": math.ceil(warmup * steps),
        "teacher": teacher,
    }
    meta = {
        "base": model_or_name,
        "method": method,
        "steps": steps,
        "losses": losses,
        "seconds": seconds,
        "settings": settings,
        "components": components,
    }
    _save_tuned(model, tokenizer, meta, out)
    return FinetuneResult(
        path=out,
        base=model_or_name,
        method=method,
        steps=steps,
        losses=losses,
        seconds=seconds,
        settings=settings,
        components=components,
        model=model if keep_model else None,
    )


# The reference's weights (FvForgetting scripts/train/*_fvg.sh: alpha1, alpha2, alpha3).
GUIDED_DEFAULTS = {"kl_weight": 20.0, "seq_kl_weight": 0.1, "head_consistency": 1.0, "warmup": 0.1}


def _checked_weights(
    iv_guidance,
    kl_weight: float | None,
    seq_kl_weight: float | None,
    head_consistency: float | None,
    temperature: float,
    warmup: float | None,
) -> tuple[float, float, float, float]:
    """Refuse loss weights that need guidance without it, or that are negative; returns
    ``(kl_weight, seq_kl_weight, head_consistency, warmup)`` with the defaults filled in (the
    reference's with guidance, 0 without)."""
    given = {"kl_weight": kl_weight, "seq_kl_weight": seq_kl_weight, "head_consistency": head_consistency}
    if iv_guidance is None and any((v or 0) > 0 for v in given.values()):
        raise ValueError(
            "kl_weight, seq_kl_weight and head_consistency need iv_guidance (instruction vectors "
            "of the new task computed on the pre-task model); pass iv_guidance=... or set them to 0."
        )
    guided = iv_guidance is not None
    filled = {
        k: float(v) if v is not None else (GUIDED_DEFAULTS[k] if guided else 0.0)
        for k, v in {**given, "warmup": warmup}.items()
    }
    if min(filled["kl_weight"], filled["seq_kl_weight"], filled["head_consistency"]) < 0 or temperature <= 0:
        raise ValueError("kl_weight, seq_kl_weight and head_consistency must be >= 0 and temperature > 0.")
    if not 0 <= filled["warmup"] < 1:
        raise ValueError(f"warmup is a share of the steps in [0, 1); got {warmup}.")
    return filled["kl_weight"], filled["seq_kl_weight"], filled["head_consistency"], filled["warmup"]


def _load_plain(model_or_name: str, seed: int):
    """The tokenizer and the fp32 transformers model of ``model_or_name`` (offline for local folders);
    torch's generator is seeded with ``seed`` once the source is ready."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = hf_source(model_or_name)
    local = isinstance(source, Path)
    torch.manual_seed(seed)
    with _offline() if local else contextlib.nullcontext():
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, local_files_only=local)
    return tokenizer, model


def _guidance(
    model,
    iv_guidance,
    *,
    kl_weight: float,
    seq_kl_weight: float,
    temperature: float,
    progressive: bool,
    head_consistency: float,
    kl_threshold: float,
    head_threshold: float,
    seq_kl_threshold: float,
    kl_t2: bool,
    site: str,
) -> _Guidance:
    """The IV-guidance settings for ``model``, with a frozen copy of it as the reference when a
    KL or head term needs one."""
    config = model.config
    guide = _Guidance(
        vectors=_vectors_by_layer(iv_guidance, config.num_hidden_layers, config.hidden_size),
        heads=_top_heads(iv_guidance) if iv_guidance is not None and head_consistency > 0 else [],
        reference=None,
        kl_weight=kl_weight,
        seq_kl_weight=seq_kl_weight,
        temperature=temperature,
        progressive=progressive and iv_guidance is not None,
        head_consistency=head_consistency,
        kl_threshold=kl_threshold,
        head_threshold=head_threshold,
        seq_kl_threshold=seq_kl_threshold,
        kl_t2=kl_t2,
        site=site,
    )
    for layer, head in guide.heads:
        if not (0 <= layer < config.num_hidden_layers and 0 <= head < config.num_attention_heads):
            raise ValueError(f"Top head ({layer}, {head}) does not exist in this model.")
    if kl_weight > 0 or seq_kl_weight > 0 or head_consistency > 0:
        guide.reference = copy.deepcopy(model).eval().requires_grad_(False)  # the frozen pre-task model
    return guide


def _train(
    model,
    guide: _Guidance,
    encoded,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    steps: int,
    out,
    progress: bool,
    desc: str,
    warmup: float = 0.0,
    on_step=None,
) -> tuple[list[float], dict[str, list[float]]]:
    """The AdamW loop over shuffled batches (with a linear warm-up over the first ``warmup`` share
    of the steps); returns the per-step losses and the logged loss terms."""
    from transformers import get_constant_schedule_with_warmup

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    schedule = get_constant_schedule_with_warmup(optimizer, math.ceil(warmup * steps)) if warmup else None
    rng = random.Random(seed)
    losses: list[float] = []
    components: dict[str, list[float]] = {}
    bar = tqdm(total=steps, desc=desc, disable=not progress)
    for _ in range(epochs):
        order = list(range(len(encoded)))
        rng.shuffle(order)
        for tokens, mask, labels, last in _batches_with_regions(encoded, order, batch_size):
            if len(losses) == steps:
                break
            if guide.active():
                loss, parts = _guided_loss(
                    model, guide, tokens, mask, labels, last, progressive_alpha(len(losses), steps)
                )
                for key, value in parts.items():
                    components.setdefault(key, []).append(value)
            else:
                loss = response_loss(model, tokens, mask, labels)
            if not torch.isfinite(loss.detach()):
                bar.close()
                raise FloatingPointError(
                    f"Fine-tuning step {len(losses)} of {steps} gave a non-finite loss ({loss.item()}); the run "
                    f"stops and nothing is saved to {out}. Lower lr (now {lr}), check the data and the weights."
                )
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if schedule is not None:
                schedule.step()
            losses.append(loss.item())
            if on_step is not None:
                on_step(len(losses), model)
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    return losses, components


def _save_adapter(peft_model, out) -> None:
    """Save the LoRA adapter alone (before merging) through a staging folder."""
    out = Path(out)
    staging = staging_dir(out)
    try:
        peft_model.save_pretrained(staging, safe_serialization=True)
        publish_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _save_tuned(model, tokenizer, meta: dict, out: Path) -> None:
    """Write the model, its tokenizer and ``instr_interp_finetune.json`` into place as ``out``
    (through a staging folder: a failed write leaves ``out`` as it was)."""
    save_model_dir(model, tokenizer, Path(out), {"instr_interp_finetune.json": json.dumps(meta, indent=1)})
