"""The result base: compact reprs, one ``to_frame()``, and atomic saves (safetensors + JSON, never pickle).

Every result class of the toolkit inherits :class:`Result`. A saved result is a folder holding
``tensors.safetensors`` and ``manifest.json``; the manifest's ``kind`` is the class name, so
:func:`load` reads any saved result back as the right class.
"""

import html
import json
import os
import platform
import shutil
import time
from importlib import metadata
from pathlib import Path

import pandas as pd
import torch

from .files import publish_dir, staging_dir

__all__ = ["Result", "save_result", "load_result", "load", "read_manifest", "result_kinds"]

_PACKAGES = ("instr_interp", "torch", "transformers", "transformer-lens")
MANIFEST = "manifest.json"
TENSORS = "tensors.safetensors"

_KINDS: dict[str, type["Result"]] = {}  # class name -> class, filled as result classes are defined
_LEGACY_KINDS = {"task_score": "TaskScore", "instruction_vector": "InstructionVector"}  # manifests before 0.2


def _short(value, width: int = 100) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 3] + "..."


class Result:
    """Base of every result class: a compact repr, a notebook table, ``to_frame()``, ``save``/``load``.

    A subclass supplies its key facts (:meth:`_facts`), one DataFrame view (:meth:`to_frame`), and
    what it saves (:meth:`_saved`, :meth:`_from_saved`); its class name is its manifest ``kind``.
    Result dataclasses are declared with ``repr=False`` so they keep this repr.

    Examples:
        >>> import instr_interp as ii
        >>> sets = ii.find_isns(ii.tiny_model(), ii.hexainst().sample(1), top=0.05, progress=False)
        >>> print(repr(sets).splitlines()[0])
        NeuronSets (model tiny-llama-seed0)
        >>> list(sets.to_frame().columns)
        ['kind', 'set', 'layer', 'neuron']
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _KINDS[cls.__name__] = cls

    # ---- what a subclass supplies
    def _facts(self) -> dict[str, object]:
        """The few key facts shown by the repr and the notebook table (sizes and headline numbers)."""
        return {}

    def _model(self) -> str:
        """The model the result was computed on, where known."""
        settings = getattr(self, "settings", None) or {}
        model = settings.get("model", "") if isinstance(settings, dict) else ""
        return model if isinstance(model, str) else ""

    def to_frame(self) -> pd.DataFrame:
        """The result as one pandas DataFrame."""
        raise NotImplementedError(f"{type(self).__name__} has no DataFrame view.")

    def _saved(self) -> tuple[dict[str, torch.Tensor], dict]:
        """``(tensors, meta)`` to save; meta must be JSON-serialisable."""
        raise NotImplementedError(f"{type(self).__name__} cannot be saved.")

    @classmethod
    def _from_saved(cls, tensors: dict[str, torch.Tensor], meta: dict, path: Path) -> "Result":
        """Rebuild the result from what :meth:`_saved` wrote (``path`` is the result folder)."""
        raise NotImplementedError(f"{cls.__name__} cannot be loaded.")

    # ---- shared behaviour
    def __repr__(self) -> str:
        model = self._model()
        lines = [f"{type(self).__name__}" + (f" (model {_short(model, 60)})" if model else "")]
        lines += [f"  {key}: {_short(value)}" for key, value in self._facts().items()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        model = self._model()
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
            f"<td style='text-align:left'>{html.escape(_short(v))}</td></tr>"
            for k, v in self._facts().items()
        )
        title = html.escape(type(self).__name__ + (f" (model {_short(model, 60)})" if model else ""))
        try:
            preview = self.to_frame().head(5)
            preview = preview.map(lambda v: _short(v, 40) if isinstance(v, str) else v)
            head = preview.to_html(max_cols=8, border=0)
        except Exception as err:  # the facts still show; say why the preview does not
            head = f"<p>(no preview: {html.escape(_short(err))})</p>"
        return f"<div><strong>{title}</strong><table>{rows}</table>{head}</div>"

    def save(self, path) -> Path:
        """Save into folder ``path`` (replaced as a whole, atomically); returns the folder.

        Reload with ``type(self).load(path)`` or :func:`instr_interp.load`.
        """
        tensors, meta = self._saved()
        return save_result(path, type(self).__name__, tensors, meta)

    @classmethod
    def load(cls, path):
        """Load a result of this class saved with :meth:`save`."""
        tensors, meta = load_result(path, cls.__name__)
        return cls._from_saved(tensors, meta, Path(path))

    def to_json(self) -> dict:
        """The saved content as a JSON-able dict (tensors as nested lists with their dtype), e.g. for a
        study's resumable unit; :meth:`from_json` restores it exactly."""
        tensors, meta = self._saved()
        return {
            "kind": type(self).__name__,
            "tensors": {
                k: {"dtype": str(v.dtype).removeprefix("torch."), "values": v.tolist()}
                for k, v in tensors.items()
            },
            "meta": meta,
        }

    @classmethod
    def from_json(cls, value: dict, path) -> "Result":
        """A result of this class from :meth:`to_json`'s dict (``path``: where it was read from)."""
        if value.get("kind") != cls.__name__:
            raise ValueError(f"Expected a {cls.__name__}, got {value.get('kind')!r}.")
        tensors = {
            k: torch.tensor(v["values"], dtype=getattr(torch, v["dtype"]))
            for k, v in value["tensors"].items()
        }
        return cls._from_saved(tensors, value["meta"], Path(path))


