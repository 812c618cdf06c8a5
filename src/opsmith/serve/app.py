"""The HTTP service: a FastAPI app over one warm :class:`~opsmith.backend.Backend`.

Routes (all JSON unless noted; the OpenAPI document is at ``/openapi.json`` and in
``docs/openapi.json``):

* ``POST /v1/ask`` (``stream: true`` for Server-Sent Events), ``POST /v1/search``,
  ``POST /v1/review``, ``POST /v1/ingest`` + ``GET /v1/jobs[/{id}]``,
  ``GET /v1/collections[/{name}/sources[/{source}]]``, ``POST /v1/alerts/alertmanager``,
  ``GET /v1/info``;
* ``GET /healthz``, ``GET /readyz``, ``GET /metrics`` (Prometheus text);
* the web UI: ``GET /`` (runbook Q&A), ``GET /review`` (Terraform review), ``/static/*``.

Every request passes one ASGI middleware (:class:`ServiceMiddleware`) that gives it a request
id, checks bearer-token auth and the rate limit on ``/v1/*`` before any byte of the body is
read, hands the body to the route only if it reads one (within the size limit, a deadline
and a process-wide budget: :mod:`opsmith.serve.limits`), and on the way out records metrics
and writes one JSON access-log line. Errors are RFC 9457 problem documents whose ``detail``
is the line the CLI would print.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import re
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsmith import __version__
from opsmith.backend import Backend, LLMSlot
from opsmith.config import Settings, check_collection_name, read_secret
from opsmith.errors import (
    AuthenticationError,
    CollectionNotFoundError,
    ConfigError,
    EmbedderError,
    EmbedderMismatchError,
    IndexLockedError,
    IndexMissingError,
    InputError,
    JobNotFoundError,
    LimitExceededError,
    OpsmithError,
    PathNotAllowedError,
    PathNotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    RequestTimeoutError,
    RequestTooLargeError,
    ServiceBusyError,
    SourceNotFoundError,
    StoreError,
    StoreUnavailableError,
    StructuredOutputError,
)
from opsmith.llm import ChatModel
from opsmith.serve import alerts as alerting
from opsmith.serve.jobs import Job, JobManager
from opsmith.serve.limits import BodyGuard, ByteBudget
from opsmith.serve.metrics import CONTENT_TYPE_LATEST, ServiceMetrics
from opsmith.serve.models import (
    AlertsResponse,
    AskRequest,
    AskResponse,
    CollectionsResponse,
    InfoResponse,
    IngestPathRequest,
    JobResponse,
    JobsResponse,
    Problem,
    ReviewRequest,
    ReviewResponse,
    SearchRequest,
    SearchResponse,
    SourceResponse,
    SourcesResponse,
)
from opsmith.serve.security import (
    ApiToken,
    Authenticator,
    RateLimiter,
    auth_required,
    parse_tokens,
    resolve_ingest_path,
)

if TYPE_CHECKING:
    from opsmith.rag.answer import Answer

__all__ = ["Service", "ServiceMiddleware", "create_app", "openapi_document", "problem_status"]

access_log = logging.getLogger("opsmith.access")
log = logging.getLogger("opsmith.serve")

STATIC_DIR = Path(str(files("opsmith.serve") / "static"))

#: HTTP status per error class; the most specific class in an error's MRO wins.
_STATUS: dict[type[OpsmithError], int] = {
    OpsmithError: 500,
    ConfigError: 500,
    InputError: 400,
    PathNotFoundError: 404,
    PathNotAllowedError: 403,
    CollectionNotFoundError: 404,
    SourceNotFoundError: 404,
    JobNotFoundError: 404,
    EmbedderMismatchError: 409,
    IndexLockedError: 503,
    IndexMissingError: 503,
    StoreUnavailableError: 503,
    EmbedderError: 503,
    StructuredOutputError: 502,
    ProviderError: 502,
    ProviderTimeoutError: 504,
    AuthenticationError: 401,
    PermissionDeniedError: 403,
    RateLimitedError: 429,
    RequestTooLargeError: 413,
    LimitExceededError: 413,
    RequestTimeoutError: 408,
    ServiceBusyError: 503,
}

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

#: Methods that get their own metrics label; any other is counted as "other".
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# A client's X-Request-ID is kept only when it is short and plain, so it cannot forge log lines.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

# The UI is self-contained: no inline script, no third-party origin.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
    " object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def problem_status(exc: OpsmithError) -> int:
    """The HTTP status an :class:`OpsmithError` is answered with."""
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 500


def _problem(status: int, detail: str, request_id: str | None, kind: str | None = None) -> dict[str, Any]:
    return {
        "type": f"urn:opsmith:error:{kind}" if kind else "about:blank",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "request_id": request_id,
    }


def _problem_response(
    status: int, detail: str, request_id: str | None, kind: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        _problem(status, detail, request_id, kind),
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


def _error_headers(exc: OpsmithError) -> dict[str, str] | None:
    if isinstance(exc, RateLimitedError | ServiceBusyError):
        return {"Retry-After": str(max(1, round(exc.retry_after)))}
    if isinstance(exc, AuthenticationError):
        return {"WWW-Authenticate": 'Bearer realm="opsmith"'}
    return None


@dataclass
class Service:
    """Everything the routes share: the warm backend, jobs, metrics and the security pieces."""

    settings: Settings
    backend: Backend
    metrics: ServiceMetrics
    jobs: JobManager
    authenticator: Authenticator
    limiter: RateLimiter
    body_budget: ByteBudget
    owns_backend: bool = True
    readiness: dict[str, str] = field(default_factory=lambda: {"status": "loading"})

    def warm_up(self) -> None:
        """Load the embedder and the store; readiness says how it went."""
        try:
            self.backend.warm_up()
        except OpsmithError as exc:
            self.readiness = {"status": "failed", "detail": str(exc)}
            log.error(json.dumps({"event": "warm_up_failed", "detail": str(exc)}))
        else:
            self.readiness = {"status": "ready"}


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(_service)]


class ServiceMiddleware:
    """Request id, auth and rate limit, then the body guard, in; metrics and the access log out."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        service = self.service
        settings = service.settings
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given_id = headers.get("x-request-id", "")
        request_id = given_id if _REQUEST_ID.fullmatch(given_id) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        path: str = scope["path"]
        status = 500
        responded = replaced = False
        token: ApiToken | None = None
        # Nothing is read here: the route pulls the body through the guard, or never touches it.
        guard = BodyGuard(
            receive,
            headers,
            limit=settings.max_request_bytes,
            timeout=settings.body_read_timeout,
            budget=service.body_budget,
            takes_body=lambda: _takes_body(scope),
        )
        service.metrics.in_flight.inc()

        async def send_with_id(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                extra = [(b"x-request-id", request_id.encode())]
                if not path.startswith("/v1/") and path not in ("/metrics", "/healthz", "/readyz"):
                    extra.append((b"content-security-policy", _CSP.encode()))
                extra.append((b"x-content-type-options", b"nosniff"))
                if not guard.complete:
                    # Answered before its body was read: close rather than drain what the client sends.
                    extra.append((b"connection", b"close"))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        async def refuse(exc: OpsmithError) -> None:
            response = _problem_response(
                problem_status(exc), str(exc), request_id, type(exc).__name__, _error_headers(exc)
            )
            await response(scope, receive, send_with_id)

        async def send_from_app(message: Message) -> None:
            # A body the guard refused is answered with the guard's problem, whatever the route
            # made of the exception (FastAPI turns a failed body read into a 400).
            nonlocal replaced
            if replaced:
                return
            if message["type"] == "http.response.start" and guard.error is not None:
                replaced = True
                await refuse(guard.error)
                return
            await send_with_id(message)

        try:
            try:
                if path.startswith("/v1/") and path != "/v1/info" and scope["method"] != "OPTIONS":
                    token = service.authenticator.identify(headers.get("authorization"))
                    state["token"] = token
                    client = scope.get("client")
                    service.limiter.check(token.id if token else f"ip:{client[0] if client else '?'}")
                guard.check_declared()
            except OpsmithError as exc:
                await refuse(exc)
                return
            try:
                await self.app(scope, guard.receive, send_from_app)
            except Exception:
                if guard.error is None or responded:
                    raise
                await refuse(guard.error)
        finally:
            guard.release()
            service.metrics.in_flight.dec()
            route = scope.get("route")
            template = _route_label(getattr(route, "path", None), path)
            elapsed = time.perf_counter() - started
            method = scope["method"]
            label = method if method in _METHODS else "other"
            service.metrics.requests.labels(method=label, route=template, status=str(status)).inc()
            service.metrics.request_seconds.labels(method=label, route=template).observe(elapsed)
            client = scope.get("client")
            access_log.info(
                json.dumps(
                    {
                        "event": "request",
                        "request_id": request_id,
                        "method": method,
                        "path": path,
                        "route": template,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "client": client[0] if client else None,
                        "token": token.id if token else None,
                    }
                )
            )


def _takes_body(scope: Scope) -> bool:
    """Whether the route a request was routed to reads a body: a JSON model, or an upload it parses."""
    route = scope.get("route")
    if not isinstance(route, APIRoute):
        return False  # no route (404), a static file, or a page
    return route.body_field is not None or "requestBody" in (route.openapi_extra or {})


def create_app(
    settings: Settings,
    *,
    backend: Backend | None = None,
    chat_model: ChatModel | None = None,
    host: str | None = None,
) -> FastAPI:
    """The opsmith HTTP service, ready for any ASGI server; nothing heavy is loaded yet.

    Args:
        settings: Settings for everything (``serve_*``, ``api_*``, ``rate_limit_per_minute``...).
        backend: Warm state to share (made from ``settings`` when omitted; the app then closes it
            on shutdown).
        chat_model: An LLM to use instead of the configured provider (tests inject
            :class:`~opsmith.testing.FakeChatModel`); ignored when ``backend`` is given.
        host: The address the server binds, which decides whether auth is on by default
            (``settings.serve_host`` when omitted).

    Raises:
        ConfigError: auth is required but no usable token is configured.
    """
    bind = host or settings.serve_host
    required = auth_required(settings, bind)
    authenticator = Authenticator(parse_tokens(settings.api_tokens), required=required)
    owns_backend = backend is None
    backend = backend or Backend(settings, chat_model=chat_model)
    metrics = ServiceMetrics()
    service = Service(
        settings=settings,
        backend=backend,
        metrics=metrics,
        jobs=JobManager(backend, metrics),
        authenticator=authenticator,
        limiter=RateLimiter(settings.rate_limit_per_minute),
        # At least one body of the largest size must fit, or such a request could never pass.
        body_budget=ByteBudget(max(settings.max_buffered_request_bytes, settings.max_request_bytes)),
        owns_backend=owns_backend,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Warm up in the background: /healthz answers at once, /readyz once the model is loaded.
        warming = asyncio.ensure_future(anyio.to_thread.run_sync(service.warm_up))
        try:
            yield
        finally:
            await warming
            await anyio.to_thread.run_sync(service.jobs.shutdown)
            if service.owns_backend:
                service.backend.close()

    app = FastAPI(
        title="opsmith",
        version=__version__,
        summary="Runbook Q&A with citations, Terraform review and ingest, for DevOps/SRE teams.",
        description=(
            "Errors are RFC 9457 problem documents (`application/problem+json`) whose `detail` is the"
            " message the CLI prints. When the server requires auth (see `GET /v1/info`), send"
            " `Authorization: Bearer TOKEN` on every `/v1/` route."
        ),
        lifespan=lifespan,
        # FastAPI's /docs and /redoc pages load their scripts from a CDN; the spec itself is served.
        docs_url=None,
        redoc_url=None,
        responses={
            401: {"model": Problem, "description": "Missing or unknown bearer token."},
            408: {"model": Problem, "description": "The body did not arrive within the body read timeout."},
            413: {"model": Problem, "description": "Body over the size limit, or more files or alerts than allowed."},
            429: {"model": Problem, "description": "Rate limited; see Retry-After."},
            503: {"model": Problem, "description": "Busy (all LLM slots or the body budget taken); see Retry-After."},
        },
    )
    app.state.service = service
    app.openapi = lambda: _openapi_with_auth(app)  # type: ignore[method-assign]
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After", "Location"],
        )
    # Added last, so it runs first: CORS preflights get their request id and metrics too.
    app.add_middleware(ServiceMiddleware, service=service)
    _add_error_handlers(app)
    app.include_router(_api_router())
    _add_operational_routes(app)
    _add_ui_routes(app)
    return app


def _openapi_with_auth(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the bearer scheme, declared on every route that checks it."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
        schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearerAuth"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "A token from OPSMITH_API_TOKENS; required when GET /v1/info says auth_required.",
        }
        for path, operations in schema["paths"].items():
            if path.startswith("/v1/") and path != "/v1/info":
                for operation in operations.values():
                    operation["security"] = [{"bearerAuth": []}]
        app.openapi_schema = schema
    return app.openapi_schema


def openapi_document() -> dict[str, Any]:
    """The API's OpenAPI document, as checked into ``docs/openapi.json``."""
    from opsmith.config import load_settings

    app = create_app(load_settings(api_auth="off", api_tokens=[], cors_origins=[]))
    return app.openapi()


# Errors -------------------------------------------------------------------------------------------


def _route_label(template: str | None, path: str) -> str:
    """A bounded metrics label: the route template, never a raw path.

    Static files (served by a mount, which leaves no route template) share one label; requests
    refused before routing (401, 413, 429) or matching no route get a catch-all.
    """
    if path.startswith("/static/"):
        return "/static"
    if template:
        return template
    return "/v1/*" if path.startswith("/v1/") else "unmatched"


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _add_error_handlers(app: FastAPI) -> None:
    async def opsmith_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, OpsmithError)
        status = problem_status(exc)
        if status >= 500:
            log.warning(json.dumps({"event": "error", "request_id": _request_id(request), "detail": str(exc)}))
        return _problem_response(status, str(exc), _request_id(request), type(exc).__name__, _error_headers(exc))

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError | ValidationError)
        return _problem_response(422, _validation_detail(exc.errors()), _request_id(request), "ValidationError")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail = str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No route {request.method} {request.url.path} — the API is described at /openapi.json"
        return _problem_response(exc.status_code, detail, _request_id(request), None, dict(exc.headers or {}))

    async def unexpected_error(request: Request, exc: Exception) -> Response:
        request_id = _request_id(request)
        log.exception(json.dumps({"event": "unhandled_error", "request_id": request_id}))
        detail = f"Internal error ({type(exc).__name__}) — see the server log for request {request_id}"
        return _problem_response(500, detail, request_id, "InternalError")

    app.add_exception_handler(OpsmithError, opsmith_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(ValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)


def _validation_detail(errors: Any) -> str:
    parts = []
    for error in list(errors)[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "Invalid request (" + "; ".join(parts) + ") — fix the fields named; the schema is at /openapi.json"


# The API ------------------------------------------------------------------------------------------


async def _in_thread(call: Callable[[], Any]) -> Any:
    # Retrieval, generation and review block: run them on worker threads, never on the event loop.
    return await anyio.to_thread.run_sync(call)


async def _with_llm_slot(service: Service, call: Callable[[], Any]) -> Any:
    """``call`` on a worker thread, holding an LLM slot taken first (503 at once when none is free).

    A cancelled request still holds the slot until its thread is done: a worker thread cannot
    be stopped, and the LLM call in it goes on.
    """
    with service.backend.llm_slot():
        return await _in_thread(call)


def _api_router() -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.get("/info", response_model=InfoResponse, tags=["service"])
    async def info(service: ServiceDep) -> dict[str, Any]:
        """What this server is: version, default collection, answer mode and whether auth is on (no auth needed)."""
        settings = service.settings
        return {
            "version": __version__,
            "collection": settings.collection,
            "provider": service.backend.provider,
            "model": service.backend.model,
            "retrieval_mode": settings.retrieval_mode,
            "vector_store": "qdrant server" if settings.qdrant_url else settings.vector_store,
            "auth_required": service.authenticator.required,
        }

    @router.post(
        "/ask",
        response_model=AskResponse,
        tags=["runbooks"],
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
                await _in_thread(lambda: service.backend.store().require(collection))
                events = _answer_stream(service, body, collection, _request_id(request), slot)
            except BaseException:
                slot.release()
                raise
            return EventSourceResponse(events, ping=15)
        answer = await _with_llm_slot(
            service, lambda: service.backend.ask(body.question, collection=collection, k=body.k)
        )
        data: dict[str, Any] = answer.to_dict()
        data["collection"] = collection
        service.metrics.observe_answer(data)
        # Returned as is: the shape is AskResponse by construction, and re-validating it costs
        # more than the rest of the HTTP handling on the hot path.
        return JSONResponse(data)

    @router.post("/search", response_model=SearchResponse, tags=["runbooks"])
    async def search(body: SearchRequest, service: ServiceDep) -> Any:
        """The best-matching runbook chunks for a query, best first, with source, heading, lines and text."""
        started = time.perf_counter()
        result = await _in_thread(lambda: service.backend.search(body.query, k=body.k, collection=body.collection))
        service.metrics.retrieval_seconds.observe(time.perf_counter() - started)
        return JSONResponse(result)

    @router.get("/collections", response_model=CollectionsResponse, tags=["runbooks"])
    async def collections(service: ServiceDep) -> Any:
        """The collections in the index, with chunk counts and embedders."""
        return await _in_thread(service.backend.collections)

    @router.get("/collections/{collection}/sources", response_model=SourcesResponse, tags=["runbooks"])
    async def sources(collection: str, service: ServiceDep) -> Any:
        """The runbooks indexed in a collection."""
        check_collection_name(collection)

        def run() -> dict[str, Any]:
            service.backend.store().require(collection)
            rows = service.backend.runbooks(collection)
            return {"collection": collection, "sources": [{"source": s, "chunks": n} for s, n in rows]}

        return await _in_thread(run)

    @router.get("/collections/{collection}/sources/{source:path}", response_model=SourceResponse, tags=["runbooks"])
    async def source(collection: str, source: str, service: ServiceDep) -> Any:
        """One runbook as indexed, section by section with its original line numbers (to open a citation)."""
        check_collection_name(collection)
        return await _in_thread(lambda: service.backend.runbook_view(collection, source))

    @router.post("/review", response_model=ReviewResponse, tags=["terraform"])
    async def review(body: ReviewRequest, service: ServiceDep) -> Any:
        """Review Terraform: `{security, cost, correctness}` findings as `opsmith review --json`, plus a summary."""
        _check_review(body.files, service.settings)
        result = await _with_llm_slot(service, lambda: service.backend.review(body.files))
        data: dict[str, Any] = result.to_dict()
        counts = result.counts()
        data["summary"] = {
            **counts,
            "failed": result.exit_code(body.fail_on) == 1,
            "fail_on": body.fail_on,
            "files": list(result.files),
            "skipped": [{"path": s.path, "reason": s.reason} for s in result.skipped],
            "warnings": list(result.warnings),
        }
        return data

    @router.post(
        "/ingest",
        status_code=202,
        response_model=JobResponse,
        tags=["runbooks"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["files"],
                            "properties": {
                                "files": {
                                    "type": "array",
                                    "items": {"type": "string", "format": "binary"},
                                    "description": "Runbook files; a filename may be a relative path (db/disk.md).",
                                },
                                "collection": {"type": "string"},
                            },
                        }
                    },
                    "application/json": {"schema": IngestPathRequest.model_json_schema()},
                },
            }
        },
        responses={403: {"model": Problem, "description": "Read-only token, or a path outside the allowed roots."}},
    )
    async def ingest(request: Request, service: ServiceDep) -> Response:
        """Index runbooks in the background: upload files (multipart) or name a folder under an allowed root.
        Poll `GET /v1/jobs/{id}` (the `Location` header) for progress and the report."""
        token: ApiToken | None = getattr(request.state, "token", None)
        if token is not None and token.read_only:
            raise PermissionDeniedError("ingest runbooks")
        content_type = request.headers.get("content-type", "")
        settings = service.settings
        if content_type.startswith("multipart/form-data"):
            job = await _ingest_uploads(request, service)
        elif content_type.startswith("application/json"):
            body = IngestPathRequest.model_validate_json(await request.body())
            real = resolve_ingest_path(body.path, settings.ingest_roots)
            roots = [root.expanduser().resolve() for root in settings.ingest_roots]
            job = service.jobs.submit_ingest(
                [real], collection=body.collection or settings.collection, prune=body.prune, within=roots
            )
        else:
            return _problem_response(
                415,
                'Send multipart/form-data with files, or JSON {"path": ...} — other content types are not read',
                _request_id(request),
            )
        return JSONResponse({"job": job.to_dict()}, status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})

    @router.get("/jobs", response_model=JobsResponse, tags=["runbooks"])
    async def jobs(service: ServiceDep) -> Any:
        """Recent background jobs, newest first (kept in memory until the server restarts)."""
        return {"jobs": [job.to_dict() for job in service.jobs.recent()]}

    @router.get("/jobs/{job_id}", response_model=JobResponse, tags=["runbooks"])
    async def job(job_id: str, service: ServiceDep) -> Any:
        """One job's status, progress (files and chunks) and, when done, its report or error."""
        return {"job": service.jobs.get(job_id).to_dict()}

    @router.post("/alerts/alertmanager", response_model=AlertsResponse, tags=["incidents"])
    async def alertmanager(payload: alerting.AlertmanagerPayload, service: ServiceDep) -> Any:
        """Alertmanager webhook receiver: answers each firing alert from the runbooks (an alert's
        `runbook_url` that matches an indexed runbook is searched first), and posts the answers to
        the configured Slack-compatible webhook, if any."""
        limit = service.settings.max_alerts_per_request
        if len(payload.alerts) > limit:
            raise LimitExceededError(
                f"The notification carries {len(payload.alerts):,} alerts",
                limit=limit,
                setting="OPSMITH_MAX_ALERTS_PER_REQUEST",
                advice=f"set max_alerts: {limit} in Alertmanager's webhook_configs for opsmith",
            )
        return await _answer_alerts(service, payload)

    return router


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
                data: dict[str, Any] = value.to_dict()
                data["collection"] = collection
                service.metrics.observe_answer(data)
                yield ServerSentEvent(data=json.dumps(data), event="answer")
            else:
                exc = value
                if isinstance(exc, OpsmithError):
                    problem = _problem(problem_status(exc), str(exc), request_id, type(exc).__name__)
                else:
                    log.error(
                        json.dumps({"event": "stream_error", "request_id": request_id, "error": type(exc).__name__})
                    )
                    detail = f"Internal error ({type(exc).__name__}) — see the server log for request {request_id}"
                    problem = _problem(500, detail, request_id, "InternalError")
                yield ServerSentEvent(data=json.dumps(problem), event="error")
            return
    finally:
        # A client that hangs up early does not stop the worker; it finishes within the LLM
        # deadline and its result is dropped.
        if worker.done():
            await worker


