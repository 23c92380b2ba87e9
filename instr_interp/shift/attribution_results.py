"""The results of attribution: one record's :class:`Attribution` and many records' :class:`AttributionSet`.

They hold the raw gradient × input matrices computed by :func:`~instr_interp.shift.attribution.attribute`
and derive the scores of :mod:`~instr_interp.shift.scores` from them.
"""

from dataclasses import dataclass, field
from typing import Literal

import pandas as pd
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ..data.encoding import Region
from ..results import Result
from ..views import safe_circuitsvis
from .scores import SPARSIFY_EPS, importance_density, instruction_score, score_levels, sparsify

__all__ = ["Attribution", "AttributionSet"]


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
    prompt_regions: Int[Tensor, " n_prompt"] | None = None  # Region of each prompt token (None: not recorded)
    id: str = ""
    category: str = ""
    source: str = ""
    settings: dict = field(default_factory=dict)

    @classmethod
    def from_matrix(
        cls,
        matrix,
        instruction_mask,
        *,
        prompt_tokens: list[str] | None = None,
        response_tokens: list[str] | None = None,
        prompt_regions=None,
        id: str = "",
        category: str = "",
        source: str = "",
    ) -> "Attribution":
        """An attribution over a precomputed matrix: raw gradient × input, or a level matrix such as the
        authors' released ``Explain`` arrays (float 0..10, prompt × response, with their ``Input`` and
        ``Output`` token lists as ``prompt_tokens`` / ``response_tokens``). It is scored as any other
        (:func:`~instr_interp.shift.scores.sparsify` only thresholds a level matrix); token ids are
        unknown, so ``input_ids`` are placeholders (-1) and ``probs`` NaN."""
        m = torch.as_tensor(matrix)
        m = m.float() if m.is_floating_point() else m
        if m.ndim != 2:
            raise ValueError(f"matrix must be 2-d (prompt x response tokens), got shape {tuple(m.shape)}.")
        n, r = m.shape
        mask = torch.as_tensor(instruction_mask).bool()
        if mask.shape != (n,):
            raise ValueError(
                f"instruction_mask has shape {tuple(mask.shape)}; the matrix has {n} prompt rows."
            )
        prompt_tokens = list(prompt_tokens) if prompt_tokens is not None else [f"<{i}>" for i in range(n)]
        response_tokens = (
            list(response_tokens) if response_tokens is not None else [f"<{n + j}>" for j in range(r)]
        )
        if (len(prompt_tokens), len(response_tokens)) != (n, r):
            raise ValueError(
                f"{len(prompt_tokens)} prompt and {len(response_tokens)} response tokens for a {n} x {r} matrix."
            )
        return cls(
            input_ids=torch.full((n + r,), -1),
            tokens=prompt_tokens + response_tokens,
            prompt_positions=torch.arange(n),
            response_positions=torch.arange(n, n + r),
            matrix=m,
            instruction_mask=mask,
            probs=torch.full((r,), float("nan")),
            prompt_regions=None if prompt_regions is None else torch.as_tensor(prompt_regions).long(),
            id=id,
            category=category,
            source=source,
            settings={"precomputed": True},
        )

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
    def template_mask(self) -> Bool[Tensor, " n_prompt"]:
        """Which prompt tokens belong to the prompt format (chat template, headers, separators)."""
        if self.prompt_regions is None:
            raise ValueError(
                "This attribution was saved without prompt regions, so its template tokens are unknown; "
                "recompute it with attribute()."
            )
        return self.prompt_regions == Region.TEMPLATE

    def score(self, *, exclude_template: bool = False, eps: float = SPARSIFY_EPS) -> float:
        """The instruction score; ``exclude_template=True`` drops the prompt format's tokens before the
        density is normalised (so template tokens cannot take density from the instruction). A
        response with no tokens scores 0 (as the authors')."""
        keep = ~self.template_mask if exclude_template else None
        return score_levels(self.matrix, self.instruction_mask, keep=keep, eps=eps)

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
        """Negatives clipped, each column divided by its maximum + 1e-7 (ã in METHODS, with the authors'
        floor; zeros where max ≤ 0)."""
        clipped = self.matrix.double().clamp(min=0)
        col_max = clipped.amax(0, keepdim=True)
        return torch.where(col_max > 0, clipped / (col_max + SPARSIFY_EPS), 0.0)

    # ---- views
    def show(self):
        """circuitsvis ``colored_tokens``: the prompt coloured by importance density (0..1); see
        :meth:`show_per_response` for one colouring per response token.

        Returns:
            A circuitsvis ``RenderedHTML`` (displays in Jupyter; ``.local_src`` is offline HTML).
        """
        import circuitsvis.tokens as cvt

        tokens = [t if t else " " for t in self.prompt_tokens]
        return safe_circuitsvis(
            cvt.colored_tokens(tokens, self.density.float(), min_value=0.0, max_value=1.0)
        )

    def show_per_response(self):
        """circuitsvis ``colored_tokens_multi``: the prompt coloured by density (first view), then by
        each response token's normalised attribution (pick the view in the selector)."""
        import circuitsvis.tokens as cvt

        tokens = [t if t else " " for t in self.prompt_tokens]
        labels = ["density"] + [
            f"{m}:{t!r}" for m, t in zip(self.response_positions.tolist(), self.response_tokens)
        ]
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
            for p, t, i in zip(
                self.prompt_positions.tolist(), self.prompt_tokens, self.instruction_mask.tolist()
            )
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
        } | ({} if self.prompt_regions is None else {f"{prefix}prompt_regions": self.prompt_regions})

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
            prompt_regions=tensors.get(prefix + "prompt_regions"),
            **meta,
        )

    def _saved(self):
        return self._tensors(), self._meta()

    @classmethod
    def _from_saved(cls, tensors, meta, path) -> "Attribution":
        return cls._from(tensors, {k: meta[k] for k in ("id", "category", "source", "tokens", "settings")})


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

    @property
    def empty(self) -> list[str]:
        """Ids of records whose response has no tokens (kept, scored 0, as the authors)."""
        return [a.id for a in self.items if len(a.response_positions) == 0]

    def to_frame(self, *, exclude_template: bool = False) -> pd.DataFrame:
        """One row per record: id, category, source, n_prompt, n_instruction, n_response,
        instruction_score (``exclude_template``: see :meth:`Attribution.score`)."""
        return pd.DataFrame(
            [
                {
                    "id": a.id,
                    "category": a.category,
                    "source": a.source,
                    "n_prompt": len(a.prompt_positions),
                    "n_instruction": int(a.instruction_mask.sum()),
                    "n_response": len(a.response_positions),
                    "instruction_score": a.score(exclude_template=exclude_template),
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
            "records": f"{len(self.items)} attributed"
            + (f" ({len(self.empty)} with an empty response, scored 0)" if self.empty else "")
            + (f", {len(self.skipped)} skipped (empty response)" if self.skipped else ""),
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
