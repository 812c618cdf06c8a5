"""``opsmith serve``: the HTTP API, metrics and web UI on one warm backend."""

from __future__ import annotations

import socket
from typing import Annotated

import typer

from opsmith.cli._context import settings_from
from opsmith.cli._output import err
from opsmith.cli.rag import CollectionOpt, QdrantUrlOpt
from opsmith.errors import InputError


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)


def serve_command(
    host: Annotated[
        str | None,
        typer.Option("--host", help="Address to bind (default 127.0.0.1; 0.0.0.0 for all, which turns on auth)."),
    ] = None,
    port: Annotated[int | None, typer.Option("--port", "-p", help="Port (default 8080).", min=1, max=65535)] = None,
    collection: CollectionOpt = None,
    qdrant_url: QdrantUrlOpt = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
    no_access_log: Annotated[bool, typer.Option("--no-access-log", help="Do not log each request.")] = False,
) -> None:
    """Serve the HTTP API (/v1/ask, /v1/search, /v1/review, /v1/ingest, /v1/alerts/alertmanager...),
    Prometheus metrics (/metrics) and the web UI (/) until stopped.

    Works with the embedded defaults and no API key. Bound to anything but loopback, it requires
    bearer tokens (OPSMITH_API_TOKENS). Logs are JSON lines on stderr.
    """
    # Imported here: FastAPI and uvicorn cost time that `opsmith --help` should not pay.
    import uvicorn

    from opsmith.serve.app import create_app
    from opsmith.serve.logs import configure_logging
    from opsmith.serve.server import uvicorn_config

    settings = settings_from(collection=collection, qdrant_url=qdrant_url, serve_host=host, serve_port=port)
    app = create_app(settings)
    service = app.state.service
    # Fail now, with one line, on a missing provider key or an index another process holds.
    service.backend.chat_model()
    service.backend.store()
    configure_logging(log_level, access_log=not no_access_log)
    bind, where = settings.serve_host, settings.serve_port
    shown = f"[{bind}]" if ":" in bind else bind
    auth = "bearer tokens required" if service.authenticator.required else "no auth"
    config = uvicorn_config(app, settings, log_level=log_level)
    # Bound here, before uvicorn starts, so a busy port is one line rather than a log of start-up.
    sock = _listen(bind, where)
    err.print(
        f"opsmith serving http://{shown}:{where}/ · collection '{settings.collection}' · provider"
        f" {settings.provider} · {auth}",
        style="dim",
        markup=False,
        highlight=False,
    )
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    finally:
        sock.close()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off only on sockets that say they are
    # TCP, and with it on, each response waited ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise InputError(
            f"Cannot listen on {host}:{port} ({exc.strerror or exc}) — another process may hold the port;"
            " pick another with --port, or check --host"
        ) from None
    sock.set_inheritable(True)
    return sock
