"""Query-time retrieval: embed the question, query Qdrant, return ranked hits."""

from __future__ import annotations

from dataclasses import dataclass, field

from opsmith.config import RetrievalMode
from opsmith.errors import EmptyQuestionError
from opsmith.rag.embedder import Embedder
from opsmith.rag.sparse import query_vector
from opsmith.rag.store import Hit, TermStats, VectorStoreReader

__all__ = ["Retriever"]


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

    def __post_init__(self) -> None:
        # Fail before the first question, with a message naming both models if they differ.
        info = self.store.require(self.collection, embedder=self.embedder.name, dimension=self.embedder.dimension)
        self.term_stats = info.term_stats

    def search(self, query: str, *, k: int = 5, mode: RetrievalMode | None = None) -> list[Hit]:
        """The ``k`` best chunks for ``query``, best first."""
        if not query or not query.strip():
            raise EmptyQuestionError()
        dense = self.embedder.embed_query(query)
        return self.store.query(
            self.collection,
            dense,
            query_vector(query),
            mode=mode or self.mode,
            limit=k,
            sparse_weight=self.sparse_weight,
            sources=self.sources,
        )
