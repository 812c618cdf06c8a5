"""How ``opsmith serve`` runs the app under uvicorn: the limits that live below ASGI.

The app itself (:mod:`opsmith.serve.limits`) bounds request bodies. What happens before a
request exists is uvicorn's: its HTTP/1.1 parser (h11) caps a request head at 16 KiB
(``h11_max_incomplete_event_size``) and closes a kept-alive connection idle for
``timeout_keep_alive`` seconds, but nothing in uvicorn limits how long the *head* of a
request may take, and any byte that arrives restarts the keep-alive timer. So a client
sending one header byte every few seconds would hold its connection forever. The protocol
here closes a connection whose request head has not arrived ``header_read_timeout`` seconds
after the connection opened or after the previous response.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import uvicorn

    from opsmith.config import Settings

__all__ = ["KEEP_ALIVE_SECONDS", "header_timeout_protocol", "uvicorn_config"]

#: Seconds an idle kept-alive connection is kept open (uvicorn's default).
KEEP_ALIVE_SECONDS = 5


def header_timeout_protocol(seconds: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol, closing connections whose request head takes over ``seconds``."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutProtocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            cycle = self.cycle
            super().data_received(data)
            if self.cycle is not cycle:  # a request's head is complete
                self._disarm()

        def on_response_complete(self) -> None:
            cycle = self.cycle
            super().on_response_complete()
            # Unless a pipelined request was already waiting, the next head gets the same time.
            if self.cycle is cycle and not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(seconds, self._head_timed_out)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                # No request is in flight (its head never completed), so there is nothing to answer.
                self.transport.close()

    return HeaderTimeoutProtocol


def uvicorn_config(app: Any, settings: Settings, *, log_level: str = "info") -> uvicorn.Config:
    """The uvicorn configuration ``opsmith serve`` runs ``app`` with."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=settings.serve_host,
        port=settings.serve_port,
        http=header_timeout_protocol(settings.header_read_timeout),
        log_config=None,
        access_log=False,
        log_level=log_level.lower(),
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=10,
        server_header=False,
    )
