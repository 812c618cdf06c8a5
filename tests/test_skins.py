"""One request through every skin: the CLI's ``--json``, the HTTP API and the MCP server answer alike.

Each skin only parses, calls :class:`~opsmith.backend.Backend` and renders one of the shapes in
:mod:`opsmith.schemas`, so the same request must give the same payload everywhere, except for
the differences docs/architecture.md names:

* the HTTP API's answer adds ``collection`` (the collection it answered from), and its review
  adds ``summary``;
* ``timings_ms`` are measured per run, so only their keys are compared.

Each payload is also checked against its schema: validating it through the schema (which drops
unknown keys) must give it back unchanged, so a field the library adds or drops without the
schema fails here, and the OpenAPI document and the MCP output schemas must list the schema's
fields. Everything is real: a local Qdrant index of three small runbooks, the bundled embedder,
the FastAPI app in-process and the MCP server over the SDK's in-memory client.
"""

from __future__ import annotations

import dataclasses
import json
from functools import cache
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from pydantic import TypeAdapter
from typer.testing import CliRunner

from opsmith import schemas
from opsmith.backend import Backend
from opsmith.cli import app as cli_app
from opsmith.config import Settings, load_settings
from opsmith.integrations.mcp_server import create_server
from opsmith.serve.app import create_app, openapi_document

REPO = Path(__file__).resolve().parents[1]
TERRAFORM = REPO / "examples" / "terraform" / "vulnerable"
RUNBOOKS = {
    "database/PostgresReplicationLag.md": """\
# Postgres replication lag

Alert `PostgresReplicationLagHigh` fires when a replica is more than 60 seconds behind the primary.

## Diagnosis

On the replica, measure the lag:

```sql
SELECT now() - pg_last_xact_replay_timestamp() AS replication_lag;
```

Check `pg_stat_replication` on the primary for the replica's state.

## Mitigation

Restart the replica with `systemctl restart postgresql` and move read traffic to the primary.
""",
    "database/PgbouncerPoolExhausted.md": """\
# PgBouncer pool exhausted

Alert `PgbouncerPoolExhausted` fires when clients wait for a server connection.

## Diagnosis

```bash
psql -p 6432 pgbouncer -c 'SHOW POOLS;'
```

## Mitigation

Raise `default_pool_size` in pgbouncer.ini and reload with `kill -HUP $(pidof pgbouncer)`.
""",
    "kafka-consumer-lag.md": """\
# Kafka consumer lag

Alert `KafkaConsumerLagHigh` fires when a consumer group falls more than 10000 messages behind.

## Mitigation

Scale the consumer deployment: `kubectl scale deploy/payments-consumer --replicas=6`.
""",
}

QUESTION = "Postgres replication lag is growing on the replica, what should I check?"
QUERY = "pgbouncer pool exhausted"


@pytest.fixture(scope="module")
def index_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("skins")
    for name, text in RUNBOOKS.items():
        (root / "runbooks" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "runbooks" / name).write_text(text, encoding="utf-8")
    home = root / "home"
    with Backend(_settings(home)) as backend:
        report = backend.ingest([root / "runbooks"])
    assert report.added == len(RUNBOOKS)
    return home


@pytest.fixture
def home(index_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The indexed home, as OPSMITH_HOME for the CLI too."""
    monkeypatch.setenv("OPSMITH_HOME", str(index_home))
    return index_home


def _settings(home: Path) -> Settings:
    return load_settings(home=home, provider="none")


# The three skins ----------------------------------------------------------------------------------


def _cli(*args: str) -> Any:
    result = CliRunner().invoke(cli_app, [*args, "--json"])
    assert result.exit_code in (0, 1), result.output  # review exits 1 on findings
    return json.loads(result.stdout)


def _http(home: Path, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One request to the app in-process; the CLI's index is free again afterwards."""

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(_settings(home), backend=backend))
        async with httpx.AsyncClient(transport=transport, base_url="http://opsmith.test") as client:
            return await client.request(method, path, json=body)

    with Backend(_settings(home)) as backend:
        response = anyio.run(call)
    assert response.status_code == 200, response.text
    return response.json()


def _mcp(home: Path, tool: str, arguments: dict[str, Any]) -> Any:
    async def call() -> Any:
        async with Client(create_server(_settings(home), backend=backend), mode="legacy", cache=None) as client:
            result = await client.call_tool(tool, arguments)
        assert not result.is_error, result.content
        return result.structured_content

    with Backend(_settings(home)) as backend:
        return anyio.run(call)


# Comparing --------------------------------------------------------------------------------------


def _comparable(payload: Any) -> Any:
    """``payload`` with each ``timings_ms`` reduced to its keys (the values are per-run measurements)."""
    if isinstance(payload, dict):
        return {k: sorted(v) if k == "timings_ms" else _comparable(v) for k, v in payload.items()}
    if isinstance(payload, list):
        return [_comparable(item) for item in payload]
    return payload


def _assert_shape(payload: Any, shape: Any) -> None:
    """``payload`` is exactly ``shape``: validating it changes nothing (unknown keys would be dropped)."""
    assert TypeAdapter(shape).validate_python(payload) == payload


@cache
def _openapi() -> dict[str, Any]:
    return openapi_document()


def _openapi_fields(name: str) -> set[str]:
    return set(_openapi()["components"]["schemas"][name]["properties"])


def _mcp_output_fields(home: Path, tool: str) -> set[str]:
    async def call() -> set[str]:
        async with Client(create_server(_settings(home)), mode="legacy", cache=None) as client:
            (listed,) = [t for t in (await client.list_tools()).tools if t.name == tool]
        assert listed.output_schema is not None
        return set(listed.output_schema["properties"])

    return anyio.run(call)


