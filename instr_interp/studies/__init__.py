"""Studies: analyses too slow for the report at an adequate size, run by ``instr-interp study NAME``.

A study is a function ``run(store: Store, size: str, progress: bool) -> dict`` in a module of this
package, listed in :data:`STUDIES` under its name (``".module:function"``, imported only when run). It computes its
units of work through ``store.unit(key, compute)``, so an interrupted study resumes where it
stopped, and returns a JSON-able summary that the command writes to
``benchmarks/results/study_NAME.json`` (or ``--out``). ``size`` is ``"full"`` (the committed run)
or ``"tiny"`` (a seconds-long run of the same code, used by the tests). The command adds
``seconds`` (this invocation's wall time only) and ``units`` (how many units it computed and how
many it read back from an earlier run), so a resumed run's time is not mistaken for the study's cost.

A full run keeps its units in ``benchmarks/results/study_units/NAME/`` by default, so they are
committed with the summary: a run interrupted on one machine resumes on any clone, and every number
in the summary can be traced to the unit that produced it. Tiny runs keep theirs in the user cache.

Studies sit above the analyses (they call them) and beside the report (which renders their JSON).
"""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

from ..files import write_atomic

__all__ = ["STUDIES", "SIZES", "Store", "run_study", "study_path", "work_path"]

SIZES = ("tiny", "full")
RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"

# name -> ".module:function" (relative to this package): one line per study.
STUDIES: dict[str, str] = {
    "following": ".following:run",
    "attribution": ".attribution:run",
    "forgetting": ".forgetting:run",
    "tuning": ".tuning:run",
    "critical": ".critical:run",
}


@dataclass
class Store:
    """Per-unit results of one study run, one JSON file per unit under ``root`` (for resuming)."""

    root: Path
    computed: int = 0  # units computed by this run
    read: int = 0  # units read back from an earlier run

    def unit(self, key: str, compute: Callable[[], object]):
        """The stored value of unit ``key``, or ``compute()`` stored first (written atomically)."""
        if not key or any(c in key for c in "/\\") or key.startswith("."):
            raise ValueError(f"A study unit key must be a plain file name; got {key!r}.")
        path = self.root / f"{key}.json"
        if path.exists():
            self.read += 1
            return json.loads(path.read_text())
        value = compute()
        self.computed += 1
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(value, default=float))
        return value


def work_path(name: str, size: str) -> Path:
    """Where study ``name`` at ``size`` keeps its units by default: committed beside the summary for a
    full run (``benchmarks/results/study_units/NAME``), the user cache for any other size."""
    from ..models import cache_dir

    return RESULTS / "study_units" / name if size == "full" else cache_dir() / "studies" / f"{name}-{size}"


def study_path(name: str, out: Path | None = None) -> Path:
    """Where the summary of study ``name`` is written (``benchmarks/results/study_NAME.json`` by default)."""
    return (Path(out) if out is not None else RESULTS) / f"study_{name}.json"


def run_study(
    name: str, *, size: str = "full", out: Path | None = None, work: Path | None = None, progress: bool = True
) -> Path:
    """Run study ``name`` (resuming from ``work``, default :func:`work_path`) and write its summary
    JSON; returns the summary's path."""
    if name not in STUDIES:
        raise ValueError(f"Unknown study {name!r}; the studies are: {', '.join(sorted(STUDIES)) or 'none'}.")
    if size not in SIZES:
        raise ValueError(f"Unknown size {size!r}; choose one of {SIZES}.")
    module, function = STUDIES[name].split(":")
    run = getattr(import_module(module, __name__), function)
    store = Store(Path(work) if work is not None else work_path(name, size))
    start = time.perf_counter()
    summary = run(store, size, progress)
    # seconds: this invocation only; a resumed run reads its earlier units back (``units``)
    summary = {
        "study": name,
        "size": size,
        "seconds": round(time.perf_counter() - start, 1),
        "units": {"computed": store.computed, "read": store.read},
        **summary,
    }
    path = study_path(name if size == "full" else f"{name}-{size}", out)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(summary, indent=1, default=float) + "\n")
    return path
