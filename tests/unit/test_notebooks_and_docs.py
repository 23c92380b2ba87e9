"""Notebooks, README and docs examples run as part of the suite; the docs build in strict mode."""

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PACKAGE = ROOT / "instr_interp"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()


def test_readme_python_examples_run():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


# Every module whose docstrings hold an example (the API reference renders them all).
MODULES = sorted(
    str(p.relative_to(PACKAGE).with_suffix("")).replace("/", ".")
    for p in PACKAGE.rglob("*.py")
    if ">>>" in p.read_text()
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    import doctest
    import importlib

    module = importlib.import_module(f"instr_interp.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


DOC_PAGES = sorted((ROOT / "docs").glob("*.md"))


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def _page_param(path: Path):
    # pages whose examples load a bundled model take minutes: run them with the slow tests
    slow = any("load_model(" in b for b in _python_blocks(path))
    return pytest.param(path, id=path.name, marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("path", [_page_param(p) for p in DOC_PAGES])
def test_docs_python_examples_run(path):
    """Every ```python block of a page runs, in order, in one namespace (```text/```bash are prose)."""
    namespace: dict = {}
    for block in _python_blocks(path):
        exec(compile(block, path.name, "exec"), namespace)


def test_docs_build_in_strict_mode(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "site" / "api" / "index.html").exists()
