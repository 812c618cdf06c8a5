"""What is particular to the Qdrant Edge store: ranking parity with QdrantStore on the same data,
persistence and recovery, collection names as folder names, threads, and its selection by
settings. The store contract itself runs against every store in test_store.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("qdrant_edge")

from opsmith.config import Settings, load_settings
from opsmith.errors import ConfigError, InvalidCollectionNameError
from opsmith.rag.embedder import Embedder
from opsmith.rag.indexing import ingest
from opsmith.rag.retrieve import Retriever
from opsmith.rag.sparse import document_vector, query_vector
from opsmith.rag.store import EdgeStore, QdrantStore, StoredChunk, open_store

CHUNKS = {
    "disk.md": ("Disk full", "The Postgres data volume is full. Run df -h and remove old WAL with pg_archivecleanup."),
    "latency.md": ("Checkout latency", "Checkout p99 latency is high. Scale the checkout deployment with kubectl."),
    "redis.md": ("Redis memory", "Redis evicts session keys. Run redis-cli info memory and raise maxmemory."),
    "dns.md": ("DNS failures", "CoreDNS returns SERVFAIL. Check the coredns pods and the upstream resolvers."),
}

OBVIOUS = [
    ("the database volume ran out of space", "disk.md"),
    ("checkout requests are slow", "latency.md"),
    ("redis-cli info memory", "redis.md"),
    ("SERVFAIL from coredns", "dns.md"),
]


@pytest.fixture
def settings() -> Settings:
    """Local settings under the test's own OPSMITH_HOME (no server variant: Edge is in-process)."""
    return load_settings()


@pytest.fixture
def store(settings: Settings) -> Iterator[EdgeStore]:
    with EdgeStore(settings) as opened:
        yield opened


def _chunk(source: str, heading: str, text: str, *, sha: str = "sha-1", index: int = 0, count: int = 1) -> StoredChunk:
    return StoredChunk(
        source=source,
        heading=heading,
        start_line=1 + 10 * index,
        end_line=9 + 10 * index,
        text=text,
        chunk_index=index,
        chunk_count=count,
        file_sha256=sha,
    )


def _upsert(
    store: EdgeStore | QdrantStore, embedder: Embedder, chunks: list[StoredChunk], collection: str = "runbooks"
) -> None:
    texts = [c.indexed_text for c in chunks]
    store.upsert(collection, chunks, embedder.embed_documents(texts), [document_vector(t) for t in texts])


@pytest.fixture
def filled(store: EdgeStore, embedder: Embedder) -> EdgeStore:
    store.ensure_collection("runbooks", embedder=embedder.name, dimension=embedder.dimension)
    _upsert(store, embedder, [_chunk(source, heading, text) for source, (heading, text) in CHUNKS.items()])
    return store


def _top(
    store: EdgeStore | QdrantStore,
    embedder: Embedder,
    query: str,
    mode: str,
    limit: int = 4,
    collection: str = "runbooks",
    sources: list[str] | None = None,
) -> list[str]:
    hits = store.query(
        collection,
        embedder.embed_query(query),
        query_vector(query),
        mode=mode,  # type: ignore[arg-type]
        limit=limit,
        sources=sources,
    )
    return [hit.chunk.source for hit in hits]


def test_fetch_keeps_the_asked_order_and_skips_missing_ids(filled: EdgeStore) -> None:
    disk, dns = _chunk("disk.md", *CHUNKS["disk.md"]), _chunk("dns.md", *CHUNKS["dns.md"])
    missing = _chunk("gone.md", "Gone", "never stored")
    assert filled.fetch("runbooks", [dns.point_id, missing.point_id, disk.point_id]) == [dns, disk]
    assert filled.fetch("runbooks", []) == []


# Edge specifics ------------------------------------------------------------------------------


def test_points_persist_across_reopen(settings: Settings, embedder: Embedder) -> None:
    with EdgeStore(settings) as store:
        store.ensure_collection("runbooks", embedder=embedder.name, dimension=embedder.dimension)
        _upsert(store, embedder, [_chunk(source, heading, text) for source, (heading, text) in CHUNKS.items()])
        store.delete_source("runbooks", "dns.md")
    with EdgeStore(settings) as store:
        assert store.info("runbooks").points == 3  # type: ignore[union-attr]
        assert _top(store, embedder, "redis-cli info memory", "hybrid")[0] == "redis.md"
        assert store.chunks("runbooks", "dns.md") == []


def test_interrupted_create_is_replaced(settings: Settings, embedder: Embedder) -> None:
    # A shard folder without metadata (a create or delete cut short) is no collection.
    with EdgeStore(settings) as store:
        store.ensure_collection("runbooks", embedder=embedder.name, dimension=embedder.dimension)
        _upsert(store, embedder, [_chunk("disk.md", *CHUNKS["disk.md"])])
    (settings.index_path / "edge" / "runbooks.json").unlink()
    with EdgeStore(settings) as store:
        assert store.collections() == []
        assert store.ensure_collection("runbooks", embedder=embedder.name, dimension=embedder.dimension).points == 0