def _fields(shape: Any) -> set[str]:
    return set(shape.__annotations__)


# The requests -----------------------------------------------------------------------------------


def test_ask_is_one_payload_on_every_skin(home: Path) -> None:
    cli = _cli("ask", QUESTION)
    http = _http(home, "POST", "/v1/ask", {"question": QUESTION})
    mcp = _mcp(home, "ask_runbooks", {"question": QUESTION})

    assert cli["refused"] is False
    assert cli["citations"][0]["source"] == "database/PostgresReplicationLag.md"
    assert http.pop("collection") == "runbooks"
    assert _comparable(cli) == _comparable(http) == _comparable(mcp)
    _assert_shape(cli, schemas.AskResult)
    assert _fields(schemas.AskResponse) - _fields(schemas.AskResult) == {"collection"}
    assert _openapi_fields("AskResponse") == _fields(schemas.AskResponse)
    assert _mcp_output_fields(home, "ask_runbooks") == _fields(schemas.AskResult)


def test_a_refusal_is_one_payload_on_every_skin(home: Path) -> None:
    question = "How do I rotate the TLS certificate on the mainframe batch gateway?"
    cli = _cli("ask", question)
    http = _http(home, "POST", "/v1/ask", {"question": question})
    mcp = _mcp(home, "ask_runbooks", {"question": question})

    assert (cli["refused"], cli["citations"]) == (True, [])
    http.pop("collection")
    assert _comparable(cli) == _comparable(http) == _comparable(mcp)


def test_search_is_one_payload_on_every_skin(home: Path) -> None:
    cli = _cli("search", QUERY, "-k", "3")
    http = _http(home, "POST", "/v1/search", {"query": QUERY, "k": 3})
    mcp = _mcp(home, "search_runbooks", {"query": QUERY, "k": 3})

    assert len(cli["results"]) == 3
    assert cli["results"][0]["source"] == "database/PgbouncerPoolExhausted.md"
    assert cli == http == mcp
    _assert_shape(cli, schemas.SearchResponse)
    assert _openapi_fields("SearchResponse") == _fields(schemas.SearchResponse)
    assert _openapi_fields("SearchHit") == _fields(schemas.SearchHit)
    assert _mcp_output_fields(home, "search_runbooks") == _fields(schemas.SearchResponse)


def test_collections_are_one_payload_on_every_skin(home: Path) -> None:
    cli = _cli("collections", "list")
    http = _http(home, "GET", "/v1/collections")
    mcp = _mcp(home, "list_collections", {})

    assert cli["default_collection"] == "runbooks"
    assert [c["name"] for c in cli["collections"]] == ["runbooks"]
    assert cli == http == mcp
    _assert_shape(cli, schemas.CollectionsResponse)
    assert _openapi_fields("CollectionsResponse") == _fields(schemas.CollectionsResponse)
    assert _mcp_output_fields(home, "list_collections") == _fields(schemas.CollectionsResponse)


def test_review_is_one_payload_on_every_skin(home: Path) -> None:
    files = {path.name: path.read_text(encoding="utf-8") for path in sorted(TERRAFORM.glob("*.tf"))}
    cli = _cli("review", str(TERRAFORM))
    http = _http(home, "POST", "/v1/review", {"files": files})
    mcp = _mcp(home, "review_terraform", {"files": files})

    assert any(f["rule"] == "OPS-S003" for f in cli["security"])
    summary = http.pop("summary")
    assert cli == http == mcp
    _assert_shape(cli, schemas.ReviewFindings)
    # The summary is the CLI's verdict: exit status 1 at the default --fail-on critical.
    critical = sum(f["severity"] == "critical" for findings in cli.values() for f in findings)
    assert (summary["critical"], summary["failed"], summary["fail_on"]) == (critical, True, "critical")
    assert summary["files"] == sorted(files)
    assert _fields(schemas.ReviewResponse) - _fields(schemas.ReviewFindings) == {"summary"}
    assert _openapi_fields("ReviewResponse") == _fields(schemas.ReviewResponse)
    assert _openapi_fields("Finding") == _fields(schemas.Finding)
    assert _mcp_output_fields(home, "review_terraform") == _fields(schemas.ReviewFindings)


def test_every_shape_in_the_openapi_document_is_the_schema() -> None:
    """FastAPI publishes the shapes in opsmith.schemas, under their own names, with every field."""
    components = _openapi()["components"]["schemas"]
    published = [name for name in schemas.__all__ if name in components]
    assert {"AskResponse", "SearchResponse", "ReviewResponse", "CollectionsResponse", "JobModel"} <= set(published)
    for name in published:
        assert set(components[name]["properties"]) == _fields(getattr(schemas, name)), name


def test_library_objects_turn_into_their_shapes() -> None:
    from opsmith.rag.indexing import IngestReport, SkippedFile
    from opsmith.review import ReviewResult, Skipped
    from opsmith.serve.jobs import Job

    def names(cls: Any) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    assert names(IngestReport) == _fields(schemas.IngestReport)
    assert names(SkippedFile) == names(Skipped) == _fields(schemas.SkippedPath)
    assert names(Job) == _fields(schemas.JobModel)
    job = Job(id="j1", collection="runbooks")
    job.report = IngestReport("runbooks", skipped=[SkippedFile("a.png", "unsupported file type .png")]).to_dict()
    _assert_shape(job.to_dict(), schemas.JobModel)
    result = ReviewResult(files=["main.tf"], skipped=[Skipped("notes.txt", "not a .tf file")], warnings=["w"])
    _assert_shape(result.to_dict(), schemas.ReviewFindings)
    _assert_shape(result.summary("warning"), schemas.ReviewSummary)
