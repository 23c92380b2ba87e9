"""Instruction data as researchers have it: Alpaca, Dolly, Super-NaturalInstructions, FLAN and chat
``messages`` records, converted to :class:`~instr_interp.data.dataset.InstructionRecord`.

:func:`~instr_interp.data.dataset.load_instructions` calls :func:`to_records` with ``format=``;
``"auto"`` picks the format from the fields of the first record (:func:`detect_format`).

Where each format's fields go (a record missing a field the format needs is an error naming the
file, the record and the field; other fields are kept in ``meta``):

| format | instruction | input | response | category label |
|---|---|---|---|---|
| native | `instruction` | `input` | `response` | `category` |
| alpaca | `instruction` | `input` | `output` | `category` if any |
| dolly | `instruction` | `context` | `response` | `category` |
| superni | the task's `Definition` (joined) | instance `input` | first `output` | task `Categories` |
| flan | `inputs` | (empty) | `targets` | `category`, else `task_name`/`_task_name`/`task` |
| messages | the first `user` message | (empty) | the `assistant` message after it | `category` if any |

Ids: a record's own ``id`` (a Super-NaturalInstructions instance's ``id``), else ``f"{name}-{index}"``.
``source`` is the record's own, else the format's name. Super-NaturalInstructions records keep the
task's name, its categories and positive examples in ``meta`` (``task``, ``superni_categories``,
``positive_examples``; other outputs in ``outputs``). FLAN rows with a template index get
``meta["template"] = f"{task}/{index}"``. Chat records keep the system prompt in ``meta["system"]``
and the messages after the first user/assistant pair in ``meta["later_turns"]``.

Categories: a record's own label goes through the user's ``categories`` map, then the format's
default map (:data:`DOLLY_CATEGORIES`, :data:`SUPERNI_CATEGORIES`); a label that is already one of
:data:`~instr_interp.data.dataset.CATEGORIES` stays. A record whose label maps nowhere (or that has no
label, as Alpaca's) is *unmapped*: ``unmapped="keep"`` keeps it under its own label (or the format's
name, e.g. ``"alpaca"``), ``unmapped="drop"`` leaves it out. The original label is kept in
``meta["source_category"]`` when it differs from the category.
"""

from collections.abc import Callable, Mapping

from .dataset import _FIELDS, CATEGORIES, InstructionRecord, _record

__all__ = ["DOLLY_CATEGORIES", "FORMATS", "SUPERNI_CATEGORIES", "detect_format", "to_records"]

FORMATS = ("native", "alpaca", "dolly", "superni", "flan", "messages")
"""The formats :func:`to_records` reads (``format="auto"`` detects one of them)."""

DOLLY_CATEGORIES = {
    "open_qa": "general_qa",
    "closed_qa": "general_qa",
    "general_qa": "general_qa",
    "classification": "classification",
    "summarization": "summarization",
    "information_extraction": "summarization",
    "brainstorming": "generation",
    "creative_writing": "generation",
}
"""databricks-dolly-15k's eight categories onto the six. Information extraction (pull names, dates or
facts out of a given passage) goes with summarization: both condense a supplied passage."""

SUPERNI_CATEGORIES = {
    "Question Answering": "general_qa",
    "Commonsense Classification": "classification",
    "Sentiment Analysis": "classification",
    "Text Categorization": "classification",
    "Toxic Language Detection": "classification",
    "Spam Classification": "classification",
    "Textual Entailment": "classification",
    "Stance Detection": "classification",
    "Language Identification": "classification",
    "Summarization": "summarization",
    "Title Generation": "summarization",
    "Information Extraction": "summarization",
    "Program Execution": "code",
    "Code to Text": "code",
    "Text to Code": "code",
    "Mathematics": "math",
    "Story Composition": "generation",
    "Question Generation": "generation",
    "Sentence Composition": "generation",
    "Text Completion": "generation",
    "Paraphrasing": "generation",
    "Dialogue Generation": "generation",
    "Data to Text": "generation",
    "Poem Generation": "generation",
}
"""Super-NaturalInstructions task categories onto the six; a task takes the first of its
``Categories`` that maps. Categories not listed here are unmapped."""

_DEFAULT_MAPS = {"dolly": DOLLY_CATEGORIES, "superni": SUPERNI_CATEGORIES}
_FLAN_TASK = ("task_name", "_task_name", "task")
_FLAN_TEMPLATE = ("_template_idx", "template_idx", "template_id")


