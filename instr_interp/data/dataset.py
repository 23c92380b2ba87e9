"""Instruction records: the dataset type, validation, file formats and the built-in HexaInst set."""

import csv
import hashlib
import io
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from importlib.resources import files
from pathlib import Path

from ..files import read_text, write_atomic

__all__ = [
    "CATEGORIES",
    "InstructionDataset",
    "InstructionRecord",
    "hexainst",
    "load_instructions",
    "tuneset",
]

CATEGORIES = ("classification", "code", "general_qa", "generation", "math", "summarization")
_FIELDS = ("id", "category", "instruction", "input", "response", "source")
_REQUIRED = ("id", "category", "instruction")


@dataclass(frozen=True, kw_only=True)
class InstructionRecord:
    """One instruction: the directive, the material it acts on, and a reference answer."""

    id: str
    category: str
    instruction: str
    input: str = ""
    response: str = ""
    source: str = ""
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = asdict(self)
        meta = out.pop("meta")
        return {**meta, **out}


class InstructionDataset(Sequence):
    """An ordered list of :class:`InstructionRecord` with unique ids.

    Example:
        >>> data = load_instructions([{"id": "a", "category": "math", "instruction": "Add 2 and 3."}])
        >>> len(data), data[0].category, data.categories
        (1, 'math', ('math',))
    """

    def __init__(
        self, records: Iterable[InstructionRecord], name: str = "instructions", format: str = "native"
    ):
        self.records: tuple[InstructionRecord, ...] = tuple(records)
        self.name = name
        self.format = format  # the file format the records were loaded from (see load_instructions)
        _validate(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return InstructionDataset(self.records[index], name=self.name, format=self.format)
        return self.records[index]

    def __repr__(self) -> str:
        counts = ", ".join(f"{c}={n}" for c, n in self.category_counts().items())
        return f"InstructionDataset({self.name!r}, {len(self)} records: {counts})"

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.records)

    @property
    def categories(self) -> tuple[str, ...]:
        """Categories present, built-in ones first in their canonical order, then others sorted."""
        present = {r.category for r in self.records}
        return tuple(c for c in CATEGORIES if c in present) + tuple(sorted(present - set(CATEGORIES)))

    def category_counts(self) -> dict[str, int]:
        counts = Counter(r.category for r in self.records)
        return {c: counts[c] for c in self.categories}

    def filter(self, *, category: str | Sequence[str] | None = None, source: str | None = None):
        """Records of the given category (or categories) and/or source."""
        cats = {category} if isinstance(category, str) else set(category or ())
        keep = [
            r
            for r in self.records
            if (not cats or r.category in cats) and (source is None or r.source == source)
        ]
        return InstructionDataset(keep, name=self.name, format=self.format)

    def sample(self, per_category: int, seed: int = 0):
        """Up to ``per_category`` records of each category, chosen reproducibly."""
        import random

        rng = random.Random(seed)
        keep: list[InstructionRecord] = []
        for cat in self.categories:
            recs = [r for r in self.records if r.category == cat]
            keep += sorted(rng.sample(recs, min(per_category, len(recs))), key=self.records.index)
        return InstructionDataset(sorted(keep, key=self.records.index), name=self.name, format=self.format)

    def split(
        self,
        fraction: float | None = 0.5,
        *,
        n_eval: int | None = None,
        seed: int = 0,
        by: str | None = "category",
        together: bool = True,
    ):
        """Two disjoint datasets ``(identify, evaluate)``, stratified by category.

        Each category sends about ``fraction`` of its records (or ``n_eval`` of them, when given) to
        ``evaluate`` and the rest to ``identify``. With ``together`` (the default), records that share
        a ``meta["template"]`` or an instruction text form one group that goes wholly to one side, so
        the two sides never share a template or an instruction (the evaluation counts are then as
        close to the target as the group sizes allow). Groups are drawn reproducibly from ``seed``.

        Args:
            fraction: the share of each category that goes to ``evaluate`` (between 0 and 1).
            n_eval: the number of ``evaluate`` records per category (overrides ``fraction``).
            seed: the random seed.
            by: ``"category"`` to stratify, or ``None`` for one stratum.
            together: keep records of one template or instruction on the same side.

        Raises:
            ValueError: a bad fraction or ``n_eval``; a side would be empty (too few records or
                groups).

        Examples:
            >>> data = hexainst()
            >>> identify, evaluate = data.split(0.25, seed=0)
            >>> set(identify.ids) & set(evaluate.ids)
            set()
            >>> {r.instruction for r in identify} & {r.instruction for r in evaluate}
            set()
            >>> identify, evaluate = data.split(n_eval=10, seed=0)
            >>> set(evaluate.category_counts().values()), len(identify)
            ({10}, 300)
        """
        import random

        if n_eval is None and (fraction is None or not 0 < fraction < 1):
            raise ValueError(f"fraction must be between 0 and 1 (exclusive), not {fraction!r}.")
        if n_eval is not None and n_eval < 1:
            raise ValueError(f"n_eval must be a positive number of records per category, not {n_eval!r}.")
        if by not in ("category", None):
            raise ValueError(f"by must be 'category' or None, not {by!r}.")
        groups = _linked_groups(self.records, together)
        # a group belongs to the stratum of its first record
        strata: dict[str, list[list[int]]] = {}
        for members in groups.values():
            key = self.records[members[0]].category if by == "category" else ""
            strata.setdefault(key, []).append(members)
        rng = random.Random(seed)
        evaluate: set[int] = set()
        for key in sorted(strata):
            stratum = strata[key]
            size = sum(len(g) for g in stratum)
            target = min(n_eval, size) if n_eval is not None else round(fraction * size)
            order = rng.sample(stratum, len(stratum))
            count = 0
            # first the groups that fit under the target, then any that bring the count closer to it
            for fits in (True, False):
                for members in order:
                    if members[0] in evaluate:
                        continue
                    new = count + len(members)
                    if (new <= target) if fits else abs(new - target) < abs(count - target):
                        evaluate.update(members)
                        count = new
        identify = [r for i, r in enumerate(self.records) if i not in evaluate]
        chosen = [r for i, r in enumerate(self.records) if i in evaluate]
        if not identify or not chosen:
            raise ValueError(
                f"Cannot split {len(self)} records in {len(groups)} template/instruction groups into two "
                "non-empty sides; use more records, another fraction, or together=False."
            )
        return (
            InstructionDataset(identify, name=f"{self.name}-identify", format=self.format),
            InstructionDataset(chosen, name=f"{self.name}-evaluate", format=self.format),
        )

    def length_matched(
        self,
        tokenizer=None,
        *,
        lengths: Sequence[int] | None = None,
        width: int | None = 8,
        edges: Sequence[int] | None = None,
        seed: int = 0,
        format: str = "auto",
    ):
        """A subset with the same counted-token length distribution in every category: records in
        length bins where every category has some, the same number per bin per category (see
        :func:`instr_interp.data.matching.length_matched`).

        Example:
            >>> data = hexainst().length_matched(lengths=[len(r.instruction) for r in hexainst()], width=20)
            >>> len(set(data.category_counts().values()))
            1
        """
        from .matching import length_matched

        return length_matched(
            self, tokenizer, lengths=lengths, width=width, edges=edges, seed=seed, format=format
        )

    def template_groups(self) -> dict[str, int]:
        """Record id -> group number: records that share a ``meta["template"]`` or an instruction text
        are one group (linked transitively), numbered in order of first appearance; the unit to
        resample or permute as a whole when records of one template are near-duplicates.

        Examples:
            >>> groups = hexainst().template_groups()
            >>> groups["cls-t-001"] == groups["cls-t-002"], groups["cls-h-001"] == groups["cls-h-002"]
            (True, False)
        """
        out = {}
        for number, members in enumerate(_linked_groups(self.records, True).values()):
            out.update({self.records[i].id: number for i in members})
        return out

    def fingerprint(self) -> str:
        """A short hash of the records' content (for result manifests and caches)."""
        payload = json.dumps([r.to_dict() for r in self.records], sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]

    # ---- conversions
    def to_dicts(self) -> list[dict]:
        return [r.to_dict() for r in self.records]

    def to_hf(self):
        """As a ``datasets.Dataset``."""
        import datasets

        return datasets.Dataset.from_list(self.to_dicts())

    def save(self, path: str | Path) -> Path:
        """Write ``.json``, ``.jsonl`` or ``.csv`` (chosen by suffix), UTF-8, atomically (a temporary
        sibling renamed into place)."""
        path = Path(path)
        rows = self.to_dicts()
        if path.suffix == ".jsonl":
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        elif path.suffix == ".json":
            text = json.dumps(rows, ensure_ascii=False, indent=1)
        elif path.suffix == ".csv":
            keys = list(dict.fromkeys(k for r in rows for k in r))
            buffer = io.StringIO(newline="")
            writer = csv.DictWriter(buffer, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
            text = buffer.getvalue()
        else:
            raise ValueError(f"Unknown format {path.suffix!r}: use .json, .jsonl or .csv.")
        return write_atomic(path, text)


def _validate(records: Sequence[InstructionRecord]) -> None:
    if not records:
        raise ValueError("An InstructionDataset needs at least one record.")
    for rec in records:
        for name in _REQUIRED:
            value = getattr(rec, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(
                    f"Record {rec.id!r}: field {name!r} is empty; every record needs {_REQUIRED}."
                )
        for name in ("input", "response", "source"):
            if not isinstance(getattr(rec, name), str):
                raise ValueError(f"Record {rec.id!r}: field {name!r} must be a string.")
    dupes = [i for i, n in Counter(r.id for r in records).items() if n > 1]
    if dupes:
        raise ValueError(f"Duplicate record ids: {dupes[:10]}. Ids must be unique.")


def _record(row: dict, index: int, where: str = "") -> InstructionRecord:
    missing = [k for k in _REQUIRED if row.get(k) in (None, "")]
    if missing:
        raise ValueError(
            f"{where}Record {index} ({row.get('id', 'no id')!r}) is missing {missing}; required fields are "
            f"{list(_REQUIRED)} (optional: input, response, source)."
        )
    known = {k: ("" if row.get(k) is None else str(row[k])) for k in _FIELDS if k in row}
    meta = {k: v for k, v in row.items() if k not in _FIELDS}
    return InstructionRecord(**known, meta=meta)


def _read_rows(path: Path) -> list:
    """The rows of a ``.json``, ``.jsonl`` or ``.csv`` file; errors name the file and the line."""
    if path.suffix not in (".json", ".jsonl", ".csv"):
        raise ValueError(
            f"Unknown instruction file type {path.suffix!r} ({path}): use .json, .jsonl or .csv."
        )
    text = read_text(path)
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(
                        f"{path}, line {number}: not valid JSON ({err.msg} at column {err.colno})."
                    ) from None
        return rows
    if path.suffix == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{path}, line {err.lineno}: not valid JSON ({err.msg} at column {err.colno})."
            ) from None
        if isinstance(rows, dict) and "records" in rows:
            rows = rows["records"]
        elif isinstance(rows, dict) and ("Instances" in rows or "Definition" in rows):
            rows = [rows]  # one Super-NaturalInstructions task
        if not isinstance(rows, list):
            raise ValueError(
                f"{path} holds a JSON {type(rows).__name__}; expected a list of records "
                "(or an object with a 'records' list)."
            )
        return rows
    return list(csv.DictReader(io.StringIO(text, newline="")))


def load_instructions(
    source,
    *,
    format: str = "auto",
    categories=None,
    unmapped: str = "keep",
    name: str | None = None,
) -> InstructionDataset:
    """Load instruction records from a path (``.json``, ``.jsonl``, ``.csv``), a list of dicts,
    a ``datasets.Dataset`` or an existing :class:`InstructionDataset`.

    The native format needs ``id``, ``category`` and ``instruction`` (optional ``input``,
    ``response``, ``source``; any other field is kept as metadata). Alpaca, Dolly,
    Super-NaturalInstructions task files, FLAN rows and chat ``messages`` records are converted
    (see :mod:`instr_interp.data.formats` for the field and category mapping); their ids, when
    absent, are ``f"{name}-{index}"``. The format used is the dataset's ``format`` attribute.

    Args:
        source: the file, rows or dataset.
        format: ``"auto"`` (detected from the fields of the first record), ``"native"``,
            ``"alpaca"``, ``"dolly"``, ``"superni"``, ``"flan"`` or ``"messages"``.
        categories: a map from the source's category labels to categories, over the format's default
            map (a ``None`` value unmaps a label), or a callable given each converted record as a dict
            (with the source's ``label``) returning a category or ``None``.
        unmapped: ``"keep"`` a record whose label maps nowhere under its own label (the format's name
            when it has none, e.g. ``"alpaca"``), or ``"drop"`` it.
        name: the dataset's name and the prefix of generated ids (default: the file's stem, or the
            format's name for rows in another format than native).

    Raises:
        ValueError: missing or empty required fields (the message names the file, the record and the
            field), duplicate ids, an unknown file type or format, no record left after ``unmapped="drop"``.
        FileNotFoundError: the path does not exist.

    Examples:
        >>> rows = [{"instruction": "Who founded it?", "context": "Ada founded the club.",
        ...          "response": "Ada.", "category": "closed_qa"}]
        >>> data = load_instructions(rows)
        >>> data.format, data[0].id, data[0].category, data[0].input
        ('dolly', 'dolly-0', 'general_qa', 'Ada founded the club.')
    """
    from .formats import detect_format, to_records

    if isinstance(source, InstructionDataset):
        return source
    where = ""
    if isinstance(source, (str, Path)):
        path = Path(source)
        where = f"{path}: "
        if not path.exists():
            raise FileNotFoundError(f"No instruction file at {path}.")
        rows = _read_rows(path)
        name = name or path.stem
    elif hasattr(source, "to_list") and hasattr(source, "column_names"):  # datasets.Dataset
        rows = source.to_list()
    elif isinstance(source, (list, tuple)):
        rows = list(source)
    else:
        raise TypeError(f"Cannot load instructions from {type(source).__name__}.")
    if rows and all(isinstance(r, InstructionRecord) for r in rows):
        return InstructionDataset(rows, name=name or "instructions")
    if not name:
        guess = (
            format
            if format != "auto"
            else detect_format(rows[0])
            if rows and isinstance(rows[0], dict)
            else ""
        )
        name = guess if guess not in ("", "native") else "instructions"
    records, fmt = to_records(
        rows, format=format, categories=categories, unmapped=unmapped, name=name, where=where
    )
    if rows and not records:
        raise ValueError(
            f"{where}No record left: all {len(rows)} were unmapped and unmapped='drop' removed them; "
            "pass a categories map that covers their labels."
        )
    return InstructionDataset(records, name=name, format=fmt)


def hexainst() -> InstructionDataset:
    """The built-in balanced six-category instruction set (60 per category, half written one by
    one, half from templates; see ``scripts/build_hexainst.py``).

    Example:
        >>> data = hexainst()
        >>> data.category_counts()["code"]
        60
    """
    text = files("instr_interp.data").joinpath("hexainst.jsonl").read_text()
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return load_instructions(rows, name="hexainst")


def tuneset() -> InstructionDataset:
    """The built-in instruction-TUNING set: 360 records per category (a few dozen written one by
    one, the rest from templates and programs whose answers are computed and verified), disjoint
    from :func:`hexainst` in instruction text, (instruction, input) pairs and template families;
    see ``scripts/build_tuneset.py``. Generated records name their family in ``meta["template"]``;
    math and code records carry ``meta["check"]`` (the stored answer, tests the response passes, or
    for answers that mix prose and code, ``kind="explained"``, tests of the code and claims shown).

    Example:
        >>> data = tuneset()
        >>> data.category_counts()["math"], data[0].source
        (360, 'handwritten')
    """
    text = files("instr_interp.data").joinpath("tuneset.jsonl").read_text()
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return load_instructions(rows, name="tuneset")


def _linked_groups(records, together: bool = True) -> dict[int, list[int]]:
    """Root index -> member indices of the groups of records linked by a shared ``meta["template"]``
    or instruction text (union-find); every record alone when ``together`` is False."""
    parent = list(range(len(records)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if together:
        first: dict = {}
        for i, rec in enumerate(records):
            keys = [("instruction", rec.instruction)]
            if rec.meta.get("template") not in (None, ""):
                keys.append(("template", str(rec.meta["template"])))
            for key in keys:
                if key in first:
                    parent[root(i)] = root(first[key])
                else:
                    first[key] = i
    groups: dict[int, list[int]] = {}
    for i in range(len(records)):
        groups.setdefault(root(i), []).append(i)
    return groups
