"""Retrieval quality on prometheus-runbooks: hybrid vs dense vs BM25, with refusal and must-include.

    python benchmarks/retrieval_quality.py

Ingests the corpus into a scratch home with the default settings, then runs
``opsmith eval retrieval`` logic for each mode. If ``bm25s`` is installed (``pip install
bm25s``), the naive baselines (1000-character chunks, dense MiniLM and plain BM25) from
``shared/tools/baseline_rag.py`` are run in the same process run for comparison.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from _common import CORPUS, REPO, require_corpus, save, scratch_home


def main() -> None:
    require_corpus()
    scratch_home("quality")
    from opsmith.config import load_settings
    from opsmith.rag.answer import answer_question
    from opsmith.rag.embedder import load_embedder
    from opsmith.rag.evaluate import evaluate, load_questions
    from opsmith.rag.indexing import ingest
    from opsmith.rag.retrieve import Retriever
    from opsmith.rag.store import open_store

    settings = load_settings()
    embedder = load_embedder(settings)
    questions = load_questions(CORPUS / "questions.jsonl")
    results: dict[str, object] = {
        "settings": {
            k: getattr(settings, k)
            for k in ("embedder", "chunk_tokens", "chunk_overlap", "top_k", "refusal_threshold", "hybrid_sparse_weight")
        }
    }
    with open_store(settings) as store:
        report = ingest([CORPUS / "runbooks"], settings=settings, embedder=embedder, store=store, collection="bench")
        results["chunks"] = report.chunks
        for mode in ("hybrid", "dense", "sparse"):
            retriever = Retriever(embedder, store, "bench", mode, settings.hybrid_sparse_weight)
            summary = evaluate(
                questions,
                rank=lambda q, r=retriever: [h.chunk.source for h in r.search(q, k=10)],
                ask=lambda q, r=retriever: answer_question(
                    q, retriever=r, k=settings.top_k, refusal_threshold=settings.refusal_threshold
                ),
            )
            summary.pop("questions")
            results[mode] = summary
            print(mode, summary, file=sys.stderr)
        # The same default settings on opsmith's own example runbooks and question set, which
        # were written separately from the tuning above: a check that the defaults transfer.
        examples = REPO / "examples"
        ingest([examples / "runbooks"], settings=settings, embedder=embedder, store=store, collection="examples")
        retriever = Retriever(embedder, store, "examples", "hybrid", settings.hybrid_sparse_weight)
        summary = evaluate(
            load_questions(examples / "questions.jsonl"),
            rank=lambda q: [h.chunk.source for h in retriever.search(q, k=10)],
            ask=lambda q: answer_question(
                q, retriever=retriever, k=settings.top_k, refusal_threshold=settings.refusal_threshold
            ),
        )
        summary.pop("questions")
        results["examples_hybrid"] = summary
    if importlib.util.find_spec("bm25s"):
        baseline = CORPUS.parent.parent / "tools" / "baseline_rag.py"
        if baseline.exists():
            run = subprocess.run(
                [sys.executable, str(baseline), str(CORPUS / "runbooks"), str(CORPUS / "questions.jsonl")],
                capture_output=True,
                text=True,
                check=False,
            )
            results["baseline_output"] = run.stdout.strip().splitlines()
    save("retrieval_quality", results)


if __name__ == "__main__":
    main()