@pytest.mark.parametrize("name", ["../up", "a/b", ".hidden", ""])
def test_collection_names_cannot_leave_the_folder(
    store: EdgeStore, embedder: Embedder, name: str, tmp_path: Path
) -> None:
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(InvalidCollectionNameError):  # the one rule of opsmith.config.check_collection_name
        store.ensure_collection(name, embedder=embedder.name, dimension=embedder.dimension)
    assert sorted(tmp_path.rglob("*")) == before


def test_ingest_and_retrieve_through_the_edge_store(store: EdgeStore, embedder: Embedder, corpus: Path) -> None:
    settings = load_settings()
    report = ingest([corpus], settings=settings, embedder=embedder, store=store)
    assert report.chunks > 0
    info = store.require(settings.collection)
    assert info.points == report.chunks
    assert info.term_stats is not None
    # Unchanged files are not re-embedded on a second run.
    again = ingest([corpus], settings=settings, embedder=embedder, store=store)
    assert (again.added, again.changed, again.removed) == (0, 0, 0)
    retriever = Retriever(embedder=embedder, store=store, collection=settings.collection)
    assert retriever.search("redis-cli info memory", k=3)[0].chunk.source == "cache/redis-memory.md"


def test_queries_and_writes_from_many_threads(filled: EdgeStore, embedder: Embedder) -> None:
    queries = [(embedder.embed_query(q), query_vector(q), expected) for q, expected in OBVIOUS]
    extra = [_chunk(f"extra{i}.md", "Extra", f"unrelated note number {i}") for i in range(40)]
    texts = [c.indexed_text for c in extra]
    dense, sparse = embedder.embed_documents(texts), [document_vector(t) for t in texts]
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(30):
                for d, s, expected in queries:
                    hits = filled.query("runbooks", d, s, mode="hybrid", limit=3)
                    assert hits[0].chunk.source == expected
        except BaseException as exc:
            errors.append(exc)

    def writer() -> None:
        try:
            for start in range(0, 40, 10):
                filled.upsert(
                    "runbooks", extra[start : start + 10], dense[start : start + 10], sparse[start : start + 10]
                )
            for chunk in extra[:20]:
                filled.delete_source("runbooks", chunk.source)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)] + [threading.Thread(target=writer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert filled.info("runbooks").points == len(CHUNKS) + 20  # type: ignore[union-attr]


# Parity with QdrantStore ---------------------------------------------------------------------

PARITY_QUERIES = [
    "the database volume ran out of space",
    "pg_archivecleanup old WAL",
    "NodeFilesystemAlmostFull",
    "checkout p99 latency is above two seconds",
    "kubectl scale deploy checkout replicas",
    "redis evicts session keys",
    "compare used_memory with maxmemory",
    "CoreDNS SERVFAIL upstream resolvers",
    "grow the EBS volume",
    "what to do when the cache is full",
]


def test_rankings_match_qdrant_store(settings: Settings, embedder: Embedder, corpus: Path) -> None:
    chunks = [_chunk(source, heading, text) for source, (heading, text) in CHUNKS.items()]
    with QdrantStore(settings) as reference, EdgeStore(settings) as edge:
        for target in (reference, edge):
            ingest([corpus], settings=settings, embedder=embedder, store=target, collection="parity")  # type: ignore[arg-type]
            _upsert(target, embedder, chunks, collection="parity")
        assert edge.info("parity").points == reference.info("parity").points  # type: ignore[union-attr]
        for mode in ("hybrid", "dense", "sparse"):
            for query in PARITY_QUERIES:
                dense, sparse = embedder.embed_query(query), query_vector(query)
                want = reference.query("parity", dense, sparse, mode=mode, limit=5)  # type: ignore[arg-type]
                got = edge.query("parity", dense, sparse, mode=mode, limit=5)  # type: ignore[arg-type]
                assert [h.chunk.point_id for h in got][:1] == [h.chunk.point_id for h in want][:1], (mode, query)
                assert [h.score for h in got] == pytest.approx([h.score for h in want], rel=1e-3, abs=1e-4)
                assert [h.relevance for h in got] == pytest.approx([h.relevance for h in want], abs=1e-4)


def test_open_store_picks_edge_from_the_settings(tmp_path: Path) -> None:
    with open_store(load_settings(home=tmp_path, vector_store="edge")) as store:
        assert isinstance(store, EdgeStore)
        assert store.location.endswith("edge")
    with open_store(load_settings(home=tmp_path / "default")) as store:
        assert isinstance(store, QdrantStore)
    with pytest.raises(ConfigError, match="cannot use a Qdrant server"):
        open_store(load_settings(home=tmp_path, vector_store="edge", qdrant_url="http://127.0.0.1:6333"))
