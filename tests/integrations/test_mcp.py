"""The MCP server, driven by the official SDK's client over real protocol messages.

Most tests talk JSON-RPC to the server in-process over memory streams (``mode="legacy"``:
the initialize handshake and framed messages, as a 2025-era client sends them). One test
starts ``opsmith mcp`` as a subprocess and talks over its stdin/stdout as Claude Desktop or
Claude Code would (the SDK negotiates the current protocol there), and one over streamable
HTTP. Every server reads a tiny corpus ingested with the library, the real bundled embedder
and a real local Qdrant.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.types import CallToolResult

from opsmith.config import Settings, load_settings
from opsmith.errors import CollectionNotFoundError, ProviderUnavailableError
from opsmith.integrations.mcp_server import Backend, OpsmithMCPServer, create_server, runbook_uri
from opsmith.rag.answer import Answer, Citation
from opsmith.rag.embedder import load_embedder
from opsmith.rag.indexing import ingest
from opsmith.rag.store import open_store
from opsmith.review import Finding, review_files
from opsmith.schemas import AskResult, CollectionsResponse, ReviewFindings, SearchHit
from opsmith.schemas import Citation as CitationJSON
from opsmith.schemas import Finding as FindingJSON
from opsmith.testing import FakeChatModel

RUNBOOKS = {
    "db/disk-full.md": """\
# Disk full on the database host

Alert `NodeFilesystemAlmostFull` fires when the Postgres data volume passes 90% usage.

## Diagnosis

Find what fills the volume:

```bash
df -h /var/lib/postgresql
du -sh /var/lib/postgresql/16/main/pg_wal
```

## Mitigation

Remove archived WAL segments older than the last base backup with `pg_archivecleanup`,
then grow the EBS volume if usage stays above 80%.
""",
    "checkout-latency.md": """\
# Checkout latency high

Alert `CheckoutHighLatency`: p99 latency of the checkout API is above two seconds.

## Diagnosis

Look at the pods of the checkout deployment:

```bash
kubectl -n shop top pods -l app=checkout
```

## Mitigation

Scale the deployment out: `kubectl -n shop scale deploy/checkout --replicas=6`.
""",
}

VULNERABLE_TF = """\
resource "aws_s3_bucket" "assets" {
  bucket = "acme-assets"
  acl    = "public-read"
}
"""

TOOLS = {"search_runbooks", "ask_runbooks", "review_terraform", "list_collections"}


@pytest.fixture(scope="module")
def index_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OPSMITH_HOME whose default collection holds RUNBOOKS, ingested with the library."""
    root = tmp_path_factory.mktemp("mcp-index")
    corpus = root / "runbooks"
    for source, text in RUNBOOKS.items():
        (corpus / source).parent.mkdir(parents=True, exist_ok=True)
        (corpus / source).write_text(text, encoding="utf-8")
    home = root / "home"
    settings = _settings(home)
    with open_store(settings) as store:
        ingest([corpus], settings=settings, embedder=load_embedder(settings), store=store)
    return home


@pytest.fixture(scope="module")
def backend(index_home: Path) -> Iterator[Backend]:
    """One warm backend for the module's in-process servers, as one server process keeps it."""
    warm = Backend(_settings(index_home))
    yield warm
    warm.close()


@pytest.fixture
def server(backend: Backend) -> OpsmithMCPServer:
    return create_server(backend.settings, backend=backend)


def _settings(home: Path, **overrides: Any) -> Settings:
    # Explicit values: the autouse fixture points OPSMITH_HOME at each test's own folder.
    return load_settings(home=home, provider="none", **overrides)


def _over_jsonrpc(server: OpsmithMCPServer, body: Callable[[Client], Awaitable[None]]) -> None:
    async def main() -> None:
        async with Client(server, mode="legacy", cache=None) as client:
            await body(client)

    anyio.run(main)


def _json_of(result: CallToolResult) -> Any:
    """The tool's JSON, checked to be the same in the text block and the structured content."""
    assert not result.is_error, result.content
    text = json.loads(result.content[0].text)  # type: ignore[union-attr]
    assert text == result.structured_content
    return text


def _error_text(result: CallToolResult) -> str:
    assert result.is_error
    return result.content[0].text  # type: ignore[union-attr]


# Tool listing -----------------------------------------------------------------------------------


