"""Reading and writing files safely: text that must be UTF-8, and writes that are all or nothing."""

import os
import shutil
import tempfile
import uuid
from pathlib import Path

__all__ = ["publish_dir", "read_text", "staging_dir", "write_atomic"]


def read_text(path: str | Path) -> str:
    """The text of ``path`` decoded as UTF-8; a leading byte-order mark (as Excel writes) is dropped.

    Raises:
        ValueError: the file is not UTF-8 (the message names the file and the first bad byte).

    Examples:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.csv"
        >>> _ = p.write_bytes(b"\\xef\\xbb\\xbfid,category\\n")
        >>> read_text(p)
        'id,category\\n'
    """
    path = Path(path)
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ValueError(
            f"{path} is not UTF-8 text: byte 0x{raw[err.start]:02x} at offset {err.start} (line {line}) cannot "
            "be decoded. Re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)."
        ) from None


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary sibling file renamed into place, so a reader
    never sees a half-written file (a full disk or a kill leaves the old file, or none).

    Examples:
        >>> import tempfile, pathlib
        >>> p = write_atomic(pathlib.Path(tempfile.mkdtemp()) / "x.txt", "hello")
        >>> p.read_text()
        'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def staging_dir(out: Path) -> Path:
    """A fresh hidden sibling of ``out`` to write a folder (e.g. a model) into before
    :func:`publish_dir` renames it into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))


def publish_dir(staging: Path, out: Path) -> None:
    """Move a finished folder into place: an existing ``out`` is set aside, replaced, then
    deleted, so ``out`` always holds a complete folder (or none); if the final rename fails, the
    previous folder is put back.

    Examples:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "model"
        >>> staging = staging_dir(out)
        >>> _ = (staging / "weights").write_text("new")
        >>> publish_dir(staging, out)
        >>> (out / "weights").read_text()
        'new'
    """
    if not out.exists():
        staging.rename(out)
        return
    old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
    out.rename(old)
    try:
        staging.rename(out)
    except BaseException:
        old.rename(out)  # put the previous folder back
        raise
    shutil.rmtree(old, ignore_errors=True)
