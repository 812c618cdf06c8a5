"""The store contract, run against every store: qdrant-client embedded, Qdrant Edge, and a Qdrant
server when OPSMITH_TEST_QDRANT_URL names one. Collection metadata, guard rails, the three query
modes, the sources filter, deletes."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from opsmith.config import BUNDLED_EMBEDDER, Settings, load_settings
from opsmith.errors import CollectionNotFoundError, EmbedderMismatchError, IndexLockedError
from opsmith.rag.embedder import Embedder
from opsmith.rag.retrieve import Retriever
from opsmith.rag.sparse import document_vector, query_vector
from opsmith.rag.store import QdrantStore, StoredChunk, TermStats, VectorStore, open_store

CHUNKS = {
    "disk.md": ("Disk full", "The Postgres data volume is full. Run df -h and remove old WAL with pg_archivecleanup."),
    "latency.md": ("Checkout latency", "Checkout p99 latency is high. Scale the checkout deployment with kubectl."),
    "redis.md": ("Redis memory", "Redis evicts session keys. Run redis-cli info memory and raise maxmemory."),
    "dns.md": ("DNS failures", "CoreDNS returns SERVFAIL. Check the coredns pods and the upstream resolvers."),
}


@pytest.fixture(params=["local", "edge", pytest.param("server", marks=pytest.mark.integration)])
def settings(request: pytest.FixtureRequest) -> Iterator[Settings]:
    """Each store this contract holds for; the server only with OPSMITH_TEST_QDRANT_URL."""
    if request.param == "local":
        yield load_settings()
    elif request.param == "edge":
        yield load_settings(vector_store="edge")
    else:
        url = os.environ.get("OPSMITH_TEST_QDRANT_URL")
        if not url:
            pytest.skip("set OPSMITH_TEST_QDRANT_URL to a throwaway Qdrant server to run the store contract against it")
        server = load_settings(qdrant_url=url)
        yield server
        with QdrantStore(server) as cleanup:  # the server outlives the test: leave it empty
            for info in cleanup.collections():
                cleanup.delete_collection(info.name)


def _location(settings: Settings) -> str:
    """Where each store says it keeps the index."""
    if settings.qdrant_url:
        return settings.qdrant_url
    index = settings.home / "qdrant"
    return str(index / "edge" if settings.vector_store == "edge" else index)


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


def _upsert(store: VectorStore, embedder: Embedder, chunks: list[StoredChunk], collection: str = "runbooks") -> None:
    texts = [c.indexed_text for c in chunks]
    store.upsert(collection, chunks, embedder.embed_documents(texts), [document_vector(t) for t in texts])


@pytest.fixture
def filled(store: VectorStore, embedder: Embedder) -> VectorStore:
    store.ensure_collection("runbooks", embedder=embedder.name, dimension=embedder.dimension)
    _upsert(store, embedder, [_chunk(source, heading, text) for source, (heading, text) in CHUNKS.items()])
    return store


def _top(
    store: VectorStore, embedder: Embedder, query: str, mode: str, limit: int = 4, sources: list[str] | None = None
) -> list[str]:
    hits = store.query(
        "runbooks",
        embedder.embed_query(query),
        query_vector(query),
        mode=mode,  # type: ignore[arg-type]
        limit=limit,
        sources=sources,
    )
    return [hit.chunk.source for hit in hits]


def test_collection_records_embedder_and_dimension(settings: Settings, embedder: Embedder) -> None:
    with open_store(settings) as store:
        info = store.ensure_collection("runbooks", embedder=embedder.name, dimension=embedder.dimension)
        assert (info.name, info.embedder, info.dimension, info.points) == ("runbooks", BUNDLED_EMBEDDER, 384, 0)
        assert info.term_stats is None
    # Persisted on disk: a new process sees the same metadata.
    with open_store(settings) as store:
        (again,) = store.collections()
        assert (again.name, again.embedder, again.dimension) == ("runbooks", BUNDLED_EMBEDDER, 384)
        assert store.location == _location(settings)


def test_missing_collection_says_to_ingest_first(store: VectorStore) -> None:
    assert store.info("nope") is None
    with pytest.raises(CollectionNotFoundError) as caught:
        store.require("nope")
    assert "opsmith ingest" in str(caught.value)
    assert "--collection nope" in str(caught.value)


def test_retriever_on_missing_collection_fails_before_the_first_question(
    store: VectorStore, embedder: Embedder
) -> None:
    with pytest.raises(CollectionNotFoundError):
        Retriever(embedder=embedder, store=store, collection="nope")


def test_other_embedder_is_refused_naming_both(store: VectorStore, embedder: Embedder) -> None:
    store.ensure_collection("runbooks", embedder=embedder.name, dimension=384)

    with pytest.raises(EmbedderMismatchError) as caught:
        store.require("runbooks", embedder="BAAI/bge-large-en-v1.5", dimension=1024)
    message = str(caught.value)
    assert "all-MiniLM-L6-v2 (384d)" in message
    assert "BAAI/bge-large-en-v1.5 (1024d)" in message
    # Ingesting with another model into the same collection is refused the same way.
    with pytest.raises(EmbedderMismatchError):
        store.ensure_collection("runbooks", embedder="BAAI/bge-large-en-v1.5", dimension=1024)
    # Same name, other dimension: still a mismatch.
    with pytest.raises(EmbedderMismatchError):
        store.require("runbooks", embedder=embedder.name, dimension=768)
    assert store.require("runbooks", embedder=embedder.name, dimension=384).embedder == embedder.name


def test_second_store_on_the_same_local_path_is_locked(settings: Settings, store: VectorStore) -> None:
    if settings.qdrant_url:
        pytest.skip("a server serves many clients; only the embedded index is single-process")
    with pytest.raises(IndexLockedError) as caught:
        open_store(settings)
    message = str(caught.value)
    assert "Qdrant server" in message
    assert "OPSMITH_QDRANT_URL" in message
    assert str(caught.value.path) == _location(settings)
    # The first store still works.
    assert store.collections() == []


OBVIOUS = [
    ("the database volume ran out of space", "disk.md"),
    ("checkout requests are slow", "latency.md"),
    ("redis-cli info memory", "redis.md"),
    ("SERVFAIL from coredns", "dns.md"),
]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "sparse"])
def test_each_mode_ranks_the_obvious_chunk_first(filled: VectorStore, embedder: Embedder, mode: str) -> None:
    for query, expected in OBVIOUS:
        ranked = _top(filled, embedder, query, mode)
        assert ranked[0] == expected, (query, ranked)
        assert len(ranked) == len(set(ranked))


def test_sparse_mode_finds_nothing_without_query_terms(filled: VectorStore, embedder: Embedder) -> None:
    assert _top(filled, embedder, "the and of", "sparse") == []
    assert len(_top(filled, embedder, "the and of", "hybrid")) == 4  # dense still answers


def test_relevance_is_the_cosine_to_the_query(filled: VectorStore, embedder: Embedder) -> None:
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


def test_sources_filter_restricts_every_mode(filled: VectorStore, embedder: Embedder) -> None:
    for mode in ("hybrid", "dense", "sparse"):
        ranked = _top(filled, embedder, "run redis-cli info memory", mode, sources=["dns.md", "disk.md"])
        assert ranked, mode
        assert set(ranked) <= {"dns.md", "disk.md"}, (mode, ranked)
    assert _top(filled, embedder, "redis-cli info memory", "hybrid", sources=["redis.md"]) == ["redis.md"]
    assert _top(filled, embedder, "redis-cli info memory", "hybrid", sources=["nowhere.md"]) == []


def test_payload_round_trips(filled: VectorStore) -> None:
    (stored,) = filled.chunks("runbooks", "disk.md")
    assert stored == _chunk("disk.md", *CHUNKS["disk.md"])
    assert sorted(c.source for c in filled.all_chunks("runbooks")) == sorted(CHUNKS)


def test_delete_source_can_keep_one_version(store: VectorStore, embedder: Embedder) -> None:
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
    assert [c.source for c in store.chunks("runbooks", "dns.md")] == ["dns.md"]  # same sha "old", other source

    store.delete_source("runbooks", "disk.md")
    assert store.chunks("runbooks", "disk.md") == []
    assert store.info("runbooks").points == 1  # type: ignore[union-attr]


def test_file_states_flag_incomplete_versions(store: VectorStore, embedder: Embedder) -> None:
    store.ensure_collection("runbooks", embedder=embedder.name, dimension=embedder.dimension)
    _upsert(store, embedder, [_chunk("disk.md", "Disk", f"part {i}", index=i, count=3) for i in (0, 2)])

    state = store.file_states("runbooks")["disk.md"]["sha-1"]
    assert (state.chunk_count, state.present, state.complete) == (3, 2, False)


def test_upserting_the_same_chunk_twice_does_not_duplicate(filled: VectorStore, embedder: Embedder) -> None:
    _upsert(filled, embedder, [_chunk("disk.md", *CHUNKS["disk.md"])])
    assert filled.info("runbooks").points == len(CHUNKS)  # type: ignore[union-attr]


def test_term_stats_persist(settings: Settings, embedder: Embedder) -> None:
    with open_store(settings) as store:
        store.ensure_collection("runbooks", embedder=embedder.name, dimension=embedder.dimension)
        store.set_term_stats("runbooks", TermStats(chunks=4, df={7: 1, 2**32 - 1: 4}))
    with open_store(settings) as store:
        stats = store.info("runbooks").term_stats  # type: ignore[union-attr]
        assert stats == TermStats(chunks=4, df={7: 1, 2**32 - 1: 4})
        assert stats.idf(7) > stats.idf(2**32 - 1) > 0
        assert stats.idf(12345) > stats.idf(7)  # unseen terms weigh most
        # Metadata set by ensure_collection survives the update.
        assert store.info("runbooks").embedder == embedder.name  # type: ignore[union-attr]


def test_delete_collection(store: VectorStore, embedder: Embedder) -> None:
    store.ensure_collection("runbooks", embedder=embedder.name, dimension=embedder.dimension)
    assert store.delete_collection("runbooks") is True
    assert store.delete_collection("runbooks") is False
    assert store.collections() == []
