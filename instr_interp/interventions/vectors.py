"""Adding a vector to the residual stream after a block: on a hooked model (:func:`add_vector`,
TransformerLens ``blocks.L.hook_resid_post``) and its twin on a plain transformers model
(:func:`iv_addition`, the output of ``model.model.layers[L]``, used while fine-tuning).

``positions="last"`` means each row's last *prompt* token. It is never guessed from the padded
shape: it is passed explicitly (``last=``) or read from the positions the running toolkit pass
declared (:func:`instr_interp.engine.prompt_positions`); with neither, the forward raises.
"""

import contextlib
from typing import Literal

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from .. import compat
from ..checks import check_layer
from ..engine.positions import prompt_positions
from ..hooks import hook_site

__all__ = ["add_vector", "iv_addition"]


def _check_positions(positions) -> None:
    if isinstance(positions, str) and positions not in ("last", "all"):
        raise ValueError(f"positions must be 'last', 'all' or a boolean mask; got {positions!r}.")
    if isinstance(positions, Tensor) and positions.dtype != torch.bool:
        raise ValueError("A positions mask must be a boolean tensor ([batch, pos] or [pos]).")


def _add_at(resid: Tensor, add: Tensor, positions, where: Tensor | None) -> Tensor:
    """``resid`` with ``add`` added at a mask, every position, or one position ``where[b]`` per row."""
    if isinstance(positions, Tensor):
        mask = positions.to(resid.device)
        mask = mask.expand(resid.shape[0], -1) if mask.ndim == 1 else mask
        if mask.shape != resid.shape[:2]:
            raise ValueError(
                f"positions mask {tuple(mask.shape)} does not match the batch {tuple(resid.shape[:2])}."
            )
        return resid + mask[..., None].to(resid.dtype) * add
    if positions == "all":
        return resid + add
    where = where.to(resid.device)
    if where.shape != (resid.shape[0],):
        raise ValueError(
            f"last positions {tuple(where.shape)} do not match the batch of {resid.shape[0]} rows."
        )
    if bool((where >= resid.shape[1]).any()):
        raise ValueError(
            f"last positions {where.tolist()} lie beyond the {resid.shape[1]} positions of the batch."
        )
    rows = (where >= 0).nonzero().flatten()  # negative: the prompt's last token is in the KV cache
    resid = resid.clone()
    resid[rows, where[rows]] += add
    return resid


@contextlib.contextmanager
def add_vector(
    model,
    vector,
    *,
    layer: int | None = None,
    positions: Literal["last", "all"] | Bool[Tensor, "batch pos"] | Bool[Tensor, " pos"] = "last",
    scale: float | None = None,
    last: Int[Tensor, " batch"] | None = None,
):
    """Add ``scale * vector`` to the residual stream after block ``layer`` (``blocks.L.hook_resid_post``).

    Args:
        vector: an :class:`instr_interp.InstructionVector` (its ``.vector``, ``.layer`` and
            ``.scale``) or a ``[d_model]`` tensor.
        layer: injection layer; default the vector's own (required for a plain tensor).
        scale: multiplier; default the vector's own ``.scale`` (1.0 for a plain tensor).
        positions: ``"last"`` — the last prompt token of each row: ``last`` if given, else the
            positions the running toolkit pass declares (:func:`instr_interp.engine.prompt_positions`:
            ``run``, ``response_nll``, ``format_accuracy``, ``evaluate_task``, the head passes); a
            forward that declares none (a plain ``model(tokens)``) raises ``ValueError``.
            ``"all"`` — every position. A boolean mask ``[batch, pos]`` or ``[pos]`` — exactly
            those positions.
        last: ``[batch]`` last prompt positions for your own batches (any padding side).

    The hook is removed when the block ends, also on errors.

    Examples:
        >>> import torch
        >>> from instr_interp import tiny_model
        >>> model = tiny_model()
        >>> with add_vector(model, torch.ones(64), layer=0, last=torch.tensor([2])):
        ...     logits = model(torch.tensor([[5, 6, 7]]))
        >>> with add_vector(model, torch.ones(64), layer=0):
        ...     logits = model(torch.tensor([[5, 6, 7]]))
        Traceback (most recent call last):
        ...
        ValueError: add_vector with positions='last' needs each row's last prompt position, ...
    """
    if hasattr(vector, "vector") and hasattr(vector, "layer"):
        layer = vector.layer if layer is None else layer
        scale = getattr(vector, "scale", None) if scale is None else scale
        vector = vector.vector
    scale = 1.0 if scale is None else float(scale)
    if layer is None:
        raise ValueError("add_vector needs layer= when given a plain tensor.")
    vector = torch.as_tensor(vector)
    d_model = model.cfg.d_model
    if vector.shape != (d_model,):
        raise ValueError(f"vector must have shape [{d_model}] (d_model); got {tuple(vector.shape)}.")
    _check_positions(positions)
    if last is not None and bool((torch.as_tensor(last) < 0).any()):
        raise ValueError(f"last= must hold non-negative positions; got {torch.as_tensor(last).tolist()}.")
    site = hook_site(model, "resid_post", check_layer(model, layer))
    declared = prompt_positions(model)

    def hook(resid, hook=None):
        add = (scale * vector).to(resid.device, resid.dtype)
        where = None
        if isinstance(positions, str) and positions == "last":
            where = last if last is not None else declared.require(resid.shape[0], "add_vector")
        return _add_at(resid, add, positions, where)

    with model.hooks(fwd_hooks=[(site.name, hook)]):
        yield model


@contextlib.contextmanager
def iv_addition(
    hf_model,
    vectors: dict[int, Tensor],
    positions: Int[Tensor, " batch"],
    scale: float = 1.0,
    *,
    site: str = "resid_post",
):
    """Add ``scale``·θ at one position per row of a plain transformers model, for every ``{ℓ: θ}``
    in ``vectors``. Hooks are removed on exit.

    Args:
        hf_model: a plain transformers causal LM (or a peft wrapper of one).
        vectors: layer -> ``Float[Tensor, "d_model"]``.
        positions: for each batch row, the position that receives the vector (its last prompt token).
        scale: multiplier (0 registers no hook at all).
        site: ``"resid_post"``: the output of decoder layer ℓ (the residual stream after block ℓ,
            :func:`add_vector`'s site; equal to it on the bridge, tested on SmolLM2);
            ``"attn_out"``: the output of layer ℓ's attention output projection (``o_proj``), where
            Jiang et al.'s training adds the function vector.
    """
    if site not in ("resid_post", "attn_out"):
        raise ValueError(f"site must be 'resid_post' or 'attn_out'; got {site!r}.")
    layers = compat.hf_decoder_layers(hf_model)
    handles = []

    def make(vec: Tensor):
        def hook(module, args, output):
            hidden = output[0] if isinstance(output, tuple) else output
            rows = torch.arange(hidden.shape[0], device=hidden.device)
            pos = positions.to(hidden.device)
            added = hidden[rows, pos] + scale * vec.to(hidden.device, hidden.dtype)
            hidden = hidden.index_put((rows, pos), added)
            return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

        return hook

    try:
        if scale != 0:
            for layer, vec in vectors.items():
                module = (
                    layers[layer] if site == "resid_post" else compat.hf_attention_out_proj(hf_model, layer)
                )
                handles.append(module.register_forward_hook(make(vec)))
        yield
    finally:
        for handle in handles:
            handle.remove()
