"""What one request may cost the server: its body is read only by a route that takes one and
only after auth, within the size limit, the body deadline and the process-wide budget; reviews
and alert batches have per-request limits checked before any work; LLM calls share a fixed
number of slots, so slow answers cannot starve searches.

Where it matters whether and how much of a body the app reads, requests are driven at the ASGI
level (:func:`servetools.raw_request` counts the server's ``receive`` calls); elsewhere through
httpx in-process. The LLM is :class:`~opsmith.testing.FakeChatModel`, held on a
:class:`threading.Event` to stand for a slow provider.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from servetools import (
    COVERED_QUESTION,
    TOKENS_SETTING,
    AppFactory,
    RawResponse,
    api_client,
    assert_problem,
    copy_home,
    parse_sse,
    raw_request,
    serve_settings,
)

from opsmith.backend import Backend
from opsmith.errors import LimitExceededError, RequestTimeoutError, RequestTooLargeError
from opsmith.llm import Message
from opsmith.serve.app import create_app
from opsmith.testing import FakeChatModel

pytestmark = pytest.mark.anyio

MB = 1_000_000
JSON = {"content-type": "application/json"}
#: How long a test waits for something that should happen at once (not a speed target).
PATIENCE = 20


async def _stall() -> None:
    await anyio.sleep_forever()


def _problem(response: RawResponse, status: int) -> dict[str, Any]:
    assert response.status == status, (response.status, response.body[:300])
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def _padded(data: dict[str, Any], size: int) -> bytes:
    """``data`` as JSON padded with trailing spaces (still valid JSON) to exactly ``size`` bytes."""
    text = json.dumps(data).encode()
    assert len(text) <= size
    return text + b" " * (size - len(text))


# Bodies are read only by routes that take one, after auth ------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/healthz", 200),
        ("POST", "/healthz", 405),
        ("GET", "/readyz", 200),
        ("GET", "/metrics", 200),
        ("GET", "/", 200),
        ("GET", "/static/app.css", 200),
        ("POST", "/v1/info", 405),
        ("POST", "/no/such/page", 404),
    ],
)
async def test_a_route_that_takes_no_body_never_reads_one(
    make_app: AppFactory, method: str, path: str, status: int
) -> None:
    """The attack of issue 11: bodies that declare 24 MB sent to /healthz and then stalled. Today's
    main read each whole body into memory before routing; now no byte of it is read."""
    app = make_app(api_tokens=TOKENS_SETTING)
    with anyio.fail_after(PATIENCE):
        response = await raw_request(
            app, method, path, headers={"content-length": str(24 * MB)}, body=[b"x" * 65536, _stall]
        )

    assert response.status == status
    assert response.receive_calls == 0
    # The rest of the body is not drained: the connection is closed after the answer.
    assert response.headers["connection"] == "close"


@pytest.mark.parametrize("path", ["/v1/ask", "/v1/review", "/v1/ingest", "/v1/alerts/alertmanager"])
async def test_without_a_token_no_byte_of_the_body_is_read(make_app: AppFactory, path: str) -> None:
    app = make_app(api_tokens=TOKENS_SETTING)
    with anyio.fail_after(PATIENCE):
        response = await raw_request(
            app, "POST", path, headers={**JSON, "content-length": str(24 * MB)}, body=[b"{" * 65536, _stall]
        )

    assert _problem(response, 401)["type"] == "urn:opsmith:error:AuthenticationError"
    assert response.receive_calls == 0
    assert response.headers["connection"] == "close"


async def test_a_declared_length_over_the_limit_is_refused_before_reading(make_app: AppFactory) -> None:
    app = make_app(max_request_bytes=1000)
    with anyio.fail_after(PATIENCE):
        response = await raw_request(
            app, "POST", "/v1/search", headers={**JSON, "content-length": "1001"}, body=[b"{", _stall]
        )

    assert _problem(response, 413)["detail"] == str(RequestTooLargeError(1000))
    assert response.receive_calls == 0
    assert response.headers["connection"] == "close"


async def test_a_body_the_route_reads_whole_keeps_the_connection(make_app: AppFactory) -> None:
    app = make_app()
    body = json.dumps({"query": "disk full", "k": 1}).encode()
    response = await raw_request(
        app, "POST", "/v1/search", headers={**JSON, "content-length": str(len(body))}, body=[body[:5], body[5:]]
    )

    assert response.status == 200, response.body
    assert response.body_sent == len(body)
    assert "connection" not in response.headers


# The size limit while streaming, and the body deadline ---------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/review", "/v1/search"])
async def test_a_chunked_body_over_the_limit_is_413_even_where_the_route_parses_json(
    make_app: AppFactory, path: str
) -> None:
    """FastAPI turns an error while reading a JSON body into a 400; the guard's 413 wins."""
    app = make_app(max_request_bytes=1000)
    pieces = [b'{"files": {"main.tf": "', b"x" * 400, b"x" * 400, b"x" * 400, b"x" * 400, b'"}}']
    with anyio.fail_after(PATIENCE):
        response = await raw_request(app, "POST", path, headers={**JSON, "transfer-encoding": "chunked"}, body=pieces)

    assert _problem(response, 413)["detail"] == str(RequestTooLargeError(1000))
    assert 1000 < response.body_sent < sum(len(p) for p in pieces)  # it stopped reading at the limit


