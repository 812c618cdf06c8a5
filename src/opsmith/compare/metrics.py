"""Per-item scores and per-variant aggregates.

The **task score** of one reply, from 0 to 1, is the mean of the parts its reference defines:

* ``must_include``: the share of the strings present (case-insensitive substring);
* ``answer``: token F1 against the reference answer (exact match is reported, not scored);
* ``json_schema``: 1 when the reply parses as JSON (a fenced ```json block is accepted) and
  validates against the schema, else 0.

An unanswerable item scores 1 when the reply refuses and 0 otherwise. A reply **refuses** when
the RAG pipeline says so (:attr:`Answer.refused`) or, for a prompt-only reply, when it matches
:data:`REFUSAL_PATTERN` ("I don't know", "not sure", "cannot answer", ...).
"""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from opsmith.compare.evalset import EvalItem
from opsmith.rag.evaluate import dedupe

#: A reply that says it does not know (used for replies that carry no ``refused`` flag).
REFUSAL_PATTERN = re.compile(
    r"\b(i\s+(do\s+not|don't|dont)\s+know|not\s+sure|cannot\s+answer|can't\s+answer|no\s+information"
    r"|not\s+in\s+the\s+runbooks|unable\s+to\s+answer|NOT_IN_RUNBOOKS)\b",
    re.IGNORECASE,
)
_PUNCT = str.maketrans("", "", string.punctuation)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def normalize(text: str) -> str:
    """Lowercase, drop punctuation and articles, collapse whitespace (SQuAD style)."""
    text = text.lower().translate(_PUNCT)
    return " ".join(w for w in text.split() if w not in {"a", "an", "the"})


def exact_match(prediction: str, reference: str) -> float:
    return 1.0 if normalize(prediction) == normalize(reference) else 0.0


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of token precision and recall after :func:`normalize`."""
    pred, ref = normalize(prediction).split(), normalize(reference).split()
    if not pred or not ref:
        return 1.0 if pred == ref else 0.0
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def must_include_coverage(prediction: str, required: Sequence[str]) -> float:
    """Share of ``required`` strings found in ``prediction`` (case-insensitive); 1.0 when none."""
    if not required:
        return 1.0
    lowered = prediction.lower()
    return sum(1 for s in required if s.lower() in lowered) / len(required)


def parse_json_reply(text: str) -> Any:
    """The JSON value in a reply (bare, or in a fenced block); raises ValueError when there is none."""
    match = _FENCE.search(text)
    return json.loads(match.group(1) if match else text.strip())


def schema_valid(prediction: str, schema: dict[str, Any]) -> bool:
    import jsonschema

    try:
        jsonschema.validate(parse_json_reply(prediction), schema)
    except (ValueError, jsonschema.ValidationError):
        return False
    return True


def is_refusal(text: str) -> bool:
    return bool(REFUSAL_PATTERN.search(text))


def refusal_correct(answerable: bool, refused: bool) -> bool:
    """Unanswerable items should be refused and answerable ones answered."""
    return refused != answerable


def recall_at_k(retrieved: Sequence[str], gold: Iterable[str], k: int) -> float | None:
    """Share of ``gold`` sources among the first ``k`` distinct retrieved sources; None without gold."""
    wanted = set(gold)
    if not wanted:
        return None
    return len(wanted & set(dedupe(retrieved)[:k])) / len(wanted)


def score_item(item: EvalItem, text: str, refused: bool) -> dict[str, Any]:
    """Every metric for one reply; ``score`` is the task score defined in the module docstring."""
    result: dict[str, Any] = {"refusal_correct": refusal_correct(item.answerable, refused)}
    if not item.answerable:
        result["score"] = 1.0 if refused else 0.0
        return result
    parts: list[float] = []
    if item.must_include:
        result["must_include"] = must_include_coverage(text, item.must_include)
        parts.append(result["must_include"])
    if item.answer is not None:
        result["exact_match"] = exact_match(text, item.answer)
        result["token_f1"] = round(token_f1(text, item.answer), 4)
        parts.append(result["token_f1"])
    if item.json_schema is not None:
        result["schema_valid"] = schema_valid(text, item.json_schema)
        parts.append(1.0 if result["schema_valid"] else 0.0)
    result["score"] = round(sum(parts) / len(parts), 4) if parts else 0.0
    return result


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None
