"""Shared fixtures and helpers for the HTTP service tests.

Every test drives the real FastAPI app in-process through ``httpx.ASGITransport``, over a real
local Qdrant and the real bundled embedder. ``examples/runbooks`` is ingested once per session
into a template OPSMITH_HOME; each test module works on its own copy of that folder (local-mode
Qdrant locks a folder to one client) through one warm :class:`Backend`, and each test builds
its own app over it (apps are cheap: their metrics, rate limiter and jobs start empty).

Async tests run on anyio's pytest plugin (``@pytest.mark.anyio``) with the asyncio backend,
the one the service is written for.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from servetools import (
    RUNBOOKS_DIR,
    AppFactory,
    Receiver,
    copy_home,
    serve_settings,
)

from opsmith.backend import Backend
from opsmith.serve.app import create_app


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    # The service uses asyncio primitives (get_running_loop, ensure_future): no trio run.
    return "asyncio"


@pytest.fixture(scope="session")
def runbooks_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OPSMITH_HOME whose 'runbooks' collection holds examples/runbooks (ingested once)."""
    home = tmp_path_factory.mktemp("serve-template") / "home"
    backend = Backend(serve_settings(home))
    try:
        report = backend.ingest([RUNBOOKS_DIR])
    finally:
        backend.close()
    assert report.added > 10, report
    return home


@pytest.fixture(scope="module")
def backend(runbooks_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """One warm backend per test module over its own copy of the indexed examples."""
    warm = Backend(serve_settings(copy_home(runbooks_home, tmp_path_factory, "serve-module")))
    warm.warm_up()
    yield warm
    warm.close()


@pytest.fixture
def make_app(backend: Backend) -> Iterator[AppFactory]:
    """``make_app(host=None, **settings)``: an app over the module's backend.

    The rate limit is off unless a test sets ``rate_limit_per_minute``: apps here are polled
    in loops, and the limit has tests of its own. Job workers are stopped at teardown.
    """
    apps: list[FastAPI] = []

    def make(*, host: str | None = None, **overrides: Any) -> FastAPI:
        settings = serve_settings(backend.settings.home, **{"rate_limit_per_minute": 0, **overrides})
        app = create_app(settings, backend=backend, host=host)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.state.service.jobs.shutdown()


@pytest.fixture
def app(make_app: AppFactory) -> FastAPI:
    """An app with the default settings (auth off on loopback, no tokens) over the module's backend."""
    return make_app()


@pytest.fixture
def webhook_receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            state.requests.append((self.path, json.loads(self.rfile.read(length))))
            body = b"ok" if state.status < 400 else b"internal_error"
            self.send_response(state.status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # keep the test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
