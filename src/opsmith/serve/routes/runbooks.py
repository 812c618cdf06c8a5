"""Runbook routes: ``POST /v1/ask`` (JSON, or Server-Sent Events with ``stream: true``),
``POST /v1/search`` and the collections with their indexed runbooks."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from opsmith.backend import LLMSlot, ask_response
from opsmith.config import check_collection_name
from opsmith.errors import OpsmithError
from opsmith.schemas import (
    AskResponse,
    CollectionsResponse,
    Problem,
    SearchResponse,
    SourceResponse,
    SourcesResponse,
)
from opsmith.serve.models import AskRequest, SearchRequest
from opsmith.serve.problems import internal_error, problem, problem_status, request_id
from opsmith.serve.service import Service, ServiceDep, in_thread, with_llm_slot

__all__ = ["router"]

log = logging.getLogger("opsmith.serve")

router = APIRouter(prefix="/v1", tags=["runbooks"])


@router.post(
    "/ask",
    response_model=AskResponse,
    responses={
        200: {
            "content": {
                "text/event-stream": {
                    "schema": {"type": "string"},
                    "example": 'event: token\ndata: {"text": "Check "}\n\nevent: answer\ndata: {...}\n\n',
                }
            },
            "description": "The answer (JSON), or with `stream: true` Server-Sent Events: `token` events"
            " with `{text}`, then one `answer` event with the JSON below (or one `error` event with a problem).",
        },
        404: {"model": Problem, "description": "No such collection."},
    },
)
async def ask(body: AskRequest, request: Request, service: ServiceDep) -> Any:
    """Answer a question from the runbooks only, with citations; `refused: true` when they do not cover it."""
    collection = body.collection or service.settings.collection
    if body.stream:
        slot = service.backend.llm_slot()
        try:
            # Fail with a real status before the stream starts when the collection is missing.
            await in_thread(lambda: service.backend.store().require(collection))
            events = _answer_stream(service, body, collection, request_id(request), slot)
        except BaseException:
            slot.release()
            raise
        return EventSourceResponse(events, ping=15)
    answer = await with_llm_slot(service, lambda: service.backend.ask(body.question, collection=collection, k=body.k))
    data = ask_response(answer, collection)
    service.metrics.observe_answer(data)
    return data


@router.post("/search", response_model=SearchResponse)
async def search(body: SearchRequest, service: ServiceDep) -> SearchResponse:
    """The best-matching runbook chunks for a query, best first, with source, heading, lines and text."""
    started = time.perf_counter()
    result = await in_thread(lambda: service.backend.search(body.query, k=body.k, collection=body.collection))
    service.metrics.retrieval_seconds.observe(time.perf_counter() - started)
    return result


@router.get("/collections", response_model=CollectionsResponse)
async def collections(service: ServiceDep) -> CollectionsResponse:
    """The collections in the index, with chunk counts and embedders."""
    return await in_thread(service.backend.collections)


@router.get("/collections/{collection}/sources", response_model=SourcesResponse)
async def sources(collection: str, service: ServiceDep) -> SourcesResponse:
    """The runbooks indexed in a collection."""
    check_collection_name(collection)
    return await in_thread(lambda: service.backend.sources(collection))


@router.get("/collections/{collection}/sources/{source:path}", response_model=SourceResponse)
async def source(collection: str, source: str, service: ServiceDep) -> SourceResponse:
    """One runbook as indexed, section by section with its original line numbers (to open a citation)."""
    check_collection_name(collection)
    return await in_thread(lambda: service.backend.runbook_view(collection, source))


def _answer_stream(
    service: Service, body: AskRequest, collection: str, request_id: str | None, slot: LLMSlot
) -> AsyncIterator[ServerSentEvent]:
    """Start answering on a worker thread now, and return the events that follow it: ``token``
    events as the model writes, then the ``answer`` (or an ``error``) event.

    The worker holds ``slot`` until the answer is done, also when the client hangs up early or
    never reads the stream (an LLM call cannot be cut mid-request; it ends within its deadline).
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def on_delta(piece: str) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, ("token", piece))

    def run() -> None:
        with slot:
            try:
                answer = service.backend.ask(body.question, collection=collection, k=body.k, on_delta=on_delta)
            except Exception as exc:  # reported as the stream's last event
                loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))
            else:
                loop.call_soon_threadsafe(queue.put_nowait, ("answer", answer))

    worker = asyncio.ensure_future(anyio.to_thread.run_sync(run))
    return _answer_events(service, queue, worker, collection, request_id)


async def _answer_events(
    service: Service,
    queue: asyncio.Queue[tuple[str, Any]],
    worker: asyncio.Future[None],
    collection: str,
    request_id: str | None,
) -> AsyncIterator[ServerSentEvent]:
    try:
        while True:
            kind, value = await queue.get()
            if kind == "token":
                yield ServerSentEvent(data=json.dumps({"text": value}), event="token")
                continue
            if kind == "answer":
                data = ask_response(value, collection)
                service.metrics.observe_answer(data)
                yield ServerSentEvent(data=json.dumps(data), event="answer")
            else:
                exc = value
                if isinstance(exc, OpsmithError):
                    error = problem(problem_status(exc), str(exc), request_id, type(exc).__name__)
                else:
                    log.error(
                        json.dumps({"event": "stream_error", "request_id": request_id, "error": type(exc).__name__})
                    )
                    error = internal_error(exc, request_id)
                yield ServerSentEvent(data=json.dumps(error), event="error")
            return
    finally:
        # A client that hangs up early does not stop the worker; it finishes within the LLM
        # deadline and its result is dropped.
        if worker.done():
            await worker
