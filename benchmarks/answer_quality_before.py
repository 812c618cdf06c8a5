"""The "before" column of docs/benchmarks.md#answers-on-three-corpora: the answer and context as they
were before issue 13 (commit 4ff849c), measured on the same three corpora.

    git worktree add --detach /tmp/opsmith-4ff849c 4ff849c
    PYTHONPATH=/tmp/opsmith-4ff849c/src python benchmarks/answer_quality_before.py

That code gave the LLM the best hits of the best runbook, each with its next chunk
(``select_passages(hits, fetch, passages=len(hits), max_chunks=len(hits) + 2, expand=2)``), and
quoted two of them in the offline answer. It had no context metrics, so they are computed here
the way ``opsmith eval retrieval`` now does.
"""

from __future__ import annotations

import json
import math
import sys

from _common import scratch_home
from answer_quality import CORPORA, NEAR_MISS


def _percentile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))] if ordered else 0


def main() -> None:
    scratch_home("answers-before")
    from opsmith.config import load_settings
    from opsmith.rag.answer import answer_question, select_passages  # type: ignore[attr-defined]
    from opsmith.rag.embedder import load_embedder
    from opsmith.rag.evaluate import load_questions
    from opsmith.rag.indexing import ingest
    from opsmith.rag.retrieve import Retriever
    from opsmith.rag.store import open_store

    settings = load_settings()
    embedder = load_embedder(settings)
    results = {}
    with open_store(settings) as store:
        for name, (docs, folder) in CORPORA.items():
            collection = name.split("-")[0]
            ingest([docs], settings=settings, embedder=embedder, store=store, collection=collection)
            retriever = Retriever(embedder, store, collection, settings.retrieval_mode, settings.hybrid_sparse_weight)
            answer_ok, context_ok, tokens, chars = [], [], [], []
            refused_unanswerable = near_refused = unanswerable = near = false_refusals = 0
            for q in load_questions(folder / "questions.jsonl"):
                reply = answer_question(
                    q.question, retriever=retriever, k=settings.top_k, refusal_threshold=settings.refusal_threshold
                )
                if not q.answerable:
                    unanswerable += 1
                    refused_unanswerable += reply.refused
                    if q.id in NEAR_MISS.get(name, []):
                        near += 1
                        near_refused += reply.refused
                    continue
                answer_ok.append(all(s in reply.answer for s in q.must_include))
                false_refusals += reply.refused
                if reply.refused:
                    context_ok.append(False)
                    continue
                chars.append(len(reply.answer))
                hits = retriever.search(q.question, k=settings.top_k)
                context = select_passages(
                    hits,
                    lambda ids, c=collection: store.fetch(c, ids),
                    passages=len(hits),
                    max_chunks=len(hits) + 2,
                    expand=2,
                )
                context_ok.append(all(s in "\n\n".join(p.text for p in context) for s in q.must_include))
                tokens.append(sum(embedder.count_tokens(p.text) for p in context))
            results[name] = {
                "must_include_rate": round(sum(answer_ok) / len(answer_ok), 4),
                "context_must_include_rate": round(sum(context_ok) / len(context_ok), 4),
                "context_tokens_median": _percentile(tokens, 50),
                "context_tokens_p95": _percentile(tokens, 95),
                "answer_chars_median": _percentile(chars, 50),
                "answer_chars_p95": _percentile(chars, 95),
                "false_refusal_rate": round(false_refusals / len(answer_ok), 4),
                "unanswerable_refused": round(refused_unanswerable / unanswerable, 4),
                "near_miss_refused": round(near_refused / near, 4) if near else None,
            }
            print(name, results[name], file=sys.stderr)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
