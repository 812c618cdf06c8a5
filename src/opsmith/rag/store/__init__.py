"""Where chunks and their vectors live: the ``VectorStore`` seam and its two implementations.

* :mod:`~opsmith.rag.store._types`: the :class:`VectorStoreReader` and :class:`VectorStore`
  protocols, the records they return (:class:`StoredChunk`, :class:`Hit`, ...) and the helpers
  every store shares;
* :class:`QdrantStore` (``qdrant.py``): qdrant-client, embedded on disk or a Qdrant server;
* :class:`EdgeStore` (``edge.py``): Qdrant Edge, Qdrant's Rust engine in-process.

:func:`open_store` picks one from the settings. Neither module imports its engine until a store
is opened, so importing this package stays cheap.
"""

from __future__ import annotations

from opsmith.config import Settings
from opsmith.errors import ConfigError
from opsmith.rag.store._types import (
    CollectionInfo,
    FileState,
    Hit,
    StoredChunk,
    TermStats,
    VectorStore,
    VectorStoreReader,
    chunk_point_id,
)
from opsmith.rag.store.edge import EdgeStore
from opsmith.rag.store.qdrant import QdrantStore

__all__ = [
    "CollectionInfo",
    "EdgeStore",
    "FileState",
    "Hit",
    "QdrantStore",
    "StoredChunk",
    "TermStats",
    "VectorStore",
    "VectorStoreReader",
    "chunk_point_id",
    "open_store",
]


def open_store(settings: Settings) -> VectorStore:
    """The store the settings point at: qdrant-client (embedded or ``qdrant_url``) or Qdrant Edge."""
    if settings.vector_store == "edge":
        if settings.qdrant_url:
            raise ConfigError(
                "vector_store = 'edge' runs in-process and cannot use a Qdrant server"
                " — unset OPSMITH_QDRANT_URL, or set OPSMITH_VECTOR_STORE=qdrant"
            )
        return EdgeStore(settings)
    return QdrantStore(settings)