#: Longest file or folder name an upload may use, in UTF-8 bytes (Linux's NAME_MAX), and the
#: longest relative path: longer ones cannot be written under the upload folder.
_MAX_NAME_BYTES = 255
_MAX_PATH_BYTES = 1024
#: A non-file form field (``collection``) is a name, not a document.
_MAX_FIELD_BYTES = 4096
#: Errors that mean "this name cannot be a file here", as opposed to a disk that is full.
_NAME_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.EINVAL})
_HIDDEN = "hidden (a part of its name starts with '.'), so not ingested — rename it to ingest it"


def _shown(name: str) -> str:
    return name if len(name) <= 60 else name[:57] + "…"


def _check_upload_names(names: list[str]) -> None:
    """Refuse names that could not be laid out as files: duplicates, too long, a file used as a folder."""
    if len(set(names)) != len(names):
        raise InputError("Two uploaded files have the same name — give each a distinct relative path")
    given = set(names)
    for name in names:
        parts = PurePosixPath(name).parts
        longest = max(len(part.encode("utf-8", "replace")) for part in parts)
        if longest > _MAX_NAME_BYTES or len(name.encode("utf-8", "replace")) > _MAX_PATH_BYTES:
            raise InputError(
                f"Upload name {_shown(name)!r} is too long (at most {_MAX_NAME_BYTES} bytes per file or folder"
                f" name and {_MAX_PATH_BYTES} in all) — shorten it"
            )
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder in given:
                raise InputError(
                    f"Upload names {_shown(folder)!r} and {_shown(name)!r} use {_shown(folder)!r} as both a file and"
                    " a folder — rename one of them"
                )


