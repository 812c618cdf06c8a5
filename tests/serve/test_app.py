"""The HTTP API end to end, in-process: answers (JSON and SSE), search, collections and runbook
views, Terraform review, Alertmanager alerts, problem documents, metrics, health and the UI.

Everything runs over a real local Qdrant holding examples/runbooks and the real bundled
embedder; the LLM, where one is used, is :class:`~opsmith.testing.FakeChatModel`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from servetools import (
    COVERED_QUESTION,
    RUNBOOKS_DIR,
    TERRAFORM_DIR,
    TOKENS_SETTING,
    UNCOVERED_QUESTION,
    AppFactory,
    Receiver,
    api_client,
    assert_problem,
    copy_home,
    metric_labels,
    metric_value,
    parse_sse,
    serve_settings,
    without_citations,
)

from opsmith import __version__
from opsmith.backend import Backend
from opsmith.errors import CollectionNotFoundError, JobNotFoundError, ProviderUnavailableError, SourceNotFoundError
from opsmith.llm import Message
from opsmith.rag.answer import FALLBACK_INTRO, REFUSAL, Answer
from opsmith.rag.loaders import SUPPORTED_SUFFIXES
from opsmith.review import review_files
from opsmith.serve.app import create_app
from opsmith.serve.routes.ui import STATIC_DIR
from opsmith.testing import FakeChatModel

pytestmark = pytest.mark.anyio

#: `opsmith ask --json` keys, plus the collection the answer came from.
ANSWER_KEYS = {f.name for f in dataclasses.fields(Answer)} | {"collection"}
CITATION_KEYS = {"source", "heading", "start_line", "end_line", "score", "relevance", "number"}
REPLICATION_RUNBOOK = "database/PostgresReplicationLag.md"


def _terraform(folder: str) -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in sorted((TERRAFORM_DIR / folder).glob("*.tf"))}


# /v1/info -----------------------------------------------------------------------------------------------


async def test_info_describes_an_offline_server_without_auth(app: FastAPI) -> None:
    async with api_client(app) as client:
        response = await client.get("/v1/info")

    assert response.status_code == 200
    assert response.json() == {
        "version": __version__,
        "collection": "runbooks",
        "provider": "none",
        "model": None,
        "auth_required": False,
        "retrieval_mode": "hybrid",
        "vector_store": "qdrant",
    }
    assert response.headers["x-request-id"]


# /v1/ask, extractive ------------------------------------------------------------------------------------


async def test_ask_answers_a_covered_question_with_citations_like_the_cli(app: FastAPI, backend: Backend) -> None:
    async with api_client(app) as client:
        response = await client.post("/v1/ask", json={"question": COVERED_QUESTION})

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    data = response.json()
    assert set(data) == ANSWER_KEYS
    assert data["collection"] == "runbooks"
    assert data["question"] == COVERED_QUESTION
    assert data["refused"] is False
    assert (data["provider"], data["model"], data["error"], data["usage"]) == ("none", None, None, {})
    assert data["citations"]
    assert all(set(c) == CITATION_KEYS for c in data["citations"] + data["retrieved"])
    assert data["citations"][0]["source"] == REPLICATION_RUNBOOK
    assert [c["number"] for c in data["citations"]] == list(range(1, len(data["citations"]) + 1))
    assert "[1]" in data["answer"]
    assert set(data["timings_ms"]) == {"retrieve", "generate", "total"}

    # The same answer `opsmith ask --json` prints (the library call behind it), timings aside.
    cli = backend.ask(COVERED_QUESTION).to_dict()
    for key in ("answer", "refused", "citations", "retrieved", "support", "provider"):
        assert data[key] == cli[key], key


async def test_ask_refuses_a_question_the_runbooks_do_not_cover(app: FastAPI) -> None:
    async with api_client(app) as client:
        response = await client.post("/v1/ask", json={"question": UNCOVERED_QUESTION})

    assert response.status_code == 200
    data = response.json()
    assert data["refused"] is True
    assert data["citations"] == []
    assert data["answer"] == REFUSAL
    assert data["answer"].startswith("Not in the runbooks")


async def test_ask_stream_in_extractive_mode_sends_one_answer_event(app: FastAPI) -> None:
    async with api_client(app) as client:
        response = await client.post("/v1/ask", json={"question": COVERED_QUESTION, "stream": True})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    assert [event.event for event in events] == ["answer"]  # no tokens without an LLM
    answer = events[0].json()
    assert set(answer) == ANSWER_KEYS
    assert answer["refused"] is False
    assert answer["citations"][0]["source"] == REPLICATION_RUNBOOK


@pytest.mark.parametrize("stream", [False, True])
async def test_ask_in_a_missing_collection_is_a_404_problem_not_a_stream(app: FastAPI, stream: bool) -> None:
    async with api_client(app) as client:
        response = await client.post(
            "/v1/ask", json={"question": COVERED_QUESTION, "collection": "nope", "stream": stream}
        )

    problem = assert_problem(response, 404)
    assert problem["detail"] == str(CollectionNotFoundError("nope"))
    assert problem["title"] == "Not Found"
    assert problem["type"] == "urn:opsmith:error:CollectionNotFoundError"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"question": ""}, "question"),
        ({}, "question"),
        ({"question": "disk full", "k": 0}, "k"),
        ({"question": "disk full", "stream": "maybe"}, "stream"),
        ({"question": "disk full", "colection": "typo"}, "colection"),
    ],
)
async def test_invalid_ask_bodies_are_422_problems_naming_the_field(
    app: FastAPI, body: dict[str, Any], field: str
) -> None:
    async with api_client(app) as client:
        response = await client.post("/v1/ask", json=body)

    problem = assert_problem(response, 422)
    assert problem["detail"].startswith("Invalid request (")
    assert field in problem["detail"]


async def test_malformed_json_is_a_422_problem(app: FastAPI) -> None:
    async with api_client(app) as client:
        response = await client.post(
            "/v1/ask", content=b'{"question": "disk', headers={"Content-Type": "application/json"}
        )

    assert_problem(response, 422)


async def test_unknown_route_is_a_404_problem(app: FastAPI) -> None:
    async with api_client(app) as client:
        response = await client.get("/v1/nothing-here")

    problem = assert_problem(response, 404)
    assert problem["detail"].startswith("No route GET /v1/nothing-here — ")  # and where the API is described


# /v1/ask with an LLM ----------------------------------------------------------------------------------

#: What the fake LLM writes: it cites excerpt [1], which exists, and [9], which does not.
LLM_ANSWER = (
    "Compare the replay position of each replica with the primary [1]. "
    "If replay is blocked by a long query on the replica, cancel it [9]."
)


#: A question that ends in one of these makes the fake LLM fail as a provider outage or as a bug.
PROVIDER_DOWN = " (provider down)"
LLM_BUG = " (llm bug)"


def _scripted_reply(messages: list[Message]) -> str:
    prompt = messages[-1].content
    if PROVIDER_DOWN in prompt:
        raise ProviderUnavailableError("fake provider is down", provider="fake", status=503)
    if LLM_BUG in prompt:
        raise RuntimeError("a bug in the provider adapter")
    return LLM_ANSWER


@dataclasses.dataclass
class LLMServer:
    app: FastAPI
    chat_model: FakeChatModel


@pytest.fixture(scope="module")
def llm_server(runbooks_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLMServer]:
    """An app that owns its backend, with FakeChatModel injected at the LLM seam."""
    fake = FakeChatModel(reply=_scripted_reply)
    app = create_app(serve_settings(copy_home(runbooks_home, tmp_path_factory, "serve-llm")), chat_model=fake)
    yield LLMServer(app, fake)
    app.state.service.jobs.shutdown()
    app.state.service.backend.close()


async def test_ask_with_an_llm_returns_its_answer_with_valid_citations_only(llm_server: LLMServer) -> None:
    async with api_client(llm_server.app) as client:
        info = (await client.get("/v1/info")).json()
        response = await client.post("/v1/ask", json={"question": COVERED_QUESTION})

    assert info["provider"] == "fake"
    assert response.status_code == 200
    data = response.json()
    assert set(data) == ANSWER_KEYS
    assert (data["provider"], data["model"], data["refused"], data["error"]) == ("fake", "fake", False, None)
    assert [c["number"] for c in data["citations"]] == [1]
    assert data["dropped_citations"] == [9]
    assert "[9]" not in data["answer"]
    assert "[1]" in data["answer"]
    assert data["usage"] == {"input_tokens": 10, "output_tokens": 5}
    call = llm_server.chat_model.calls[-1]
    assert call["stream"] is False
    assert COVERED_QUESTION in call["messages"][-1].content


async def test_ask_stream_sends_tokens_then_one_final_answer(llm_server: LLMServer) -> None:
    async with api_client(llm_server.app) as client:
        response = await client.post("/v1/ask", json={"question": COVERED_QUESTION, "stream": True})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    tokens = [event for event in events if event.event == "token"]
    assert len(tokens) > 1
    assert [event.event for event in events] == ["token"] * len(tokens) + ["answer"]
    streamed = "".join(event.json()["text"] for event in tokens)
    assert streamed == LLM_ANSWER  # what the model wrote, piece by piece

    answer = events[-1].json()
    assert set(answer) == ANSWER_KEYS
    assert answer["refused"] is False
    assert [c["number"] for c in answer["citations"]] == [1]
    assert answer["citations"][0]["source"] == REPLICATION_RUNBOOK
    # The final text is the streamed text with the made-up citation removed.
    assert without_citations(answer["answer"]) == without_citations(streamed)
    assert "[9]" in streamed
    assert "[9]" not in answer["answer"]
    assert answer["dropped_citations"] == [9]
    assert llm_server.chat_model.calls[-1]["stream"] is True


async def test_a_provider_outage_falls_back_to_quoting_the_runbooks(llm_server: LLMServer) -> None:
    async with api_client(llm_server.app) as client:
        before = (await client.get("/metrics")).text
        response = await client.post("/v1/ask", json={"question": COVERED_QUESTION + PROVIDER_DOWN})
        after = (await client.get("/metrics")).text

    assert response.status_code == 200
    data = response.json()
    assert (data["provider"], data["refused"]) == ("fake", False)
    assert data["error"] == "fake provider is down"
    assert data["answer"].startswith(FALLBACK_INTRO)
    assert data["citations"] == data["retrieved"]
    assert data["citations"][0]["source"] == REPLICATION_RUNBOOK

    def count(text: str, name: str, **labels: str) -> float:
        return metric_value(text, name, **labels) or 0.0

    assert (
        count(after, "opsmith_answers_total", outcome="fallback")
        == count(before, "opsmith_answers_total", outcome="fallback") + 1
    )
    assert (
        count(after, "opsmith_llm_errors_total", provider="fake")
        == count(before, "opsmith_llm_errors_total", provider="fake") + 1
    )


async def test_a_stream_that_fails_ends_with_one_error_event(llm_server: LLMServer) -> None:
    async with api_client(llm_server.app) as client:
        response = await client.post("/v1/ask", json={"question": COVERED_QUESTION + LLM_BUG, "stream": True})

    assert response.status_code == 200  # the stream had started: the failure is its last event
    events = parse_sse(response.text)
    assert [event.event for event in events] == ["error"]
    problem = events[0].json()
    assert set(problem) == {"type", "title", "status", "detail", "request_id"}
    # The id that finds the failure in the server log, as in every other problem document.
    assert problem["request_id"] == response.headers["x-request-id"]
    assert (problem["status"], problem["title"]) == (500, "Internal Server Error")
    assert problem["detail"].startswith("Internal error (RuntimeError)")
    assert "a bug in the provider adapter" not in problem["detail"]  # internals stay in the server log


async def test_llm_answers_are_counted_in_metrics(llm_server: LLMServer) -> None:
    async with api_client(llm_server.app) as client:
        before = (await client.get("/metrics")).text
        await client.post("/v1/ask", json={"question": COVERED_QUESTION})
        after = (await client.get("/metrics")).text

    def tokens(text: str, kind: str) -> float:
        return metric_value(text, "opsmith_llm_tokens_total", provider="fake", kind=kind) or 0.0

    assert tokens(after, "input") - tokens(before, "input") == 10
    assert tokens(after, "output") - tokens(before, "output") == 5
    generated = metric_value(after, "opsmith_generation_duration_seconds_count", provider="fake") or 0.0
    assert generated > (metric_value(before, "opsmith_generation_duration_seconds_count", provider="fake") or 0.0)


# /v1/search, collections, sources ---------------------------------------------------------------------


async def test_search_returns_ranked_chunks_like_the_library(app: FastAPI, backend: Backend) -> None:
    async with api_client(app) as client:
        response = await client.post("/v1/search", json={"query": "pgbouncer pool exhausted", "k": 3})

    assert response.status_code == 200
    data = response.json()
    assert (data["query"], data["collection"], data["mode"]) == ("pgbouncer pool exhausted", "runbooks", "hybrid")
    assert 1 <= len(data["results"]) <= 3
    best = data["results"][0]
    assert set(best) == {"source", "heading", "start_line", "end_line", "score", "relevance", "text"}
    assert best["source"] == "database/PgbouncerPoolExhausted.md"
    assert 1 <= best["start_line"] <= best["end_line"]
    scores = [hit["score"] for hit in data["results"]]
    assert scores == sorted(scores, reverse=True)
    assert data == backend.search("pgbouncer pool exhausted", k=3)


async def test_search_in_a_missing_collection_is_a_404_problem(app: FastAPI) -> None:
    async with api_client(app) as client:
        response = await client.post("/v1/search", json={"query": "disk", "collection": "nope"})

    assert assert_problem(response, 404)["detail"] == str(CollectionNotFoundError("nope"))


async def test_collections_lists_the_index(app: FastAPI, backend: Backend) -> None:
    async with api_client(app) as client:
        response = await client.get("/v1/collections")

    assert response.status_code == 200
    data = response.json()
    assert data["default_collection"] == "runbooks"
    assert data["location"] == str(backend.settings.index_path)
    runbooks = next(c for c in data["collections"] if c["name"] == "runbooks")
    assert runbooks["points"] > 20
    assert (runbooks["embedder"], runbooks["dimension"]) == ("all-MiniLM-L6-v2", 384)


async def test_sources_lists_every_indexed_runbook(app: FastAPI) -> None:
    expected = {
        path.relative_to(RUNBOOKS_DIR).as_posix()
        for path in RUNBOOKS_DIR.rglob("*")
        if path.is_file() and path.suffix.lower() in SUPPORTED_SUFFIXES
    }
    async with api_client(app) as client:
        response = await client.get("/v1/collections/runbooks/sources")
        missing = await client.get("/v1/collections/nope/sources")

    assert response.status_code == 200
    data = response.json()
    assert data["collection"] == "runbooks"
    assert {row["source"] for row in data["sources"]} == expected
    assert all(row["chunks"] >= 1 for row in data["sources"])
    assert assert_problem(missing, 404)["detail"] == str(CollectionNotFoundError("nope"))


async def test_a_cited_runbook_opens_on_sections_that_cover_the_citation(app: FastAPI) -> None:
    async with api_client(app) as client:
        answer = (await client.post("/v1/ask", json={"question": COVERED_QUESTION})).json()
        citation = answer["citations"][0]
        response = await client.get(f"/v1/collections/runbooks/sources/{citation['source']}")

    assert response.status_code == 200
    view = response.json()
    assert (view["collection"], view["source"]) == ("runbooks", citation["source"])
    assert view["title"] == "PostgresReplicationLag"
    sections = view["sections"]
    assert sections
    assert all(s["start_line"] <= s["end_line"] for s in sections)
    starts = [s["start_line"] for s in sections]
    assert starts == sorted(starts)

    # The citation lies inside the runbook, on consecutive sections that together cover it.
    covering = [
        s for s in sections if s["start_line"] <= citation["end_line"] and citation["start_line"] <= s["end_line"]
    ]
    assert covering
    assert covering[0]["start_line"] <= citation["start_line"] <= citation["end_line"] <= covering[-1]["end_line"]
    # And it points at the lines it quotes: the cited excerpt's first line is that line of the file.
    original_lines = (RUNBOOKS_DIR / citation["source"]).read_text(encoding="utf-8").splitlines()
    assert original_lines[citation["start_line"] - 1].strip()

    # Line numbers are the original file's: each section's first line sits inside its range there.
    original = (RUNBOOKS_DIR / citation["source"]).read_text(encoding="utf-8").splitlines()
    for section in sections:
        first_line = next(line for line in section["text"].splitlines() if line.strip())
        assert first_line in original[section["start_line"] - 1 : section["end_line"]], section


async def test_an_unknown_source_is_a_404_problem(app: FastAPI) -> None:
    async with api_client(app) as client:
        response = await client.get("/v1/collections/runbooks/sources/database/NoSuchRunbook.md")

    problem = assert_problem(response, 404)
    assert problem["detail"] == str(SourceNotFoundError("runbooks", "database/NoSuchRunbook.md"))


# /v1/review ---------------------------------------------------------------------------------------------


async def test_review_of_a_vulnerable_module_fails_on_critical(app: FastAPI, backend: Backend) -> None:
    files = _terraform("vulnerable")
    async with api_client(app) as client:
        response = await client.post("/v1/review", json={"files": files, "fail_on": "critical"})

    assert response.status_code == 200
    data = response.json()
    assert set(data) == {"security", "cost", "correctness", "summary"}
    assert data["security"]
    assert data["cost"]
    assert data["correctness"]
    summary = data["summary"]
    assert summary["failed"] is True
    assert summary["fail_on"] == "critical"
    assert summary["critical"] >= 1
    assert summary["files"] == sorted(files)
    assert summary["skipped"] == []
    findings = data["security"] + data["cost"] + data["correctness"]
    assert summary["critical"] == sum(f["severity"] == "critical" for f in findings)
    assert summary["warning"] == sum(f["severity"] == "warning" for f in findings)
    # The findings `opsmith review --json` prints for the same files.
    library = review_files(files, settings=backend.settings, use_llm=False).to_dict()
    assert {key: data[key] for key in ("security", "cost", "correctness")} == library


async def test_review_fail_on_none_never_fails(app: FastAPI) -> None:
    async with api_client(app) as client:
        response = await client.post("/v1/review", json={"files": _terraform("vulnerable"), "fail_on": "none"})

    summary = response.json()["summary"]
    assert summary["critical"] >= 1
    assert summary["failed"] is False


async def test_review_of_a_clean_module_passes(app: FastAPI) -> None:
    async with api_client(app) as client:
        response = await client.post("/v1/review", json={"files": _terraform("clean")})

    assert response.status_code == 200
    summary = response.json()["summary"]
    assert (summary["failed"], summary["critical"], summary["fail_on"]) == (False, 0, "critical")


@pytest.mark.parametrize("name", ["../x.tf", "/etc/x.tf", "modules/../../x.tf"])
async def test_review_refuses_file_names_that_leave_the_module(app: FastAPI, name: str) -> None:
    async with api_client(app) as client:
        response = await client.post("/v1/review", json={"files": {name: 'resource "null_resource" "x" {}\n'}})

    problem = assert_problem(response, 400)
    assert name in problem["detail"]


# /v1/alerts/alertmanager -------------------------------------------------------------------------------

WEBHOOK_ENV = "OPSMITH_TEST_ALERT_WEBHOOK"
WEBHOOK_SECRET_PATH = "/services/T0123/B0456/s3cr3tHookPathXyZ"


def _alert_payload() -> dict[str, Any]:
    """One firing alert whose runbook_url names an indexed runbook, and one resolved alert."""
    return {
        "version": "4",
        "status": "firing",
        "receiver": "opsmith",
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "PostgresReplicationLag", "severity": "critical", "instance": "db-2"},
                "annotations": {
                    "summary": "Replica db-2 is 90 seconds behind the primary.",
                    "runbook_url": f"https://git.example.com/sre/runbooks/blob/main/{REPLICATION_RUNBOOK}",
                },
                "startsAt": "2024-05-01T10:00:00Z",
                "fingerprint": "a1b2c3d4e5f60718",
            },
            {
                "status": "resolved",
                "labels": {"alertname": "CheckoutHighLatency", "severity": "warning"},
                "annotations": {"summary": "Checkout p99 latency is above 2s."},
                "fingerprint": "0f0e0d0c0b0a0908",
            },
        ],
    }


async def test_alertmanager_answers_firing_alerts_from_their_runbook(app: FastAPI) -> None:
    async with api_client(app) as client:
        response = await client.post("/v1/alerts/alertmanager", json=_alert_payload())
        metrics = (await client.get("/metrics")).text

    assert response.status_code == 200, response.text
    data = response.json()
    assert data["resolved"] == 1
    assert (data["notified"], data["notify_error"]) == (None, None)  # no webhook configured
    assert len(data["alerts"]) == 1
    alert = data["alerts"][0]
    assert alert["alertname"] == "PostgresReplicationLag"
    assert alert["status"] == "firing"
    assert alert["runbook"] == REPLICATION_RUNBOOK
    answer = alert["answer"]
    assert answer["refused"] is False
    assert answer["citations"]
    assert {c["source"] for c in answer["citations"]} == {REPLICATION_RUNBOOK}
    assert metric_value(metrics, "opsmith_alerts_total", status="firing") == 1
    assert metric_value(metrics, "opsmith_alerts_total", status="resolved") == 1


async def test_alert_answers_are_posted_to_the_webhook(
    make_app: AppFactory, webhook_receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(WEBHOOK_ENV, webhook_receiver.url + WEBHOOK_SECRET_PATH)
    app = make_app(alert_webhook_env=WEBHOOK_ENV)
    async with api_client(app) as client:
        response = await client.post("/v1/alerts/alertmanager", json=_alert_payload())

    assert response.status_code == 200, response.text
    data = response.json()
    assert (data["notified"], data["notify_error"]) == (True, None)
    assert len(webhook_receiver.requests) == 1
    path, body = webhook_receiver.requests[0]
    assert path == WEBHOOK_SECRET_PATH
    assert isinstance(body["text"], str)
    assert "PostgresReplicationLag" in body["text"]
    assert isinstance(body["blocks"], list)
    assert body["blocks"]
    assert "PostgresReplicationLag" in json.dumps(body["blocks"])
    assert "CheckoutHighLatency" not in json.dumps(body)  # resolved alerts are not answered


async def test_a_failing_webhook_is_reported_without_its_url(
    make_app: AppFactory, webhook_receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    webhook_receiver.status = 500
    url = webhook_receiver.url + WEBHOOK_SECRET_PATH
    monkeypatch.setenv(WEBHOOK_ENV, url)
    app = make_app(alert_webhook_env=WEBHOOK_ENV)
    async with api_client(app) as client:
        response = await client.post("/v1/alerts/alertmanager", json=_alert_payload())
        metrics = (await client.get("/metrics")).text

    assert response.status_code == 200, response.text
    data = response.json()
    assert data["notified"] is False
    assert data["notify_error"]
    assert "HTTP 500" in data["notify_error"]
    assert "s3cr3tHookPathXyZ" not in data["notify_error"]
    assert webhook_receiver.url not in data["notify_error"]
    assert len(data["alerts"]) == 1  # the answers are still returned
    assert len(webhook_receiver.requests) == 1  # a 5xx is not retried: the message may have been posted
    assert metric_value(metrics, "opsmith_alert_webhook_errors_total") == 1


@pytest.mark.parametrize(
    "alert",
    [
        {},
        {"labels": {"alertname": "X"}},
        {"labels": {"severity": "critical"}},
        {"labels": {"alertname": "TestAlert", "severity": "warning", "namespace": "prod", "instance": "db-2"}},
        {"labels": {"alertname": "X"}, "annotations": {"summary": "Alert firing.", "description": "critical"}},
    ],
    ids=["no-labels", "name-x", "only-severity", "generic-name-and-where", "generic-annotations"],
)
async def test_an_alert_that_says_nothing_specific_is_refused_not_answered(app: FastAPI, alert: dict[str, Any]) -> None:
    """Today's main answered these from whichever runbook mentions alerts and severities most."""
    async with api_client(app) as client:
        response = await client.post("/v1/alerts/alertmanager", json={"alerts": [alert]})

    assert response.status_code == 200, response.text
    [result] = response.json()["alerts"]
    answer = result["answer"]
    assert set(answer) == ANSWER_KEYS
    assert answer["refused"] is True
    assert answer["answer"] == REFUSAL
    assert answer["citations"] == []


