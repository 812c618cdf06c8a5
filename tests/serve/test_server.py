"""The connection-level limits ``opsmith serve`` runs with, on a real uvicorn server on loopback:
a request head that takes too long closes the connection (a slowloris trickle included), and a
body the app never reads is not drained: the connection is closed after the answer.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from servetools import AppFactory

from opsmith.serve.server import header_timeout_protocol, uvicorn_config

HEAD_TIMEOUT = 0.5
#: How long a test waits for the server to act (well above HEAD_TIMEOUT; not a speed target).
PATIENCE = 15.0


@dataclass
class Running:
    port: int
    server: uvicorn.Server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def running(make_app: AppFactory) -> Iterator[Running]:
    """The app under uvicorn, configured as `opsmith serve` configures it, in a background thread."""
    port = _free_port()
    app = make_app(serve_port=port, header_read_timeout=HEAD_TIMEOUT)
    config = uvicorn_config(app, app.state.service.settings, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + PATIENCE
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield Running(port, server)
    server.should_exit = True
    thread.join(timeout=PATIENCE)


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    """Read until the server closes the connection; True if it did within PATIENCE."""
    sock.settimeout(PATIENCE)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def test_the_configured_protocol_is_h11_with_a_head_timeout(running: Running) -> None:
    config = running.server.config
    assert config.http_protocol_class.__name__ == "HeaderTimeoutProtocol"
    assert config.timeout_keep_alive == 5
    assert header_timeout_protocol(1.0).__name__ == "HeaderTimeoutProtocol"


def test_a_request_head_that_never_completes_is_closed(running: Running) -> None:
    with _connect(running.port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: opsmith\r\n")  # no blank line: the head never ends
        started = time.monotonic()
        assert _closed_by_server(sock)
        assert time.monotonic() - started >= HEAD_TIMEOUT * 0.9


def test_a_head_trickled_byte_by_byte_is_closed(running: Running) -> None:
    """A byte every 0.1 s restarts uvicorn's keep-alive timer for ever; the head deadline does not move."""
    head = b"GET /healthz HTTP/1.1\r\nHost: opsmith\r\nX-Padding: " + b"a" * 400
    with _connect(running.port) as sock:
        closed = False
        for byte in head:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.1)
        assert closed or _closed_by_server(sock)


def test_a_complete_request_is_answered_and_the_next_head_gets_the_same_deadline(running: Running) -> None:
    with _connect(running.port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: opsmith\r\n\r\n")
        answer = b""
        while b'"status":"ok"' not in answer:
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # the next request's head, never finished
        assert _closed_by_server(sock)


def test_a_body_the_route_does_not_read_is_not_drained(running: Running) -> None:
    """The attack of issue 11 on the wire: a 24 MB body declared to /healthz, sent in part, stalled."""
    with _connect(running.port) as sock:
        sock.sendall(b"POST /healthz HTTP/1.1\r\nHost: opsmith\r\nContent-Length: 24000000\r\n\r\n" + b"x" * 65536)
        sock.settimeout(PATIENCE)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    assert answer.startswith(b"HTTP/1.1 405 ")
    assert b"connection: close" in answer.lower()
