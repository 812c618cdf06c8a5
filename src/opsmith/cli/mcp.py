"""``opsmith mcp``: serve runbook search, answers and Terraform review over the Model Context Protocol."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from opsmith.cli._context import settings_from
from opsmith.cli._output import err
from opsmith.cli.rag import CollectionOpt, QdrantUrlOpt

Transport = Literal["stdio", "http"]


def register(app: typer.Typer) -> None:
    app.command("mcp")(mcp_command)


def mcp_command(
    transport: Annotated[
        Transport,
        typer.Option("--transport", "-t", help="stdio (an MCP client starts this process) or http (streamable HTTP)."),
    ] = "stdio",
    collection: CollectionOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind with --transport http.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port with --transport http.", min=1, max=65535)] = 8080,
    qdrant_url: QdrantUrlOpt = None,
) -> None:
    """Run the MCP server: tools search_runbooks, ask_runbooks, review_terraform, list_collections,
    and each indexed runbook as a resource opsmith://COLLECTION/SOURCE.

    Works offline with the embedded defaults; an LLM provider, when configured, writes the answers.
    Over HTTP the endpoint is http://HOST:PORT/mcp, behind the same bearer tokens as `opsmith serve`
    (OPSMITH_API_TOKENS; required on a non-loopback address).
    """
    # Imported here: the MCP SDK and starlette cost time that `opsmith --help` should not pay.
    from opsmith.integrations.mcp_server import run_server

    settings = settings_from(collection=collection, qdrant_url=qdrant_url)
    sock = None
    if transport == "http":
        # Bound here, as `opsmith serve` does: a busy port is one line rather than uvicorn's log of
        # a failed start, and the server runs on this very socket.
        from opsmith.cli.serve import _listen

        sock = _listen(host, port)
    where = f"http://{host}:{port}/mcp" if transport == "http" else "stdio"
    # stderr only: over stdio, stdout carries the protocol.
    err.print(
        f"opsmith MCP server on {where} · collection '{settings.collection}' · provider {settings.provider}",
        style="dim",
        markup=False,
        highlight=False,
    )
    try:
        run_server(settings, transport=transport, host=host, port=port, sock=sock)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    finally:
        if sock is not None:
            sock.close()