def detect_format(row: dict) -> str:
    """The format of a record (a dict), from its fields.

    ``messages`` -> messages; ``Definition``/``Instances`` -> superni; ``inputs`` and ``targets`` ->
    flan; ``instruction`` and ``output`` without ``response`` -> alpaca; ``instruction`` and ``context``
    without ``input`` -> dolly; anything else -> native.

    Examples:
        >>> detect_format({"instruction": "Name a fruit.", "input": "", "output": "Pear"})
        'alpaca'
        >>> detect_format({"instruction": "Who wrote it?", "context": "Ada wrote it.", "response": "Ada"})
        'dolly'
        >>> detect_format({"messages": [{"role": "user", "content": "Hi"}]})
        'messages'
    """
    keys = set(row)
    if "messages" in keys:
        return "messages"
    if "Definition" in keys or "Instances" in keys:
        return "superni"
    if {"inputs", "targets"} <= keys:
        return "flan"
    if {"instruction", "output"} <= keys and "response" not in keys:
        return "alpaca"
    if {"instruction", "context"} <= keys and "input" not in keys:
        return "dolly"
    return "native"


def _text(row: dict, key: str, where: str, *, required: bool = True) -> str:
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            state = "missing" if key not in row else "empty"
            raise ValueError(f"{where}: field {key!r} is {state}.")
        return ""
    return value if isinstance(value, str) else str(value)


def _alpaca(row: dict, where: str) -> dict:
    out = {
        "instruction": _text(row, "instruction", where),
        "input": _text(row, "input", where, required=False),
        "response": _text(row, "output", where),
        "label": row.get("category"),
    }
    return {**out, "meta": _rest(row, {"instruction", "input", "output", "category"})}


def _dolly(row: dict, where: str) -> dict:
    out = {
        "instruction": _text(row, "instruction", where),
        "input": _text(row, "context", where, required=False),
        "response": _text(row, "response", where),
        "label": row.get("category"),
    }
    return {**out, "meta": _rest(row, {"instruction", "context", "response", "category"})}


def _flan(row: dict, where: str) -> dict:
    task = row.get("category") or next((row[k] for k in _FLAN_TASK if row.get(k)), None)
    meta = _rest(row, {"inputs", "targets"})
    template = next((row[k] for k in _FLAN_TEMPLATE if row.get(k) is not None), None)
    if template is not None and "template" not in meta:
        meta["template"] = f"{task}/{template}"
    out = {"instruction": _text(row, "inputs", where), "input": "", "response": _text(row, "targets", where)}
    return {**out, "label": task, "meta": meta}


def _messages(row: dict, where: str) -> dict:
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where}: field 'messages' is {'missing' if messages is None else 'not a list'}.")
    for j, message in enumerate(messages):
        for key in ("role", "content"):
            if not isinstance(message, dict) or key not in message:
                raise ValueError(f"{where}: field 'messages[{j}].{key}' is missing.")
    user = next((j for j, m in enumerate(messages) if m["role"] == "user"), None)
    if user is None:
        raise ValueError(f"{where}: field 'messages' has no message with role 'user'.")
    reply = user + 1 if user + 1 < len(messages) and messages[user + 1]["role"] == "assistant" else None
    meta = _rest(row, {"messages", "category"})
    system = [m["content"] for m in messages[:user] if m["role"] == "system"]
    if system:
        meta["system"] = "\n\n".join(system)
    later = messages[(user if reply is None else reply) + 1 :]
    if later:
        meta["later_turns"] = later
    out = {
        "instruction": _text(messages[user], "content", f"{where}, messages[{user}]"),
        "input": "",
        "response": "" if reply is None else str(messages[reply]["content"] or ""),
    }
    return {**out, "label": row.get("category"), "meta": meta}


def _rest(row: dict, used: set) -> dict:
    return {k: v for k, v in row.items() if k not in used and k not in _FIELDS}


def _superni(task: dict, where: str, task_name: str) -> list[dict]:
    for key in ("Definition", "Instances"):
        if key not in task:
            raise ValueError(f"{where}: field {key!r} is missing.")
    definition = task["Definition"]
    definition = " ".join(definition) if isinstance(definition, list) else str(definition)
    if not definition.strip():
        raise ValueError(f"{where}: field 'Definition' is empty.")
    labels = task.get("Categories") or []
    labels = [labels] if isinstance(labels, str) else list(labels)
    shared = {"task": task_name, "superni_categories": labels}
    if task.get("Positive Examples"):
        shared["positive_examples"] = task["Positive Examples"]
    out = []
    for j, inst in enumerate(task["Instances"]):
        here = f"{where}, instance {j}"
        if not isinstance(inst, dict):
            raise ValueError(f"{here}: an instance must be an object with 'input' and 'output'.")
        outputs = inst.get("output")
        if outputs is None:
            raise ValueError(f"{here}: field 'output' is missing.")
        outputs = [outputs] if isinstance(outputs, str) else list(outputs)
        meta = dict(shared)
        if len(outputs) > 1:
            meta["outputs"] = outputs
        rec = {
            "id": inst.get("id"),
            "instruction": definition,
            "input": _text(inst, "input", here),
            "response": str(outputs[0]) if outputs else "",
            "source": "superni",
            "label": labels,
            "meta": meta,
        }
        out.append(rec)
    return out


_CONVERT = {"alpaca": _alpaca, "dolly": _dolly, "flan": _flan, "messages": _messages}