async def test_specific_alerts_in_the_same_batch_are_still_answered(app: FastAPI) -> None:
    payload = {
        "alerts": [
            {"labels": {"alertname": "X"}},
            {
                "labels": {"alertname": "PostgresReplicationLag", "severity": "critical"},
                "annotations": {"summary": "Replica db-2 is far behind the primary."},
            },
        ]
    }
    async with api_client(app) as client:
        response = await client.post("/v1/alerts/alertmanager", json=payload)

    vague, specific = response.json()["alerts"]
    assert vague["answer"]["refused"] is True
    assert specific["answer"]["refused"] is False
    assert {c["source"] for c in specific["answer"]["citations"]} == {REPLICATION_RUNBOOK}


# /metrics ---------------------------------------------------------------------------------------------------


async def test_metrics_count_requests_answers_and_retrieval(app: FastAPI) -> None:
    async with api_client(app) as client:
        before = (await client.get("/metrics")).text
        await client.post("/v1/ask", json={"question": COVERED_QUESTION})
        await client.post("/v1/ask", json={"question": UNCOVERED_QUESTION})
        await client.post("/v1/search", json={"query": "disk full"})
        response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    text = response.text
    assert metric_value(text, "opsmith_http_requests_total", method="POST", route="/v1/ask", status="200") == 2
    assert metric_value(text, "opsmith_http_request_duration_seconds_count", method="POST", route="/v1/ask") == 2
    assert metric_value(text, "opsmith_http_request_duration_seconds_bucket", route="/v1/ask", le="+Inf") == 2
    assert metric_value(text, "opsmith_answers_total", outcome="answered") == 1
    assert metric_value(text, "opsmith_answers_total", outcome="refused") == 1
    # Two answers and one search each retrieved once.
    retrievals = metric_value(text, "opsmith_retrieval_duration_seconds_count")
    assert retrievals == (metric_value(before, "opsmith_retrieval_duration_seconds_count") or 0) + 3
    assert metric_value(text, "opsmith_build_info", version=__version__) == 1


