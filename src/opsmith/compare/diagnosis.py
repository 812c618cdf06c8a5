"""Why items fail, and what that says about prompt vs RAG vs fine-tuning.

Per answerable item, comparing ``prompt`` with the best RAG variant present (``rag``, else
``rag+finetuned``); an item "passes" when its task score is at least :data:`PASS`:

* **knowledge gap**: the RAG variant passes and ``prompt`` does not (retrieval supplied what
  the model lacked);
* **behaviour gap**: the content is there (the gold source was retrieved, or the must_include
  strings are present) but the format fails (the reply does not validate against the item's
  JSON schema);
* **retrieval miss**: the item has gold sources and none was retrieved.

The shares over answerable items become :class:`opsmith.advise.Answers` with these thresholds
(:data:`SHARE`): ``missing_knowledge`` = knowledge-gap share ≥ 0.2; ``behavior_wrong`` =
behaviour-gap share ≥ 0.2; ``prompting_tried`` = true (the ``prompt`` variant is a prompt);
``still_wrong_after_prompting`` = ``behavior_wrong``; ``fundamentally_incapable`` = the best
variant's mean score is below 0.2; ``needs_citations`` = any item has gold sources;
``labeled_examples`` = the number of items. ``advise``'s decision tree then picks the technique.
"""

from __future__ import annotations

from typing import Any

from opsmith.compare.evalset import EvalItem

PASS = 0.5
SHARE = 0.2
KINDS = ("knowledge_gap", "behaviour_gap", "retrieval_miss")


def diagnose_item(item: EvalItem, results: dict[str, dict[str, Any]]) -> list[str]:
    """The gap kinds that apply to ``item``, given each variant's scored result."""
    if not item.answerable:
        return []
    rag = results.get("rag") or results.get("rag+finetuned")
    prompt = results.get("prompt")
    kinds: list[str] = []
    if rag is not None and prompt is not None and rag["score"] >= PASS > prompt["score"]:
        kinds.append("knowledge_gap")
    gold_hit = bool(rag and item.gold_sources and set(item.gold_sources) & set(rag["retrieved"]))
    for result in results.values():
        if item.json_schema is None or result.get("schema_valid", True):
            continue
        content = (result.get("must_include", 0.0) >= PASS) if item.must_include else gold_hit
        if content:
            kinds.append("behaviour_gap")
            break
    if rag is not None and item.gold_sources and not gold_hit:
        kinds.append("retrieval_miss")
    return kinds


def aggregate(
    per_item: dict[str, list[str]], items: list[EvalItem], best_score: float, *, corpus_tokens: int | None = None
) -> dict[str, Any]:
    """Counts and shares of each gap kind over answerable items, and the ``advise`` answers.

    ``corpus_tokens`` is the measured size of the indexed runbooks, when there is an index, so
    the tree's "does the knowledge fit in one prompt?" gate sees the real number."""
    answerable = [i for i in items if i.answerable]
    n = len(answerable) or 1
    counts = {kind: sum(kind in per_item.get(i.id, []) for i in answerable) for kind in KINDS}
    shares = {kind: round(count / n, 4) for kind, count in counts.items()}
    behaviour = shares["behaviour_gap"] >= SHARE
    answers = {
        "missing_knowledge": shares["knowledge_gap"] >= SHARE,
        "behavior_wrong": behaviour,
        "prompting_tried": True,
        "still_wrong_after_prompting": behaviour,
        "too_slow_or_expensive": False,
        "fundamentally_incapable": best_score < SHARE,
        "needs_citations": any(i.gold_sources for i in items),
        "labeled_examples": len(items),
    }
    if corpus_tokens is not None:
        answers["corpus_tokens"] = corpus_tokens
    return {
        "answerable": len(answerable),
        "counts": counts,
        "shares": shares,
        "thresholds": {"pass": PASS, "share": SHARE},
        "answers": answers,
    }


def recommend_from(answers: dict[str, Any]) -> dict[str, Any]:
    """Run ``advise``'s decision tree on ``answers``; the Recommendation as a dict."""
    try:
        from opsmith.advise import Answers, recommend
    except ImportError as exc:
        raise RuntimeError(
            "opsmith.advise is not available, so compare cannot make a recommendation — install opsmith with advise"
        ) from exc
    return dict(recommend(Answers(**answers)).to_dict())