def test_tools_are_listed_with_precise_input_schemas(server: OpsmithMCPServer) -> None:
    async def body(client: Client) -> None:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(listed) == TOOLS
        for tool in listed.values():
            assert tool.description
            assert len(tool.description) > 60
            assert tool.annotations is not None
            assert tool.annotations.read_only_hint is True
            assert tool.output_schema is not None
            assert tool.output_schema["type"] == "object"

        search = listed["search_runbooks"].input_schema
        assert search["required"] == ["query"]
        assert search["properties"]["query"]["type"] == "string"
        assert search["properties"]["query"]["minLength"] == 1
        k = search["properties"]["k"]
        assert (k["type"], k["default"], k["minimum"], k["maximum"]) == ("integer", 5, 1, 100)
        assert search["properties"]["collection"]["default"] is None

        ask = listed["ask_runbooks"].input_schema
        assert ask["required"] == ["question"]
        assert set(ask["properties"]) == {"question", "collection"}

        files = listed["review_terraform"].input_schema["properties"]["files"]
        assert files["type"] == "object"
        assert files["additionalProperties"] == {"type": "string"}
        assert files["minProperties"] == 1
        assert "relative" in files["description"]

        assert listed["list_collections"].input_schema["properties"] == {}
        assert set(listed["ask_runbooks"].output_schema["properties"]) == set(AskResult.__annotations__)  # type: ignore[index]
        assert set(listed["review_terraform"].output_schema["required"]) == {"security", "cost", "correctness"}  # type: ignore[index]

    _over_jsonrpc(server, body)


def test_output_schemas_match_the_library_json() -> None:
    """The published output schemas are the CLI's --json shapes: a field added there must be added here."""
    assert set(AskResult.__annotations__) == {f.name for f in dataclasses.fields(Answer)}
    assert set(CitationJSON.__annotations__) == {f.name for f in dataclasses.fields(Citation)}
    finding = Finding("security", "critical", 1, "issue", "fix", "main.tf")
    assert set(FindingJSON.__annotations__) == set(finding.to_dict())
    assert set(ReviewFindings.__annotations__) == {"security", "cost", "correctness"}


# Tool calls ---------------------------------------------------------------------------------------


def test_search_runbooks_returns_ranked_chunks(server: OpsmithMCPServer) -> None:
    async def body(client: Client) -> None:
        data = _json_of(await client.call_tool("search_runbooks", {"query": "postgres disk volume full", "k": 2}))
        assert (data["query"], data["collection"], data["mode"]) == ("postgres disk volume full", "runbooks", "hybrid")
        assert 1 <= len(data["results"]) <= 2
        best = data["results"][0]
        assert set(best) == set(SearchHit.__annotations__)
        assert best["source"] == "db/disk-full.md"
        assert best["start_line"] >= 1
        assert best["end_line"] >= best["start_line"]
        assert "pg_wal" in best["text"] or "volume" in best["text"]
        scores = [row["score"] for row in data["results"]]
        assert scores == sorted(scores, reverse=True)

    _over_jsonrpc(server, body)


def test_ask_runbooks_answers_with_citations_offline(server: OpsmithMCPServer) -> None:
    async def body(client: Client) -> None:
        data = _json_of(
            await client.call_tool("ask_runbooks", {"question": "Checkout p99 latency is over two seconds, what now?"})
        )
        assert set(data) == set(AskResult.__annotations__)
        assert data["refused"] is False
        assert data["provider"] == "none"
        assert data["error"] is None
        assert data["citations"]
        assert data["citations"][0]["source"] == "checkout-latency.md"
        assert "kubectl -n shop" in data["answer"]

    _over_jsonrpc(server, body)


def test_ask_runbooks_refuses_what_the_runbooks_do_not_cover(server: OpsmithMCPServer) -> None:
    async def body(client: Client) -> None:
        question = "How do I rotate the TLS certificate on the mainframe batch gateway?"
        data = _json_of(await client.call_tool("ask_runbooks", {"question": question}))
        assert data["refused"] is True
        assert data["citations"] == []

    _over_jsonrpc(server, body)


