"""The warm state of a long-running opsmith process: ``opsmith serve`` and ``opsmith mcp``.

:class:`Backend` loads the embedder, the vector store and the chat model once, on first use,
and answers searches, questions, reviews and ingests with them for the process's lifetime.
It is safe to call from many threads at once:

* loading is guarded, so concurrent first calls load each component once;
* the ONNX Runtime session and the tokenizer are safe to share between threads;
* qdrant-client's local mode is not, so :class:`~opsmith.rag.store.QdrantStore` serialises its
  calls (a Qdrant server and Qdrant Edge, ``vector_store = "edge"``, lock inside the engine);
* nothing is held while an LLM generates, so one slow answer does not stall the others, and an
  ingest running in the background embeds while questions are answered;
* at most ``max_concurrent_llm_calls`` calls that may use the LLM run at once: a caller takes
  an :meth:`Backend.llm_slot` first, and gets :class:`~opsmith.errors.ServiceBusyError` at once
  when none is free, rather than a worker thread that waits on a slow provider.

The JSON shapes returned here are those of the CLI's ``--json`` output; the HTTP API and the
MCP tools return them unchanged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from pydantic import Field
from typing_extensions import TypedDict

from opsmith.config import RetrievalMode, Settings
from opsmith.errors import EmptyQuestionError, ServiceBusyError, SourceNotFoundError

if TYPE_CHECKING:
    from opsmith.llm import ChatModel
    from opsmith.llm.calllog import CallLog
    from opsmith.rag.answer import Answer
    from opsmith.rag.embedder import Embedder
    from opsmith.rag.ingest import IngestReport, ProgressHook
    from opsmith.rag.retrieve import Retriever
    from opsmith.rag.store import Hit, StoredChunk, VectorStore
    from opsmith.review import ReviewResult

__all__ = [
    "Backend",
    "CollectionJSON",
    "CollectionsResult",
    "LLMSlot",
    "SearchHit",
    "SearchResult",
    "SourceSection",
    "SourceView",
    "search_hit",
]


class SearchHit(TypedDict):
    """One ranked chunk of a runbook."""

    source: Annotated[str, Field(description="The runbook's path, relative to the folder that was ingested.")]
    heading: Annotated[str, Field(description="Heading path of the chunk, e.g. 'Disk full > Diagnosis'.")]
    start_line: int
    end_line: int
    score: Annotated[float, Field(description="Ranking score in the retrieval mode (RRF fusion for hybrid).")]
    relevance: Annotated[float, Field(description="Cosine similarity to the query, comparable across modes.")]
    text: str


def search_hit(hit: Hit) -> SearchHit:
    """One hit as ``opsmith search --json`` (and the API, and the MCP tool) show it."""
    chunk = hit.chunk
    return {
        "source": chunk.source,
        "heading": chunk.heading,
        "start_line": chunk.start_line,
        "end_line": chunk.end_line,
        "score": round(hit.score, 4),
        "relevance": round(hit.relevance, 4),
        "text": chunk.text,
    }


class SearchResult(TypedDict):
    """The best chunks for a query, best first (``opsmith search --json``)."""

    query: str
    collection: str
    mode: RetrievalMode
    results: list[SearchHit]


class CollectionJSON(TypedDict):
    name: str
    points: Annotated[int, Field(description="Number of chunks.")]
    embedder: str | None
    dimension: int | None


class CollectionsResult(TypedDict):
    """The collections in the store (``opsmith collections list --json``)."""

    location: Annotated[str, Field(description="Local index folder or Qdrant server URL.")]
    default_collection: Annotated[str, Field(description="The collection tools use when none is given.")]
    collections: list[CollectionJSON]


class SourceSection(TypedDict):
    """One indexed chunk of a runbook, its overlap with the previous chunk removed."""

    heading: str
    start_line: Annotated[int, Field(description="First line of the chunk in the original file (1-based).")]
    end_line: Annotated[int, Field(description="Last line of the chunk in the original file.")]
    text: str


class SourceView(TypedDict):
    """A runbook as indexed: its chunks in order, for opening a citation."""

    collection: str
    source: str
    title: str | None
    sections: list[SourceSection]


#: How long a collection's metadata (term statistics, embedder) is reused between questions.
RETRIEVER_TTL_SECONDS = 5.0

#: What a caller refused an LLM slot is told to wait: an answer takes seconds.
LLM_BUSY_RETRY_AFTER = 5.0


class LLMSlot:
    """One of the backend's LLM slots, taken when made (an empty one without an LLM); ``with slot:``
    (or :meth:`release`) gives it back.

    Taken and released in different places on purpose: the HTTP service takes it on the event
    loop, before it starts a worker thread or a response stream, and the worker releases it
    when the call is over, however the client fared.
    """

    def __init__(self, semaphore: threading.BoundedSemaphore | None) -> None:
        self._semaphore = semaphore

    def release(self) -> None:
        """Give the slot back; a second call does nothing."""
        semaphore, self._semaphore = self._semaphore, None
        if semaphore is not None:
            semaphore.release()

    def __enter__(self) -> LLMSlot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Backend:
    """What a server shares for its lifetime.

    The embedder, the store and the chat model are each built on first use and kept, so
    only the first call pays for loading them; one that fails to load is tried again on the
    next call.

    Args:
        settings: Settings for everything; ``settings.collection`` is the default collection.
        chat_model: The LLM to use instead of the one ``settings.provider`` names (tests pass
            :class:`~opsmith.testing.FakeChatModel` here).
    """

    def __init__(self, settings: Settings, *, chat_model: ChatModel | None = None) -> None:
        self.settings = settings
        self._load_lock = threading.Lock()
        self._chat_lock = threading.Lock()
        self._embedder: Embedder | None = None
        self._store: VectorStore | None = None
        self._chat_model = chat_model
        self._chat_model_ready = chat_model is not None
        self._retrievers: dict[str, tuple[float, Retriever]] = {}
        self._log: CallLog | None = None
        self._llm_slots = threading.BoundedSemaphore(settings.max_concurrent_llm_calls)

    @property
    def collection(self) -> str:
        return self.settings.collection

    @property
    def provider(self) -> str:
        """Who writes the answers: ``none`` (extractive) or the LLM provider's name."""
        if self._chat_model is not None:
            return self._chat_model.provider
        return self.settings.provider

    @property
    def model(self) -> str | None:
        if self._chat_model is not None:
            return self._chat_model.model
        return self.settings.resolved_model

    @property
    def loaded(self) -> bool:
        """Whether the embedder and the store are loaded (the service's readiness)."""
        return self._embedder is not None and self._store is not None

    def store(self) -> VectorStore:
        with self._load_lock:
            if self._store is None:
                from opsmith.rag.store import open_store

                self._store = open_store(self.settings)
            return self._store

    def embedder(self) -> Embedder:
        with self._load_lock:
            if self._embedder is None:
                from opsmith.rag.embedder import load_embedder

                self._embedder = load_embedder(self.settings)
            return self._embedder

    def chat_model(self) -> ChatModel | None:
        """The configured LLM, or None for ``provider = none``; a missing key raises ConfigError."""
        with self._chat_lock:
            if not self._chat_model_ready:
                from opsmith.llm.registry import get_chat_model

                self._chat_model = get_chat_model(self.settings)
                self._chat_model_ready = True
            return self._chat_model

    def llm_slot(self) -> LLMSlot:
        """A slot for one call that may use the LLM (an answer, a review, an alert batch), taken now.

        Nothing is taken when no LLM is configured (extractive answers and rule-only reviews are
        never limited). Hold it for the whole call, a streamed answer included.

        Raises:
            ServiceBusyError: all ``max_concurrent_llm_calls`` slots are in use.
            ConfigError: the provider is configured but unusable (a missing key).
        """
        if self.chat_model() is None:
            return LLMSlot(None)
        if not self._llm_slots.acquire(blocking=False):
            limit = self.settings.max_concurrent_llm_calls
            raise ServiceBusyError(
                f"All {limit} LLM call slot{'s' * (limit != 1)} are in use",
                setting="OPSMITH_MAX_CONCURRENT_LLM_CALLS",
                retry_after=LLM_BUSY_RETRY_AFTER,
            )
        return LLMSlot(self._llm_slots)

    def _call_log(self) -> CallLog:
        # Opened once: opening checks the schema, which a server should not redo per question.
        with self._chat_lock:
            if self._log is None:
                from opsmith.llm.calllog import CallLog

                self._log = CallLog.for_settings(self.settings)
            return self._log

    def warm_up(self) -> None:
        """Load the store and the embedder now, and run one query through the embedder."""
        self.store()
        self.embedder().embed_query("warm up")

    # Runbooks ------------------------------------------------------------------------------

    def search(self, query: str, *, k: int, collection: str | None = None) -> SearchResult:
        name = collection or self.collection
        hits = self._retriever(name).search(query, k=k)
        results = [search_hit(hit) for hit in hits]
        return {"query": query, "collection": name, "mode": self.settings.retrieval_mode, "results": results}

    def ask(
        self,
        question: str,
        *,
        collection: str | None = None,
        k: int | None = None,
        on_delta: Callable[[str], None] | None = None,
        sources: Sequence[str] | None = None,
    ) -> Answer:
        """Answer from the runbooks only (see :func:`opsmith.rag.answer.answer_question`);
        ``sources`` limits retrieval to those runbooks."""
        from opsmith.rag.answer import answer_question

        if not question.strip():
            raise EmptyQuestionError()
        settings = self.settings
        # Provider settings are checked before the index is touched, as `opsmith ask` does.
        chat_model = self.chat_model()
        return answer_question(
            question,
            retriever=self._retriever(collection or self.collection, sources),
            chat_model=chat_model,
            k=k or settings.top_k,
            refusal_threshold=settings.refusal_threshold,
            max_tokens=settings.llm_max_tokens,
            on_delta=on_delta,
            log=self._call_log() if chat_model is not None else None,
            require_citations=settings.require_citations,
        )

    def collections(self) -> CollectionsResult:
        store = self.store()
        rows = store.collections()
        return {
            "location": store.location,
            "default_collection": self.collection,
            "collections": [
                {"name": c.name, "points": c.points, "embedder": c.embedder, "dimension": c.dimension} for c in rows
            ],
        }

    def runbooks(self, collection: str | None = None) -> list[tuple[str, int]]:
        """(source, chunk count) of every runbook in a collection; none when it is missing."""
        name = collection or self.collection
        store = self.store()
        if store.info(name) is None:
            return []
        states = store.file_states(name)
        return [(source, max(v.chunk_count for v in versions.values())) for source, versions in sorted(states.items())]

    def runbook_chunks(self, collection: str, source: str) -> list[StoredChunk]:
        """The chunks of one runbook in order (one complete version of the file)."""
        store = self.store()
        store.require(collection)
        chunks = _one_version(store.chunks(collection, source))
        if not chunks:
            raise SourceNotFoundError(collection, source)
        return chunks

    def runbook_text(self, collection: str, source: str) -> str:
        """The indexed text of one runbook: its chunks in order, overlaps removed."""
        sections = self.runbook_view(collection, source)["sections"]
        return "\n\n".join(section["text"] for section in sections if section["text"]) + "\n"

    def runbook_view(self, collection: str, source: str) -> SourceView:
        """One runbook as indexed, section by section with line ranges, for opening a citation."""
        chunks = self.runbook_chunks(collection, source)
        sections: list[SourceSection] = []
        previous: list[str] = []
        for chunk in chunks:
            full = chunk.text.strip("\n").splitlines()
            lines = full
            # Consecutive pieces of a long section share a few lines; show them once.
            for size in range(min(len(previous), len(full)), 0, -1):
                if previous[-size:] == full[:size]:
                    lines = full[size:]
                    break
            previous = full
            sections.append(
                {
                    "heading": chunk.heading,
                    "start_line": chunk.start_line,
                    "end_line": chunk.end_line,
                    "text": "\n".join(lines),
                }
            )
        return {"collection": collection, "source": source, "title": chunks[0].title, "sections": sections}

    def ingest(
        self,
        paths: Sequence[Path],
        *,
        collection: str | None = None,
        prune: bool = True,
        progress: ProgressHook | None = None,
        within: Sequence[Path] | None = None,
    ) -> IngestReport:
        """Bring a collection in line with ``paths`` (see :func:`opsmith.rag.ingest.ingest`)."""
        from opsmith.rag.ingest import ingest

        try:
            return ingest(
                paths,
                settings=self.settings,
                embedder=self.embedder(),
                store=self.store(),
                collection=collection or self.collection,
                prune=prune,
                progress=progress,
                within=within,
            )
        finally:
            # Term statistics may have changed, even in a run that failed halfway: re-read them.
            self._retrievers.clear()

    # Terraform -----------------------------------------------------------------------------

    def review(self, files: Mapping[str, str]) -> ReviewResult:
        from opsmith.review import review_files

        chat_model = self.chat_model()
        return review_files(files, settings=self.settings, chat_model=chat_model, use_llm=chat_model is not None)

    def close(self) -> None:
        """Close the store (releasing the local index) and the chat model's connections."""
        with self._load_lock:
            if self._store is not None:
                self._store.close()
                self._store = None
        with self._chat_lock:
            close = getattr(self._chat_model, "close", None)
            if callable(close):
                close()
            self._chat_model, self._chat_model_ready = None, False

    def _retriever(self, collection: str, sources: Sequence[str] | None = None) -> Retriever:
        from opsmith.rag.retrieve import Retriever

        settings = self.settings
        if sources:
            return Retriever(
                self.embedder(),
                self.store(),
                collection,
                settings.retrieval_mode,
                settings.hybrid_sparse_weight,
                tuple(sources),
            )
        # Building one reads the collection's metadata (existence, embedder, term statistics):
        # a few milliseconds that a busy server should not pay per question. Kept for a few
        # seconds, and dropped after every ingest here, so a collection re-ingested or deleted
        # by another process on a Qdrant server is noticed soon.
        now = time.monotonic()
        cached = self._retrievers.get(collection)
        if cached is not None and now - cached[0] < RETRIEVER_TTL_SECONDS:
            return cached[1]
        retriever = Retriever(
            self.embedder(), self.store(), collection, settings.retrieval_mode, settings.hybrid_sparse_weight
        )
        self._retrievers[collection] = (now, retriever)
        return retriever


def _one_version(chunks: list[StoredChunk]) -> list[StoredChunk]:
    # An interrupted re-ingest can leave two versions of a file; show the complete one.
    versions: dict[str, list[StoredChunk]] = {}
    for chunk in chunks:
        versions.setdefault(chunk.file_sha256, []).append(chunk)
    if len(versions) <= 1:
        return chunks
    complete = [group for group in versions.values() if len(group) == group[0].chunk_count]
    return max(complete or list(versions.values()), key=len)
