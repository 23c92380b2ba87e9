"""Supervised instruction tuning on reference responses (LoRA via peft, or full), saved so that
``load_model`` reloads it."""

import contextlib
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from tqdm.auto import tqdm

from .data.dataset import load_instructions
from .data.encoding import Region, encode
from .models import BUNDLED, _convert, _offline, cache_dir

__all__ = ["FinetuneResult", "finetune", "hf_source", "response_loss"]


@dataclass(kw_only=True)
class FinetuneResult:
    """Where the tuned model was saved, and how training went."""

    path: Path
    base: str
    method: str
    steps: int
    losses: list[float]
    seconds: float
    settings: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path) -> "FinetuneResult":
        meta = json.loads((Path(path) / "instr_interp_finetune.json").read_text())
        return cls(path=Path(path), **{k: meta[k] for k in ("base", "method", "steps", "losses", "seconds")},
                   settings=meta["settings"])


def hf_source(name: str) -> Path | str:
    """The directory (or hub name) a plain transformers model can be loaded from."""
    if name in BUNDLED:
        target = cache_dir() / name
        if not (target / "config.json").exists():
            _convert(BUNDLED[name], target)
        return target
    if Path(name).expanduser().is_dir():
        return Path(name).expanduser()
    return name


def response_loss(model, tokens, mask, labels):
    """Mean cross-entropy over response tokens, computing logits only where a target exists.

    Equal to ``model(..., labels=labels).loss``, but the unembedding (262k rows on Gemma 3) runs on
    the response positions alone instead of every position.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = base.model(input_ids=tokens, attention_mask=mask).last_hidden_state
    targets = labels[:, 1:]
    keep = targets != -100
    logits = base.lm_head(hidden[:, :-1][keep])
    cap = getattr(base.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return torch.nn.functional.cross_entropy(logits.float(), targets[keep])


def _batches(encoded, order, batch_size):
    for start in range(0, len(order), batch_size):
        batch = encoded.batch(order[start : start + batch_size], "right")
        labels = torch.where(batch.regions == Region.RESPONSE, batch.tokens, -100)
        yield batch.tokens, batch.attention_mask.long(), labels


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
    target_modules: tuple[str, ...] = ("q_proj", "v_proj"),
    format: str = "auto",
    progress: bool = True,
) -> FinetuneResult:
    """Plain supervised fine-tuning with cross-entropy on the response tokens only.

    Args:
        model_or_name: a bundled alias, a local HF directory, or a hub name (a bridge is not accepted:
            training runs on the plain transformers model, which is then saved).
        data: records with reference responses.
        out: directory for the tuned model (full weights; LoRA adapters are merged), its tokenizer
            and ``instr_interp_finetune.json`` (settings, per-step losses, time).
        method: ``"lora"`` (peft, on ``target_modules``, rank ``lora_r``) or ``"full"``.
        lr: learning rate (default 2e-4 for LoRA, 2e-5 for full).

    Returns:
        A :class:`FinetuneResult`; ``load_model(str(result.path))`` gives the tuned hooked model.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not isinstance(model_or_name, str):
        raise TypeError("finetune takes a model name or directory (it trains the plain transformers model); "
                        f"got {type(model_or_name).__name__}. Pass e.g. 'gemma-3-270m' or a saved directory.")
    if method not in ("lora", "full"):
        raise ValueError(f"Unknown method {method!r}; choose 'lora' or 'full'.")
    data = load_instructions(data)
    missing = [r.id for r in data if not r.response]
    if missing:
        raise ValueError(f"finetune needs reference responses; missing for {missing[:5]}.")
    lr = lr if lr is not None else (2e-4 if method == "lora" else 2e-5)
    source = hf_source(model_or_name)
    local = isinstance(source, Path)
    torch.manual_seed(seed)
    with _offline() if local else contextlib.nullcontext():
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, local_files_only=local)
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=0.0,
                                                 target_modules=list(target_modules)))
    model.train()
    encoded = encode(data, tokenizer, format=format, with_response=True, max_length=max_length)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    steps = epochs * math.ceil(len(encoded) / batch_size)
    rng = random.Random(seed)
    losses: list[float] = []
    start = time.perf_counter()
    bar = tqdm(total=steps, desc=f"fine-tuning ({method})", disable=not progress)
    for _ in range(epochs):
        order = list(range(len(encoded)))
        rng.shuffle(order)
        for tokens, mask, labels in _batches(encoded, order, batch_size):
            loss = response_loss(model, tokens, mask, labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    seconds = time.perf_counter() - start
    if method == "lora":
        model = model.merge_and_unload()
    model.eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    settings = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "max_length": max_length, "seed": seed,
                "lora_r": lora_r, "lora_alpha": lora_alpha, "target_modules": list(target_modules),
                "data": data.fingerprint(), "records": len(data), "format": encoded.format}
    meta = {"base": model_or_name, "method": method, "steps": steps, "losses": losses, "seconds": seconds,
            "settings": settings}
    (out / "instr_interp_finetune.json").write_text(json.dumps(meta, indent=1))
    return FinetuneResult(path=out, base=model_or_name, method=method, steps=steps, losses=losses,
                          seconds=seconds, settings=settings)
