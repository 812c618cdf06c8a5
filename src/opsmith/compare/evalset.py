"""The eval-set format that ``opsmith compare`` reads (JSON Lines, one item a line)::

    {"id": "a-1", "question": "...", "reference": {"answer": "...", "must_include": ["..."]},
     "gold_sources": ["database/PostgresReplicationLag.md"], "answerable": true}
    {"id": "f-1", "input": "...", "reference": {"json_schema": {"type": "object", ...}}}

``question`` may be spelled ``input``; ``answerable`` defaults to true. Unknown keys are errors.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from opsmith.errors import InputError

_ITEM_KEYS = {"id", "question", "input", "reference", "gold_sources", "answerable"}
_REFERENCE_KEYS = {"answer", "must_include", "json_schema"}


@dataclass(frozen=True)
class EvalItem:
    """One eval question with what a good reply must contain or look like."""

    id: str
    question: str
    answer: str | None = None
    must_include: tuple[str, ...] = ()
    json_schema: dict[str, Any] | None = None
    gold_sources: tuple[str, ...] = ()
    answerable: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("extra")
        return data


def load_evalset(path: Path) -> list[EvalItem]:
    """Read and validate an eval set; errors name the file and line."""
    if not path.is_file():
        raise InputError(f"Eval set not found: {path} — pass a JSON Lines file (see docs/compare.md)")
    items: list[EvalItem] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = _item(json.loads(line))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise InputError(
                f"{path}:{number}: not a valid eval item ({type(exc).__name__}: {exc})"
                ' — each line needs {"id", "question", "reference": {"answer" | "must_include" | "json_schema"}}'
            ) from exc
        if item.id in seen:
            raise InputError(f"{path}:{number}: duplicate id {item.id!r} — give every item its own id")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise InputError(f"{path} holds no eval items — add one JSON object per line")
    return items


def _item(row: Any) -> EvalItem:
    if not isinstance(row, dict):
        raise TypeError("each line must be a JSON object")
    unknown = set(row) - _ITEM_KEYS
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}")
    question = row.get("question", row.get("input"))
    if not isinstance(question, str) or not question.strip():
        raise ValueError("'question' (or 'input') must be a non-empty string")
    reference = row.get("reference", {})
    if not isinstance(reference, dict):
        raise TypeError("'reference' must be an object")
    unknown = set(reference) - _REFERENCE_KEYS
    if unknown:
        raise ValueError(f"unknown reference keys {sorted(unknown)}")
    answerable = row.get("answerable", True)
    if not isinstance(answerable, bool):
        raise TypeError("'answerable' must be true or false")
    answer = reference.get("answer")
    schema = reference.get("json_schema")
    if answer is not None and not isinstance(answer, str):
        raise TypeError("'reference.answer' must be a string")
    if schema is not None and not isinstance(schema, dict):
        raise TypeError("'reference.json_schema' must be an object")
    must_include = _strings(reference.get("must_include", []), "reference.must_include")
    if answerable and answer is None and not must_include and schema is None:
        raise ValueError("an answerable item needs reference.answer, reference.must_include or reference.json_schema")
    return EvalItem(
        id=str(row["id"]),
        question=question,
        answer=answer,
        must_include=tuple(must_include),
        json_schema=schema,
        gold_sources=tuple(_strings(row.get("gold_sources", []), "gold_sources")),
        answerable=answerable,
    )


def _strings(value: Any, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{key!r} must be a list of strings")
    return value
