"""Strict validators for the indices and fractions that enter public functions.

A layer, head, neuron or expert index is an integer in range — never a float that would be
truncated, a bool, or an out-of-range number that would silently wrap around. Every public
function that takes one validates it here, so the error names the argument and the valid range.

Examples:
    >>> from instr_interp import tiny_model
    >>> check_layer(tiny_model(), -1)  # Python-style negative layers count from the end
    1
    >>> check_layer(2, 7, what="injection layer")
    Traceback (most recent call last):
        ...
    ValueError: injection layer must be an integer in [-2, 2) (the model has 2 layers); got 7.
    >>> check_units([[0, 3], [1, 5]], (2, 128), names=("layer", "neuron")).tolist()
    [[0, 3], [1, 5]]
    >>> check_fraction(0.01)
    0.01
"""

import numbers
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["check_fraction", "check_index", "check_layer", "check_layers", "check_units"]


def _is_int(value) -> bool:
    """A Python / numpy integer or an integer 0-d tensor; never a bool or a float."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, Tensor):
        return (
            value.ndim == 0
            and not value.dtype.is_floating_point
            and not value.dtype.is_complex
            and value.dtype != torch.bool
        )
    return isinstance(value, numbers.Integral)


def check_index(index, size: int | None = None, *, what: str = "index") -> int:
    """A validated index in ``[0, size)`` (any non-negative integer when ``size`` is None); no wrap-around.

    Raises:
        TypeError: ``index`` is not an integer (floats and bools are rejected).
        ValueError: ``index`` is negative or not below ``size``.

    Examples:
        >>> check_index(3, 4, what="head")
        3
        >>> check_index(2.0, 4, what="head")
        Traceback (most recent call last):
            ...
        TypeError: head must be an integer; got 2.0 (float).
    """
    if not _is_int(index):
        raise TypeError(f"{what} must be an integer; got {index!r} ({type(index).__name__}).")
    value = int(index)
    if value < 0 or (size is not None and value >= size):
        raise ValueError(f"{what} must be in [0, {size if size is not None else 'inf'}); got {value}.")
    return value


def _n_layers(model_or_n_layers) -> int:
    if isinstance(model_or_n_layers, numbers.Integral) and not isinstance(model_or_n_layers, bool):
        return int(model_or_n_layers)
    cfg = getattr(model_or_n_layers, "cfg", None)
    if cfg is None or not hasattr(cfg, "n_layers"):
        raise TypeError(
            f"Expected a model with cfg.n_layers or a layer count; got {type(model_or_n_layers).__name__}."
        )
    return int(cfg.n_layers)


def check_layer(model_or_n_layers, layer, *, what: str = "layer") -> int:
    """A validated layer index in ``[0, n_layers)``.

    Negative layers count from the end (``-1`` is the last layer), as in :func:`~instr_interp.hook_site`;
    anything outside ``[-n_layers, n_layers)`` is an error rather than a wrap-around.

    Args:
        model_or_n_layers: a model (with ``cfg.n_layers``) or the number of layers.
        layer: the index to check (a Python or numpy integer, or an integer 0-d tensor).
        what: the argument's name in the error message.

    Returns:
        The layer as a non-negative ``int``.

    Raises:
        TypeError: ``layer`` is not an integer (floats and bools are rejected).
        ValueError: ``layer`` is out of range.
    """
    n_layers = _n_layers(model_or_n_layers)
    if not _is_int(layer):
        raise TypeError(f"{what} must be an integer layer index; got {layer!r} ({type(layer).__name__}).")
    value = int(layer)
    if not -n_layers <= value < n_layers:
        raise ValueError(
            f"{what} must be an integer in [-{n_layers}, {n_layers}) (the model has {n_layers} "
            f"layers); got {value}."
        )
    return value + n_layers if value < 0 else value


def check_layers(model_or_n_layers, layers, *, what: str = "layers") -> list[int]:
    """Validated layer indices (each as :func:`check_layer`), without duplicates, in the given order.

    Raises:
        TypeError: ``layers`` is a single number or string instead of a sequence, or holds a non-integer.
        ValueError: a layer is out of range, or two entries name the same layer (``-1`` and the last
            layer count as the same).

    Examples:
        >>> check_layers(2, [1, 0])
        [1, 0]
        >>> check_layers(2, [1, -1])
        Traceback (most recent call last):
            ...
        ValueError: layers has duplicates: layer 1 appears more than once.
    """
    if isinstance(layers, (str, bytes)) or _is_int(layers) or isinstance(layers, (float, bool)):
        raise TypeError(f"{what} must be a sequence of layer indices; got {layers!r}.")
    if isinstance(layers, Tensor):
        layers = list(layers.reshape(-1)) if layers.ndim <= 1 else None
        if layers is None:
            raise TypeError(f"{what} must be one-dimensional.")
    out = [check_layer(model_or_n_layers, layer, what=f"{what} entry") for layer in layers]
    seen: set[int] = set()
    for layer in out:
        if layer in seen:
            raise ValueError(f"{what} has duplicates: layer {layer} appears more than once.")
        seen.add(layer)
    return out


def check_units(
    units, shape: Sequence[int], *, names: Sequence[str] | None = None, what: str = "units"
) -> Tensor:
    """Validated index tuples of model units (``(layer, neuron)``, ``(layer, expert)``, ``(layer, head)``).

    ``units`` is an integer tensor or a (nested) list of ints of shape ``[n, len(shape)]`` (or ``[n]``
    when ``shape`` has one entry); column ``j`` must lie in ``[0, shape[j])``. Nothing is cast,
    truncated or wrapped: float and bool tensors, Python floats and bools, negative indices, extra
    columns and repeated units are errors. An empty selection is allowed.

    Args:
        units: the indices.
        shape: the extent of each column, e.g. ``(n_layers, d_mlp)``.
        names: a name per column for messages (default ``index 0``, ``index 1``, ...).
        what: the argument's name in messages.

    Returns:
        A ``LongTensor`` ``[n, len(shape)]`` (``[n]`` for one column) on the CPU-or-input device.

    Raises:
        TypeError: non-integer values.
        ValueError: wrong shape, out-of-range or negative indices, duplicates.

    Examples:
        >>> check_units(torch.tensor([[0, 3], [1, 5]]), (2, 4), names=("layer", "head"))
        Traceback (most recent call last):
            ...
        ValueError: units must be valid indices: head 5 is out of range [0, 4) (row 1).
    """
    shape = tuple(int(s) for s in shape)
    names = tuple(names) if names is not None else tuple(f"index {j}" for j in range(len(shape)))
    if len(names) != len(shape):
        raise ValueError(f"names {names} must have one entry per column of shape {shape}.")
    if isinstance(units, Tensor):
        if units.dtype == torch.bool or units.dtype.is_floating_point or units.dtype.is_complex:
            raise TypeError(
                f"{what} must be an integer tensor; got dtype {units.dtype}. Cast explicitly "
                "(e.g. .long()) only if the values are exact indices."
            )
        tensor = units.long()
    elif isinstance(units, np.ndarray):
        if not np.issubdtype(units.dtype, np.integer):
            raise TypeError(f"{what} must be an integer array; got dtype {units.dtype}.")
        tensor = torch.as_tensor(units, dtype=torch.long)
    elif isinstance(units, (list, tuple)):
        flat = _flatten(units)
        bad = [v for v in flat if not _is_int(v)]
        if bad:
            raise TypeError(f"{what} must hold integer indices; got {bad[0]!r} ({type(bad[0]).__name__}).")
        rows = [[int(v) for v in _flatten([row])] if _is_row(row) else int(row) for row in units]
        tensor = (
            torch.tensor(rows, dtype=torch.long)
            if rows
            else torch.zeros((0, len(shape)) if len(shape) > 1 else (0,), dtype=torch.long)
        )
    else:
        raise TypeError(
            f"{what} must be an integer tensor or a list of index tuples; got {type(units).__name__}."
        )
    width = len(shape)
    expected = f"[n, {width}]" if width > 1 else "[n]"
    if width > 1 and tensor.numel() == 0 and tensor.ndim <= 2:
        tensor = tensor.reshape(0, width)
    ok = (tensor.ndim == 2 and tensor.shape[1] == width) if width > 1 else tensor.ndim == 1
    if not ok:
        raise ValueError(
            f"{what} must have shape {expected} ({', '.join(names)}); got {tuple(tensor.shape)}."
        )
    cols = tensor if width > 1 else tensor[:, None]
    for j, (extent, name) in enumerate(zip(shape, names)):
        col = cols[:, j]
        bad = ((col < 0) | (col >= extent)).nonzero()
        if len(bad):
            row = int(bad[0, 0])
            raise ValueError(
                f"{what} must be valid indices: {name} {int(col[row])} is out of range "
                f"[0, {extent}) (row {row})."
            )
    if len(cols):
        uniq, counts = torch.unique(cols, dim=0, return_counts=True)
        if int(counts.max()) > 1:
            dup = uniq[counts > 1][0].tolist()
            raise ValueError(f"{what} has duplicates: {dict(zip(names, dup))} appears more than once.")
    return tensor


def _is_row(value) -> bool:
    return isinstance(value, (list, tuple, np.ndarray)) or (isinstance(value, Tensor) and value.ndim > 0)


def _flatten(values) -> list:
    out = []
    for v in values:
        if isinstance(v, (list, tuple)):
            out.extend(_flatten(v))
        elif isinstance(v, (Tensor, np.ndarray)) and v.ndim > 0:
            out.extend(list(v.reshape(-1)))
        else:
            out.append(v)
    return out


def check_fraction(top, *, what: str = "top") -> float:
    """A validated fraction in ``(0, 1]`` (bools rejected).

    Raises:
        TypeError: ``top`` is not a real number (or is a bool).
        ValueError: ``top`` is not in ``(0, 1]`` (NaN included).

    Examples:
        >>> check_fraction(0)
        Traceback (most recent call last):
            ...
        ValueError: top must be a fraction in (0, 1]; got 0.
    """
    if isinstance(top, (bool, np.bool_)) or not isinstance(top, numbers.Real):
        raise TypeError(f"{what} must be a fraction in (0, 1]; got {top!r} ({type(top).__name__}).")
    if not 0 < top <= 1:
        raise ValueError(f"{what} must be a fraction in (0, 1]; got {top!r}.")
    return float(top)
