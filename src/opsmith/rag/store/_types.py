"""The ``VectorStore`` seam: the protocols, the records a store keeps, and what every store shares.

Two protocols, so each caller asks for no more than it uses: :class:`VectorStoreReader` is what
answering needs (retrieval, the views over a collection, readiness), and :class:`VectorStore`
adds the writes that ingest and collection management make. Both stores in this package
(:class:`~opsmith.rag.store.QdrantStore`, :class:`~opsmith.rag.store.EdgeStore`) implement the
whole of :class:`VectorStore`, structurally.

A store keeps, per point, a cosine ``dense`` vector, a BM25 term-frequency ``bm25`` sparse vector
(IDF applied by the engine) and the chunk as payload; per collection, the embedder's name and
dimension and the BM25 statistics (:func:`collection_info` reads them back).
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self

import numpy as np

from opsmith.config import RetrievalMode
from opsmith.errors import CollectionNotFoundError, EmbedderMismatchError
from opsmith.rag.sparse import DEFAULT_AVGDL, SparseVector

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "DENSE",
    "SPARSE",
    "CollectionInfo",
    "FileState",
    "Hit",
    "StoredChunk",
    "TermStats",
    "VectorStore",
    "VectorStoreReader",
    "checked_info",
    "chunk_point_id",
    "collection_info",
    "count_file_states",
    "folder_identity",
    "short_error",
]

#: Names of the two vectors every point carries.
DENSE = "dense"
SPARSE = "bm25"
_ID_NAMESPACE = uuid.UUID("6f1b7f0e-6c55-4a43-9a59-3f5d2a0c1e11")


@dataclass
class StoredChunk:
    """A chunk as stored: what citations and answers are made of."""

    source: str
    heading: str
    start_line: int
    end_line: int
    text: str
    chunk_index: int
    chunk_count: int
    file_sha256: str
    kind: str = "md"
    title: str | None = None
    root: str | None = None  # the folder ``source`` is relative to, as ingest resolved it (None: unknown)
    #: The source line of each line of ``text`` (0 between units); None in indexes made before it was kept.
    line_numbers: list[int] | None = None

    @property
    def indexed_text(self) -> str:
        from opsmith.rag.chunking import indexed_text

        return indexed_text(self.heading, self.text, self.title)

    @property
    def point_id(self) -> str:
        return chunk_point_id(self.source, self.file_sha256, self.chunk_index)

    def payload(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "heading": self.heading,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "text": self.text,
            "chunk_index": self.chunk_index,
            "chunk_count": self.chunk_count,
            "file_sha256": self.file_sha256,
            "kind": self.kind,
            "title": self.title,
            "root": self.root,
            "line_numbers": self.line_numbers,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> StoredChunk:
        return cls(**{key: payload.get(key) for key in cls.__dataclass_fields__})  # type: ignore[arg-type]


@dataclass
class Hit:
    """One ranked result. ``score`` is the store's ranking score in the chosen mode (RRF for
    hybrid); ``relevance`` is the cosine similarity to the query, comparable across modes and
    the basis of refusal."""

    chunk: StoredChunk
    score: float
    relevance: float


@dataclass
class CollectionInfo:
    """A collection as its store reports it: size, the embedder that filled it, BM25 statistics."""

    name: str
    points: int
    embedder: str | None
    dimension: int | None
    avgdl: float = DEFAULT_AVGDL
    term_stats: TermStats | None = None


@dataclass
class TermStats:
    """Document frequencies of BM25 terms (by term id) over the collection's chunks.

    Qdrant applies IDF inside its sparse search but does not expose it; refusal needs it to
    weigh which question terms the retrieved passages cover (see ``rag/answer.py``)."""

    chunks: int
    df: dict[int, int]

    def idf(self, term: int) -> float:
        df = self.df.get(term, 0)
        return math.log(1 + (self.chunks - df + 0.5) / (df + 0.5))


@dataclass
class FileState:
    """What the index holds for one source: complete when every chunk of its version is present."""

    file_sha256: str
    chunk_count: int
    present: int
    root: str | None = None  # the folder it was ingested from (see StoredChunk.root)

    @property
    def complete(self) -> bool:
        return self.present == self.chunk_count


def collection_info(collection: str, points: int, meta: dict[str, Any]) -> CollectionInfo:
    """A collection's info from its metadata (embedder, dimension, BM25 statistics), as every store keeps it."""
    return CollectionInfo(
        name=collection,
        points=points,
        embedder=meta.get("embedder"),
        dimension=meta.get("dimension"),
        avgdl=float(meta.get("bm25_avgdl", DEFAULT_AVGDL)),
        term_stats=TermStats(int(meta["bm25_chunks"]), {int(k): int(v) for k, v in meta["bm25_df"].items()})
        if "bm25_df" in meta
        else None,
    )


