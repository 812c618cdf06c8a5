"""The one place opsmith's flows are orchestrated, and the warm state they share.

The CLI (one command, then :meth:`Backend.close`), the HTTP service and the MCP server
(``opsmith serve`` and ``opsmith mcp``, for the process's lifetime) all call :class:`Backend`
to search, ask, ingest, list and delete collections, open runbooks, review Terraform and
answer Alertmanager alerts; none of them rebuilds a flow. Each skin only parses its input,
calls one method and renders the result, which is one of the shapes in :mod:`opsmith.schemas`
(or a library object that turns into one).

:class:`Backend` loads the embedder, the vector store and the chat model once, on first use,
so a one-shot command pays only for what it touches. It is safe to call from many threads at
once:

* loading is guarded, so concurrent first calls load each component once;
* the ONNX Runtime session and the tokenizer are safe to share between threads;
* qdrant-client's local mode is not, so :class:`~opsmith.rag.store.QdrantStore` serialises its
  calls (a Qdrant server and Qdrant Edge, ``vector_store = "edge"``, lock inside the engine);
* nothing is held while an LLM generates, so one slow answer does not stall the others, and an
  ingest running in the background embeds while questions are answered;
* at most ``max_concurrent_llm_calls`` calls that may use the LLM run at once: a caller takes
  an :meth:`Backend.llm_slot` first, and gets :class:`~opsmith.errors.ServiceBusyError` at once
  when none is free, rather than a worker thread that waits on a slow provider.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from opsmith.config import Settings
from opsmith.errors import CollectionNotFoundError, EmptyQuestionError, ServiceBusyError, SourceNotFoundError
from opsmith.schemas import (
    AlertAnswer,
    AskResponse,
    CollectionItem,
    CollectionsResponse,
    SearchHit,
    SearchResponse,
    SourceResponse,
    SourceSection,
    SourcesResponse,
)

if TYPE_CHECKING:
    from opsmith.integrations.alertmanager import Alert
    from opsmith.llm import ChatModel
    from opsmith.llm.calllog import CallLog
    from opsmith.rag.answer import Answer
    from opsmith.rag.embedder import Embedder
    from opsmith.rag.indexing import IngestReport, ProgressHook
    from opsmith.rag.retrieve import Retriever
    from opsmith.rag.store import Hit, StoredChunk, VectorStore
    from opsmith.review import ReviewResult

__all__ = [
    "LLM_BUSY_RETRY_AFTER",
    "RETRIEVER_TTL_SECONDS",
    "Backend",
    "CollectionJSON",
    "CollectionsResult",
    "LLMSlot",
    "SearchHit",
    "SearchResult",
    "SourceSection",
    "SourceView",
    "ask_response",
    "search_hit",
]

# The names these shapes had here before opsmith.schemas, so imports from this module keep working.
CollectionJSON = CollectionItem
CollectionsResult = CollectionsResponse
SearchResult = SearchResponse
SourceView = SourceResponse


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


def ask_response(answer: Answer, collection: str) -> AskResponse:
    """An answer as the HTTP API returns it: ``opsmith ask --json`` plus the collection."""
    return {**answer.to_dict(), "collection": collection}


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
    """The flows, over warm state shared for the owner's lifetime (one command, or a server's).

    The embedder, the store and the chat model are each built on first use and kept, so
    only the first call pays for loading them; one that fails to load is tried again on the
    next call. ``with Backend(settings) as backend:`` closes it at the end.

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

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def warm_up(self) -> None:
        """Load the store and the embedder now, and run one query through the embedder."""
        self.store()
        self.embedder().embed_query("warm up")

    # Runbooks ------------------------------------------------------------------------------

    def search(self, query: str, *, k: int, collection: str | None = None) -> SearchResponse:
        """The ``k`` best chunks for ``query``, best first, in the settings' retrieval mode."""
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
        # The provider's settings first: a missing key fails before the index is opened.
        chat_model = self.chat_model()
        return answer_question(
            question,
            retriever=self._retriever(collection or self.collection, sources),
            chat_model=chat_model,
            k=k or settings.top_k,
            refusal_threshold=settings.refusal_threshold,
            max_tokens=settings.llm_max_tokens,
            context_tokens=settings.context_tokens,
            on_delta=on_delta,
            log=self._call_log() if chat_model is not None else None,
            require_citations=settings.require_citations,
        )

    def refusal(self, question: str) -> Answer:
        """The refusal a question gets when there is nothing to search for (a vague alert), without searching."""
        from opsmith.rag.answer import REFUSAL, Answer

        no_time = {"retrieve": 0.0, "generate": 0.0, "total": 0.0}
        return Answer(question, REFUSAL, True, [], self.provider, no_time, self.model)

    def collections(self) -> CollectionsResponse:
        """The collections in the store, and the one used when none is named."""
        store = self.store()
        rows = store.collections()
        return {
            "location": store.location,
            "default_collection": self.collection,
            "collections": [
                {"name": c.name, "points": c.points, "embedder": c.embedder, "dimension": c.dimension} for c in rows
            ],
        }

    def delete_collection(self, name: str) -> None:
        """Delete a collection and everything in it; :class:`CollectionNotFoundError` when there is none."""
        try:
            if not self.store().delete_collection(name):
                raise CollectionNotFoundError(name)
        finally:
            self._retrievers.pop(name, None)

    def sources(self, collection: str) -> SourcesResponse:
        """The runbooks indexed in a collection, with their chunk counts; the collection must exist."""
        self.store().require(collection)
        rows = self.runbooks(collection)
        return {"collection": collection, "sources": [{"source": s, "chunks": n} for s, n in rows]}

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

    def runbook_view(self, collection: str, source: str) -> SourceResponse:
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
        follow_symlinks: bool = False,
    ) -> IngestReport:
        """Bring a collection in line with ``paths`` (see :func:`opsmith.rag.indexing.ingest`)."""
        from opsmith.rag.indexing import ingest

        try:
            # The store first: a locked or unreachable index fails before the model loads.
            store = self.store()
            return ingest(
                paths,
                settings=self.settings,
                embedder=self.embedder(),
                store=store,
                collection=collection or self.collection,
                prune=prune,
                progress=progress,
                within=within,
                follow_symlinks=follow_symlinks,
            )
        finally:
            # Term statistics may have changed, even in a run that failed halfway: re-read them.
            self._retrievers.clear()

    # Terraform -----------------------------------------------------------------------------

    def review(self, files: Mapping[str, str], *, use_llm: bool = True) -> ReviewResult:
        """Review Terraform given as ``{relative path: content}`` (see :func:`opsmith.review.review_files`),
        with the LLM too when one is configured and ``use_llm``."""
        from opsmith.review import review_files

        chat_model = self.chat_model() if use_llm else None
        return review_files(files, settings=self.settings, chat_model=chat_model, use_llm=chat_model is not None)

    def review_paths(self, paths: Sequence[Path], *, use_llm: bool = True) -> ReviewResult:
        """Review the Terraform under ``paths`` on disk (see :func:`opsmith.review.review`)."""
        from opsmith.review import review

        chat_model = self.chat_model() if use_llm else None
        return review(paths, settings=self.settings, chat_model=chat_model, use_llm=chat_model is not None)

    # Incidents -----------------------------------------------------------------------------

    def answer_alerts(self, alerts: Sequence[Alert], *, collection: str | None = None) -> list[AlertAnswer]:
        """Answer each firing alert from the runbooks (see :mod:`opsmith.integrations.alertmanager`).

        An alert whose ``runbook_url`` matches an indexed runbook is answered from that runbook
        first, and from all of them when it does not cover the alert; an alert that does not say
        what is wrong (:func:`~opsmith.integrations.alertmanager.is_specific`) is refused without
        searching, since any runbook found would be unrelated. Resolved alerts are skipped.

        Raises:
            CollectionNotFoundError: the collection is missing or holds no runbook.
        """
        from opsmith.integrations.alertmanager import alert_question, is_specific, match_runbook

        name = collection or self.collection
        indexed = [source for source, _ in self.runbooks(name)]
        if not indexed:
            raise CollectionNotFoundError(name)
        results: list[AlertAnswer] = []
        for alert in alerts:
            if not alert.firing:
                continue
            question = alert_question(alert)
            runbook = match_runbook(alert.runbook_url, indexed)
            answer = None
            if runbook is not None:
                answer = self.ask(question, collection=name, sources=[runbook])
                if answer.refused:  # the linked runbook does not cover it: try all of them
                    answer = None
            if answer is None:
                answer = self.ask(question, collection=name) if is_specific(alert) else self.refusal(question)
            results.append(
                {
                    "alertname": alert.name or "(unnamed alert)",
                    "fingerprint": alert.fingerprint,
                    "status": alert.status,
                    "question": question,
                    "runbook": runbook,
                    "answer": ask_response(answer, name),
                }
            )
        return results

    def close(self) -> None:
        """Close the store (releasing the local index) and the chat model's connections."""
        with self._load_lock:
            if self._store is not None:
                self._store.close()
                self._store = None
        with self._chat_lock:
            if self._chat_model is not None:
                self._chat_model.close()
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
