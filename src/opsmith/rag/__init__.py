"""The runbook assistant: ingest documents into Qdrant, retrieve, and answer with citations.

The seams are :class:`Embedder` and :class:`VectorStore`; everything else is functions and
dataclasses over them. (``ingest`` and ``evaluate`` are imported from their modules, which share
their names.) Typical use::

    from opsmith.rag.ingest import ingest

    settings = load_settings()
    embedder = load_embedder(settings)
    with open_store(settings) as store:
        ingest(["runbooks/"], settings=settings, embedder=embedder, store=store)
        result = answer_question("etcd is slow", retriever=Retriever(embedder, store, settings.collection))
"""

from opsmith.rag.answer import Answer, Citation, answer_question
from opsmith.rag.chunking import Chunk, chunk_document
from opsmith.rag.documents import Document, SourceLine
from opsmith.rag.embedder import Embedder, load_embedder
from opsmith.rag.evaluate import load_questions
from opsmith.rag.ingest import IngestReport
from opsmith.rag.loaders import SUPPORTED_SUFFIXES, load_document
from opsmith.rag.retrieve import Retriever
from opsmith.rag.store import Hit, QdrantStore, StoredChunk, VectorStore, open_store

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Answer",
    "Chunk",
    "Citation",
    "Document",
    "Embedder",
    "Hit",
    "IngestReport",
    "QdrantStore",
    "Retriever",
    "SourceLine",
    "StoredChunk",
    "VectorStore",
    "answer_question",
    "chunk_document",
    "load_document",
    "load_embedder",
    "load_questions",
    "open_store",
]
