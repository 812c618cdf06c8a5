"""The HTTP service: a FastAPI app over one warm :class:`~opsmith.backend.Backend`.

Routes (all JSON unless noted; the OpenAPI document is at ``/openapi.json`` and in
``docs/openapi.json``), in :mod:`opsmith.serve.routes`, one module per noun:

* ``POST /v1/ask`` (``stream: true`` for Server-Sent Events), ``POST /v1/search``,
  ``POST /v1/review``, ``POST /v1/ingest`` + ``GET /v1/jobs[/{id}]``,
  ``GET /v1/collections[/{name}/sources[/{source}]]``, ``POST /v1/alerts/alertmanager``,
  ``GET /v1/info``;
* ``GET /healthz``, ``GET /readyz``, ``GET /metrics`` (Prometheus text);
* the web UI: ``GET /`` (runbook Q&A), ``GET /review`` (Terraform review), ``/static/*``.

Every request passes one ASGI middleware (:class:`~opsmith.serve.middleware.ServiceMiddleware`)
that gives it a request id, checks bearer-token auth and the rate limit on ``/v1/*`` before
any byte of the body is read, hands the body to the route only if it reads one (within the
size limit, a deadline and a process-wide budget: :mod:`opsmith.serve.limits`), and on the way
out records metrics and writes one JSON access-log line. Errors are RFC 9457 problem documents
whose ``detail`` is the line the CLI would print (:mod:`opsmith.serve.problems`). Responses are
the shapes in :mod:`opsmith.schemas`, validated on the way out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI

from opsmith import __version__
from opsmith.backend import Backend
from opsmith.config import Settings
from opsmith.integrations.webhook import hide_webhook_requests
from opsmith.llm import ChatModel
from opsmith.schemas import Problem
from opsmith.serve.jobs import JobManager
from opsmith.serve.limits import ByteBudget
from opsmith.serve.metrics import ServiceMetrics
from opsmith.serve.middleware import ServiceMiddleware
from opsmith.serve.problems import add_error_handlers, problem_status
from opsmith.serve.routes import add_routes
from opsmith.serve.security import Authenticator, RateLimiter, auth_required, parse_tokens
from opsmith.serve.service import Service

__all__ = ["Service", "ServiceMiddleware", "create_app", "openapi_document", "problem_status"]


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
    # The service logs httpx at INFO like everything else; a webhook URL in those lines is a secret.
    hide_webhook_requests()

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
    add_error_handlers(app)
    add_routes(app)
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
