"""Errors as RFC 9457 problem documents: which status each error gets, and the handlers that answer.

Every error the API returns is a :class:`~opsmith.schemas.Problem` (``application/problem+json``)
whose ``detail`` is the line the CLI would print for the same error, and whose ``type`` names
the error class (``urn:opsmith:error:CollectionNotFoundError``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

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
    StoreUnavailableError,
    StructuredOutputError,
)
from opsmith.schemas import Problem

__all__ = [
    "add_error_handlers",
    "error_headers",
    "internal_error",
    "problem",
    "problem_response",
    "problem_status",
    "request_id",
]

log = logging.getLogger("opsmith.serve")

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


def problem_status(exc: OpsmithError) -> int:
    """The HTTP status an :class:`OpsmithError` is answered with."""
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 500


def problem(status: int, detail: str, request_id: str | None, kind: str | None = None) -> Problem:
    """A problem document; ``kind`` (an error class name) makes its ``type``."""
    return {
        "type": f"urn:opsmith:error:{kind}" if kind else "about:blank",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "request_id": request_id,
    }


def problem_response(
    status: int, detail: str, request_id: str | None, kind: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        problem(status, detail, request_id, kind),
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


def internal_error(exc: BaseException, request_id: str | None) -> Problem:
    """The problem for a bug: its type only, and where to look (the server log for the request)."""
    detail = f"Internal error ({type(exc).__name__}) — see the server log for request {request_id}"
    return problem(500, detail, request_id, "InternalError")


def error_headers(exc: OpsmithError) -> dict[str, str] | None:
    """``Retry-After`` for a refusal that passes, ``WWW-Authenticate`` for a 401."""
    if isinstance(exc, RateLimitedError | ServiceBusyError):
        return {"Retry-After": str(max(1, round(exc.retry_after)))}
    if isinstance(exc, AuthenticationError):
        return {"WWW-Authenticate": 'Bearer realm="opsmith"'}
    return None


def request_id(request: Request) -> str | None:
    """The id :class:`~opsmith.serve.middleware.ServiceMiddleware` gave the request."""
    return getattr(request.state, "request_id", None)


def add_error_handlers(app: FastAPI) -> None:
    """Answer every error as a problem: opsmith's own, invalid requests, HTTP errors and bugs."""

    async def opsmith_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, OpsmithError)
        status = problem_status(exc)
        if status >= 500:
            log.warning(json.dumps({"event": "error", "request_id": request_id(request), "detail": str(exc)}))
        return problem_response(status, str(exc), request_id(request), type(exc).__name__, error_headers(exc))

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError | ValidationError)
        return problem_response(422, _validation_detail(exc.errors()), request_id(request), "ValidationError")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail = str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No route {request.method} {request.url.path} — the API is described at /openapi.json"
        return problem_response(exc.status_code, detail, request_id(request), None, dict(exc.headers or {}))

    async def unexpected_error(request: Request, exc: Exception) -> Response:
        rid = request_id(request)
        log.exception(json.dumps({"event": "unhandled_error", "request_id": rid}))
        return JSONResponse(internal_error(exc, rid), status_code=500, media_type="application/problem+json")

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