def test_review_terraform_returns_the_reviewer_json(server: OpsmithMCPServer, backend: Backend) -> None:
    files = {"main.tf": VULNERABLE_TF, "README.md": "not terraform"}

    async def body(client: Client) -> None:
        result = await client.call_tool("review_terraform", {"files": files})
        data = _json_of(result)
        assert set(data) == {"security", "cost", "correctness"}
        critical = [f for f in data["security"] if f["severity"] == "critical"]
        assert any(f["rule"] == "OPS-S003" and f["file"] == "main.tf" and f["line"] == 3 for f in critical)
        # The same JSON as the library (and so `opsmith review --json`) gives for these files.
        assert data == review_files(files, settings=backend.settings, use_llm=False).to_dict()
        summary = result.content[1].text  # type: ignore[union-attr]
        assert "critical" in summary

    _over_jsonrpc(server, body)


def test_review_terraform_keeps_module_paths_and_refuses_unsafe_ones(server: OpsmithMCPServer) -> None:
    async def body(client: Client) -> None:
        data = _json_of(await client.call_tool("review_terraform", {"files": {"modules/web/main.tf": VULNERABLE_TF}}))
        assert {f["file"] for f in data["security"]} == {"modules/web/main.tf"}
        for unsafe in ("../main.tf", "/etc/main.tf", "C:\\infra\\main.tf"):
            message = _error_text(await client.call_tool("review_terraform", {"files": {unsafe: VULNERABLE_TF}}))
            assert "—" in message
            assert "\n" not in message
        message = _error_text(await client.call_tool("review_terraform", {"files": {"notes.txt": "x"}}))
        assert message.startswith("No Terraform files (.tf)")

    _over_jsonrpc(server, body)


def test_list_collections(server: OpsmithMCPServer, index_home: Path) -> None:
    async def body(client: Client) -> None:
        data = _json_of(await client.call_tool("list_collections", {}))
        assert set(data) == set(CollectionsResponse.__annotations__)
        assert data["default_collection"] == "runbooks"
        assert data["location"] == str(index_home / "qdrant")
        (only,) = data["collections"]
        assert only["name"] == "runbooks"
        assert only["points"] > 0
        assert only["dimension"] == 384

    _over_jsonrpc(server, body)


# With an LLM configured ------------------------------------------------------------------------


@pytest.fixture
def with_llm(index_home: Path, backend: Backend) -> Iterator[Callable[[FakeChatModel], OpsmithMCPServer]]:
    """Servers whose backend has a (fake) LLM, as OPSMITH_PROVIDER would give them."""
    backend.close()  # local Qdrant: one open client per index, so the shared one steps aside
    made: list[OpsmithMCPServer] = []

    def make(fake: FakeChatModel) -> OpsmithMCPServer:
        server = create_server(backend.settings, backend=Backend(backend.settings, chat_model=fake))
        made.append(server)
        return server

    yield make
    for server in made:
        server.backend.close()


def test_ask_runbooks_with_an_llm_checks_its_citations(
    with_llm: Callable[[FakeChatModel], OpsmithMCPServer],
) -> None:
    fake = FakeChatModel(["Scale the checkout deployment out to six replicas [1]. See also [9]."])

    async def body(client: Client) -> None:
        data = _json_of(await client.call_tool("ask_runbooks", {"question": "Checkout p99 latency is too high"}))
        assert (data["provider"], data["refused"], data["error"]) == ("fake", False, None)
        assert data["citations"][0]["source"] == "checkout-latency.md"
        assert data["dropped_citations"] == [9]

    _over_jsonrpc(with_llm(fake), body)
    assert "kubectl -n shop" in fake.calls[0]["messages"][-1].content  # the excerpts reached the model


def test_a_failed_llm_call_is_a_tool_error_that_still_quotes_the_runbooks(
    with_llm: Callable[[FakeChatModel], OpsmithMCPServer],
) -> None:
    failure = ProviderUnavailableError("Cannot reach fake (down) — check the server", provider="fake")
    fake = FakeChatModel(["never used"], errors=[failure, failure, failure, failure])

    async def body(client: Client) -> None:
        result = await client.call_tool("ask_runbooks", {"question": "Checkout p99 latency is too high"})
        assert result.is_error
        line, payload = (block.text for block in result.content)  # type: ignore[union-attr]
        assert line == json.loads(payload)["error"]
        assert "Cannot reach fake" in line
        assert "kubectl -n shop" in json.loads(payload)["answer"]  # the extractive fallback

    _over_jsonrpc(with_llm(fake), body)


