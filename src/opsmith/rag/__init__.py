"""The runbook assistant: ingest documents into Qdrant, retrieve, and answer with citations.

The seams are :class:`Embedder` and :class:`VectorStore` (:class:`VectorStoreReader` for what
only reads); everything else is functions and dataclasses over them. Typical use::

    from pathlib import Path

    from opsmith.config import load_settings
    from opsmith.rag import Retriever, answer_question, ingest, load_embedder, open_store

    settings = load_settings()
    embedder = load_embedder(settings)
    with open_store(settings) as store:
        ingest([Path("runbooks")], settings=settings, embedder=embedder, store=store)
        result = answer_question("etcd is slow", retriever=Retriever(embedder, store, settings.collection))

The pipeline's modules: ``loaders`` (one per format), ``chunking``, ``embedder``, ``store``,
``indexing`` (:func:`ingest`), ``retrieve``, ``answer`` and ``evaluate``.
"""

from opsmith.rag.answer import Answer, Citation, answer_question
from opsmith.rag.chunking import Chunk, chunk_document
from opsmith.rag.documents import Document, SourceLine
from opsmith.rag.embedder import Embedder, load_embedder
from opsmith.rag.evaluate import load_questions
from opsmith.rag.indexing import IngestProgress, IngestReport, ingest
from opsmith.rag.loaders import SUPPORTED_SUFFIXES, load_document
from opsmith.rag.retrieve import Retriever
from opsmith.rag.store import EdgeStore, Hit, QdrantStore, StoredChunk, VectorStore, VectorStoreReader, open_store

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Answer",
    "Chunk",
    "Citation",
    "Document",
    "EdgeStore",
    "Embedder",
    "Hit",
    "IngestProgress",
    "IngestReport",
    "QdrantStore",
    "Retriever",
    "SourceLine",
    "StoredChunk",
    "VectorStore",
    "VectorStoreReader",
    "answer_question",
    "chunk_document",
    "ingest",
    "load_document",
    "load_embedder",
    "load_questions",
    "open_store",
]