@pytest.mark.parametrize(
    ("path", "content_type", "first"),
    [
        ("/v1/search", "application/json", b'{"query": "disk'),
        ("/v1/review", "application/json", b'{"files": {"main.tf": "resource'),
        (
            "/v1/ingest",
            "multipart/form-data; boundary=b0undary",
            b'--b0undary\r\nContent-Disposition: form-data; name="files"; filename="a.md"\r\n\r\n# A',
        ),
    ],
    ids=["json", "review", "multipart"],
)
async def test_a_body_that_stalls_past_the_deadline_is_408(
    make_app: AppFactory, path: str, content_type: str, first: bytes
) -> None:
    app = make_app(body_read_timeout=0.2)
    with anyio.fail_after(PATIENCE):
        response = await raw_request(
            app, "POST", path, headers={"content-type": content_type, "content-length": "10000"}, body=[first, _stall]
        )

    problem = _problem(response, 408)
    assert problem["detail"] == str(RequestTimeoutError(0.2))
    assert "OPSMITH_BODY_READ_TIMEOUT" in problem["detail"]
    assert response.headers["connection"] == "close"
    assert (await _jobs(app)) == []  # an upload that never arrived queues nothing


async def _jobs(app: FastAPI) -> list[dict[str, Any]]:
    async with api_client(app) as client:
        jobs: list[dict[str, Any]] = (await client.get("/v1/jobs")).json()["jobs"]
    return jobs


# The process-wide budget of buffered body bytes ---------------------------------------------------------


async def test_bodies_over_the_shared_budget_are_503_with_retry_after(make_app: AppFactory) -> None:
    app = make_app(max_request_bytes=1000, max_buffered_request_bytes=1000)
    first = _padded({"query": "disk full", "k": 1}, 800)
    second = _padded({"query": "replication lag", "k": 1}, 500)
    reading, proceed = anyio.Event(), anyio.Event()

    async def hold() -> None:
        reading.set()
        await proceed.wait()

    results: dict[str, RawResponse] = {}

    async def slow_client() -> None:
        headers = {**JSON, "content-length": "800"}
        results["slow"] = await raw_request(
            app, "POST", "/v1/search", headers=headers, body=[first[:20], hold, first[20:]]
        )

    headers = {**JSON, "content-length": "500"}
    with anyio.fail_after(PATIENCE):
        async with anyio.create_task_group() as group:
            group.start_soon(slow_client)
            await reading.wait()  # 800 bytes of the 1000-byte budget are now held
            busy = await raw_request(app, "POST", "/v1/search", headers=headers, body=[second])
            proceed.set()
        after = await raw_request(app, "POST", "/v1/search", headers=headers, body=[second])

    problem = _problem(busy, 503)
    assert "OPSMITH_MAX_BUFFERED_REQUEST_BYTES" in problem["detail"]
    assert 1 <= int(busy.headers["retry-after"]) <= 60
    assert busy.receive_calls == 0  # refused before a byte of it was read
    assert results["slow"].status == 200
    assert after.status == 200  # the first request's bytes were given back when it ended
    assert app.state.service.body_budget.held == 0


