"""The MCP server behind ``opsmith mcp``: runbook search, grounded answers and Terraform review
for AI assistants and editors that speak the Model Context Protocol (Claude Code, Claude
Desktop, Cursor, ...).

Built on :class:`mcp.server.mcpserver.MCPServer`, the high-level server of the official MCP
Python SDK (FastMCP's successor in SDK 2.x). It derives each tool's input schema from typed
parameters (with bounds and descriptions), validates arguments before a tool runs, publishes
output schemas from the shapes in :mod:`opsmith.schemas` (those of the CLI's ``--json`` and the
HTTP API) and runs the blocking tools on worker threads. The one thing it does not do for us,
list resources that exist only in the index, is an override of
:meth:`OpsmithMCPServer.list_resources`. Each tool only calls :class:`~opsmith.backend.Backend`
and renders what it returns.

Tools (each returns JSON as structured content and as one text block):

* ``search_runbooks(query, k=5, collection=None)``: ranked chunks, as ``opsmith search --json``.
* ``ask_runbooks(question, collection=None)``: the answer with citations and ``refused``, as
  ``opsmith ask --json``.
* ``review_terraform(files)``: ``{"security", "cost", "correctness"}``, as ``opsmith review --json``.
* ``list_collections()``: as ``opsmith collections list --json``, plus the default collection.

Resources: every indexed runbook of the server's collection is listed as
``opsmith://{collection}/{source}``; reading one (of any collection) returns its indexed text,
so a client can open a cited source.

Errors: an :class:`~opsmith.errors.OpsmithError` becomes a tool result with ``isError: true``
whose only text is ``str(err)``, the line the CLI prints; a failed resource read is a
JSON-RPC error with the same message.

Every string a client receives (tool JSON, notes, errors, resource text and names) has its
control characters stripped, as the CLI's output does: a client may show it in a terminal,
and a runbook holding ``ESC ] 52`` would otherwise write that terminal's clipboard.

Over HTTP (:func:`run_server` with ``transport="http"``) the app sits behind the same bearer
tokens as ``opsmith serve`` (:class:`BearerAuth`); ask and review take the backend's LLM call
slots, so an MCP client cannot spend more concurrent LLM calls than an HTTP one.

The embedder, store and chat model are loaded on first use and kept for the server's
lifetime (:class:`opsmith.backend.Backend`, shared with ``opsmith serve``). In local mode
Qdrant allows one process per index, so while the server runs, other ``opsmith`` commands on
the same ``OPSMITH_HOME`` get ``IndexLockedError``.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.shared.exceptions import MCPError
from mcp.shared.uri_template import UriTemplate
from mcp.types import INTERNAL_ERROR, CallToolResult, ContentBlock, Resource, TextContent, ToolAnnotations
from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from opsmith import __version__
from opsmith._display import strip_controls
from opsmith.backend import Backend
from opsmith.config import Settings
from opsmith.errors import AuthenticationError, CollectionNotFoundError, OpsmithError, SourceNotFoundError
from opsmith.schemas import (
    AskResult,
    Citation,
    CollectionItem,
    CollectionsResponse,
    Finding,
    ReviewFindings,
    SearchHit,
    SearchResponse,
)

if TYPE_CHECKING:
    from opsmith.serve.security import Authenticator

__all__ = [
    "INSTRUCTIONS",
    "MCP_MAX_BODY_BYTES",
    "RESOURCE_TEMPLATE",
    "AskResult",
    "Backend",
    "BearerAuth",
    "CitationJSON",
    "CollectionJSON",
    "CollectionsResult",
    "FindingJSON",
    "OpsmithMCPServer",
    "ReviewJSON",
    "SearchHit",
    "SearchResult",
    "Transport",
    "create_server",
    "run_server",
    "runbook_uri",
]

#: The SDK's own cap on a request body; a smaller max_request_bytes lowers it.
MCP_MAX_BODY_BYTES = 4 * 1024 * 1024

#: Where each indexed runbook lives; ``source`` may hold slashes (``db/disk-full.md``).
RESOURCE_TEMPLATE = "opsmith://{collection}/{+source}"
_TEMPLATE = UriTemplate.parse(RESOURCE_TEMPLATE)

INSTRUCTIONS = """\
opsmith answers operational questions from a team's own runbooks and reviews Terraform.
- search_runbooks returns the raw matching runbook chunks; ask_runbooks returns a grounded answer with citations.
- When ask_runbooks says refused=true, the runbooks do not cover the question: say so instead of guessing.
- When ask_runbooks says grounded=false, the answer cites no runbook: present it as unverified, not as the runbooks'.
- When ask_runbooks lists not_covered terms, the runbooks never mention them: say so, and do not fill the gap.
- ask_runbooks' commands are the quoted runbook commands with their lines: offer them as they are.
- Cited sources can be opened as resources: opsmith://{collection}/{source}.
- review_terraform reviews Terraform passed as {path: content}; pass every file of a module so references resolve."""

_READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)

# The names the output schemas had here before opsmith.schemas, so imports from this module keep working.
CitationJSON = Citation
CollectionJSON = CollectionItem
CollectionsResult = CollectionsResponse
FindingJSON = Finding
ReviewJSON = ReviewFindings
SearchResult = SearchResponse


# Tool results -------------------------------------------------------------------------------------


def _as_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False)


def _clean(value: Any) -> Any:
    """``value`` with control characters stripped from every string in it."""
    if isinstance(value, str):
        return strip_controls(value)
    if isinstance(value, Mapping):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    return value


def _result(data: Mapping[str, Any], *notes: str) -> CallToolResult:
    data = _clean(data)
    content: list[ContentBlock] = [TextContent(text=_as_json(data)), *(TextContent(text=_clean(n)) for n in notes)]
    return CallToolResult(content=content, structured_content=dict(data))


def _guarded(call: Callable[[], CallToolResult]) -> CallToolResult:
    """Run a tool body; a user error becomes ``isError`` with the CLI's one-line message."""
    try:
        return call()
    except OpsmithError as exc:
        return CallToolResult(content=[TextContent(text=_clean(str(exc)))], is_error=True)


