"""The Qdrant Edge store: the QdrantStore contract (see test_store.py), ranking parity with
QdrantStore on the same data, persistence, the sources filter, the folder lock and threads."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("qdrant_edge")

from opsmith.config import BUNDLED_EMBEDDER, Settings, load_settings
from opsmith.errors import (
    CollectionNotFoundError,
    ConfigError,
    EmbedderMismatchError,
    IndexLockedError,
    StoreError,
)
from opsmith.rag.edge_store import EdgeStore
from opsmith.rag.embedder import Embedder
from opsmith.rag.ingest import ingest
from opsmith.rag.retrieve import Retriever
from opsmith.rag.sparse import document_vector, query_vector
from opsmith.rag.store import QdrantStore, StoredChunk, TermStats, open_store

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


# The QdrantStore contract --------------------------------------------------------------------


def test_collection_records_embedder_and_dimension(settings: Settings, embedder: Embedder) -> None:
    with EdgeStore(settings) as store:
        info = store.ensure_collection("runbooks", embedder=embedder.name, dimension=embedder.dimension)
        assert (info.name, info.embedder, info.dimension, info.points) == ("runbooks", BUNDLED_EMBEDDER, 384, 0)
        assert info.term_stats is None
    with EdgeStore(settings) as store:
        (again,) = store.collections()
        assert (again.name, again.embedder, again.dimension) == ("runbooks", BUNDLED_EMBEDDER, 384)
        assert store.location == str(settings.index_path / "edge")
    # One shard folder per collection, its metadata next to it.
    assert (settings.index_path / "edge" / "runbooks").is_dir()
    meta = json.loads((settings.index_path / "edge" / "runbooks.json").read_text())
    assert (meta["embedder"], meta["dimension"]) == (BUNDLED_EMBEDDER, 384)


def test_missing_collection_says_to_ingest_first(store: EdgeStore) -> None:
    assert store.info("nope") is None
    with pytest.raises(CollectionNotFoundError) as caught:
        store.require("nope")
    assert "--collection nope" in str(caught.value)
    with pytest.raises(CollectionNotFoundError):
        store.chunks("nope", "disk.md")


def test_retriever_on_missing_collection_fails_before_the_first_question(store: EdgeStore, embedder: Embedder) -> None:
    with pytest.raises(CollectionNotFoundError):
        Retriever(embedder=embedder, store=store, collection="nope")


def test_other_embedder_is_refused_naming_both(store: EdgeStore, embedder: Embedder) -> None:
    store.ensure_collection("runbooks", embedder=embedder.name, dimension=384)
    with pytest.raises(EmbedderMismatchError) as caught:
        store.require("runbooks", embedder="BAAI/bge-large-en-v1.5", dimension=1024)
    assert "all-MiniLM-L6-v2 (384d)" in str(caught.value)
    assert "BAAI/bge-large-en-v1.5 (1024d)" in str(caught.value)
    with pytest.raises(EmbedderMismatchError):
        store.ensure_collection("runbooks", embedder="BAAI/bge-large-en-v1.5", dimension=1024)
    with pytest.raises(EmbedderMismatchError):
        store.require("runbooks", embedder=embedder.name, dimension=768)
    assert store.require("runbooks", embedder=embedder.name, dimension=384).embedder == embedder.name


def test_second_store_on_the_same_folder_is_locked(settings: Settings, store: EdgeStore, embedder: Embedder) -> None:
    with pytest.raises(IndexLockedError) as caught:
        EdgeStore(settings)
    assert caught.value.path == settings.index_path / "edge"
    assert store.collections() == []  # the first store still works
    store.ensure_collection("runbooks", embedder=embedder.name, dimension=embedder.dimension)
    store.close()
    with EdgeStore(settings) as again:  # closing released the lock
        assert [c.name for c in again.collections()] == ["runbooks"]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "sparse"])
def test_each_mode_ranks_the_obvious_chunk_first(filled: EdgeStore, embedder: Embedder, mode: str) -> None:
    for query, expected in OBVIOUS:
        ranked = _top(filled, embedder, query, mode)
        assert ranked[0] == expected, (query, ranked)
        assert len(ranked) == len(set(ranked))


def test_sparse_mode_finds_nothing_without_query_terms(filled: EdgeStore, embedder: Embedder) -> None:
    assert _top(filled, embedder, "the and of", "sparse") == []
    assert len(_top(filled, embedder, "the and of", "hybrid")) == 4  # dense still answers


def test_relevance_is_the_cosine_to_the_query(filled: EdgeStore, embedder: Embedder) -> None:
    query = "the database volume ran out of space"
    dense = embedder.embed_query(query)
    for mode in ("hybrid", "dense", "sparse"):
        hits = filled.query("runbooks", dense, query_vector(query), mode=mode, limit=4)  # type: ignore[arg-type]
        assert hits
        for hit in hits:
            expected = float(embedder.embed_documents([hit.chunk.indexed_text])[0] @ dense)
            assert -1.0 <= hit.relevance <= 1.0
            assert hit.relevance == pytest.approx(expected, abs=1e-4)
        if mode == "dense":
            assert [h.score for h in hits] == pytest.approx([h.relevance for h in hits], abs=1e-4)
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_payload_round_trips(filled: EdgeStore) -> None:
    (stored,) = filled.chunks("runbooks", "disk.md")
    assert stored == _chunk("disk.md", *CHUNKS["disk.md"])
    assert sorted(c.source for c in filled.all_chunks("runbooks")) == sorted(CHUNKS)


def test_fetch_keeps_the_asked_order_and_skips_missing_ids(filled: EdgeStore) -> None:
    disk, dns = _chunk("disk.md", *CHUNKS["disk.md"]), _chunk("dns.md", *CHUNKS["dns.md"])
    missing = _chunk("gone.md", "Gone", "never stored")
    assert filled.fetch("runbooks", [dns.point_id, missing.point_id, disk.point_id]) == [dns, disk]
    assert filled.fetch("runbooks", []) == []


def test_delete_source_can_keep_one_version(store: EdgeStore, embedder: Embedder) -> None:
    store.ensure_collection("runbooks", embedder=embedder.name, dimension=embedder.dimension)
    old = [_chunk("disk.md", "Disk", f"old text {i}", sha="old", index=i, count=2) for i in range(2)]
    new = [_chunk("disk.md", "Disk", f"new text {i}", sha="new", index=i, count=3) for i in range(3)]
    other = [_chunk("dns.md", "DNS", "dns text", sha="old")]
    _upsert(store, embedder, old + new + other)

    states = store.file_states("runbooks")
    assert set(states["disk.md"]) == {"old", "new"}
    assert states["disk.md"]["new"].present == 3
    assert states["disk.md"]["new"].complete

    store.delete_source("runbooks", "disk.md", keep_sha256="new")
    assert [c.text for c in store.chunks("runbooks", "disk.md")] == ["new text 0", "new text 1", "new text 2"]
    assert [c.source for c in store.chunks("runbooks", "dns.md")] == ["dns.md"]

    store.delete_source("runbooks", "disk.md")
    assert store.chunks("runbooks", "disk.md") == []
    assert store.info("runbooks").points == 1  # type: ignore[union-attr]


def test_file_states_flag_incomplete_versions(store: EdgeStore, embedder: Embedder) -> None:
    store.ensure_collection("runbooks", embedder=embedder.name, dimension=embedder.dimension)
    _upsert(store, embedder, [_chunk("disk.md", "Disk", f"part {i}", index=i, count=3) for i in (0, 2)])
    state = store.file_states("runbooks")["disk.md"]["sha-1"]
    assert (state.chunk_count, state.present, state.complete) == (3, 2, False)


def test_upserting_the_same_chunk_twice_does_not_duplicate(filled: EdgeStore, embedder: Embedder) -> None:
    _upsert(filled, embedder, [_chunk("disk.md", *CHUNKS["disk.md"])])
    assert filled.info("runbooks").points == len(CHUNKS)  # type: ignore[union-attr]


def test_term_stats_persist(settings: Settings, embedder: Embedder) -> None:
    with EdgeStore(settings) as store:
        store.ensure_collection("runbooks", embedder=embedder.name, dimension=embedder.dimension)
        store.set_term_stats("runbooks", TermStats(chunks=4, df={7: 1, 2**32 - 1: 4}))
    with EdgeStore(settings) as store:
        stats = store.info("runbooks").term_stats  # type: ignore[union-attr]
        assert stats == TermStats(chunks=4, df={7: 1, 2**32 - 1: 4})
        assert stats.idf(7) > stats.idf(2**32 - 1) > 0
        assert store.info("runbooks").embedder == embedder.name  # type: ignore[union-attr]
    # Written atomically: no temporary file is left behind.
    assert sorted(p.name for p in (settings.index_path / "edge").iterdir()) == [".lock", "runbooks", "runbooks.json"]


def test_delete_collection(store: EdgeStore, embedder: Embedder, settings: Settings) -> None:
    store.ensure_collection("runbooks", embedder=embedder.name, dimension=embedder.dimension)
    _upsert(store, embedder, [_chunk("disk.md", *CHUNKS["disk.md"])])
    assert store.delete_collection("runbooks") is True
    assert store.delete_collection("runbooks") is False
    assert store.collections() == []
    assert not (settings.index_path / "edge" / "runbooks").exists()
    # The name can be used again, empty.
    assert store.ensure_collection("runbooks", embedder=embedder.name, dimension=embedder.dimension).points == 0


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


def test_sources_filter_restricts_every_mode(filled: EdgeStore, embedder: Embedder) -> None:
    for mode in ("hybrid", "dense", "sparse"):
        ranked = _top(filled, embedder, "run redis-cli info memory", mode, sources=["dns.md", "disk.md"])
        assert ranked, mode
        assert set(ranked) <= {"dns.md", "disk.md"}, (mode, ranked)
    assert _top(filled, embedder, "redis-cli info memory", "hybrid", sources=["redis.md"]) == ["redis.md"]
    assert _top(filled, embedder, "redis-cli info memory", "hybrid", sources=["nowhere.md"]) == []


@pytest.mark.parametrize("name", ["../up", "a/b", ".hidden", ""])
def test_collection_names_cannot_leave_the_folder(store: EdgeStore, embedder: Embedder, name: str) -> None:
    with pytest.raises(StoreError):
        store.ensure_collection(name, embedder=embedder.name, dimension=embedder.dimension)


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
    retriever = Retriever(embedder=embedder, store=store, collection=settings.collection)  # type: ignore[arg-type]
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
