"""The one ASGI middleware every request passes: request id, auth, rate limit and body guard in;
security headers, metrics and the access log out.

Auth and the rate limit on ``/v1/*`` are decided before any byte of the body is read; the body
goes to the route only if it reads one, through :class:`~opsmith.serve.limits.BodyGuard`
(within the size limit, a deadline and a process-wide budget).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsmith.errors import OpsmithError
from opsmith.serve.limits import BodyGuard
from opsmith.serve.problems import error_headers, problem_response, problem_status
from opsmith.serve.security import ApiToken
from opsmith.serve.service import Service

__all__ = ["ServiceMiddleware"]

access_log = logging.getLogger("opsmith.access")

#: Methods that get their own metrics label; any other is counted as "other".
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# A client's X-Request-ID is kept only when it is short and plain, so it cannot forge log lines.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

# The UI is self-contained: no inline script, no third-party origin.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
    " object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


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
            response = problem_response(
                problem_status(exc), str(exc), request_id, type(exc).__name__, error_headers(exc)
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