def _write_uploads(uploads: list[tuple[UploadFile, str]], folder: Path) -> None:
    for upload, name in uploads:
        target = folder / name
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as out:
                upload.file.seek(0)
                shutil.copyfileobj(upload.file, out, 1 << 20)
        except OSError as exc:
            if exc.errno not in _NAME_ERRNOS:
                raise
            # Said without the server's folder: the client only knows the name it sent.
            raise InputError(
                f"Cannot store the upload {_shown(name)!r} ({exc.strerror or 'invalid name'}) — rename it"
            ) from None


async def _ingest_uploads(request: Request, service: Service) -> Job:
    from opsmith.rag.ingest import SkippedFile
    from opsmith.rag.loaders import SUPPORTED_SUFFIXES
    from opsmith.review.inmemory import safe_relative_path

    settings = service.settings
    try:
        form = await request.form(max_files=settings.max_upload_files, max_fields=20, max_part_size=_MAX_FIELD_BYTES)
    except StarletteHTTPException as exc:  # python-multipart's verdict on the form itself
        raise InputError(
            f"Cannot read the upload ({exc.detail}) — send at most {settings.max_upload_files:,} files as form"
            " field 'files', and the collection as a short text field 'collection'"
        ) from None
    folder = settings.home / "uploads" / uuid.uuid4().hex
    try:
        uploads = [item for item in form.getlist("files") if isinstance(item, UploadFile)]
        if not uploads:
            raise InputError("No files in the upload — send them as multipart form field 'files' (repeat it per file)")
        collection_field = form.get("collection")
        collection = (
            check_collection_name(collection_field)
            if isinstance(collection_field, str) and collection_field
            else settings.collection
        )
        names = [safe_relative_path(upload.filename or "") for upload in uploads]
        _check_upload_names(names)
        # Ingest never reads hidden files: they are reported in the job, not written at all.
        hidden = [name for name in names if any(part.startswith(".") for part in PurePosixPath(name).parts)]
        skip = set(hidden)
        kept = [(upload, name) for upload, name in zip(uploads, names, strict=True) if name not in skip]
        if not any(PurePosixPath(name).suffix.lower() in SUPPORTED_SUFFIXES for _, name in kept):
            kinds = " ".join(sorted(SUPPORTED_SUFFIXES))
            raise InputError(
                f"None of the {len(names)} uploaded files can be ingested (looked for {kinds}; names with a part"
                " starting with '.' are skipped) — upload runbooks in one of these formats"
            )
        await _in_thread(lambda: _write_uploads(kept, folder))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        await form.close()
    # Uploads add to the collection: nothing else in it is pruned.
    return service.jobs.submit_ingest(
        [folder],
        collection=collection,
        prune=False,
        cleanup=folder,
        skipped=[SkippedFile(name, _HIDDEN) for name in hidden],
    )


