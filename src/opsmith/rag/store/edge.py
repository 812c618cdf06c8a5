"""The :class:`~opsmith.rag.store.VectorStore` on Qdrant Edge: Qdrant's Rust engine in-process.

Same data model as :class:`~opsmith.rag.store.QdrantStore` (a cosine ``dense`` vector, a
``bm25`` term-frequency sparse vector with Qdrant's IDF modifier, the chunk as payload, weighted
RRF for hybrid queries), but queries run natively instead of in qdrant-client's pure-Python
local mode, which scores sparse vectors point by point while holding the GIL.

Layout under ``settings.index_path / "edge"``: one Edge shard directory per collection
(``<collection>/``) and its metadata next to it (``<collection>.json``: embedder, dimension,
BM25 avgdl and term statistics; Edge shards carry no collection metadata). A collection exists
when its JSON does; the JSON is written last on create and removed first on delete, each
time atomically, so a crash leaves at worst an orphan shard directory that the next
``ensure_collection`` replaces.

One process at a time: the store holds an exclusive lock on the ``edge`` folder (the shards'
own WAL locks would otherwise only fail on first use of each collection), and a second store
raises :class:`~opsmith.errors.IndexLockedError`.

Threads: an ``EdgeShard`` is synchronised inside the engine (a mutex on its WAL, a read-write
lock on its segments), and reads concurrent with upserts and deletes were checked to work from
several threads. So queries, scrolls and fetches run without a Python-side lock; only what
this class itself keeps (the open shards, the metadata files) and shard open/close are
serialised, under one lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from opsmith.config import COLLECTION_NAME, RetrievalMode, Settings, check_collection_name
from opsmith.errors import CollectionNotFoundError, IndexLockedError, IndexMissingError, StoreError
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
    import qdrant_edge as edge
    from numpy.typing import NDArray

__all__ = ["RRF_K", "EdgeStore"]

#: Qdrant's default RRF constant, as QdrantStore gets it from ``models.Rrf`` (Edge requires it).
RRF_K = 2
_SCROLL_PAGE = 1024
_META_SUFFIX = ".json"


class EdgeStore:
    """:class:`~opsmith.rag.store.VectorStore` on Qdrant Edge shards under the local index folder."""

    def __init__(self, settings: Settings) -> None:
        try:
            import qdrant_edge  # noqa: F401
        except ImportError as exc:  # an optional dependency
            raise StoreError("The Qdrant Edge store needs qdrant-edge-py — pip install qdrant-edge-py") from exc
        self._settings = settings
        self._root = settings.index_path / "edge"
        self.location = str(self._root)
        self._lock = threading.RLock()
        self._shards: dict[str, edge.EdgeShard] = {}
        try:
            self._root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot open the local index at {self._root}: {exc} — check the folder") from exc
        self._lock_file = _lock_folder(self._root)
        self._identity = folder_identity(self._root)
        self._closed = False

    # Collections ---------------------------------------------------------------------------

    def collections(self) -> list[CollectionInfo]:
        names = sorted(p.name[: -len(_META_SUFFIX)] for p in self._root.glob(f"*{_META_SUFFIX}") if p.is_file())
        return [info for name in names if COLLECTION_NAME.fullmatch(name) and (info := self.info(name)) is not None]

    def info(self, collection: str) -> CollectionInfo | None:
        meta = self._read_meta(collection)
        if meta is None:
            return None
        return collection_info(collection, self._count(collection), meta)

    def require(self, collection: str, *, embedder: str | None = None, dimension: int | None = None) -> CollectionInfo:
        """The collection's info; raises if it is missing or was built with another embedder."""
        return checked_info(self.info(collection), collection, embedder=embedder, dimension=dimension)

    def ensure_collection(self, collection: str, *, embedder: str, dimension: int) -> CollectionInfo:
        import qdrant_edge as edge

        self.check()  # before an ingest embeds anything it could not write
        with self._lock:
            if self._read_meta(collection) is not None:
                return self.require(collection, embedder=embedder, dimension=dimension)
            path = self._shard_path(collection)
            self._drop_shard(collection)
            shutil.rmtree(path, ignore_errors=True)  # an orphan of an interrupted create or delete
            config = edge.EdgeConfig(
                vectors={DENSE: edge.EdgeVectorParams(size=dimension, distance=edge.Distance.Cosine)},
                sparse_vectors={SPARSE: edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf)},
            )
            try:
                self._shards[collection] = edge.EdgeShard.create(str(path), config)
            except Exception as exc:
                raise StoreError(f"Cannot create collection '{collection}' in {self._root}: {exc}") from exc
            meta = {"embedder": embedder, "dimension": dimension, "bm25_avgdl": DEFAULT_AVGDL, "schema": 1}
            self._write_meta(collection, meta)
        return self.require(collection)

    def set_term_stats(self, collection: str, stats: TermStats) -> None:
        """Record BM25 document frequencies. Ingest calls this once at the end of a run, so this
        is also where the shard's segments are optimised (Edge runs no background optimiser)."""
        with self._lock:
            self.check()
            meta = self._read_meta(collection)
            if meta is None:
                raise CollectionNotFoundError(collection)
            meta["bm25_chunks"] = stats.chunks
            meta["bm25_df"] = {str(term): count for term, count in stats.df.items()}
            self._write_meta(collection, meta)
        self._call(collection, lambda shard: shard.optimize())

    def all_chunks(self, collection: str) -> Iterator[StoredChunk]:
        for record in self._scroll(collection):
            yield StoredChunk.from_payload(record.payload or {})

    def fetch(self, collection: str, ids: Sequence[str]) -> list[StoredChunk]:
        """Chunks by point id, in the order asked (missing ids are left out)."""
        _checked(collection)
        if not ids:
            return []
        records = self._call(collection, lambda s: s.retrieve(list(ids), with_payload=True, with_vector=False))
        found = {str(r.id): StoredChunk.from_payload(r.payload or {}) for r in records}
        return [found[i] for i in dict.fromkeys(str(i) for i in ids) if i in found]

    def delete_collection(self, collection: str) -> bool:
        with self._lock:
            meta_path = self._meta_path(collection)
            self.check()
            if not meta_path.is_file():
                return False
            meta_path.unlink()
            self._drop_shard(collection)
            shutil.rmtree(self._shard_path(collection), ignore_errors=True)
            return True

    # Points --------------------------------------------------------------------------------

    def upsert(
        self,
        collection: str,
        chunks: Sequence[StoredChunk],
        dense: NDArray[np.float32],
        sparse: Sequence[SparseVector],
    ) -> None:
        import qdrant_edge as edge

        _checked(collection)
        points = [
            edge.Point(
                chunk.point_id,
                {
                    DENSE: dense[row].tolist(),
                    SPARSE: edge.SparseVector(list(vec.indices), [float(v) for v in vec.values]),
                },
                chunk.payload(),
            )
            for row, (chunk, vec) in enumerate(zip(chunks, sparse, strict=True))
        ]
        if points:
            self._update(collection, edge.UpdateOperation.upsert_points(points))

    def _scroll(self, collection: str, scroll_filter: Any = None, fields: Any = True) -> Iterator[Any]:
        import qdrant_edge as edge

        offset: Any = None
        while True:
            request = edge.ScrollRequest(offset=offset, limit=_SCROLL_PAGE, filter=scroll_filter, with_payload=fields)
            records, offset = self._call(collection, lambda s, r=request: s.scroll(r))
            yield from records
            if offset is None:
                return

    def file_states(self, collection: str) -> dict[str, dict[str, FileState]]:
        """Per source, per stored file version: how many of its chunks are present."""
        records = self._scroll(collection, fields=["source", "file_sha256", "chunk_count", "root"])
        return count_file_states(record.payload or {} for record in records)

    def delete_source(self, collection: str, source: str, *, keep_sha256: str | None = None) -> None:
        import qdrant_edge as edge

        must: list[Any] = [edge.FieldCondition(key="source", match=edge.MatchValue(source))]
        must_not: list[Any] | None = None
        if keep_sha256:
            must_not = [edge.FieldCondition(key="file_sha256", match=edge.MatchValue(keep_sha256))]
        selector = edge.Filter(must=must, must_not=must_not)
        self._update(collection, edge.UpdateOperation.delete_points_by_filter(selector))

    def set_source_root(self, collection: str, source: str, root: str) -> None:
        """Record ``root`` as the folder ``source`` was ingested from, on all its chunks."""
        import qdrant_edge as edge

        only = edge.Filter(must=[edge.FieldCondition(key="source", match=edge.MatchValue(source))])
        self._update(collection, edge.UpdateOperation.set_payload_by_filter(only, {"root": root}))

    def chunks(self, collection: str, source: str) -> list[StoredChunk]:
        import qdrant_edge as edge

        flt = edge.Filter(must=[edge.FieldCondition(key="source", match=edge.MatchValue(source))])
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
        import qdrant_edge as edge

        _checked(collection)
        dense_query = edge.Query.Nearest(dense.tolist(), using=DENSE)
        sparse_query = edge.Query.Nearest(
            edge.SparseVector(list(sparse.indices), [float(v) for v in sparse.values]), using=SPARSE
        )
        only = (
            edge.Filter(must=[edge.FieldCondition(key="source", match=edge.MatchAny(list(sources)))])
            if sources
            else None
        )
        common: dict[str, Any] = {"limit": limit, "with_payload": True, "with_vector": [DENSE], "filter": only}
        if mode == "dense":
            request = edge.QueryRequest(query=dense_query, **common)
        elif mode == "sparse":
            if not sparse.indices:
                return []
            request = edge.QueryRequest(query=sparse_query, **common)
        else:
            depth = max(limit * 4, 40)
            prefetch = [edge.Prefetch(limit=depth, query=dense_query, filter=only)]
            if sparse.indices:
                prefetch.append(edge.Prefetch(limit=depth, query=sparse_query, filter=only))
            # Same fusion as QdrantStore: weighted RRF, BM25 weighted by ``sparse_weight``.
            # Typed Any: the 0.9.0 stubs leave Fusion.Rrf out of QueryRequest's accepted types.
            fusion: Any = edge.Fusion.Rrf(k=RRF_K, weights=[1.0, sparse_weight][: len(prefetch)])
            request = edge.QueryRequest(prefetches=prefetch, query=fusion, **common)
        points = self._call(collection, lambda s: s.query(request))
        hits = []
        for point in points:
            vector = point.vector.get(DENSE) if isinstance(point.vector, dict) else point.vector
            relevance = float(np.dot(np.asarray(vector, dtype=np.float32), dense)) if vector is not None else 0.0
            hits.append(Hit(StoredChunk.from_payload(point.payload or {}), float(point.score), relevance))
        return hits

    # Lifecycle -----------------------------------------------------------------------------

    def check(self) -> None:
        """The index folder is still the one this store opened (not deleted, not replaced)."""
        if not self._present():
            raise IndexMissingError(self._root)

    def _present(self) -> bool:
        try:
            return folder_identity(self._root) == self._identity
        except OSError:
            return False

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            errors = []
            for name in list(self._shards):
                try:
                    self._drop_shard(name)
                except StoreError as exc:
                    errors.append(exc)
            self._lock_file.close()  # releases the folder lock
            if errors and self._present():  # with the folder gone there is nothing left to save
                raise errors[0]

    def __enter__(self) -> EdgeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Internals -----------------------------------------------------------------------------

    def _shard_path(self, collection: str) -> Path:
        return self._root / _checked(collection)

    def _meta_path(self, collection: str) -> Path:
        return self._root / f"{_checked(collection)}{_META_SUFFIX}"

    def _read_meta(self, collection: str) -> dict[str, Any] | None:
        try:
            text = self._meta_path(collection).read_text(encoding="utf-8")
        except FileNotFoundError:
            self.check()  # no collection, or no index folder any more
            return None
        except OSError as exc:
            raise StoreError(f"Cannot read the metadata of collection '{collection}': {exc}") from exc
        try:
            meta = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StoreError(f"The metadata of collection '{collection}' is damaged ({exc}) — ingest it again") from exc
        if not isinstance(meta, dict):
            raise StoreError(f"The metadata of collection '{collection}' is damaged — ingest it again")
        return meta

    def _write_meta(self, collection: str, meta: dict[str, Any]) -> None:
        target = self._meta_path(collection)
        handle, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=self._root)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(meta, out, separators=(",", ":"))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _shard(self, collection: str) -> edge.EdgeShard:
        """The collection's open shard, loaded on first use; raises if the collection is missing."""
        import qdrant_edge as edge

        shard = self._shards.get(collection)
        if shard is not None:
            return shard
        with self._lock:
            if self._closed:
                raise StoreError("The index is closed")
            shard = self._shards.get(collection)
            if shard is None:
                path = self._shard_path(collection)
                if not self._meta_path(collection).is_file() or not path.is_dir():
                    raise CollectionNotFoundError(collection)
                try:
                    shard = edge.EdgeShard.load(str(path))
                except Exception as exc:
                    self.check()
                    if "WouldBlock" in str(exc):  # another process has the shard's WAL open
                        raise IndexLockedError(self._root) from exc
                    raise StoreError(f"Cannot open collection '{collection}' at {path}: {short_error(exc)}") from exc
                self._shards[collection] = shard
            return shard

    def _call(self, collection: str, operation: Any) -> Any:
        """Run ``operation(shard)``, turning engine errors (plain ``Exception``s) into StoreErrors."""
        shard = self._shard(collection)
        try:
            return operation(shard)
        except Exception as exc:
            self.check()  # an engine error is often the index folder gone from under it
            raise StoreError(f"Qdrant Edge failed on collection '{collection}': {short_error(exc)}") from exc

    def _update(self, collection: str, operation: edge.UpdateOperation) -> None:
        # The engine writes to files it holds open, so a write into a deleted index folder would
        # "succeed" and be lost: check the folder first.
        self.check()
        self._call(collection, lambda shard: shard.update(operation))

    def _count(self, collection: str) -> int:
        import qdrant_edge as edge

        return int(self._call(collection, lambda s: s.count(edge.CountRequest(exact=True))))

    def _drop_shard(self, collection: str) -> None:
        shard = self._shards.pop(collection, None)
        if shard is None:
            return
        try:
            shard.flush()
            shard.close()
        except Exception as exc:
            raise StoreError(f"Cannot close collection '{collection}': {short_error(exc)}") from exc


def _checked(collection: str) -> str:
    # The name becomes a file name: no separators, no dot-files, nothing a shell would mangle.
    return check_collection_name(collection)


def _lock_folder(root: Path) -> IO[bytes]:
    """Hold an exclusive, non-blocking lock on ``root`` for this store's lifetime."""
    handle = (root / ".lock").open("a+b")
    try:
        import fcntl
    except ImportError:  # Windows: no folder lock; each shard's WAL lock still guards its files
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        raise IndexLockedError(root) from exc
    return handle