async def test_the_budget_always_fits_one_body_of_the_largest_size(make_app: AppFactory) -> None:
    app = make_app(max_request_bytes=2000, max_buffered_request_bytes=100)
    body = _padded({"query": "disk full", "k": 1}, 1500)
    response = await raw_request(app, "POST", "/v1/search", headers={**JSON, "content-length": "1500"}, body=[body])

    assert response.status == 200, response.body
    assert app.state.service.body_budget.capacity == 2000


# Per-request limits of /v1/review and /v1/alerts/alertmanager, before any work ------------------------------


@pytest.fixture
def review_calls(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Reviews that reached the backend (none should, when a limit refuses the request)."""
    calls: list[Any] = []
    real = backend.review

    def spy(files: Any) -> Any:
        calls.append(files)
        return real(files)

    monkeypatch.setattr(backend, "review", spy)
    return calls


@pytest.mark.parametrize(
    ("files", "settings", "detail"),
    [
        (
            {f"m{i}.tf": "" for i in range(4)},
            {"max_review_files": 3},
            str(
                LimitExceededError(
                    "The review sends 4 files",
                    limit=3,
                    setting="OPSMITH_MAX_REVIEW_FILES",
                    advice="review the module in parts",
                )
            ),
        ),
        (
            {"main.tf": "#" * 600, "é.tf": "é" * 200},
            {"max_review_bytes": 1000},
            str(
                LimitExceededError(
                    "The review's files hold 1,012 bytes",
                    limit=1000,
                    setting="OPSMITH_MAX_REVIEW_BYTES",
                    advice="review the module in parts",
                )
            ),
        ),
        ({f"m{i}.tf": "" for i in range(201)}, {}, "The review sends 201 files, over the limit of 200 — "),
    ],
    ids=["files", "bytes", "default-files"],
)
async def test_a_review_over_its_limits_is_413_before_any_work(
    make_app: AppFactory, review_calls: list[Any], files: dict[str, str], settings: dict[str, Any], detail: str
) -> None:
    app = make_app(**settings)
    async with api_client(app) as client:
        response = await client.post("/v1/review", json={"files": files})

    problem = assert_problem(response, 413)
    assert problem["detail"].startswith(detail)
    assert problem["type"] == "urn:opsmith:error:LimitExceededError"
    assert review_calls == []


@pytest.mark.parametrize("where", ["content", "name"])
async def test_a_lone_surrogate_in_a_review_is_a_400_not_a_500(
    app: FastAPI, review_calls: list[Any], where: str
) -> None:
    # "\ud83d" is half of an emoji: valid in JSON, not encodable as UTF-8.
    content = 'resource "aws_s3_bucket" "b" { bucket = "logs-\ud83d" }\n'
    files = {"main.tf": content} if where == "content" else {"main\ud83d.tf": "", "other.tf": ""}
    async with api_client(app) as client:
        response = await client.post("/v1/review", content=json.dumps({"files": files}).encode(), headers=JSON)

    problem = assert_problem(response, 400)
    assert "not valid Unicode text" in problem["detail"]
    assert "\\ud83d" in problem["detail"]
    assert problem["detail"].endswith("send the file as valid UTF-8")
    assert review_calls == []


async def test_an_alert_batch_over_the_limit_is_413_before_any_work(
    make_app: AppFactory, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    monkeypatch.setattr(backend, "ask", lambda question, **kwargs: asked.append(question))
    app = make_app(max_alerts_per_request=3)
    payload = {"alerts": [{"labels": {"alertname": f"DiskFull{i}"}} for i in range(4)]}
    async with api_client(app) as client:
        response = await client.post("/v1/alerts/alertmanager", json=payload)
        metrics = (await client.get("/metrics")).text

    problem = assert_problem(response, 413)
    assert problem["detail"] == str(
        LimitExceededError(
            "The notification carries 4 alerts",
            limit=3,
            setting="OPSMITH_MAX_ALERTS_PER_REQUEST",
            advice="set max_alerts: 3 in Alertmanager's webhook_configs for opsmith",
        )
    )
    assert asked == []
    assert "opsmith_alerts_total{" not in metrics  # refused, so not counted as received


async def test_the_default_alert_limit_is_fifty(make_app: AppFactory) -> None:
    app = make_app()
    payload = {"alerts": [{"status": "resolved", "labels": {"alertname": f"A{i}"}} for i in range(51)]}
    async with api_client(app) as client:
        over = await client.post("/v1/alerts/alertmanager", json=payload)
        at = await client.post("/v1/alerts/alertmanager", json={"alerts": payload["alerts"][:50]})

    assert "over the limit of 50" in assert_problem(over, 413)["detail"]
    assert at.status_code == 200
    assert at.json()["resolved"] == 50


# LLM call slots --------------------------------------------------------------------------------------------


@dataclass
class SlowLLM:
    backend: Backend
    model: FakeChatModel
    release: threading.Event


@pytest.fixture
def slow_llm(runbooks_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlowLLM]:
    """A backend with two LLM slots whose fake LLM answers only once ``release`` is set."""
    release = threading.Event()

    def reply(messages: list[Message]) -> str:
        release.wait(60)
        return "Compare the replay position of each replica with the primary [1]."

    home = copy_home(runbooks_home, tmp_path_factory, "serve-llm-slots")
    model = FakeChatModel(reply=reply)
    backend = Backend(serve_settings(home, max_concurrent_llm_calls=2), chat_model=model)
    backend.warm_up()
    yield SlowLLM(backend, model, release)
    release.set()
    backend.close()


async def test_over_the_llm_cap_asks_are_503_while_searches_still_answer(slow_llm: SlowLLM) -> None:
    app = create_app(slow_llm.backend.settings, backend=slow_llm.backend)
    question = {"question": COVERED_QUESTION}
    held: dict[str, Any] = {}
    try:
        async with api_client(app) as client:
            with anyio.fail_after(PATIENCE):
                async with anyio.create_task_group() as group:

                    async def ask(name: str, stream: bool) -> None:
                        held[name] = await client.post("/v1/ask", json={**question, "stream": stream})

                    group.start_soon(ask, "plain", False)
                    group.start_soon(ask, "stream", True)  # a stream holds its slot to its last event
                    while len(slow_llm.model.calls) < 2:
                        await anyio.sleep(0.02)

                    busy = await client.post("/v1/ask", json=question)
                    busy_stream = await client.post("/v1/ask", json={**question, "stream": True})
                    busy_review = await client.post("/v1/review", json={"files": {"main.tf": ""}})
                    search = await client.post("/v1/search", json={"query": "replication lag", "k": 2})
                    calls_while_busy = len(slow_llm.model.calls)
                    slow_llm.release.set()
                again = await client.post("/v1/ask", json=question)
    finally:
        app.state.service.jobs.shutdown()

    for refused in (busy, busy_stream, busy_review):
        problem = assert_problem(refused, 503)
        assert problem["type"] == "urn:opsmith:error:ServiceBusyError"
        assert problem["detail"].startswith("All 2 LLM call slots are in use — retry in 5 s")
        assert "OPSMITH_MAX_CONCURRENT_LLM_CALLS" in problem["detail"]
        assert refused.headers["retry-after"] == "5"
    assert search.status_code == 200
    assert len(search.json()["results"]) == 2
    assert calls_while_busy == 2  # no refused request reached the LLM
    assert held["plain"].status_code == 200
    assert held["plain"].json()["citations"]
    assert [event.event for event in parse_sse(held["stream"].text)][-1] == "answer"
    assert again.status_code == 200