def _check_review(files: dict[str, str], settings: Settings) -> None:
    """The per-request limits of ``/v1/review``, and text that can be written as UTF-8, before any work."""
    if len(files) > settings.max_review_files:
        raise LimitExceededError(
            f"The review sends {len(files):,} files",
            limit=settings.max_review_files,
            setting="OPSMITH_MAX_REVIEW_FILES",
            advice="review the module in parts",
        )
    total = 0
    for name, content in files.items():
        for part, text in (("name", name), ("content", content)):
            try:
                total += len(text.encode("utf-8"))
            except UnicodeEncodeError as exc:  # a lone surrogate, e.g. "\ud83d" from a cut emoji
                raise InputError(
                    f"File {_shown(name)!r} holds a character that is not valid Unicode text"
                    f" ({text[exc.start]!r} at offset {exc.start} of its {part}) — send the file as valid UTF-8"
                ) from None
    if total > settings.max_review_bytes:
        raise LimitExceededError(
            f"The review's files hold {total:,} bytes",
            limit=settings.max_review_bytes,
            setting="OPSMITH_MAX_REVIEW_BYTES",
            advice="review the module in parts",
        )


def _refused(service: Service, question: str) -> Answer:
    """The refusal an uncovered question gets, without searching (see :func:`alerting.is_specific`)."""
    from opsmith.rag.answer import REFUSAL, Answer

    no_time = {"retrieve": 0.0, "generate": 0.0, "total": 0.0}
    return Answer(question, REFUSAL, True, [], service.backend.provider, no_time, service.backend.model)


