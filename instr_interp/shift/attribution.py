"""Gradient input→output attribution of responses to prompt tokens (METHODS.md section 5; Wu et al.).

For a text = prompt + response, ``a[n, m] = Σ_d (∂P_m/∂e_n)_d (e_n)_d``: gradient × input of the
probability ``P_m`` of response token ``m`` (softmax of the model's logits at the position that
predicts it) with respect to the embedding ``e_n`` of prompt token ``n`` (BOS excluded).

``e_n`` is the output of the bridge's ``hook_embed``, which is exactly the input of the first block
(``blocks.0.hook_resid_pre``): the token embedding, for Gemma including its ``sqrt(d_model)`` scale,
and with no positional term (rotary models add position inside attention).

All response tokens come from ONE forward pass. The final residual (``unembed.hook_in``) is cut
into a leaf ``H``; one backward of ``Σ_m P_m`` through the unembedding gives ``g_m = ∂P_m/∂H[m-1]``
(``P_m`` depends on row ``m-1`` of ``H`` only); then the body is differentiated for a chunk of
response tokens at once with ``torch.autograd.grad(..., is_grads_batched=True)`` (vmap over the
one-row grad outputs ``g_m``). The vocabulary-sized unembedding is therefore differentiated once,
not once per response token.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from ..data.dataset import InstructionRecord, load_instructions
from ..data.encoding import Region, _assign, encode
from ..engine.generation import generate_responses
from ..engine.parallel import map_shards
from ..engine.passes import check_finite
from ..engine.positions import prompt_positions as last_prompt_of
from ..hooks import hook_site
from ..models import frozen, model_device
from ..results import Result
from ..views import safe_circuitsvis

__all__ = [
    "Attribution",
    "AttributionSet",
    "attribute",
    "attribute_many",
    "compare_scores",
    "importance_density",
    "instruction_score",
    "sparsify",
    "SPARSIFY_LEVELS",
    "SPARSIFY_THRESHOLD",
]

SPARSIFY_LEVELS = 10  # L of METHODS: scores are quantised to ceil(L * normalised attribution)
SPARSIFY_THRESHOLD = 7  # b of METHODS: quantised scores at or below b are dropped (keeps > 0.7 of the max)

Target = Literal["prob", "logprob"]

# ---------------------------------------------------------------------------------------------
# The METHODS formulas (free functions, so they can be checked by hand)


def sparsify(
    matrix: Float[Tensor, "n_prompt n_response"], *, levels: int = SPARSIFY_LEVELS, threshold: int = SPARSIFY_THRESHOLD
) -> Int[Tensor, "n_prompt n_response"]:
    """Normalise and sparsify an attribution matrix.

    Negative entries are clipped to 0, each column is divided by its maximum over prompt tokens,
    scores are quantised to ``ceil(levels · ã)`` and set to 0 where they are ``<= threshold``.
    A column whose maximum is not positive (no prompt token raises that response token's
    probability) becomes all zeros.

    Args:
        matrix: raw gradient × input, prompt tokens × response tokens.
        levels: L, the number of quantisation levels (10).
        threshold: b, scores at or below it are dropped (7: only > 0.7 of the column max survives).

    Returns:
        Integer scores in ``{0} ∪ (threshold, levels]``.
    """
    clipped = matrix.double().clamp(min=0)
    col_max = clipped.amax(0, keepdim=True) if clipped.shape[0] else clipped.sum(0, keepdim=True)
    normed = torch.where(col_max > 0, clipped / col_max.clamp(min=torch.finfo(torch.float64).tiny), 0.0)
    scores = torch.ceil(levels * normed).long()
    return torch.where(scores <= threshold, 0, scores)


def importance_density(sparse: Int[Tensor, "n_prompt n_response"], *, p: int = 4) -> Float[Tensor, " n_prompt"]:
    """Importance density ``ρ_n = ‖s[n,:]‖₁ / (‖s[n,:]‖_p + 1e-9)``, divided by its maximum.

    Returns all zeros when no prompt token has a non-zero score.
    """
    s = sparse.double()
    rho = s.abs().sum(1) / (s.abs().pow(p).sum(1).pow(1 / p) + 1e-9)
    top = rho.max() if rho.numel() else torch.tensor(0.0, dtype=torch.float64)
    return rho / top if top > 0 else torch.zeros_like(rho)


def instruction_score(density: Float[Tensor, " n_prompt"], instruction_mask: Bool[Tensor, " n_prompt"]) -> float:
    """``Σ_{n ∈ instruction} ρ_n / log₂(2 + #instruction tokens)`` (0 when there are none)."""
    if density.shape != instruction_mask.shape:
        raise ValueError(
            f"density {tuple(density.shape)} and instruction_mask {tuple(instruction_mask.shape)} "
            "must have the same shape (one entry per prompt token)."
        )
    k = int(instruction_mask.sum())
    return float(density.double()[instruction_mask].sum() / math.log2(2 + k))


# ---------------------------------------------------------------------------------------------
# The result


@dataclass(kw_only=True, repr=False)
class Attribution(Result):
    """Attribution of one response to its prompt tokens.

    ``matrix[n, m]`` is the gradient × input of response token ``response_positions[m]``'s
    probability with respect to prompt token ``prompt_positions[n]``'s embedding.
    """

    input_ids: Int[Tensor, " pos"]
    tokens: list[str]  # display strings, one per position of input_ids
    prompt_positions: Int[Tensor, " n_prompt"]
    response_positions: Int[Tensor, " n_response"]
    matrix: Float[Tensor, "n_prompt n_response"]
    instruction_mask: Bool[Tensor, " n_prompt"]
    probs: Float[Tensor, " n_response"]  # P_m, the attributed probabilities
    id: str = ""
    category: str = ""
    source: str = ""
    settings: dict = field(default_factory=dict)

    @property
    def sparse(self) -> Int[Tensor, "n_prompt n_response"]:
        """Integer scores 0..10 (see :func:`sparsify`)."""
        return sparsify(self.matrix)

    @property
    def density(self) -> Float[Tensor, " n_prompt"]:
        """Importance density of each prompt token, max 1 (see :func:`importance_density`)."""
        return importance_density(self.sparse)

    @property
    def instruction_score(self) -> float:
        """Density mass on the instruction tokens (see :func:`instruction_score`)."""
        return instruction_score(self.density, self.instruction_mask)

    @property
    def instruction_share(self) -> float:
        """Share of the prompt's importance density held by the instruction tokens (0 when no
        prompt token has any density)."""
        return float(self.density[self.instruction_mask].sum() / self.density.sum().clamp(min=1e-12))

    @property
    def prompt_tokens(self) -> list[str]:
        return [self.tokens[i] for i in self.prompt_positions.tolist()]

    @property
    def response_tokens(self) -> list[str]:
        return [self.tokens[i] for i in self.response_positions.tolist()]

    def top_tokens(self, k: int = 10) -> pd.DataFrame:
        """The ``k`` prompt tokens of highest density, with position and whether they are instruction."""
        dens = self.density
        order = torch.argsort(dens, descending=True, stable=True)[:k]
        return pd.DataFrame(
            {
                "position": self.prompt_positions[order].numpy(),
                "token": [self.prompt_tokens[i] for i in order],
                "density": dens[order].numpy(),
                "instruction": self.instruction_mask[order].numpy(),
            }
        )

    def normalized(self) -> Float[Tensor, "n_prompt n_response"]:
        """Negatives clipped, each column divided by its maximum (ã in METHODS; zeros where max ≤ 0)."""
        clipped = self.matrix.double().clamp(min=0)
        col_max = clipped.amax(0, keepdim=True)
        return torch.where(col_max > 0, clipped / col_max.clamp(min=1e-300), 0.0)

    # ---- views
    def show(self):
        """circuitsvis ``colored_tokens``: the prompt coloured by importance density (0..1); see
        :meth:`show_per_response` for one colouring per response token.

        Returns:
            A circuitsvis ``RenderedHTML`` (displays in Jupyter; ``.local_src`` is offline HTML).
        """
        import circuitsvis.tokens as cvt

        tokens = [t if t else " " for t in self.prompt_tokens]
        return safe_circuitsvis(cvt.colored_tokens(tokens, self.density.float(), min_value=0.0, max_value=1.0))

    def show_per_response(self):
        """circuitsvis ``colored_tokens_multi``: the prompt coloured by density (first view), then by
        each response token's normalised attribution (pick the view in the selector)."""
        import circuitsvis.tokens as cvt

        tokens = [t if t else " " for t in self.prompt_tokens]
        labels = ["density"] + [f"{m}:{t!r}" for m, t in zip(self.response_positions.tolist(), self.response_tokens)]
        values = torch.cat([self.density[:, None], self.normalized()], dim=1).float()
        return safe_circuitsvis(cvt.colored_tokens_multi(tokens, values, labels))

    def html(self) -> str:
        """The per-response-token view (density first) as self-contained offline HTML (for the report)."""
        return self.show_per_response().local_src

    def plot(self, kind: Literal["normalized", "raw", "sparse"] = "normalized"):
        """Plotly heatmap of the attribution, prompt tokens (rows) × response tokens (columns)."""
        import plotly.graph_objects as go

        values = {
            "normalized": self.normalized,
            "raw": lambda: self.matrix,
            "sparse": lambda: self.sparse,
        }.get(kind)
        if values is None:
            raise ValueError(f"Unknown kind {kind!r}; choose 'normalized', 'raw' or 'sparse'.")
        rows = [
            f"{p}:{t}{' *' if i else ''}"
            for p, t, i in zip(self.prompt_positions.tolist(), self.prompt_tokens, self.instruction_mask.tolist())
        ]
        cols = [f"{p}:{t}" for p, t in zip(self.response_positions.tolist(), self.response_tokens)]
        fig = go.Figure(go.Heatmap(z=values().float().numpy(), x=cols, y=rows, colorscale="Blues"))
        fig.update_layout(
            title=f"Attribution ({kind}) of {self.id or 'the response'}; * = instruction token, "
            f"instruction score {self.instruction_score:.3f}",
            yaxis=dict(autorange="reversed"),
            height=max(400, 14 * len(rows)),
        )
        return fig

    # ---- persistence and display
    def to_frame(self) -> pd.DataFrame:
        """One row per prompt token: position, token, whether it is instruction, importance density."""
        return pd.DataFrame(
            {
                "position": self.prompt_positions.numpy(),
                "token": self.prompt_tokens,
                "instruction": self.instruction_mask.numpy(),
                "density": self.density.numpy(),
            }
        )

    def _facts(self) -> dict[str, object]:
        return {
            "record": f"{self.id or '-'} ({self.category or 'no category'})",
            "tokens": f"{len(self.prompt_positions)} prompt ({int(self.instruction_mask.sum())} instruction), "
            f"{len(self.response_positions)} response",
            "response": "".join(self.response_tokens),
            "instruction score": f"{self.instruction_score:.3f}",
        }

    def _tensors(self, prefix: str = "") -> dict[str, Tensor]:
        return {
            f"{prefix}input_ids": self.input_ids,
            f"{prefix}prompt_positions": self.prompt_positions,
            f"{prefix}response_positions": self.response_positions,
            f"{prefix}matrix": self.matrix,
            f"{prefix}instruction_mask": self.instruction_mask,
            f"{prefix}probs": self.probs,
        }

    def _meta(self) -> dict:
        return {
            "id": self.id,
            "category": self.category,
            "source": self.source,
            "tokens": self.tokens,
            "settings": self.settings,
        }

    @classmethod
    def _from(cls, tensors: dict[str, Tensor], meta: dict, prefix: str = "") -> "Attribution":
        return cls(
            **{
                k: tensors[prefix + k]
                for k in (
                    "input_ids",
                    "prompt_positions",
                    "response_positions",
                    "matrix",
                    "instruction_mask",
                    "probs",
                )
            },
            **meta,
        )

    def _saved(self):
        return self._tensors(), self._meta()

    @classmethod
    def _from_saved(cls, tensors, meta, path) -> "Attribution":
        return cls._from(tensors, {k: meta[k] for k in ("id", "category", "source", "tokens", "settings")})


# ---------------------------------------------------------------------------------------------
# Attribution


def _display(tokenizer, ids: Sequence[int]) -> list[str]:
    return [tokenizer.decode([i]) for i in ids]


def _tokenize_prompt(model, prompt: str, response: str, instruction: str | None):
    """Raw prompt text (used verbatim) + response: token ids, regions and the prompt length."""
    tok = model.tokenizer
    bos = tok.bos_token
    text = prompt + response
    spans = [(len(prompt), len(text), Region.RESPONSE)]
    if instruction is not None:
        start = prompt.find(instruction)
        if start < 0 or not instruction:
            raise ValueError(
                f"instruction={instruction!r} does not occur in the prompt; pass the exact "
                "substring of the prompt that is the instruction."
            )
        spans.append((start, start + len(instruction), Region.INSTRUCTION))
    enc = tok(text, add_special_tokens=not (bos and text.startswith(bos)), return_offsets_mapping=True)
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    regions = _assign(offsets, spans, len(text))
    prompt_length = sum(1 for s, e in offsets if e <= len(prompt) or s < len(prompt))
    return list(enc["input_ids"]), regions, prompt_length


def _chunk_size(model, n_pos: int, n_response: int, memory_mb: float) -> int:
    cfg = model.cfg
    d_mlp = int(getattr(cfg, "d_mlp", None) or 4 * cfg.d_model)
    # Transient backward memory per vmapped response token, roughly: a few MLP-wide and residual
    # tensors and the attention scores of one layer, in fp32.
    per_item = 4 * n_pos * (6 * d_mlp + 10 * cfg.d_model + 4 * cfg.n_heads * n_pos)
    return max(1, min(n_response, int(memory_mb * 2**20 // per_item)))


def attribute(
    model,
    record_or_prompt: InstructionRecord | dict | str,
    response: str | None = None,
    *,
    instruction: str | None = None,
    target: Target = "prob",
    chunk: int | None = None,
    memory_mb: float = 512,
    format: str = "auto",
    max_new_tokens: int = 64,
    progress: bool = False,
) -> Attribution:
    """Gradient × input attribution of every response token to every prompt token.

    Args:
        model: a hooked model (``TransformerBridge``) with a tokenizer.
        record_or_prompt: an :class:`InstructionRecord` (or a dict with its fields): its prompt is
            formatted as :func:`encode` does and its instruction tokens form ``instruction_mask``.
            Or a raw prompt string, used verbatim (no chat template is applied; BOS is added where
            the tokenizer adds one): it has no instruction region unless ``instruction`` names the
            substring of the prompt that is the instruction.
        response: the response text; default the record's ``response``, and when that is empty,
            the model's greedy response (:func:`generate_responses`, ``max_new_tokens``).
        instruction: for a raw prompt, the instruction substring (its tokens are marked).
        target: ``"prob"`` (METHODS: the softmax probability P_m) or ``"logprob"`` (log P_m).
        chunk: response tokens differentiated per batched backward; default: as many as fit in
            ``memory_mb``.
        memory_mb: memory budget for one batched backward when ``chunk`` is None.
        format: prompt format for records (see :func:`encode`).
        progress: a progress bar over the chunks.

    Returns:
        An :class:`Attribution`. Response tokens are the tokens of the response text only (not the
        EOS or the template's end-of-turn marker). Prompt positions are all tokens before the
        response except a leading BOS, template scaffolding included.

    Examples:
        >>> import instr_interp as ii
        >>> attr = attribute(ii.tiny_model(), ii.hexainst()[0], "Positive.")
        >>> attr.matrix.shape[1], attr.sparse.max().item()
        (9, 10)
    """
    if target not in ("prob", "logprob"):
        raise ValueError(f"target must be 'prob' or 'logprob', got {target!r}.")
    if chunk is not None and chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}.")
    tok = model.tokenizer
    if isinstance(record_or_prompt, str):
        if response is None:
            raise ValueError("A raw prompt string needs response=...; pass a record to generate one.")
        ids, regions, prompt_length = _tokenize_prompt(model, record_or_prompt, response, instruction)
        rid, category, source = "", "", ""
    else:
        if instruction is not None:
            raise ValueError("instruction= is for raw prompt strings; a record carries its own instruction.")
        (rec,) = load_instructions([record_or_prompt]) if isinstance(record_or_prompt, dict) else [record_or_prompt]
        if response is not None:
            rec = InstructionRecord(**{**rec.to_dict(), "response": response, "meta": rec.meta})
        elif not rec.response:
            rec = generate_responses(model, [rec], max_new_tokens=max_new_tokens, format=format, progress=False)[0]
        if not rec.response:
            raise ValueError(
                f"Record {rec.id!r}: the model's greedy response is empty (it ended at once); "
                "there is nothing to attribute."
            )
        (enc,) = encode([rec], tok, format=format, with_response=True).records
        ids, regions, prompt_length = list(enc.tokens), list(enc.regions), enc.prompt_length
        rid, category, source = rec.id, rec.category, rec.source
    regions_t = torch.tensor(regions)
    pos = torch.arange(len(ids))
    start = 1 if tok.bos_token_id is not None and ids and ids[0] == tok.bos_token_id else 0
    prompt_positions = pos[start:prompt_length]
    response_positions = pos[(regions_t == Region.RESPONSE) & (pos >= prompt_length)]
    if len(response_positions) == 0:
        raise ValueError("The response has no tokens to attribute; pass a non-empty response.")
    if len(prompt_positions) == 0:
        raise ValueError("The prompt has no tokens besides BOS; nothing to attribute to.")
    input_ids = torch.tensor(ids)
    matrix, probs = _gradient_x_input(
        model,
        input_ids,
        prompt_positions,
        response_positions,
        target=target,
        chunk=chunk,
        memory_mb=memory_mb,
        progress=progress,
    )
    check_finite(probs, "the response-token probabilities")
    check_finite(matrix, "the gradient x input attributions")
    return Attribution(
        input_ids=input_ids,
        tokens=_display(tok, ids),
        prompt_positions=prompt_positions,
        response_positions=response_positions,
        matrix=matrix,
        instruction_mask=regions_t[prompt_positions] == Region.INSTRUCTION,
        probs=probs,
        id=rid,
        category=category,
        source=source,
        settings={
            "target": target,
            "model": getattr(model, "instr_interp_name", ""),
            "format": format,
            "embedding": "hook_embed (input of the first block)",
            "bos_excluded": bool(start),
        },
    )


def _gradient_x_input(
    model,
    input_ids: Int[Tensor, " pos"],
    prompt_positions: Int[Tensor, " n_prompt"],
    response_positions: Int[Tensor, " n_response"],
    *,
    target: Target,
    chunk: int | None,
    memory_mb: float,
    progress: bool,
):
    """One forward; the unembedding differentiated once; the body in vmapped chunks."""
    embed_name = hook_site(model, "embed").name
    final_name = hook_site(model, "unembed_in").name  # attribution splits the backward pass there
    device = model_device(model)
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if dtypes != {torch.float32}:
        raise ValueError(
            f"Attribution runs in fp32 but the model has parameters of {sorted(map(str, dtypes))}; "
            "load it with dtype=torch.float32 (or call model.float())."
        )
    tokens = input_ids[None].to(device)
    held: dict[str, Tensor] = {}

    def take_embed(act, hook=None):
        held["e"] = act.detach().clone().requires_grad_(True)
        return held["e"]

    def cut_final(act, hook=None):
        held["h"] = act
        held["h_leaf"] = act.detach().requires_grad_(True)
        return held["h_leaf"]

    resp = response_positions.to(device)
    with frozen(model), torch.enable_grad():
        last = prompt_positions[-1:].to(device)  # declared for positions="last" interventions
        with model.hooks(fwd_hooks=[(embed_name, take_embed), (final_name, cut_final)]), \
                last_prompt_of(model).declare(last):
            logits = model(tokens, return_type="logits")
        if "e" not in held or "h" not in held:
            raise RuntimeError(
                f"Hook points {embed_name!r} / {final_name!r} did not fire; this model does not route through them."
            )
        logp = torch.log_softmax(logits[0, resp - 1].float(), dim=-1).gather(-1, tokens[0, resp][:, None])[:, 0]
        objective = logp if target == "logprob" else logp.exp()
        # P_m depends on row m-1 of the final residual only, so one backward of the sum gives every
        # dP_m/dH[m-1] (rows are distinct).
        (g,) = torch.autograd.grad(objective.sum(), held["h_leaf"])
        e, h = held["e"], held["h"]
        n_resp = len(resp)
        size = chunk or _chunk_size(model, tokens.shape[1], n_resp, memory_mb)
        prompt = prompt_positions.to(device)
        columns = []
        for s in tqdm(range(0, n_resp, size), desc="attribution", unit="chunk", disable=not progress):
            rows = resp[s : s + size] - 1
            grad_out = torch.zeros((len(rows),) + tuple(h.shape), dtype=h.dtype, device=device)
            grad_out[torch.arange(len(rows), device=device), 0, rows] = g[0, rows].to(h.dtype)
            (ge,) = torch.autograd.grad(
                h, e, grad_outputs=grad_out, is_grads_batched=True, retain_graph=s + size < n_resp
            )
            columns.append((ge[:, 0, prompt] * e.detach()[0, prompt]).sum(-1).T)
            del grad_out, ge
    matrix = torch.cat(columns, dim=1).float().cpu()
    return matrix, objective.detach().float().cpu()


# ---------------------------------------------------------------------------------------------
# Many records and comparisons


@dataclass(kw_only=True, repr=False)
class AttributionSet(Result):
    """Attributions of many records by one model."""

    items: list[Attribution]
    name: str = ""  # e.g. the model's name
    skipped: list[str] = field(default_factory=list)  # ids whose greedy response was empty
    settings: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i) -> Attribution:
        if isinstance(i, str):
            for item in self.items:
                if item.id == i:
                    return item
            raise KeyError(f"No attribution with id {i!r}.")
        return self.items[i]

    def to_frame(self) -> pd.DataFrame:
        """One row per record: id, category, source, n_prompt, n_instruction, n_response, instruction_score."""
        return pd.DataFrame(
            [
                {
                    "id": a.id,
                    "category": a.category,
                    "source": a.source,
                    "n_prompt": len(a.prompt_positions),
                    "n_instruction": int(a.instruction_mask.sum()),
                    "n_response": len(a.response_positions),
                    "instruction_score": a.instruction_score,
                }
                for a in self.items
            ],
            columns=[
                "id",
                "category",
                "source",
                "n_prompt",
                "n_instruction",
                "n_response",
                "instruction_score",
            ],
        )

    def plot(self):
        """Plotly box plot of instruction scores per category."""
        import plotly.express as px

        return px.box(
            self.to_frame(),
            x="category",
            y="instruction_score",
            points="all",
            title=f"Instruction scores ({self.name or 'model'})",
        )

    def _model(self) -> str:
        return self.name

    def _facts(self) -> dict[str, object]:
        scores = self.to_frame().groupby("category", sort=False)["instruction_score"].mean()
        return {
            "records": f"{len(self.items)} attributed" + (f", {len(self.skipped)} skipped (empty response)"
                                                          if self.skipped else ""),
            "instruction score": ", ".join(f"{c} {v:.3f}" for c, v in scores.items()),
        }

    def _saved(self):
        tensors: dict[str, Tensor] = {}
        for i, a in enumerate(self.items):
            tensors |= a._tensors(f"{i}/")
        return tensors, {
            "name": self.name,
            "skipped": self.skipped,
            "settings": self.settings,
            "items": [a._meta() for a in self.items],
        }

    @classmethod
    def _from_saved(cls, tensors, meta, path) -> "AttributionSet":
        items = [Attribution._from(tensors, m, f"{i}/") for i, m in enumerate(meta["items"])]
        return cls(items=items, name=meta["name"], skipped=meta["skipped"], settings=meta["settings"])


def attribute_many(
    model,
    data,
    *,
    max_new_tokens: int = 32,
    use_reference: bool = False,
    target: Target = "prob",
    chunk: int | None = None,
    memory_mb: float = 512,
    format: str = "auto",
    batch_size: int = 8,
    progress: bool = True,
) -> AttributionSet:
    """Attribute each record's response: by default the model's own greedy response (as Wu et al.).

    Args:
        model: a hooked model.
        data: records (anything :func:`load_instructions` accepts).
        max_new_tokens: generation length cap.
        use_reference: attribute the records' reference ``response`` instead of generating.
        target, chunk, memory_mb, format: as in :func:`attribute`.
        batch_size: prompts per generation batch (does not change the text).
        progress: progress bars.

    Returns:
        An :class:`AttributionSet`; records whose greedy response is empty are listed in ``skipped``
        (a warning names them) rather than scored. Under ``torch.distributed`` the generation
        batches and the records are shared across ranks, and every rank gets the whole set.
    """
    import warnings

    data = load_instructions(data)
    if use_reference:
        missing = [r.id for r in data if not r.response]
        if missing:
            raise ValueError(f"use_reference=True but records {missing[:5]} have no response.")
        filled = data
    else:
        filled = generate_responses(
            model,
            data,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            format=format,
            progress=progress,
        )
    skipped = [rec.id for rec in filled if not rec.response]
    todo = [rec for rec in filled if rec.response]
    items = map_shards(lambda rec: attribute(model, rec, target=target, chunk=chunk, memory_mb=memory_mb,
                                             format=format), todo, desc="attributing", progress=progress)
    if skipped:
        warnings.warn(
            f"{len(skipped)} record(s) got an empty greedy response and were not scored: {skipped[:5]}",
            stacklevel=2,
        )
    if not items:
        raise ValueError("No record had a response to attribute.")
    return AttributionSet(
        items=items,
        name=getattr(model, "instr_interp_name", ""),
        skipped=skipped,
        settings={
            "max_new_tokens": max_new_tokens,
            "use_reference": use_reference,
            "target": target,
            "format": format,
            "data": data.fingerprint(),
        },
    )


def compare_scores(a: AttributionSet, b: AttributionSet, *, by: str | None = "category") -> pd.DataFrame:
    """Instruction scores of two sets, per group and overall, with a one-sided Welch t-test of b > a.

    Args:
        a: the reference side (e.g. the base model).
        b: the side hypothesised to score higher (e.g. the instruction-tuned model).
        by: a column of :meth:`AttributionSet.to_frame` to group by (``"category"``, ``"source"``), or None.

    Returns:
        One row per group plus ``"overall"``: n, mean and std (ddof=1) of each side, the Welch t
        statistic and the one-sided p-value (``scipy.stats.ttest_ind(b, a, equal_var=False,
        alternative="greater")``; NaN when a side has fewer than 2 records).
    """
    from scipy import stats

    fa, fb = a.to_frame(), b.to_frame()
    if by is not None and (by not in fa.columns or by not in fb.columns):
        raise ValueError(f"Cannot group by {by!r}; choose a column of AttributionSet.to_frame(): {list(fa.columns)}.")
    groups = [] if by is None else list(dict.fromkeys(list(fa[by]) + list(fb[by])))
    rows = []
    for group in groups + ["overall"]:
        xa = fa if group == "overall" else fa[fa[by] == group]
        xb = fb if group == "overall" else fb[fb[by] == group]
        sa, sb = xa["instruction_score"].to_numpy(float), xb["instruction_score"].to_numpy(float)
        if len(sa) >= 2 and len(sb) >= 2:
            test = stats.ttest_ind(sb, sa, equal_var=False, alternative="greater")
            t, p = float(test.statistic), float(test.pvalue)
        else:
            t = p = float("nan")
        rows.append(
            {
                "group": group,
                "n_a": len(sa),
                "mean_a": _mean(sa),
                "std_a": _std(sa),
                "n_b": len(sb),
                "mean_b": _mean(sb),
                "std_b": _std(sb),
                "t": t,
                "p_value": p,
            }
        )
    out = pd.DataFrame(rows)
    out.attrs.update(a=a.name, b=b.name, alternative="b > a")
    return out


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else float("nan")


def _std(x: np.ndarray) -> float:
    return float(x.std(ddof=1)) if len(x) >= 2 else float("nan")