def test_review_terraform_uses_the_llm_when_one_is_configured(
    with_llm: Callable[[FakeChatModel], OpsmithMCPServer],
) -> None:
    fake = FakeChatModel(["this is not the JSON the reviewer asked for"])

    async def body(client: Client) -> None:
        result = await client.call_tool("review_terraform", {"files": {"main.tf": VULNERABLE_TF}})
        data = _json_of(result)
        assert any(f["rule"] == "OPS-S003" for f in data["security"])  # the rules still report
        notes = [block.text for block in result.content[2:]]  # type: ignore[union-attr]
        assert any(note.startswith("LLM review skipped") for note in notes)

    _over_jsonrpc(with_llm(fake), body)
    assert fake.calls, "the LLM reviewer was not asked"


def test_ask_and_review_share_the_services_cap_on_llm_calls(
    with_llm: Callable[[FakeChatModel], OpsmithMCPServer],
) -> None:
    fake = FakeChatModel(["Scale the checkout deployment out [1]."])
    server = with_llm(fake)
    held = [server.backend.llm_slot() for _ in range(server.backend.settings.max_concurrent_llm_calls)]

    async def body(client: Client) -> None:
        for name, arguments in (
            ("ask_runbooks", {"question": "Checkout p99 latency is too high"}),
            ("review_terraform", {"files": {"main.tf": VULNERABLE_TF}}),
        ):
            result = await client.call_tool(name, arguments)
            assert result.is_error, name
            assert "LLM call slot" in result.content[0].text  # type: ignore[union-attr]
        for slot in held:
            slot.release()
        data = _json_of(await client.call_tool("ask_runbooks", {"question": "Checkout p99 latency is too high"}))
        assert data["refused"] is False

    _over_jsonrpc(server, body)
    assert len(fake.calls) == 1  # the refused calls never reached the model


# Errors -------------------------------------------------------------------------------------------


def test_unknown_collection_is_a_tool_error_with_the_cli_message(backend: Backend, index_home: Path) -> None:
    """A server started with --collection nope: every tool that reads it says what to run."""
    other = create_server(_settings(index_home, collection="nope"), backend=None)
    expected = str(CollectionNotFoundError("nope"))
    assert "run `opsmith ingest PATH --collection nope` first" in expected

    async def body(client: Client) -> None:
        assert _error_text(await client.call_tool("search_runbooks", {"query": "disk"})) == expected
        assert _error_text(await client.call_tool("ask_runbooks", {"question": "disk full?"})) == expected
        # An explicit collection argument overrides the default, on the same server.
        ok = await client.call_tool("search_runbooks", {"query": "disk", "collection": "runbooks"})
        assert not ok.is_error
        # Listing resources of a missing collection is empty, not an error.
        assert (await client.list_resources()).resources == []

    backend.close()  # local Qdrant: one open client per index, so the shared one steps aside
    try:
        _over_jsonrpc(other, body)
    finally:
        other.backend.close()


def test_arguments_outside_the_schema_are_tool_errors(server: OpsmithMCPServer) -> None:
    async def body(client: Client) -> None:
        assert "greater than or equal to 1" in _error_text(
            await client.call_tool("search_runbooks", {"query": "disk", "k": 0})
        )
        assert "question" in _error_text(await client.call_tool("ask_runbooks", {}))
        message = _error_text(await client.call_tool("ask_runbooks", {"question": "   "}))
        assert message.startswith("The question is empty")

    _over_jsonrpc(server, body)


# Resources ----------------------------------------------------------------------------------------


