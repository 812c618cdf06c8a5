"""Request bodies under limits: read only when a route asks, within a size, a deadline and a budget.

Nothing reads a request's body ahead of its route. :class:`BodyGuard` wraps the ASGI
``receive`` callable and hands the body, as it arrives, only to a route that takes one, so
``/healthz``, the UI, a 401, 404 or 405 never read a byte of it (a file response that listens
for the client's disconnect waits instead of draining the body), and auth on ``/v1/*`` is
decided before any byte is read. While a route reads, the guard enforces:

* the size limit (``max_request_bytes``): a declared ``Content-Length`` over it is refused
  before reading, a chunked body as soon as the count passes it (413);
* the deadline (``body_read_timeout``): the whole body must arrive within it, counted from
  the start of the request, so a client that trickles bytes cannot hold a worker (408);
* the process-wide budget (``max_buffered_request_bytes``, a :class:`ByteBudget`): bytes held
  by all requests being read or handled at once; a request that would go over it is refused
  (503 with ``Retry-After``). A declared length is reserved whole when reading starts.

A refusal is raised from ``receive`` and also kept on the guard: whatever the route makes of
the exception (FastAPI turns a body-read error into a 400), the middleware answers with the
guard's problem instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import anyio
from starlette.types import Message, Receive

from opsmith.errors import RequestTimeoutError, RequestTooLargeError, ServiceBusyError, ServiceError

__all__ = ["BUSY_RETRY_AFTER", "BodyGuard", "ByteBudget"]

#: How long a client refused for the budget is asked to wait: bodies in flight finish in seconds.
BUSY_RETRY_AFTER = 5.0


class ByteBudget:
    """Request body bytes held at once by one app, over all its requests."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> None:
        """Hold ``size`` more bytes; raises :class:`ServiceBusyError` when that would pass the capacity."""
        with self._lock:
            if self.held + size > self.capacity:
                raise ServiceBusyError(
                    f"The server is already holding {self.held:,} bytes of request bodies (the budget is"
                    f" {self.capacity:,})",
                    setting="OPSMITH_MAX_BUFFERED_REQUEST_BYTES",
                    retry_after=BUSY_RETRY_AFTER,
                )
            self.held += size

    def give(self, size: int) -> None:
        with self._lock:
            self.held -= size


class BodyGuard:
    """The ``receive`` a route gets: the body, read lazily, within the limit, deadline and budget.

    Args:
        receive: The server's ``receive``.
        headers: The request's headers, lower-cased names.
        limit: Largest body accepted, in bytes.
        timeout: Seconds, from now, for the whole body to arrive.
        budget: The app's :class:`ByteBudget`.
        takes_body: Whether the route the request was routed to reads a body (asked at each
            ``receive``, since routing happens after the guard is made).
    """

    def __init__(
        self,
        receive: Receive,
        headers: dict[str, str],
        *,
        limit: int,
        timeout: float,
        budget: ByteBudget,
        takes_body: Callable[[], bool],
    ) -> None:
        self._receive = receive
        self._takes_body = takes_body
        self.limit = limit
        self.timeout = timeout
        self.budget = budget
        self._deadline = time.monotonic() + timeout
        declared = headers.get("content-length")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.declared = int(declared) if declared is not None and declared.isdigit() and not chunked else None
        #: True once the whole body has been handed over (at once for a request without one).
        self.complete = not chunked and self.declared in (None, 0)
        #: Bytes of body handed to the route so far.
        self.received = 0
        #: The refusal, once there is one; the middleware answers with it.
        self.error: ServiceError | None = None
        self._held = 0

    def check_declared(self) -> None:
        """Refuse a declared length over the limit before anything is read."""
        if self.declared is not None and self.declared > self.limit:
            raise self._fail(RequestTooLargeError(self.limit))

    async def receive(self) -> Message:
        if self.error is not None:
            raise self.error
        if self.complete:
            return await self._receive()  # after the body: the disconnect, as the server gives it
        if not self._takes_body():
            # Only a response listening for a disconnect asks; it is cancelled once it has sent
            # everything, and the connection is closed after it (see the middleware).
            await anyio.sleep_forever()
        if self.declared is not None and self._held == 0:
            self._take(self.declared)
        try:
            with anyio.fail_after(max(self._deadline - time.monotonic(), 0.0)):
                message = await self._receive()
        except TimeoutError:
            raise self._fail(RequestTimeoutError(self.timeout)) from None
        if message["type"] != "http.request":
            return message  # a disconnect: the route sees it as it would without the guard
        size = len(message.get("body", b""))
        self.received += size
        if self.received > self.limit:
            raise self._fail(RequestTooLargeError(self.limit))
        if self.declared is None:
            self._take(size)
        if not message.get("more_body", False):
            self.complete = True
        return message

    def release(self) -> None:
        """Give the bytes held back to the budget (the request is over)."""
        self.budget.give(self._held)
        self._held = 0

    def _take(self, size: int) -> None:
        try:
            self.budget.take(size)
        except ServiceBusyError as exc:
            raise self._fail(exc) from None
        self._held += size

    def _fail(self, error: ServiceError) -> ServiceError:
        self.error = error
        return error