# The server ---------------------------------------------------------------------------------------


class OpsmithMCPServer(MCPServer[Any]):
    """An :class:`MCPServer` whose resource list also holds every indexed runbook."""

    def __init__(self, backend: Backend) -> None:
        super().__init__(
            name="opsmith",
            title="opsmith",
            description="Runbook Q&A with citations and Terraform review.",
            instructions=INSTRUCTIONS,
            version=__version__,
            log_level="WARNING",
        )
        self.backend = backend

    async def list_resources(self) -> list[Resource]:
        listed = await super().list_resources()
        try:
            runbooks = await anyio.to_thread.run_sync(self.backend.runbooks)
        except OpsmithError as exc:
            raise MCPError(code=INTERNAL_ERROR, message=_clean(str(exc))) from exc
        collection = self.backend.collection
        return [
            *listed,
            *(
                Resource(
                    uri=runbook_uri(collection, source),
                    name=name,
                    title=name,
                    description=f"Runbook '{name}' in collection '{collection}' ({chunks} chunks), as indexed.",
                    mime_type="text/markdown",
                )
                for source, chunks in runbooks
                for name in (strip_controls(source),)
            ),
        ]


def runbook_uri(collection: str, source: str) -> str:
    """The resource URI of one indexed runbook (``opsmith://runbooks/db/disk-full.md``)."""
    return _TEMPLATE.expand({"collection": collection, "source": source})


