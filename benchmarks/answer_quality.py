"""What reaches the engineer, on three corpora side by side: the answer, the LLM's context, near-misses.

    python benchmarks/answer_quality.py [--home DIR] [--corpus NAME ...]

Ingests each corpus with the default settings (into a scratch home, or ``--home`` to keep the
index between runs: ingest skips unchanged files) and runs ``opsmith eval retrieval``'s logic
on its question set, offline (the extractive answer) with the LLM context measured alongside:

* ``prometheus-runbooks``: 117 short alert runbooks, 62 questions (../shared/corpora);
* ``rook-ceph-troubleshooting``: 9 long troubleshooting guides, 60 questions, 10 near-misses;
* ``examples``: opsmith's own example runbooks and questions (written apart from both).

Near-miss figures: ``unanswerable_refused_or_flagged`` over the unanswerable questions (and over
the listed near-miss ids alone), ``answerable_flagged`` over the answerable ones.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from _common import REPO, save, scratch_home

SHARED = REPO.parent / "shared" / "corpora"
CORPORA = {
    "prometheus-runbooks": (SHARED / "prometheus-runbooks" / "runbooks", SHARED / "prometheus-runbooks"),
    "rook-ceph-troubleshooting": (SHARED / "rook-ceph-troubleshooting" / "docs", SHARED / "rook-ceph-troubleshooting"),
    "examples": (REPO / "examples" / "runbooks", REPO / "examples"),
}
#: Questions whose topic the corpus covers but whose specific ask it does not (see each corpus README).
NEAR_MISS = {"rook-ceph-troubleshooting": [f"rk-{n:03d}" for n in range(46, 56)]}
KEYS = (
    "recall@1",
    "mrr@10",
    "must_include_rate",
    "context_must_include_rate",
    "context_tokens_median",
    "context_tokens_p95",
    "answer_chars_median",
    "answer_chars_p95",
    "false_refusal_rate",
    "refusal_recall",
    "unanswerable_refused_or_flagged",
    "answerable_flagged",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="OPSMITH_HOME to ingest into and keep (default: a scratch one)")
    parser.add_argument("--corpus", action="append", choices=sorted(CORPORA), help="run only these corpora")
    parser.add_argument("--show", action="store_true", help="print each question's outcome")
    args = parser.parse_args()
    if args.home:
        os.environ["OPSMITH_HOME"] = str(args.home)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    else:
        scratch_home("answers")
    from opsmith.config import load_settings
    from opsmith.rag.answer import answer_question
    from opsmith.rag.embedder import load_embedder
    from opsmith.rag.evaluate import evaluate, llm_context, load_questions
    from opsmith.rag.indexing import ingest
    from opsmith.rag.retrieve import Retriever
    from opsmith.rag.store import open_store

    settings = load_settings()
    embedder = load_embedder(settings)
    results: dict[str, Any] = {
        "settings": {k: getattr(settings, k) for k in ("top_k", "refusal_threshold", "context_tokens", "chunk_tokens")}
    }
    with open_store(settings) as store:
        for name in args.corpus or list(CORPORA):
            docs, folder = CORPORA[name]
            if not docs.is_dir():
                print(f"skipping {name}: {docs} not found", file=sys.stderr)
                continue
            collection = name.split("-")[0]
            ingest([docs], settings=settings, embedder=embedder, store=store, collection=collection)
            retriever = Retriever(embedder, store, collection, settings.retrieval_mode, settings.hybrid_sparse_weight)
            summary = evaluate(
                load_questions(folder / "questions.jsonl"),
                rank=lambda q, r=retriever: [h.chunk.source for h in r.search(q, k=10)],
                ask=lambda q, r=retriever: answer_question(
                    q,
                    retriever=r,
                    k=settings.top_k,
                    refusal_threshold=settings.refusal_threshold,
                    context_tokens=settings.context_tokens,
                ),
                context=llm_context(retriever, k=settings.top_k, context_tokens=settings.context_tokens),
            )
            questions = summary.pop("questions")
            near = [q for q in questions if q["id"] in NEAR_MISS.get(name, [])]
            if near:
                summary["near_miss_refused_or_flagged"] = round(
                    sum(q["refused"] or q["flagged"] for q in near) / len(near), 4
                )
            results[name] = {k: summary.get(k) for k in (*KEYS, "near_miss_refused_or_flagged")}
            if args.show:
                for q in questions:
                    state = (
                        "REFUSED" if q["refused"] else ("FLAGGED " + ",".join(q["not_covered"]) if q["flagged"] else "")
                    )
                    mark = {True: "ok ", False: "MISS", None: "-- "}
                    print(
                        f"{q['id']} ans={mark[q['must_include_ok']]} ctx={mark[q['context_must_include_ok']]}"
                        f" chars={q['answer_chars']} tok={q['context_tokens']} {state}",
                        file=sys.stderr,
                    )
            print(name, results[name], file=sys.stderr)
    save("answer_quality", results)


if __name__ == "__main__":
    main()
