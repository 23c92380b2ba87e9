"""Data flows one way (DESIGN.md): models/data -> engine -> interventions -> analyses -> report/cli.

Every module under instr_interp is parsed with ``ast``; each import statement (top level or inside a
function, relative or absolute) is resolved to the ``instr_interp`` module it names.
"""

import ast
import sys
from pathlib import Path

import pytest

import instr_interp

ROOT = Path(instr_interp.__file__).parent
PRESENTATION = ("instr_interp.report", "instr_interp.cli", "instr_interp.studies")
BELOW_PRESENTATION = (
    "models",
    "tiny",
    "hooks",
    "compat",
    "units",
    "checks",
    "results",
    "files",
    "views",
    "stats",
    "data",
    "engine",
    "interventions",
    "sparcom",
    "shift",
    "vectors",
    "sweeps",
)
ANALYSES = ("instr_interp.sparcom", "instr_interp.shift", "instr_interp.vectors", "instr_interp.sweeps")
BELOW_ANALYSES = ("data", "engine", "interventions")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Absolute names of everything ``path`` imports: ``from .x import y`` gives ``pkg.x`` and ``pkg.x.y``."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _under(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _modules(top: tuple[str, ...]) -> list[Path]:
    paths = []
    for part in top:
        target = ROOT / part
        paths += sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]
    return [p for p in paths if p.exists()]


def test_the_resolver_sees_lazy_relative_and_absolute_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "instr_interp" / "shift"
    pkg.mkdir(parents=True)
    source = pkg / "x.py"
    source.write_text(
        "import os\nfrom . import y\nfrom ..report.page import Section\n"
        "def f():\n    from instr_interp import cli\n    import instr_interp.report.stages\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path / "instr_interp")
    found = imported_modules(source)
    assert {
        "os",
        "instr_interp.shift.y",
        "instr_interp.report.page",
        "instr_interp.cli",
        "instr_interp.report.stages",
    } <= found
    assert sorted(m for m in found if _under(m, PRESENTATION)) == [
        "instr_interp.cli",
        "instr_interp.report.page",
        "instr_interp.report.page.Section",
        "instr_interp.report.stages",
    ]


@pytest.mark.parametrize("path", _modules(BELOW_PRESENTATION), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_analysis_or_lower_module_imports_the_report_or_the_cli(path):
    upward = sorted(m for m in imported_modules(path) if _under(m, PRESENTATION))
    assert not upward, (
        f"{path.relative_to(ROOT)} imports {upward}: presentation depends on analyses, not back."
    )


@pytest.mark.parametrize("path", _modules(BELOW_ANALYSES), ids=lambda p: str(p.relative_to(ROOT)))
def test_data_engine_and_interventions_import_no_analysis(path):
    upward = sorted(m for m in imported_modules(path) if _under(m, ANALYSES))
    assert not upward, f"{path.relative_to(ROOT)} imports {upward}: move the helper down a layer instead."


def test_every_layer_is_checked():
    """A new top-level module or package must be placed in a layer here."""
    known = set(BELOW_PRESENTATION) | {"report", "studies", "cli", "__init__", "__main__"}
    present = {
        p.stem if p.is_file() else p.name
        for p in ROOT.iterdir()
        if (p.is_file() and p.suffix == ".py") or (p.is_dir() and any(p.glob("*.py")))
    }
    assert present <= known, f"place {sorted(present - known)} in a layer of tests/unit/test_layers.py"
