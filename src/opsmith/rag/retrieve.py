"""Query-time retrieval: embed the question, query Qdrant, return ranked hits."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from opsmith.config import RetrievalMode
from opsmith.errors import EmptyQuestionError
from opsmith.rag.embedder import Embedder
from opsmith.rag.runbook import Runbook
from opsmith.rag.sparse import SparseVector, query_vector
from opsmith.rag.store import Hit, StoredChunk, TermStats, VectorStoreReader, chunk_point_id

__all__ = ["MAX_RUNBOOK_CHUNKS", "RUNBOOK_CACHE", "Retriever"]

#: Chunks of one runbook an answer reads at most (about 200 kB of text): of a longer one, the most
#: relevant (a huge file then costs every question about it no more than this).
MAX_RUNBOOK_CHUNKS = 200

#: Rebuilt runbooks kept between questions (the least recently used goes first).
RUNBOOK_CACHE = 64
_RUNBOOKS: dict[tuple[str, str, tuple[int, ...]], Runbook] = {}
_RUNBOOKS_LOCK = threading.Lock()


@dataclass
class Retriever:
    """Holds the warm embedder and store; ``search`` is safe to call repeatedly."""

    embedder: Embedder
    store: VectorStoreReader
    collection: str
    mode: RetrievalMode = "hybrid"
    sparse_weight: float = 1.5
    #: Search only these runbooks (an alert's linked runbook); None searches the whole collection.
    sources: tuple[str, ...] | None = None
    term_stats: TermStats | None = field(default=None, init=False)
    _embed: Callable[[str], NDArray[np.float32]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Answering a question searches twice (the collection, then the best runbook's chunks):
        # embed it once.
        self._embed = lru_cache(maxsize=64)(self.embedder.embed_query)
        # Fail before the first question, with a message naming both models if they differ.
        info = self.store.require(self.collection, embedder=self.embedder.name, dimension=self.embedder.dimension)
        self.term_stats = info.term_stats

    def search(self, query: str, *, k: int = 5, mode: RetrievalMode | None = None) -> list[Hit]:
        """The ``k`` best chunks for ``query``, best first."""
        if not query or not query.strip():
            raise EmptyQuestionError()
        dense = self._embed(query)
        return self.store.query(
            self.collection,
            dense,
            query_vector(query),
            mode=mode or self.mode,
            limit=k,
            sparse_weight=self.sparse_weight,
            sources=self.sources,
        )

    def runbook(self, query: str, chunk: StoredChunk) -> tuple[Runbook, list[Hit]]:
        """The runbook ``chunk`` belongs to, rebuilt, with each of its chunks' hits for ``query``.

        Rebuilt runbooks are kept (:data:`RUNBOOK_CACHE`, shared by all retrievers): a version of a
        runbook never changes, and the same few answer most questions."""
        hits = self.runbook_hits(query, chunk)
        # The chunks read: all of a runbook, or of a huge one the most relevant (see runbook_hits).
        key = (chunk.source, chunk.file_sha256, tuple(sorted(hit.chunk.chunk_index for hit in hits)))
        with _RUNBOOKS_LOCK:
            runbook = _RUNBOOKS.pop(key, None)
        if runbook is None:
            runbook = Runbook.from_chunks([hit.chunk for hit in hits])
        with _RUNBOOKS_LOCK:
            _RUNBOOKS[key] = runbook
            while len(_RUNBOOKS) > RUNBOOK_CACHE:
                _RUNBOOKS.pop(next(iter(_RUNBOOKS)))
        return runbook, hits

    def runbook_hits(self, query: str, chunk: StoredChunk) -> list[Hit]:
        """The chunks of the runbook ``chunk`` belongs to (that version of it): what an answer is
        assembled from. All of them, fetched by id (their ``score`` and ``relevance`` are 0: the
        question's own hits carry those); of a runbook longer than :data:`MAX_RUNBOOK_CHUNKS`
        chunks, only that many, the most relevant to ``query``."""
        if chunk.chunk_count <= MAX_RUNBOOK_CHUNKS:
            # By id, not by a filtered search: a lookup the embedded store answers without a scan.
            ids = [chunk_point_id(chunk.source, chunk.file_sha256, i) for i in range(chunk.chunk_count)]
            return [Hit(found, 0.0, 0.0) for found in self.store.fetch(self.collection, ids)]
        hits = self.store.query(
            self.collection,
            self._embed(query),
            SparseVector([], []),
            mode="dense",
            # Room for a second version an interrupted ingest left.
            limit=MAX_RUNBOOK_CHUNKS * 2,
            sources=(chunk.source,),
        )
        found = [hit for hit in hits if hit.chunk.file_sha256 == chunk.file_sha256]
        return found[:MAX_RUNBOOK_CHUNKS]
