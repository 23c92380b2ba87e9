"""Teacher-forced likelihood of reference responses, as a probe on the shared pass."""

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from ..data.encoding import EncodedDataset, Region, encode
from ..hooks import HookSite, hook_site
from .passes import BatchContext, Probe, run

__all__ = ["ResponseNLL", "response_nll", "response_token_nll"]


def response_token_nll(logits: Tensor, tokens: Tensor, regions: Tensor) -> tuple[Tensor, Tensor]:
    """Per row: the summed negative log-likelihood of its response tokens (float64) and their count.

    The token at position t+1 is scored by the logits at position t; only targets in the response
    region count. Float64 logits are kept in float64, any other dtype is computed in float32.

    Examples:
        >>> logits = torch.zeros(1, 3, 4)  # uniform over 4 tokens
        >>> regions = torch.tensor([[Region.INSTRUCTION, Region.RESPONSE, Region.RESPONSE]])
        >>> total, count = response_token_nll(logits, torch.tensor([[1, 2, 3]]), regions)
        >>> round(float(total[0] / count[0]), 4), int(count[0])  # log 4 per token
        (1.3863, 2)
    """
    target = tokens[:, 1:]
    scored = regions[:, 1:] == Region.RESPONSE
    logprobs = torch.log_softmax(
        logits[:, :-1] if logits.dtype == torch.float64 else logits[:, :-1].float(), -1
    )
    nll = -logprobs.gather(-1, target[..., None])[..., 0]
    return torch.where(scored, nll, 0.0).double().sum(1), scored.sum(1)


class ResponseNLL(Probe):
    """Per-record summed negative log-likelihood of the response tokens (and their count).

    The token at position t+1 is scored by the logits at position t; only targets in the
    response region count. The records must be encoded ``with_response=True``.
    """

    needs_logits = True
    name = "response_nll"

    def sites(self, model) -> list[HookSite]:
        return [hook_site(model, "logits")]

    def setup(self, model, encoded: EncodedDataset, device) -> None:
        if not encoded.with_response:
            raise ValueError("ResponseNLL needs records encoded with with_response=True.")
        self.encoded = encoded
        self.state = {
            "nll": torch.zeros(len(encoded), dtype=torch.float64, device=device),
            "tokens": torch.zeros(len(encoded), dtype=torch.int64, device=device),
        }

    def update(self, site: HookSite, act: Float[Tensor, "batch pos d_vocab"], ctx: BatchContext) -> None:
        batch = ctx.batch
        total, count = response_token_nll(act, batch.tokens, batch.regions)
        self.state["nll"][batch.index] += total
        self.state["tokens"][batch.index] += count

    def result(self) -> pd.DataFrame:
        enc = self.encoded
        nll, tokens = self.state["nll"].cpu(), self.state["tokens"].cpu()
        empty = [enc.records[i].id for i in (tokens == 0).nonzero().flatten().tolist()]
        if empty:
            raise ValueError(
                f"{len(empty)} record(s) have no response token left to score {empty[:5]} (the encoding's "
                "max_length cut the response off); their NLL is undefined. Encode with a larger max_length "
                "or drop them."
            )
        return pd.DataFrame(
            {
                "id": [r.id for r in enc.records],
                "category": [r.category for r in enc.records],
                "response_tokens": tokens.numpy(),
                "nll": (nll / tokens).numpy(),
            }
        )


def response_nll(
    model, data, *, batch_size: int = 4, format: str = "auto", progress: bool = True
) -> pd.DataFrame:
    """Mean NLL per response token of each record's reference response, under teacher forcing.

    The prompt is formatted exactly as in :func:`encode` (chat template when the model has one).
    Active interventions (``ablate_neurons``, ...) apply; ``add_vector(..., positions="last")``
    adds at each record's last prompt token (the token before its response), which the pass
    declares. Under ``torch.distributed`` the batches are shared across ranks (see :func:`run`).

    Returns:
        A frame with ``id``, ``category``, ``response_tokens`` and ``nll`` (nats per token).

    Examples:
        >>> import instr_interp as ii
        >>> frame = response_nll(ii.tiny_model(), ii.hexainst()[:2], progress=False)
        >>> list(frame.columns)
        ['id', 'category', 'response_tokens', 'nll']
    """
    encoded = (
        data
        if isinstance(data, EncodedDataset)
        else encode(data, model.tokenizer, format=format, with_response=True)
    )
    (probe,) = run(model, encoded, [ResponseNLL()], batch_size=batch_size, progress=progress)
    return probe.result()
