"""Saving and loading results: safetensors for tensors plus a JSON manifest (never pickle)."""

import json
import platform
import time
from importlib import metadata
from pathlib import Path

import torch

__all__ = ["save_result", "load_result"]

_PACKAGES = ("instr_interp", "torch", "transformers", "transformer-lens")


def _versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["python"] = platform.python_version()
    return out


def save_result(path, kind: str, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write ``tensors.safetensors`` and ``manifest.json`` into directory ``path``."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path / "tensors.safetensors"))
    manifest = {"kind": kind, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "versions": _versions(), **meta}
    (path / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str))
    return path


def load_result(path, kind: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Read what :func:`save_result` wrote; checks that the directory holds a ``kind`` result."""
    from safetensors.torch import load_file

    path = Path(path)
    manifest_file = path / "manifest.json"
    if not manifest_file.exists():
        raise FileNotFoundError(f"No saved result at {path} (manifest.json missing).")
    meta = json.loads(manifest_file.read_text())
    if meta.get("kind") != kind:
        raise ValueError(f"{path} holds a {meta.get('kind')!r} result, not {kind!r}.")
    return load_file(str(path / "tensors.safetensors")), meta