async def test_metrics_label_routes_by_template_not_by_raw_path(app: FastAPI) -> None:
    job_id = "0123456789abcdef"
    async with api_client(app) as client:
        missing = await client.get(f"/v1/jobs/{job_id}")
        await client.get("/no/such/page/7f3a9c")
        text = (await client.get("/metrics")).text

    assert assert_problem(missing, 404)["detail"] == str(JobNotFoundError(job_id))
    assert metric_value(text, "opsmith_http_requests_total", method="GET", route="/v1/jobs/{job_id}", status="404")
    assert metric_value(text, "opsmith_http_requests_total", route="unmatched", status="404") == 1
    routes = {labels["route"] for labels in metric_labels(text, "opsmith_http_requests_total")}
    assert not any(job_id in route or "7f3a9c" in route for route in routes), routes


async def test_metrics_label_requests_refused_before_routing_by_template(make_app: AppFactory) -> None:
    """A 401 (or 413, 429) is answered by the middleware before routing: a scanner sending random
    ids without a token must not create one time series per URL."""
    app = make_app(api_tokens=TOKENS_SETTING)
    async with api_client(app) as client:
        for job_id in ("aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"):
            assert (await client.get(f"/v1/jobs/{job_id}")).status_code == 401
        text = (await client.get("/metrics")).text

    routes = {labels["route"] for labels in metric_labels(text, "opsmith_http_requests_total")}
    assert not any("aaaaaaaa" in route or "bbbbbbbb" in route for route in routes), routes