def result_kinds() -> dict[str, type[Result]]:
    """Manifest kind -> result class, for every result class defined so far."""
    return dict(_KINDS)


def _versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["python"] = platform.python_version()
    return out


def _write_tensors(tensors: dict[str, torch.Tensor], file: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(file))


def save_result(path, kind: str, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write ``tensors.safetensors`` and ``manifest.json`` into folder ``path``, atomically.

    Both files are written into a fresh sibling folder first, which is renamed to ``path`` only when
    everything is written; an existing result at ``path`` is moved aside, replaced, then deleted (an
    existing empty folder is kept and filled, the manifest last). A failure mid-save leaves the
    previous result untouched. Extra files may be added to the folder afterwards (csv, html); the
    next save replaces the folder with them.

    Raises:
        FileExistsError: ``path`` is a file, or a non-empty folder that is not a saved result (it is
            never replaced: choose a new or empty folder).
    """
    given = path = Path(path)
    path = Path(os.path.abspath(path))  # "out/." and "." have a parent and a name to rename
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"Cannot save a result to {given}: it is a file. Choose a folder path.")
    if path.is_dir() and any(path.iterdir()) and not (path / MANIFEST).exists():
        raise FileExistsError(
            f"Cannot save a result to {given}: the folder holds other files and no saved "
            f"result ({MANIFEST} missing), so it is not replaced. Choose a new or empty folder."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest = {"kind": kind, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "versions": _versions(), **meta}
    manifest["kind"] = kind  # never overridden by meta (keeps its place as the first key)
    text = json.dumps(manifest, indent=1, default=str)
    tmp = staging_dir(path)
    try:
        _write_tensors(tensors, tmp / TENSORS)
        (tmp / MANIFEST).write_text(text)
        if path.is_dir() and not any(
            path.iterdir()
        ):  # an empty folder (a TemporaryDirectory, the cwd): keep it
            os.rename(tmp / TENSORS, path / TENSORS)
            os.rename(tmp / MANIFEST, path / MANIFEST)  # last: until it is there, the folder is no result
            tmp.rmdir()
        else:
            publish_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return given


def _canonical(kind) -> str | None:
    return _LEGACY_KINDS.get(kind, kind) if isinstance(kind, str) else None


def read_manifest(path) -> dict:
    """The manifest of the saved result in folder ``path``, with a clear error when it is not one."""
    path = Path(path)
    if not path.is_dir():
        what = "is a file, not a result folder" if path.exists() else "does not exist"
        raise FileNotFoundError(
            f"No saved result at {path}: the folder {what}. Check the path, or save the "
            "result there first with result.save(path)."
        )
    file = path / MANIFEST
    if not file.exists():
        raise FileNotFoundError(
            f"No saved result at {path}: {MANIFEST} is missing (not a result folder, or a "
            "save that never finished). Save the result there again."
        )
    try:
        meta = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(
            f"The saved result at {path} is damaged: {file.name} is not valid JSON ({err}). "
            "Save the result again."
        ) from err
    if not isinstance(meta, dict) or _canonical(meta.get("kind")) is None:
        raise ValueError(
            f"The saved result at {path} is damaged: {file.name} names no result kind. Save the result again."
        )
    return meta


def load_result(path, kind: str | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """Read what :func:`save_result` wrote: ``(tensors, manifest)``.

    Args:
        path: the result folder.
        kind: the expected kind (a class name); old manifest names are accepted for it. ``None``
            accepts any kind.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    meta = read_manifest(path)
    found = _canonical(meta["kind"])
    if kind is not None and found != _canonical(kind):
        raise ValueError(
            f"{path} holds a {found!r} result, not {kind!r}; load it with ii.{found}.load(path) "
            "or ii.load(path)."
        )
    file = path / TENSORS
    if not file.exists():
        raise FileNotFoundError(
            f"The saved result at {path} is incomplete: {TENSORS} is missing. Save the result again."
        )
    try:
        tensors = load_file(str(file))
    except SafetensorError as err:
        raise ValueError(
            f"The saved result at {path} is damaged: {TENSORS} cannot be read ({err}). Save the result again."
        ) from err
    return tensors, {**meta, "kind": found}


def load(path) -> Result:
    """Load any saved result: reads the folder's manifest and returns an object of the class it names.

    Examples:
        >>> import tempfile, instr_interp as ii
        >>> sets = ii.find_isns(ii.tiny_model(), ii.hexainst().sample(1), top=0.05, progress=False)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     back = ii.load(sets.save(d + "/isn"))
        >>> type(back).__name__, back.category_sets["code"].shape
        ('NeuronSets', torch.Size([12, 2]))
    """
    path = Path(path)
    if not (path / MANIFEST).exists() and (path / "instr_interp_finetune.json").exists():
        return _KINDS["FinetuneResult"].load(path)  # a model folder written by finetune()
    kind = _canonical(read_manifest(path)["kind"])
    if kind not in _KINDS:
        raise ValueError(
            f"{path} holds a {kind!r} result, which this version of instr_interp does not know; "
            f"known kinds: {sorted(_KINDS)}."
        )
    return _KINDS[kind].load(path)