def _resolve(label, rec: dict, fmt: str, categories) -> tuple[str | None, str | None]:
    """(category or None when unmapped, the label to keep an unmapped record under)."""
    if callable(categories):
        cat = categories({k: v for k, v in rec.items() if k != "label"} | {"label": label})
        return cat, (label[0] if isinstance(label, list) and label else label)
    mapping = {**_DEFAULT_MAPS.get(fmt, {}), **(categories or {})}
    labels = label if isinstance(label, list) else [label]
    for one in labels:
        if one is None:
            continue
        if one in mapping:
            if mapping[one] is not None:
                return mapping[one], one
        elif one in CATEGORIES:
            return one, one
    first = next((one for one in labels if one is not None), None)
    return None, first


def to_records(
    rows: list,
    *,
    format: str = "auto",
    categories: Mapping[str, str | None] | Callable[[dict], str | None] | None = None,
    unmapped: str = "keep",
    name: str = "instructions",
    where: str = "",
    task_name: str | None = None,
) -> tuple[list[InstructionRecord], str]:
    """Convert raw rows (dicts) in ``format`` to records; returns ``(records, format)``.

    Args:
        rows: the records as read from the file (a Super-NaturalInstructions task is one row).
        format: one of :data:`FORMATS`, or ``"auto"`` to detect it from the first row.
        categories: a map from the source's labels to categories (it overrides the format's default
            map; a ``None`` value makes a label unmapped), or a callable given the converted record
            as a dict (``instruction``, ``input``, ``response``, ``meta`` and the source's ``label``)
            that returns a category or ``None`` (unmapped).
        unmapped: ``"keep"`` (the record keeps its own label, or the format's name when it has none)
            or ``"drop"``.
        name: the prefix of generated ids, ``f"{name}-{index}"`` (index: the record's position in
            the source, so dropping records does not renumber the others).
        where: the prefix of error messages (the file).
        task_name: the Super-NaturalInstructions task's name (default: ``name``).

    Raises:
        ValueError: an unknown format or ``unmapped`` value, or a record missing a field the format
            needs (the message names the file, the record index and the field).

    Examples:
        >>> recs, fmt = to_records([{"instruction": "Name a colour.", "input": "", "output": "Teal"}])
        >>> fmt, recs[0].id, recs[0].category, recs[0].response
        ('alpaca', 'instructions-0', 'alpaca', 'Teal')
        >>> row = {"instruction": "Name a colour.", "output": "Teal"}
        >>> recs, _ = to_records([row], categories=lambda rec: "generation")
        >>> recs[0].category
        'generation'
    """
    if unmapped not in ("keep", "drop"):
        raise ValueError(f"unmapped must be 'keep' or 'drop', not {unmapped!r}.")
    if format != "auto" and format not in FORMATS:
        raise ValueError(f"Unknown instruction format {format!r}: use 'auto' or one of {FORMATS}.")
    if not rows:
        return [], ("native" if format == "auto" else format)
    bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict)), None)
    if bad is not None:
        raise TypeError(f"{where}Record {bad}: each instruction record must be a dict (a JSON object).")
    fmt = detect_format(rows[0]) if format == "auto" else format
    if fmt == "native":
        return _native(rows, categories, unmapped, where), fmt
    converted: list[dict] = []
    for i, row in enumerate(rows):
        here = f"{where}Record {i} (format {fmt!r})"
        if fmt == "superni":
            converted += _superni(row, here, task_name or (name if len(rows) == 1 else f"{name}-{i}"))
        else:
            rec = {"id": row.get("id"), "source": str(row.get("source") or fmt), **_CONVERT[fmt](row, here)}
            converted.append(rec)
    records = []
    for index, rec in enumerate(converted):
        label = rec.pop("label")
        category, own = _resolve(label, rec, fmt, categories)
        if category is None:
            if unmapped == "drop":
                continue
            category = own or fmt
        if own is not None and own != category:
            rec["meta"]["source_category"] = own
        ident = rec.pop("id")
        records.append(
            InstructionRecord(
                id=f"{name}-{index}" if ident in (None, "") else str(ident), category=str(category), **rec
            )
        )
    return records, fmt


def _native(rows: list, categories, unmapped: str, where: str) -> list[InstructionRecord]:
    records = []
    for i, row in enumerate(rows):
        rec = _record(row, i, where)
        if categories is None and unmapped == "keep":
            records.append(rec)
            continue
        fields = {
            "instruction": rec.instruction,
            "input": rec.input,
            "response": rec.response,
            "meta": rec.meta,
        }
        category, own = _resolve(rec.category, fields, "native", categories)
        if category is None:
            if unmapped == "drop":
                continue
            category = own
        meta = dict(rec.meta) | ({"source_category": own} if own != category else {})
        records.append(
            InstructionRecord(
                id=rec.id,
                category=category,
                instruction=rec.instruction,
                input=rec.input,
                response=rec.response,
                source=rec.source,
                meta=meta,
            )
        )
    return records