async def _answer_alerts(service: Service, payload: alerting.AlertmanagerPayload) -> dict[str, Any]:
    settings = service.settings
    collection = settings.collection
    firing = payload.firing_alerts()
    for alert in payload.alerts:
        service.metrics.alerts.labels(status=alert.status).inc()

    def run() -> list[alerting.AlertAnswer]:
        indexed = [source for source, _ in service.backend.runbooks(collection)]
        if not indexed:
            raise CollectionNotFoundError(collection)
        results = []
        for alert in firing:
            question = alerting.alert_question(alert)
            runbook = alerting.match_runbook(alert.runbook_url, indexed)
            answer = None
            if runbook is not None:
                answer = service.backend.ask(question, collection=collection, sources=[runbook])
                if answer.refused:  # the linked runbook does not cover it: try all of them
                    answer = None
            if answer is None:
                if alerting.is_specific(alert):
                    answer = service.backend.ask(question, collection=collection)
                else:  # nothing to search for: any runbook found would be unrelated
                    answer = _refused(service, question)
            data: dict[str, Any] = answer.to_dict()
            data["collection"] = collection
            service.metrics.observe_answer(data)
            results.append(
                alerting.AlertAnswer(
                    alertname=alert.name or "(unnamed alert)",
                    fingerprint=alert.fingerprint,
                    status=alert.status,
                    question=question,
                    runbook=runbook,
                    answer=data,
                )
            )
        return results

    results = await _with_llm_slot(service, run)
    notified: bool | None = None
    notify_error: str | None = None
    webhook = read_secret(settings.alert_webhook_env)
    if webhook and results:
        message = alerting.slack_message(results, external_url=payload.external_url)
        try:
            await _in_thread(lambda: alerting.post_webhook(webhook, message, timeout=settings.llm_timeout))
            notified = True
        except OpsmithError as exc:
            notified, notify_error = False, str(exc)
            service.metrics.webhook_errors.inc()
            log.warning(json.dumps({"event": "alert_webhook_failed", "detail": str(exc)}))
    return {
        "alerts": [result.to_dict() for result in results],
        "resolved": len(payload.alerts) - len(firing),
        "notified": notified,
        "notify_error": notify_error,
    }


# Health, readiness, metrics -----------------------------------------------------------------------


def _add_operational_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok", "version": __version__}

    @app.get(
        "/readyz",
        tags=["service"],
        responses={
            503: {
                "description": "Still loading the embedder and store, loading failed, or the store cannot serve"
                " (the embedded index folder is gone, the Qdrant server does not answer)."
            }
        },
    )
    async def readyz(request: Request) -> Response:
        """Readiness: the embedder and the store are loaded, and the store can serve now."""
        service = _service(request)
        if not service.backend.loaded:
            return JSONResponse(service.readiness, status_code=503)
        try:
            await _in_thread(lambda: service.backend.store().check())
        except StoreError as exc:
            return JSONResponse({"status": "failed", "detail": str(exc)}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["service"], response_class=Response)
    async def metrics(request: Request) -> Response:
        """Prometheus metrics (text exposition format)."""
        return Response(_service(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


# The web UI ---------------------------------------------------------------------------------------


def _add_ui_routes(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    async def chat_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.get("/review", include_in_schema=False)
    async def review_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "review.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
