"""The :class:`~opsmith.rag.store.VectorStore` on qdrant-client: embedded local mode or a Qdrant server.

One code path serves both Qdrant modes: embedded local mode on disk under
``$OPSMITH_HOME/qdrant`` (the default; one process at a time) and a Qdrant server or
cluster when ``OPSMITH_QDRANT_URL`` is set. Each point carries a dense vector
(``dense``), a BM25 term-frequency sparse vector (``bm25``, IDF applied by Qdrant) and the
chunk's payload. Hybrid queries fuse both with Reciprocal Rank Fusion inside Qdrant.

Each collection records the embedder name and dimension in its metadata, so a query
with another model is refused instead of returning nonsense.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from opsmith._display import mask_url
from opsmith.config import (
    COLLECTION_NAME,
    RetrievalMode,
    Settings,
    check_collection_name,
    check_qdrant_url,
    read_secret,
)
from opsmith.errors import IndexLockedError, IndexMissingError, StoreError, StoreUnavailableError
from opsmith.rag.sparse import DEFAULT_AVGDL, SparseVector
from opsmith.rag.store._types import (
    DENSE,
    SPARSE,
    CollectionInfo,
    FileState,
    Hit,
    StoredChunk,
    TermStats,
    checked_info,
    collection_info,
    count_file_states,
    folder_identity,
    short_error,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["QdrantStore"]


class QdrantStore:
    """:class:`VectorStore` on qdrant-client, local path or server URL."""

    def __init__(self, settings: Settings) -> None:
        from qdrant_client import QdrantClient

        self._settings = settings
        # A QdrantClient, or in local mode the same behind a lock (typed Any for the proxy).
        self._client: Any
        self._index: tuple[Path, tuple[int, int]] | None = None  # local mode: the folder and its identity
        if settings.qdrant_url:
            check_qdrant_url(settings.qdrant_url)  # Settings check it, but a model_copy() does not
            self.location = mask_url(settings.qdrant_url)  # for display: no password
            # No version check: it runs on a background thread that prints a warning (with the URL)
            # to stderr when the server is down; get_collections() below reports that properly.
            self._client = QdrantClient(
                url=settings.qdrant_url,
                api_key=read_secret(settings.qdrant_api_key_env),
                timeout=30,
                check_compatibility=False,
            )
            try:
                self._client.get_collections()
            except Exception as exc:
                raise StoreUnavailableError(settings.qdrant_url, short_error(exc)) from exc
        else:
            path = settings.index_path
            path.mkdir(parents=True, exist_ok=True)
            self.location = str(path)
            try:
                # Local mode keeps the index in Python objects that are not safe to share between
                # threads (a query during an upsert can see a half-written segment), so calls from
                # a multi-threaded server (`opsmith serve`) are serialised. A server needs no lock.
                # Local mode writes through sqlite: a deleted index folder surfaces as "attempt to write
                # a readonly database" (OperationalError), which says nothing about the cause.
                self._client = _Serialized(QdrantClient(path=str(path)), on_error=self._check_index)
            except RuntimeError as exc:
                if "already accessed" in str(exc):
                    _close_leaked_lock(exc)
                    raise IndexLockedError(path) from exc
                raise StoreError(f"Cannot open the local index at {path}: {exc} — check the folder") from exc
            self._index = (path, folder_identity(path))

    # Collections ---------------------------------------------------------------------------

    def collections(self) -> list[CollectionInfo]:
        # A server may hold collections made by other tools under names opsmith cannot be given.
        names = sorted(c.name for c in self._client.get_collections().collections if COLLECTION_NAME.fullmatch(c.name))
        return [info for name in names if (info := self.info(name)) is not None]

    def info(self, collection: str) -> CollectionInfo | None:
        check_collection_name(collection)
        if not self._client.collection_exists(collection):
            return None
        details = self._client.get_collection(collection)
        return collection_info(collection, int(details.points_count or 0), details.config.metadata or {})

    def require(self, collection: str, *, embedder: str | None = None, dimension: int | None = None) -> CollectionInfo:
        """The collection's info; raises if it is missing or was built with another embedder."""
        return checked_info(self.info(collection), collection, embedder=embedder, dimension=dimension)

    def ensure_collection(self, collection: str, *, embedder: str, dimension: int) -> CollectionInfo:
        from qdrant_client import models

        check_collection_name(collection)
        self._check_index()  # before an ingest embeds anything it could not write
        if self._client.collection_exists(collection):
            return self.require(collection, embedder=embedder, dimension=dimension)
        self._client.create_collection(
            collection,
            vectors_config={DENSE: models.VectorParams(size=dimension, distance=models.Distance.COSINE)},
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            metadata={"embedder": embedder, "dimension": dimension, "bm25_avgdl": DEFAULT_AVGDL, "schema": 1},
        )
        if self._settings.qdrant_url:  # local mode has no payload indexes (and warns about them)
            self._client.create_payload_index(collection, "source", models.PayloadSchemaType.KEYWORD)
        return self.require(collection)

    def set_term_stats(self, collection: str, stats: TermStats) -> None:
        check_collection_name(collection)
        details = self._client.get_collection(collection)
        meta = dict(details.config.metadata or {})
        meta["bm25_chunks"] = stats.chunks
        meta["bm25_df"] = {str(term): count for term, count in stats.df.items()}
        self._client.update_collection(collection, metadata=meta)

    def all_chunks(self, collection: str) -> Iterator[StoredChunk]:
        for record in self._scroll(collection):
            yield StoredChunk.from_payload(record.payload or {})

    def fetch(self, collection: str, ids: Sequence[str]) -> list[StoredChunk]:
        """Chunks by point id (missing ids are left out)."""
        check_collection_name(collection)
        records = self._client.retrieve(collection, ids=list(ids), with_payload=True, with_vectors=False)
        return [StoredChunk.from_payload(r.payload or {}) for r in records]

    def delete_collection(self, collection: str) -> bool:
        check_collection_name(collection)
        if not self._client.collection_exists(collection):
            return False
        self._client.delete_collection(collection)
        return True

    def check(self) -> None:
        """Embedded: the index folder is still the one opened; server: it answers."""
        if self._index is not None:
            self._check_index()
            return
        try:
            self._client.get_collections()
        except Exception as exc:
            raise StoreUnavailableError(self.location, short_error(exc)) from exc

    # Points --------------------------------------------------------------------------------

    def upsert(
        self,
        collection: str,
        chunks: Sequence[StoredChunk],
        dense: NDArray[np.float32],
        sparse: Sequence[SparseVector],
    ) -> None:
        from qdrant_client import models

        check_collection_name(collection)
        points = [
            models.PointStruct(
                id=chunk.point_id,
                vector={
                    DENSE: dense[row].tolist(),
                    SPARSE: models.SparseVector(indices=vec.indices, values=vec.values),
                },
                payload=chunk.payload(),
            )
            for row, (chunk, vec) in enumerate(zip(chunks, sparse, strict=True))
        ]
        self._client.upsert(collection, points=points, wait=True)

    def _scroll(self, collection: str, scroll_filter: Any = None, fields: Any = True) -> Iterator[Any]:
        check_collection_name(collection)
        offset = None
        while True:
            records, offset = self._client.scroll(
                collection, scroll_filter=scroll_filter, limit=1024, offset=offset, with_payload=fields
            )
            yield from records
            if offset is None:
                return

    def file_states(self, collection: str) -> dict[str, dict[str, FileState]]:
        """Per source, per stored file version: how many of its chunks are present."""
        records = self._scroll(collection, fields=["source", "file_sha256", "chunk_count", "root"])
        return count_file_states(record.payload or {} for record in records)

    def delete_source(self, collection: str, source: str, *, keep_sha256: str | None = None) -> None:
        from qdrant_client import models

        check_collection_name(collection)
        must: list[Any] = [models.FieldCondition(key="source", match=models.MatchValue(value=source))]
        must_not: list[Any] = []
        if keep_sha256:
            must_not.append(models.FieldCondition(key="file_sha256", match=models.MatchValue(value=keep_sha256)))
        selector = models.FilterSelector(filter=models.Filter(must=must, must_not=must_not or None))
        self._client.delete(collection, points_selector=selector, wait=True)

    def set_source_root(self, collection: str, source: str, root: str) -> None:
        """Record ``root`` as the folder ``source`` was ingested from, on all its chunks."""
        from qdrant_client import models

        check_collection_name(collection)
        only = models.Filter(must=[models.FieldCondition(key="source", match=models.MatchValue(value=source))])
        self._client.set_payload(collection, payload={"root": root}, points=only, wait=True)

    def chunks(self, collection: str, source: str) -> list[StoredChunk]:
        from qdrant_client import models

        flt = models.Filter(must=[models.FieldCondition(key="source", match=models.MatchValue(value=source))])
        found = [StoredChunk.from_payload(r.payload or {}) for r in self._scroll(collection, scroll_filter=flt)]
        return sorted(found, key=lambda c: c.chunk_index)

    def query(
        self,
        collection: str,
        dense: NDArray[np.float32],
        sparse: SparseVector,
        *,
        mode: RetrievalMode,
        limit: int,
        sparse_weight: float = 1.5,
        sources: Sequence[str] | None = None,
    ) -> list[Hit]:
        """The ``limit`` best chunks; ``sources`` restricts the search to those runbooks."""
        from qdrant_client import models

        check_collection_name(collection)
        dense_query = dense.tolist()
        sparse_query = models.SparseVector(indices=sparse.indices, values=sparse.values)
        only = (
            models.Filter(must=[models.FieldCondition(key="source", match=models.MatchAny(any=list(sources)))])
            if sources
            else None
        )
        common: dict[str, Any] = {"limit": limit, "with_payload": True, "with_vectors": [DENSE], "query_filter": only}
        if mode == "dense":
            response = self._client.query_points(collection, query=dense_query, using=DENSE, **common)
        elif mode == "sparse":
            if not sparse.indices:
                return []
            response = self._client.query_points(collection, query=sparse_query, using=SPARSE, **common)
        else:
            depth = max(limit * 4, 40)
            prefetch = [models.Prefetch(query=dense_query, using=DENSE, limit=depth, filter=only)]
            if sparse.indices:
                prefetch.append(models.Prefetch(query=sparse_query, using=SPARSE, limit=depth, filter=only))
            response = self._client.query_points(
                collection, prefetch=prefetch, query=_rrf(len(prefetch), sparse_weight), **common
            )
        hits = []
        for point in response.points:
            vector = point.vector[DENSE] if isinstance(point.vector, dict) else point.vector
            relevance = float(np.dot(np.asarray(vector, dtype=np.float32), dense)) if vector is not None else 0.0
            hits.append(Hit(StoredChunk.from_payload(point.payload or {}), float(point.score), relevance))
        return hits

    def close(self) -> None:
        self._client.close()

    def _check_index(self) -> None:
        if self._index is not None:
            path, opened = self._index
            try:
                current = folder_identity(path)
            except OSError:
                current = None
            if current != opened:  # deleted, or deleted and made again by someone else
                raise IndexMissingError(path)

    def __enter__(self) -> QdrantStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Serialized:
    """Proxy that runs each method of the wrapped object under one lock."""

    def __init__(self, target: Any, on_error: Callable[[], None] | None = None) -> None:
        self._target = target
        self._lock = threading.RLock()
        self._on_error = on_error  # called when a method fails: may raise a clearer error instead

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not callable(attribute):
            return attribute

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                try:
                    return attribute(*args, **kwargs)
                except Exception:
                    if self._on_error is not None:
                        self._on_error()
                    raise

        return locked


def _rrf(branches: int, sparse_weight: float) -> Any:
    from qdrant_client import models

    # Qdrant's default k (2) keeps the fused order close to each list's head; BM25 gets a
    # larger say because runbook questions often name exact commands, metrics and alerts.
    return models.RrfQuery(rrf=models.Rrf(weights=[1.0, sparse_weight][:branches]))


def _close_leaked_lock(exc: BaseException) -> None:
    # qdrant-client opens the lock file, fails to lock it and raises without closing it; the
    # handle would leak (a ResourceWarning) in every long-lived process that retries.
    tb = exc.__traceback__
    while tb is not None:
        handle = getattr(tb.tb_frame.f_locals.get("self"), "_flock_file", None)
        if handle is not None and not handle.closed:
            handle.close()
        tb = tb.tb_next
