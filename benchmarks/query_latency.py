"""Warm query latency (retrieval only), p50 and p95, at corpus size and at >= 10,000 chunks.

    python benchmarks/query_latency.py [--target-chunks 10000] [--queries 200] [--store qdrant|edge]

The large index is made by replicating the ingested corpus's points (same vectors and
payloads, new ids and source names), so only the index size changes between the two runs.
Each query embeds the question and runs the hybrid (dense + BM25, RRF) query in the store:
qdrant-client (embedded, the default) or Qdrant Edge (`--store edge`). Results go to
`results/query_latency.json` or `results/query_latency_edge.json`.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from _common import CORPUS, percentile, require_corpus, save, scratch_home


def measure(retriever, questions: list[str], rounds: int, mode: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    for q in questions[:5]:
        retriever.search(q, k=5, mode=mode)  # warm caches
    times = []
    for i in range(rounds):
        q = questions[i % len(questions)]
        start = time.perf_counter()
        retriever.search(q, k=5, mode=mode)
        times.append((time.perf_counter() - start) * 1000)
    return {
        "p50_ms": round(percentile(times, 50), 2),
        "p95_ms": round(percentile(times, 95), 2),
        "mean_ms": round(float(np.mean(times)), 2),
    }


def replicate(store, embedder, collection: str, target: int) -> int:  # type: ignore[no-untyped-def]
    """Copy the collection's chunks (same vectors, new source names) until it holds ``target``.

    Written through the VectorStore API, so it works the same for every store."""
    import dataclasses

    from opsmith.rag.sparse import document_vector

    originals = list(store.all_chunks(collection))
    dense = embedder.embed_documents([c.indexed_text for c in originals])
    sparse = [document_vector(c.indexed_text) for c in originals]
    total, copy = len(originals), 0
    while total < target:
        copy += 1
        copies = [dataclasses.replace(c, source=f"copy{copy}/{c.source}") for c in originals]
        store.upsert(collection, copies, dense, sparse)
        total += len(copies)
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target-chunks", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--store", choices=["qdrant", "edge"], default="qdrant", help="vector_store setting")
    args = parser.parse_args()
    require_corpus()
    scratch_home(f"latency-{args.store}")
    from opsmith.config import load_settings
    from opsmith.rag.embedder import load_embedder
    from opsmith.rag.indexing import collect_term_stats, ingest
    from opsmith.rag.retrieve import Retriever
    from opsmith.rag.store import open_store

    settings = load_settings(vector_store=args.store)
    embedder = load_embedder(settings)
    questions = [
        json.loads(line)["question"] for line in (CORPUS / "questions.jsonl").read_text().splitlines() if line.strip()
    ]
    results: dict[str, object] = {}
    with open_store(settings) as store:
        report = ingest([CORPUS / "runbooks"], settings=settings, embedder=embedder, store=store, collection="lat")
        for label in ("corpus", "replicated"):
            if label == "replicated":
                replicate(store, embedder, "lat", args.target_chunks)
                store.set_term_stats("lat", collect_term_stats(store, "lat"))
            retriever = Retriever(embedder, store, "lat", "hybrid", settings.hybrid_sparse_weight)
            chunks = store.info("lat").points  # type: ignore[union-attr]
            row: dict[str, object] = {"chunks": chunks}
            for mode in ("hybrid", "dense", "sparse"):
                row[mode] = measure(retriever, questions, args.queries, mode)
            start = time.perf_counter()
            for q in questions[:50]:
                embedder.embed_query(q)
            row["embed_query_ms"] = round((time.perf_counter() - start) * 1000 / 50, 2)
            results[label] = row
            print(label, row)
    results["ingested_chunks"] = report.chunks
    results["store"] = args.store
    save("query_latency" if args.store == "qdrant" else f"query_latency_{args.store}", results)


if __name__ == "__main__":
    main()