def test_runbooks_are_listed_and_read_as_resources(server: OpsmithMCPServer) -> None:
    async def body(client: Client) -> None:
        listed = {r.uri: r for r in (await client.list_resources()).resources}
        assert set(listed) == {"opsmith://runbooks/checkout-latency.md", "opsmith://runbooks/db/disk-full.md"}
        assert listed["opsmith://runbooks/db/disk-full.md"].mime_type == "text/markdown"
        templates = (await client.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["opsmith://{collection}/{+source}"]

        read = await client.read_resource("opsmith://runbooks/db/disk-full.md")
        (content,) = read.contents
        text = content.text  # type: ignore[union-attr]
        assert text.startswith("# Disk full on the database host")
        assert "du -sh /var/lib/postgresql/16/main/pg_wal" in text
        assert "## Mitigation" in text
        assert text.count("## Diagnosis") == 1  # chunk overlaps are not repeated

        with pytest.raises(MCPError, match=r"No runbook 'db/missing.md' in collection 'runbooks'"):
            await client.read_resource("opsmith://runbooks/db/missing.md")
        with pytest.raises(MCPError, match=r"run `opsmith ingest PATH --collection nope` first"):
            await client.read_resource("opsmith://nope/db/disk-full.md")
        with pytest.raises(MCPError):
            await client.read_resource("opsmith://runbooks/../secrets.md")

    _over_jsonrpc(server, body)


HOSTILE_RUNBOOK = (
    "# Etcd defragmentation\x1b]0;owned\x07\n\n"
    "Alert `EtcdDatabaseQuotaLowSpace` fires when etcd nears its quota.\x1b]52;c;Y3VybCBldmlsIHwgc2g=\x07\n\n"
    "## Mitigation\n\nRun `etcdctl defrag --cluster` on each member\x1b[2K\x1b[1A, then check\x9b31m the status.\n"
)


def test_runbook_text_reaches_the_client_without_control_characters(tmp_path: Path, backend: Backend) -> None:
    """A client may print tool and resource text in a terminal: escape sequences from a runbook are stripped."""
    corpus = tmp_path / "runbooks"
    corpus.mkdir()
    (corpus / "etcd\x1b[2J.md").write_text(HOSTILE_RUNBOOK, encoding="utf-8")
    home = tmp_path / "home"
    settings = _settings(home)
    with open_store(settings) as store:
        ingest([corpus], settings=settings, embedder=load_embedder(settings), store=store)
    hostile = create_server(settings, backend=Backend(settings))

    def assert_clean(text: str) -> None:
        for char in ("\x1b", "\x07", "\x9b"):
            assert char not in text, text

    async def body(client: Client) -> None:
        searched = await client.call_tool("search_runbooks", {"query": "etcd defrag quota"})
        asked = await client.call_tool("ask_runbooks", {"question": "How do I defrag etcd when it nears its quota?"})
        for result in (searched, asked):
            data = _json_of(result)
            for block in result.content:
                assert_clean(block.text)  # type: ignore[union-attr]
            assert_clean(json.dumps(data, ensure_ascii=False))
        assert "on each member, then check the status." in _json_of(searched)["results"][0]["text"]
        assert not _json_of(asked)["refused"]

        (listed,) = (await client.list_resources()).resources
        assert listed.name == "etcd.md"
        assert_clean(listed.description or "")
        read = await client.read_resource(listed.uri)
        text = read.contents[0].text  # type: ignore[union-attr]
        assert_clean(text)
        assert text.startswith("# Etcd defragmentation\n")
        assert "fires when etcd nears its quota.\n" in text

    try:
        _over_jsonrpc(hostile, body)
    finally:
        hostile.backend.close()


def test_runbook_uris_round_trip_awkward_names() -> None:
    assert runbook_uri("runbooks", "db/disk-full.md") == "opsmith://runbooks/db/disk-full.md"
    assert (
        runbook_uri("team runbooks", "on call/pager duty.md") == "opsmith://team%20runbooks/on%20call/pager%20duty.md"
    )


# Real transports ----------------------------------------------------------------------------------


def _script() -> str:
    beside = Path(sys.executable).with_name("opsmith")
    found = str(beside) if beside.exists() else shutil.which("opsmith")
    assert found, "the opsmith console script is not installed"
    return found


@pytest.fixture
def home_copy(index_home: Path, backend: Backend, tmp_path: Path) -> Path:
    """A copy of the index for a server process (the module's warm backend keeps the original)."""
    backend.close()
    copy = tmp_path / "server-home"
    shutil.copytree(index_home, copy, ignore=shutil.ignore_patterns(".lock"))
    return copy


def _server_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSMITH_")}
    return {**env, "OPSMITH_HOME": str(home), "OPSMITH_PROVIDER": "none", "HF_HUB_OFFLINE": "1"}


@pytest.mark.slow  # starts `opsmith mcp` in a subprocess
def test_stdio_server_end_to_end(home_copy: Path) -> None:
    """``opsmith mcp`` as an MCP client runs it: a subprocess speaking over stdin/stdout."""
    params = StdioServerParameters(
        command=_script(), args=["mcp", "--collection", "runbooks"], env=_server_env(home_copy)
    )

    async def main() -> None:
        with anyio.fail_after(60):
            await session()

    async def session() -> None:
        async with Client(params, cache=None) as client:
            assert client.server_info is not None
            assert client.server_info.name == "opsmith"
            assert {tool.name for tool in (await client.list_tools()).tools} == TOOLS
            found = _json_of(await client.call_tool("search_runbooks", {"query": "checkout latency", "k": 1}))
            assert found["results"][0]["source"] == "checkout-latency.md"
            answer = _json_of(await client.call_tool("ask_runbooks", {"question": "Postgres disk volume is full"}))
            assert answer["citations"][0]["source"] == "db/disk-full.md"
            review = _json_of(await client.call_tool("review_terraform", {"files": {"main.tf": VULNERABLE_TF}}))
            assert any(f["rule"] == "OPS-S003" for f in review["security"])
            assert _json_of(await client.call_tool("list_collections", {}))["collections"][0]["name"] == "runbooks"
            missing = await client.call_tool("search_runbooks", {"query": "disk", "collection": "nope"})
            assert _error_text(missing) == str(CollectionNotFoundError("nope"))
            uris = [r.uri for r in (await client.list_resources()).resources]
            assert "opsmith://runbooks/db/disk-full.md" in uris
            read = await client.read_resource("opsmith://runbooks/checkout-latency.md")
            assert "kubectl -n shop scale" in read.contents[0].text  # type: ignore[union-attr]

    anyio.run(main)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow  # starts `opsmith mcp` in a subprocess
def test_http_server_serves_mcp_and_healthz(home_copy: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [_script(), "mcp", "--transport", "http", "--host", "127.0.0.1", "--port", str(port)],
        env=_server_env(home_copy),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "the HTTP server did not start"
                time.sleep(0.1)
        assert health.json() == {"status": "ok"}

        async def main() -> None:
            async with Client(f"http://127.0.0.1:{port}/mcp", cache=None) as client:
                assert {tool.name for tool in (await client.list_tools()).tools} == TOOLS
                found = _json_of(await client.call_tool("search_runbooks", {"query": "postgres wal", "k": 1}))
                assert found["results"][0]["source"] == "db/disk-full.md"

        anyio.run(main)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        if proc.stderr:
            proc.stderr.close()


def test_http_transport_takes_the_services_bearer_tokens(home_copy: Path) -> None:
    """With OPSMITH_API_TOKENS set, every MCP request needs one of them; /healthz stays open."""
    port, token = _free_port(), "mcp-test-token-0123456789"
    env = {**_server_env(home_copy), "OPSMITH_API_TOKENS": token}
    proc = subprocess.Popen(
        [_script(), "mcp", "--transport", "http", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    accept = {"Accept": "application/json, text/event-stream"}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "the HTTP server did not start"
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/mcp"
        for headers in ({}, {"Authorization": "Bearer not-the-token-at-all"}, {"Authorization": token}):
            refused = httpx.post(url, json=initialize, headers={**accept, **headers}, timeout=5)
            assert refused.status_code == 401, headers
            assert "Authorization: Bearer TOKEN" in refused.json()["error"]
        allowed = httpx.post(url, json=initialize, headers={**accept, "Authorization": f"Bearer {token}"}, timeout=5)
        assert allowed.status_code == 200, allowed.text
        assert "opsmith" in allowed.text  # the server's initialize result
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        if proc.stderr:
            proc.stderr.close()


def test_http_transport_on_a_public_address_needs_a_token(home_copy: Path) -> None:
    run = subprocess.run(
        [_script(), "mcp", "--transport", "http", "--host", "0.0.0.0", "--port", str(_free_port())],
        env=_server_env(home_copy),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert "no API token is set" in lines[-1]
    assert "Traceback" not in run.stderr


def test_all_is_sorted_and_importable() -> None:
    import opsmith.integrations.mcp_server as module

    exported = list(module.__all__)
    assert exported == sorted(exported, key=lambda name: (not name.isupper(), name))
    assert [name for name in exported if not hasattr(module, name)] == []


def test_cli_import_does_not_load_the_mcp_sdk() -> None:
    code = "import sys, opsmith.cli\nprint(','.join(m for m in ('mcp', 'starlette', 'uvicorn') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
