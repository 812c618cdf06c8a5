"""Retrieval and answer evaluation on a question set.

The question format (JSON Lines) is the one used by ``prometheus-runbooks``::

    {"id": "q-1", "question": "...", "gold": ["dir/Runbook.md"], "must_include": ["kubectl ..."], "answerable": true}

Ranking metrics use the sources of the ranked chunks, de-duplicated in rank order, and
count only answerable questions; each has one relevant source, so nDCG@10 is
``1 / log2(rank + 1)``. Refusal precision and recall treat "refused" as the positive
prediction for an unanswerable question.

What reaches the engineer is measured too: ``must_include_rate`` (every ``must_include``
string is in the answer), ``context_must_include_rate`` (every one is in the excerpts an LLM
would be given: the same context whether or not an LLM is configured), the context's size in
the embedder's tokens and the answer's in characters (median and p95), and how unanswerable
questions end: refused, or answered with ``not_covered`` terms named (``flagged``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsmith.errors import InputError
from opsmith.rag.answer import Answer, answer_context
from opsmith.rag.retrieve import Retriever

__all__ = [
    "EvalQuestion",
    "QuestionResult",
    "dedupe",
    "evaluate",
    "gold_warning",
    "llm_context",
    "load_questions",
    "plot_support",
    "score",
    "suggest_threshold",
]


@dataclass
class EvalQuestion:
    id: str
    question: str
    gold: list[str]
    must_include: list[str]
    answerable: bool


@dataclass
class QuestionResult:
    id: str
    refused: bool
    ranked_sources: list[str]
    answer: str
    must_include_ok: bool | None
    answerable: bool = True
    gold: list[str] = field(default_factory=list)
    support: float = 0.0
    context_must_include_ok: bool | None = None
    context_tokens: int = 0
    not_covered: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        """Answered, but with terms of the question named as not covered by the runbooks."""
        return not self.refused and bool(self.not_covered)


def load_questions(path: Path) -> list[EvalQuestion]:
    """Read and validate a question file; errors name the line."""
    if not path.is_file():
        raise InputError(f"Question file not found: {path} — pass a JSON Lines file of questions")
    questions: list[EvalQuestion] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            questions.append(
                EvalQuestion(
                    id=str(row["id"]),
                    question=str(row["question"]),
                    gold=_strings(row, "gold"),
                    must_include=_strings(row, "must_include"),
                    answerable=bool(row.get("answerable", bool(row.get("gold")))),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InputError(
                f"{path}:{number}: not a valid question ({type(exc).__name__}: {exc})"
                ' — each line needs {"id", "question", "gold", "must_include", "answerable"}'
            ) from exc
    if not questions:
        raise InputError(f"{path} holds no questions — add one JSON object per line")
    return questions


def _strings(row: dict[str, Any], key: str) -> list[str]:
    value = row.get(key, [])
    # list("a.md") would silently become ["a", ".", "m", "d"].
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError(f"{key!r} must be a list of strings")
    return value


def gold_warning(questions: Iterable[EvalQuestion], indexed: Collection[str], collection: str) -> str | None:
    """Why recall will read low before any question is asked: gold sources the collection lacks.

    Sources are paths relative to the folder given to ``opsmith ingest``, so ingesting a parent
    folder (every source then carries a prefix) or a different corpus leaves no gold path in the
    index and every ranking metric at 0 with no other sign. Returns None when every gold source
    of an answerable question is indexed, else one line naming an example of each side.

    Args:
        questions: the question set.
        indexed: the sources in the collection (``store.file_states(collection)``'s keys).
        collection: its name, for the message.
    """
    gold = sorted({source for q in questions if q.answerable for source in q.gold})
    missing = [source for source in gold if source not in indexed]
    if not missing:
        return None
    example = missing[0]
    # The usual cause, named when it fits: the same file indexed under a longer or shorter path.
    near = sorted(s for s in indexed if s.endswith("/" + example) or example.endswith("/" + s))
    if near:
        seen = f"{near[0]!r} is indexed"
    elif indexed:
        seen = f"indexed sources look like {min(indexed)!r}"
    else:
        seen = "the collection holds no sources"
    remedy = "ingest the folder the gold paths are relative to, or fix the gold paths"
    if len(missing) == len(gold):
        return (
            f"No gold source of this question set is in collection '{collection}', so recall, MRR and nDCG"
            f" will be 0: gold paths look like {example!r}, and {seen} — {remedy}"
        )
    return (
        f"{len(missing)} of {len(gold)} gold sources are not in collection '{collection}', so their questions"
        f" cannot be recalled: e.g. {example!r}, and {seen} — {remedy}"
    )


def dedupe(sources: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for source in sources:
        if source not in seen:
            seen.append(source)
    return seen


def score(results: list[QuestionResult]) -> dict[str, Any]:
    """Aggregate metrics over per-question results."""
    answerable = [r for r in results if r.answerable]
    unanswerable = [r for r in results if not r.answerable]
    n = len(answerable) or 1

    def rank(result: QuestionResult) -> int | None:
        return next((i + 1 for i, s in enumerate(result.ranked_sources) if s in result.gold), None)

    ranks = [rank(r) for r in answerable]
    answered = [r for r in results if not r.refused]
    u = len(unanswerable) or 1
    refused_total = sum(r.refused for r in results)
    refused_right = sum(r.refused for r in unanswerable)
    return {
        "questions_total": len(results),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "recall@1": round(sum(1 for x in ranks if x is not None and x <= 1) / n, 4),
        "recall@5": round(sum(1 for x in ranks if x is not None and x <= 5) / n, 4),
        "mrr@10": round(sum(1 / x for x in ranks if x is not None and x <= 10) / n, 4),
        "ndcg@10": round(sum(1 / math.log2(x + 1) for x in ranks if x is not None and x <= 10) / n, 4),
        "refusal_precision": round(refused_right / refused_total, 4) if refused_total else None,
        "refusal_recall": round(refused_right / len(unanswerable), 4) if unanswerable else None,
        "false_refusal_rate": round(sum(r.refused for r in answerable) / n, 4),
        "must_include_rate": round(sum(bool(r.must_include_ok) for r in answerable) / n, 4),
        "context_must_include_rate": round(sum(bool(r.context_must_include_ok) for r in answerable) / n, 4),
        "context_tokens_median": _percentile([r.context_tokens for r in answered], 50),
        "context_tokens_p95": _percentile([r.context_tokens for r in answered], 95),
        "answer_chars_median": _percentile([len(r.answer) for r in answered], 50),
        "answer_chars_p95": _percentile([len(r.answer) for r in answered], 95),
        "unanswerable_refused_or_flagged": round(sum(r.refused or r.flagged for r in unanswerable) / u, 4)
        if unanswerable
        else None,
        "answerable_flagged": round(sum(r.flagged for r in answerable) / n, 4),
    }


def _percentile(values: list[int], q: float) -> int:
    """The nearest-rank percentile; 0 for no values."""
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def suggest_threshold(results: list[QuestionResult], *, max_false_refusals: float = 0.10) -> float | None:
    """The support threshold that refuses the most unanswerable questions while refusing at most
    ``max_false_refusals`` of the answerable ones; ties go to the lowest such threshold."""
    answerable = sorted(r.support for r in results if r.answerable)
    unanswerable = [r.support for r in results if not r.answerable]
    if not answerable or not unanswerable:
        return None
    best: tuple[float, float] | None = None
    for candidate in sorted({*answerable, *unanswerable}):
        threshold = round(candidate + 1e-4, 4)  # refuse scores strictly below
        false_rate = sum(s < threshold for s in answerable) / len(answerable)
        if false_rate > max_false_refusals:
            break
        recall = sum(s < threshold for s in unanswerable) / len(unanswerable)
        if best is None or recall > best[0]:
            best = (recall, threshold)
    return best[1] if best else None


def plot_support(results: list[dict[str, Any]], threshold: float, path: Path) -> Path:
    """PNG of each question's support score, answerable against unanswerable, with the threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=120)
    for row_index, (label, answerable, colour) in enumerate(
        (("answerable", True, "#2b7bb9"), ("unanswerable", False, "#d95f02"))
    ):
        values = [r["support"] for r in results if r["answerable"] is answerable]
        jitter = [row_index + (i % 7 - 3) * 0.04 for i in range(len(values))]
        ax.scatter(values, jitter, s=18, alpha=0.75, color=colour, label=f"{label} ({len(values)})")
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1)
    ax.text(threshold, 1.45, f" refusal threshold {threshold:.2f}", fontsize=8, va="center")
    ax.set_yticks([0, 1], ["answerable", "unanswerable"])
    ax.set_ylim(-0.5, 1.7)
    ax.set_xlim(0, 2)
    ax.set_xlabel("support = best cosine + IDF-weighted term coverage (refused when below the line)")
    ax.legend(loc="lower left", fontsize=8, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def llm_context(retriever: Retriever, *, k: int, context_tokens: int) -> Callable[[str], tuple[str, int]]:
    """For :func:`evaluate`: the excerpts an LLM would be given for a question, as one text, with their tokens."""

    def build(question: str) -> tuple[str, int]:
        excerpts = answer_context(question, retriever.search(question, k=k), retriever, context_tokens=context_tokens)
        count = retriever.embedder.count_tokens
        return "\n\n".join(e.text for e in excerpts), sum(count(e.text) for e in excerpts)

    return build


def evaluate(
    questions: list[EvalQuestion],
    *,
    rank: Callable[[str], list[str]],
    ask: Callable[[str], Answer],
    context: Callable[[str], tuple[str, int]] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run every question through ``rank`` (sources for the top 10 chunks), ``ask`` and, for
    questions not refused, ``context`` (the LLM's excerpts as one text, and its size in tokens)."""
    results: list[QuestionResult] = []
    for question in questions:
        ranked = dedupe(rank(question.question))[:10]
        reply = ask(question.question)
        ok = all(s in reply.answer for s in question.must_include) if question.answerable else None
        given, tokens = context(question.question) if context is not None and not reply.refused else ("", 0)
        context_ok = all(s in given for s in question.must_include) if question.answerable else None
        results.append(
            QuestionResult(
                question.id,
                reply.refused,
                ranked,
                reply.answer,
                ok,
                question.answerable,
                list(question.gold),
                reply.support,
                context_ok,
                tokens,
                list(reply.not_covered),
            )
        )
        if progress:
            progress(1)
    summary = score(results)
    summary["suggested_refusal_threshold"] = suggest_threshold(results)
    summary["questions"] = [
        {
            "id": r.id,
            "refused": r.refused,
            "ranked_sources": r.ranked_sources,
            "answer": r.answer,
            "must_include_ok": r.must_include_ok,
            "answerable": r.answerable,
            "gold": r.gold,
            "support": r.support,
            "context_must_include_ok": r.context_must_include_ok,
            "context_tokens": r.context_tokens,
            "answer_chars": len(r.answer),
            "not_covered": r.not_covered,
            "flagged": r.flagged,
        }
        for r in results
    ]
    return summary