def create_server(settings: Settings, *, backend: Backend | None = None) -> OpsmithMCPServer:
    """The opsmith MCP server, ready to run on any transport; nothing heavy is loaded yet.

    Args:
        settings: Settings; ``settings.collection`` is the collection tools use by default.
        backend: Shared warm state (one is made from ``settings`` when omitted). The caller
            closes it, ``server.backend.close()``, when the server stops.

    Returns:
        An :class:`OpsmithMCPServer` with the four tools, the runbook resources and ``GET /healthz``
        (for the HTTP transport).
    """
    state = backend or Backend(settings)
    server = OpsmithMCPServer(state)

    @server.tool(title="Search runbooks", annotations=_READ_ONLY)
    def search_runbooks(
        query: Annotated[
            str, Field(min_length=1, description="What to look for: an alert, symptom, service, command.")
        ],
        k: Annotated[int, Field(ge=1, le=100, description="How many chunks to return.")] = 5,
        collection: Annotated[
            str | None, Field(description="Collection to search; the server's default collection when omitted.")
        ] = None,
    ) -> Annotated[CallToolResult, SearchResponse]:
        """Search the indexed runbooks and return the best-matching chunks, best first, each with its source
        file, heading path, line range, scores and full text. Use it to see what the runbooks say about an
        alert, service or command; use ask_runbooks for a grounded answer with citations."""
        return _guarded(lambda: _result(state.search(query, k=k, collection=collection)))

    @server.tool(title="Ask the runbooks", annotations=_READ_ONLY)
    def ask_runbooks(
        question: Annotated[str, Field(min_length=1, description="The question, in plain words.")],
        collection: Annotated[
            str | None, Field(description="Collection to answer from; the server's default collection when omitted.")
        ] = None,
    ) -> Annotated[CallToolResult, AskResult]:
        """Answer an operational question from the indexed runbooks only, with numbered citations [n] to
        source, heading and lines. refused=true means no runbook covers the question: say so rather than
        answer from general knowledge. With no LLM configured on the server, the answer quotes the best
        passages verbatim. Cited sources can be read as resources opsmith://{collection}/{source}."""

        def run() -> CallToolResult:
            # The same cap on concurrent LLM calls as the HTTP service (the MCP HTTP transport is
            # open to every client on its network).
            with state.llm_slot():
                answer = state.ask(question, collection=collection)
            data = _clean(answer.to_dict())
            if answer.error:
                # As the CLI: the answer (quoting passages instead) and the failure's one line.
                content: list[ContentBlock] = [TextContent(text=data["error"]), TextContent(text=_as_json(data))]
                return CallToolResult(content=content, structured_content=data, is_error=True)
            return _result(data)

        return _guarded(run)

    @server.tool(title="Review Terraform", annotations=_READ_ONLY)
    def review_terraform(
        files: Annotated[
            dict[str, str],
            Field(
                min_length=1,
                description=(
                    'Terraform files as {relative path: file content}, e.g. {"main.tf": "resource ..."}. '
                    "Pass every file of the module (variables.tf, outputs.tf...) so references resolve. "
                    "Paths must be relative and stay inside the module ('..' is refused); files not ending "
                    "in .tf are ignored."
                ),
            ),
        ],
    ) -> Annotated[CallToolResult, ReviewFindings]:
        """Review Terraform for security, cost and correctness problems with opsmith's deterministic rules
        (offline), plus an LLM reviewer when the server has an LLM provider configured. Returns findings
        grouped as {security, cost, correctness}; each has severity (critical or warning), file, line,
        issue, fix, the resource address and the rule id."""

        def run() -> CallToolResult:
            with state.llm_slot():
                result = state.review(files)
            notes = [f"skipped {s.path}: {s.reason}" for s in result.skipped] + list(result.warnings)
            counts = result.counts()
            summary = f"{len(result.findings)} findings ({counts['critical']} critical, {counts['warning']} warning)"
            return _result(result.to_dict(), summary, *notes)

        return _guarded(run)

    @server.tool(title="List collections", annotations=_READ_ONLY)
    def list_collections() -> Annotated[CallToolResult, CollectionsResponse]:
        """List the runbook collections in opsmith's index, with chunk counts and embedders, and the
        collection the other tools use by default."""
        return _guarded(lambda: _result(state.collections()))

    @server.resource(
        RESOURCE_TEMPLATE,
        name="runbook",
        title="Indexed runbook",
        description="The indexed text of one runbook (its chunks in order), as cited by ask_runbooks.",
        mime_type="text/markdown",
    )
    def read_runbook(collection: str, source: str) -> str:
        try:
            return strip_controls(state.runbook_text(collection, source))
        except (CollectionNotFoundError, SourceNotFoundError) as exc:
            raise ResourceNotFoundError(_clean(str(exc))) from exc
        except OpsmithError as exc:
            raise ResourceError(_clean(str(exc))) from exc

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    server.custom_route("/healthz", methods=["GET"])(healthz)  # the SDK's decorator is untyped

    return server


Transport = Literal["stdio", "http"]


def run_server(
    settings: Settings,
    *,
    transport: Transport = "stdio",
    host: str = "127.0.0.1",
    port: int = 8080,
    sock: socket.socket | None = None,
) -> None:
    """Serve until the client disconnects (stdio) or the process is stopped (http, at ``/mcp``).

    ``sock``, a socket already bound to ``host:port``, is served as is over HTTP, so a busy port
    is found before anything loads and no other process can take the port in between.
    """
    if transport == "http":
        app_for = _http_app_factory(settings, host)  # refuses a public bind without tokens, before loading
    server = create_server(settings)
    try:
        if transport == "stdio":
            server.run("stdio")
        else:
            import uvicorn

            from opsmith.serve.server import uvicorn_config

            where = settings.model_copy(update={"serve_host": host, "serve_port": port})
            uvicorn.Server(uvicorn_config(app_for(server), where, log_level="warning")).run(
                sockets=[sock] if sock is not None else None
            )
    finally:
        server.backend.close()


def _http_app_factory(settings: Settings, host: str) -> Callable[[OpsmithMCPServer], ASGIApp]:
    """The streamable-HTTP app behind the same bearer-token rule as ``opsmith serve``.

    Auth is on when tokens are set or ``host`` is not loopback (``api_auth``); a public bind
    with no token is refused here, as ``serve`` refuses it. ``/healthz`` stays open for probes.
    """
    from opsmith.serve.security import Authenticator, auth_required, parse_tokens

    authenticator = Authenticator(parse_tokens(settings.api_tokens), required=auth_required(settings, host))

    def make(server: OpsmithMCPServer) -> ASGIApp:
        app = server.streamable_http_app(
            host=host, max_request_body_size=min(settings.max_request_bytes, MCP_MAX_BODY_BYTES)
        )
        return BearerAuth(app, authenticator) if authenticator.required else app

    return make


class BearerAuth:
    """ASGI middleware: every HTTP request but ``GET /healthz`` carries a known bearer token (401)."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] != "/healthz":
            headers = dict(scope["headers"])
            try:
                self.authenticator.identify(headers.get(b"authorization", b"").decode("latin-1") or None)
            except AuthenticationError as exc:
                response = JSONResponse(
                    {"error": str(exc)}, status_code=401, headers={"WWW-Authenticate": 'Bearer realm="opsmith"'}
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