def count_file_states(payloads: Iterable[dict[str, Any]]) -> dict[str, dict[str, FileState]]:
    """Per source, per file version (hash): how many of its chunks the payloads show."""
    states: dict[str, dict[str, FileState]] = {}
    for payload in payloads:
        versions = states.setdefault(payload["source"], {})
        sha = payload["file_sha256"]
        state = versions.setdefault(sha, FileState(sha, int(payload["chunk_count"]), 0, payload.get("root")))
        state.present += 1
    return states


def checked_info(
    info: CollectionInfo | None, collection: str, *, embedder: str | None = None, dimension: int | None = None
) -> CollectionInfo:
    """``info``, or the error a store's ``require`` raises: missing, or built with another embedder."""
    if info is None:
        raise CollectionNotFoundError(collection)
    if embedder is not None and (info.embedder != embedder or (dimension and info.dimension != dimension)):
        raise EmbedderMismatchError(collection, f"{info.embedder} ({info.dimension}d)", f"{embedder} ({dimension}d)")
    return info


def chunk_point_id(source: str, file_sha256: str, chunk_index: int) -> str:
    """The point id of chunk ``chunk_index`` of one version of ``source``."""
    # Deterministic ids: re-running an interrupted ingest overwrites instead of duplicating.
    return str(uuid.uuid5(_ID_NAMESPACE, f"{source}\x00{file_sha256}\x00{chunk_index}"))


def folder_identity(path: Path) -> tuple[int, int]:
    """``(device, inode)`` of ``path``: tells the index folder a store opened from one made again
    in its place. Raises :class:`OSError` when the path is gone."""
    status = os.stat(path)
    return status.st_dev, status.st_ino


def short_error(exc: BaseException) -> str:
    """The first line of an engine's or client's error, short enough for a one-line message."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]


class VectorStoreReader(Protocol):
    """The read side of a store: what retrieval, answers and the collection views call.

    Implementations raise :class:`~opsmith.errors.StoreError`s. ``location`` says where the index
    is, for display (a server URL without its password).
    """

    location: str

    def collections(self) -> list[CollectionInfo]:
        """Every collection opsmith can name, sorted by name."""
        ...

    def info(self, collection: str) -> CollectionInfo | None:
        """The collection's info, or None when it does not exist."""
        ...

    def require(self, collection: str, *, embedder: str | None = None, dimension: int | None = None) -> CollectionInfo:
        """The collection's info; raises if it is missing or was built with another embedder."""
        ...

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
        ...

    def chunks(self, collection: str, source: str) -> list[StoredChunk]:
        """Every stored chunk of ``source``, in chunk order."""
        ...

    def fetch(self, collection: str, ids: Sequence[str]) -> list[StoredChunk]:
        """Chunks by point id (missing ids are left out)."""
        ...

    def all_chunks(self, collection: str) -> Iterator[StoredChunk]:
        """Every chunk of the collection, in no particular order."""
        ...

    def file_states(self, collection: str) -> dict[str, dict[str, FileState]]:
        """Per source, per stored file version: how many of its chunks are present."""
        ...

    def check(self) -> None:
        """Raise the :class:`~opsmith.errors.StoreError` that says why the store cannot serve now
        (an embedded index folder deleted under the process, a server that does not answer);
        cheap enough for a readiness probe."""
        ...

    def close(self) -> None:
        """Release the index (an embedded one can then be opened by another process)."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


class VectorStore(VectorStoreReader, Protocol):
    """A store that ingest can write to: :class:`VectorStoreReader` plus collection and point writes."""

    def ensure_collection(self, collection: str, *, embedder: str, dimension: int) -> CollectionInfo:
        """The collection, created for this embedder if missing; raises if it holds another embedder's vectors."""
        ...

    def upsert(
        self,
        collection: str,
        chunks: Sequence[StoredChunk],
        dense: NDArray[np.float32],
        sparse: Sequence[SparseVector],
    ) -> None:
        """Write ``chunks`` with their vectors (row ``i`` of ``dense``, ``sparse[i]``), replacing same-id points."""
        ...

    def delete_source(self, collection: str, source: str, *, keep_sha256: str | None = None) -> None:
        """Delete the chunks of ``source``, except those of the file version ``keep_sha256``."""
        ...

    def set_source_root(self, collection: str, source: str, root: str) -> None:
        """Record ``root`` as the folder ``source`` was ingested from, on all its chunks."""
        ...

    def set_term_stats(self, collection: str, stats: TermStats) -> None:
        """Record the BM25 document frequencies (ingest recounts them at the end of a run)."""
        ...

    def delete_collection(self, collection: str) -> bool:
        """Delete the collection; False when there was none."""
        ...