def _series(exposition: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


async def test_unknown_methods_and_unmatched_paths_add_no_metrics_series(make_app: AppFactory) -> None:
    """Today's main labelled each request with its raw method: 100 invented methods made 100 series."""
    app = make_app(api_tokens=TOKENS_SETTING)
    async with api_client(app) as client:
        for method, path in (("BREW", "/pot"), ("BREW", "/v1/pot"), ("BREW", "/healthz"), ("GET", "/metrics")):
            await client.request(method, path)
        before = _series((await client.get("/metrics")).text)
        statuses = set()
        for i in range(100):
            for method, path in ((f"Q{i}X", f"/scan/{i}/x.php"), (f"M{i}", f"/v1/scan/{i}"), (f"P{i}", "/healthz")):
                statuses.add((await client.request(method, path)).status_code)
        after = _series((await client.get("/metrics")).text)

    assert statuses == {401, 404, 405}
    assert after == before
    methods = {dict(labels).get("method") for name, labels in after if name == "opsmith_http_requests_total"}
    assert methods == {"GET", "other"}


# Health and readiness -------------------------------------------------------------------------------------


async def test_health_and_readiness_of_a_warm_server(app: FastAPI) -> None:
    async with api_client(app) as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")

    assert health.status_code == 200
    assert health.json() == {"status": "ok", "version": __version__}
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}


