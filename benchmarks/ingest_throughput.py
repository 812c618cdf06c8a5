"""Ingest throughput against a plain ``SentenceTransformer.encode`` of the same chunk texts.

    python benchmarks/ingest_throughput.py [--repeat N]

Both sides start with their model already loaded, so the comparison is the per-chunk work:
opsmith's ingest (read, parse, chunk, embed with ONNX Runtime, BM25 vectors, Qdrant upsert,
term statistics) versus the raw encode alone. Then the unchanged corpus is ingested again.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time

from _common import CORPUS, require_corpus, save, scratch_home


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=2, help="Runs of each side; the best is kept.")
    args = parser.parse_args()
    require_corpus()
    home = scratch_home("ingest")
    from sentence_transformers import SentenceTransformer

    from opsmith.config import load_settings
    from opsmith.rag.chunking import chunk_document
    from opsmith.rag.documents import SkipFile
    from opsmith.rag.embedder import bundled_model_dir, load_embedder
    from opsmith.rag.indexing import discover, ingest
    from opsmith.rag.loaders import load_document
    from opsmith.rag.store import open_store

    settings = load_settings()
    embedder = load_embedder(settings)
    files, _ = discover([CORPUS / "runbooks"])
    texts: list[str] = []
    for found in files:
        try:
            document = load_document(found.path, found.source, max_bytes=settings.max_file_bytes)
        except SkipFile:
            continue
        chunks = chunk_document(
            document,
            count_tokens=embedder.count_tokens,
            max_tokens=settings.chunk_tokens,
            overlap=settings.chunk_overlap,
        )
        texts += [c.embedding_text(document.title) for c in chunks]

    model = SentenceTransformer(str(bundled_model_dir()), device="cpu")
    model.encode(texts[:32], batch_size=32)  # warm-up

    raw_times, ingest_times, reingest_times = [], [], []
    for attempt in range(args.repeat):
        start = time.perf_counter()
        model.encode(texts, batch_size=32, normalize_embeddings=True)
        raw_times.append(time.perf_counter() - start)

        shutil.rmtree(home / "qdrant", ignore_errors=True)
        with open_store(settings) as store:
            start = time.perf_counter()
            report = ingest(
                [CORPUS / "runbooks"], settings=settings, embedder=embedder, store=store, collection="bench"
            )
            ingest_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            again = ingest([CORPUS / "runbooks"], settings=settings, embedder=embedder, store=store, collection="bench")
            reingest_times.append(time.perf_counter() - start)
        assert report.chunks == len(texts), (report.chunks, len(texts))
        assert again.chunks == 0
        assert again.unchanged == report.added
        print(
            f"run {attempt + 1}: raw {raw_times[-1]:.2f}s ingest {ingest_times[-1]:.2f}s "
            f"re-ingest {reingest_times[-1]:.3f}s",
            file=sys.stderr,
        )

    raw, first, second = min(raw_times), min(ingest_times), min(reingest_times)
    save(
        "ingest_throughput",
        {
            "chunks": len(texts),
            "raw_encode_s": round(raw, 3),
            "raw_chunks_per_s": round(len(texts) / raw, 1),
            "ingest_s": round(first, 3),
            "ingest_chunks_per_s": round(len(texts) / first, 1),
            "ingest_over_raw": round(first / raw, 3),
            "reingest_unchanged_s": round(second, 3),
            "reingest_share_of_first": round(second / first, 4),
            "runs": {"raw": raw_times, "ingest": ingest_times, "reingest": reingest_times},
        },
    )


if __name__ == "__main__":
    main()
