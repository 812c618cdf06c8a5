"""The store contract, run against every store: qdrant-client embedded, Qdrant Edge, and a Qdrant
server when OPSMITH_TEST_QDRANT_URL names one. Collection metadata, guard rails, the three query
modes, the sources filter, deletes, collection names, and an index folder deleted under the store."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from opsmith.config import BUNDLED_EMBEDDER, Settings, load_settings
from opsmith.errors import (
    CollectionNotFoundError,
    ConfigError,
    EmbedderMismatchError,
    IndexLockedError,
    IndexMissingError,
    InvalidCollectionNameError,
)
from opsmith.rag.embedder import Embedder
from opsmith.rag.indexing import ingest
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


def test_set_source_root_records_the_folder_on_every_chunk(store: VectorStore, embedder: Embedder) -> None:
    store.ensure_collection("runbooks", embedder=embedder.name, dimension=embedder.dimension)
    _upsert(store, embedder, [_chunk("disk.md", "Disk", f"part {i}", index=i, count=2) for i in range(2)])
    _upsert(store, embedder, [_chunk("dns.md", *CHUNKS["dns.md"])])
    assert store.file_states("runbooks")["disk.md"]["sha-1"].root is None

    store.set_source_root("runbooks", "disk.md", "/srv/runbooks")

    assert store.file_states("runbooks")["disk.md"]["sha-1"].root == "/srv/runbooks"
    assert {c.root for c in store.chunks("runbooks", "disk.md")} == {"/srv/runbooks"}
    assert store.file_states("runbooks")["dns.md"]["sha-1"].root is None


BAD_NAMES = ["a/b", "/abs", "..", "", "x" * 256, ".hidden", "run books"]

#: Every store entry point that takes a collection name, called with ``name``.
ENTRY_POINTS: dict[str, Callable[[VectorStore, str], object]] = {
    "info": lambda s, name: s.info(name),
    "require": lambda s, name: s.require(name),
    "ensure_collection": lambda s, name: s.ensure_collection(name, embedder=BUNDLED_EMBEDDER, dimension=384),
    "file_states": lambda s, name: s.file_states(name),
    "chunks": lambda s, name: s.chunks(name, "disk.md"),
    "all_chunks": lambda s, name: list(s.all_chunks(name)),
    "fetch": lambda s, name: s.fetch(name, ["00000000-0000-0000-0000-000000000000"]),
    "delete_source": lambda s, name: s.delete_source(name, "disk.md"),
    "set_source_root": lambda s, name: s.set_source_root(name, "disk.md", "/srv"),
    "set_term_stats": lambda s, name: s.set_term_stats(name, TermStats(0, {})),
    "delete_collection": lambda s, name: s.delete_collection(name),
    "upsert": lambda s, name: s.upsert(name, [], np.zeros((0, 384), dtype=np.float32), []),
    "query": lambda s, name: s.query(
        name, np.ones(384, dtype=np.float32), query_vector("disk"), mode="hybrid", limit=3
    ),
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_every_entry_point_refuses_a_bad_collection_name(store: VectorStore, entry: str) -> None:
    for name in BAD_NAMES:
        with pytest.raises(InvalidCollectionNameError) as caught:
            ENTRY_POINTS[entry](store, name)
        assert caught.value.exit_code == 2
        assert "--collection runbooks" in str(caught.value)
    assert store.collections() == []  # nothing was created on the way


def test_a_file_url_for_the_server_is_a_config_error(settings: Settings) -> None:
    # Settings refuse it; a copy made with model_copy() skips validation, so the store checks too.
    with pytest.raises(ConfigError) as caught:
        QdrantStore(settings.model_copy(update={"qdrant_url": "file:///var/lib/qdrant"}))
    message = str(caught.value)
    assert "http:// or https://" in message
    assert "'file://'" in message
    assert "unset" in message


# The index folder deleted under a running process ------------------------------------------


def test_check_passes_on_a_healthy_store(store: VectorStore) -> None:
    store.check()


def test_a_deleted_index_folder_is_reported_as_such(settings: Settings, embedder: Embedder, tmp_path: Path) -> None:
    if settings.qdrant_url:
        pytest.skip("only an embedded index has a folder to lose")
    corpus = tmp_path / "runbooks"
    corpus.mkdir()
    (corpus / "disk.md").write_text("# Disk full\n\nRemove old WAL with pg_archivecleanup.\n", encoding="utf-8")
    with open_store(settings) as store:
        ingest([corpus], settings=settings, embedder=embedder, store=store)
        shutil.rmtree(settings.index_path)

        with pytest.raises(IndexMissingError) as caught:
            store.check()
        assert str(settings.index_path) in str(caught.value)
        assert "restart" in str(caught.value)
        (corpus / "dns.md").write_text("# DNS\n\nRestart the coredns pods.\n", encoding="utf-8")
        with pytest.raises(IndexMissingError):
            ingest([corpus], settings=settings, embedder=embedder, store=store)
        # A write that reaches the engine says the same, not the engine's own error.
        with pytest.raises(IndexMissingError):
            _upsert(store, embedder, [_chunk("dns.md", *CHUNKS["dns.md"])])
        with pytest.raises(IndexMissingError):
            store.delete_source("runbooks", "disk.md")

        # A new, empty folder in its place is not the index this store opened either.
        settings.index_path.mkdir(parents=True)
        with pytest.raises(IndexMissingError):
            store.check()
