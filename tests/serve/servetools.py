"""Helpers for the HTTP service tests: constants, an in-process client, SSE and metrics parsing.

Kept out of conftest.py so test modules can import them by a unique module name.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from opsmith.config import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]


RUNBOOKS_DIR = REPO / "examples" / "runbooks"


TERRAFORM_DIR = REPO / "examples" / "terraform"


#: A 32-character token (auth tests), a read-only one, and their values as OPSMITH_API_TOKENS holds them.
TOKEN = "tok3n-0123456789-abcdefghijklmno"


READ_TOKEN = "r3ad-only-0123456789-abcdefghijk"


TOKENS_SETTING = f"{TOKEN},{READ_TOKEN}:read"


#: A question examples/runbooks answers, and one they clearly do not.
COVERED_QUESTION = "Postgres replication lag is growing on the replica, what should I check?"


UNCOVERED_QUESTION = "How do I restart the mainframe COBOL batch jobs on the z/OS scheduler?"


PROBLEM_KEYS = {"type", "title", "status", "detail", "request_id"}


def serve_settings(home: Path, **overrides: Any) -> Settings:
    """Settings for an app over ``home``, offline (provider none), whatever the caller's env says.

    Session- and module-scoped fixtures run before the autouse per-test OPSMITH_HOME fixture,
    so the config file location is pinned here too.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPSMITH_HOME", str(home))
        for name in ("OPSMITH_CONFIG", "OPSMITH_PROVIDER", "OPSMITH_COLLECTION", "OPSMITH_QDRANT_URL"):
            mp.delenv(name, raising=False)
        return load_settings(home=home, provider="none", **overrides)


def copy_home(template: Path, tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A private copy of an indexed OPSMITH_HOME (the index is closed, so its files are consistent)."""
    home = tmp_path_factory.mktemp(name) / "home"
    shutil.copytree(template, home)
    return home


AppFactory = Callable[..., FastAPI]


@asynccontextmanager
async def api_client(
    app: FastAPI,
    *,
    token: str | None = None,
    headers: Mapping[str, str | bytes] | None = None,
    client_ip: str = "127.0.0.1",
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to ``app`` in-process from ``client_ip``, sending ``token`` if given."""
    given = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token is not None else {})}
    # Bytes as given, so a test can send header values httpx would not encode from str.
    sent = {name.encode(): value if isinstance(value, bytes) else value.encode() for name, value in given.items()}
    transport = httpx.ASGITransport(app=app, client=(client_ip, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://opsmith.test", headers=sent) as client:
        yield client


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """Check an RFC 9457 problem response and return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json", response.headers
    body: dict[str, Any] = response.json()
    assert set(body) == PROBLEM_KEYS, body
    assert body["status"] == status
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


@dataclass
class SSEEvent:
    event: str
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


def parse_sse(text: str) -> list[SSEEvent]:
    """Server-Sent Events from a whole ``text/event-stream`` body, per the WHATWG parsing rules
    that matter here: frames end at a blank line, ``:`` lines are comments (pings), several
    ``data:`` lines join with newlines, and the event name defaults to ``message``."""
    events: list[SSEEvent] = []
    normalised = text.replace("\r\n", "\n").replace("\r", "\n")
    for frame in normalised.split("\n\n"):
        name, data = "message", []
        for line in frame.split("\n"):
            if not line or line.startswith(":"):
                continue
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)
        if data:
            events.append(SSEEvent(name, "\n".join(data)))
    return events


_CITATION_MARK = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]")


def without_citations(text: str) -> str:
    """``text`` with its [n] markers removed and whitespace collapsed, to compare answer prose."""
    return " ".join(_CITATION_MARK.sub("", text).split())


async def wait_for_job(client: httpx.AsyncClient, job_id: str, *, timeout: float = 120.0) -> dict[str, Any]:
    """Poll ``GET /v1/jobs/{id}`` until the job has finished, and return it."""
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()["job"]
        if job["status"] in ("succeeded", "failed"):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} is still {job['status']} after {timeout:g}s: {job}")
        await anyio.sleep(0.1)


def metric_value(exposition: str, sample_name: str, **labels: str) -> float | None:
    """The value of the one sample named ``sample_name`` whose labels include ``labels``."""
    found = [
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == sample_name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) <= 1, f"{sample_name}{labels} matches {len(found)} samples"
    return found[0] if found else None


def metric_labels(exposition: str, sample_name: str) -> list[dict[str, str]]:
    """The label sets of every sample named ``sample_name``."""
    return [
        dict(sample.labels)
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == sample_name
    ]


@dataclass
class Receiver:
    """A Slack-style webhook receiver on loopback: it records each request and answers ``status``."""

    url: str
    status: int = 200
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@dataclass
class RawResponse:
    """What :func:`raw_request` saw: the response, and how the app read the request body."""

    status: int
    headers: dict[str, str]
    body: bytes
    receive_calls: int
    body_sent: int

    def json(self) -> Any:
        return json.loads(self.body)


BodyPiece = bytes | Callable[[], Any]


async def raw_request(
    app: FastAPI,
    method: str,
    path: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: Sequence[BodyPiece] = (),
) -> RawResponse:
    """Drive ``app`` with one HTTP request at the ASGI level, as a server would.

    Unlike an HTTP client, this shows what the app does with the body: ``receive_calls`` counts
    the calls of the server's ``receive`` and ``body_sent`` the bytes handed over. Each piece of
    ``body`` is a chunk, or an async callable awaited in its place (to stall, say); after the last
    piece, ``receive`` waits for ever, as for a client that sent all it had and waits for the answer.
    """
    pieces = list(body)
    state = {"calls": 0, "sent": 0, "next": 0}
    raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"opsmith.test"), *raw_headers],
        "client": ("127.0.0.1", 40000),
        "server": ("opsmith.test", 80),
        "state": {},
    }
    responded = anyio.Event()

    async def receive() -> dict[str, Any]:
        state["calls"] += 1
        while state["next"] < len(pieces):
            piece = pieces[state["next"]]
            state["next"] += 1
            if callable(piece):
                await piece()
                continue
            state["sent"] += len(piece)
            return {"type": "http.request", "body": piece, "more_body": state["next"] < len(pieces)}
        if not pieces and state["calls"] == 1:
            return {"type": "http.request", "body": b"", "more_body": False}
        await responded.wait()
        return {"type": "http.disconnect"}

    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                responded.set()

    await app(scope, receive, send)
    response_headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in start.get("headers", [])}
    return RawResponse(start["status"], response_headers, b"".join(chunks), state["calls"], state["sent"])