async def test_a_fresh_server_is_live_but_not_ready_until_warm_up_ends(tmp_path: Path) -> None:
    app = create_app(serve_settings(tmp_path / "fresh-home"))
    try:
        async with api_client(app) as client:
            loading = await client.get("/readyz")
            health = await client.get("/healthz")
            assert loading.status_code == 503
            assert loading.json() == {"status": "loading"}
            assert health.status_code == 200

            # Starting the app (its lifespan) warms the backend up in the background.
            async with app.router.lifespan_context(app):
                with anyio.fail_after(60):
                    while (ready := await client.get("/readyz")).status_code != 200:
                        await anyio.sleep(0.05)
            assert ready.json() == {"status": "ready"}
    finally:
        app.state.service.backend.close()


# The web UI ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/review"])
async def test_ui_pages_are_html_with_a_content_security_policy(app: FastAPI, path: str) -> None:
    async with api_client(app) as client:
        response = await client.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "<html" in response.text.lower()


async def test_static_files_are_served_and_counted_under_one_label(app: FastAPI) -> None:
    async with api_client(app) as client:
        response = await client.get("/static/app.css")
        missing = await client.get("/static/no-such-file.css")
        exposition = (await client.get("/metrics")).text

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert response.text == (STATIC_DIR / "app.css").read_text(encoding="utf-8")
    assert missing.status_code == 404
    routes = {labels["route"] for labels in metric_labels(exposition, "opsmith_http_requests_total")}
    assert "/static" in routes
    assert not any("app.css" in route or "no-such-file" in route for route in routes)


async def test_api_responses_carry_no_page_policy_but_do_carry_nosniff(app: FastAPI) -> None:
    async with api_client(app) as client:
        response = await client.get("/v1/info")

    assert "content-security-policy" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"
