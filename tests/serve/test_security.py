"""Who may call the service and how much: bearer tokens, read-only tokens, the rate limit, the
body size limit, request ids, CORS, and what reaches the logs.

The security pieces are tested as units (tokens, loopback detection, the token bucket on an
injected clock) and through the real app in-process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from servetools import (
    COVERED_QUESTION,
    READ_TOKEN,
    TOKEN,
    TOKENS_SETTING,
    AppFactory,
    Receiver,
    api_client,
    assert_problem,
    serve_settings,
)

from opsmith.errors import (
    AuthenticationError,
    ConfigError,
    PermissionDeniedError,
    RateLimitedError,
    RequestTooLargeError,
)
from opsmith.serve.security import (
    MIN_TOKEN_LENGTH,
    Authenticator,
    RateLimiter,
    auth_required,
    is_loopback,
    parse_tokens,
)

pytestmark = pytest.mark.anyio


def _fingerprint(token: str) -> str:
    return "tok-" + hashlib.sha256(token.encode()).hexdigest()[:8]


# Tokens (units) ------------------------------------------------------------------------------------------


def test_tokens_parse_with_scope_and_a_fingerprint_for_logs() -> None:
    full, read = parse_tokens([SecretStr(TOKEN), SecretStr(f" {READ_TOKEN}:read ")])

    assert (full.id, full.read_only, full.secret) == (_fingerprint(TOKEN), False, TOKEN.encode())
    assert (read.id, read.read_only, read.secret) == (_fingerprint(READ_TOKEN), True, READ_TOKEN.encode())
    assert re.fullmatch(r"tok-[0-9a-f]{8}", full.id)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("x" * (MIN_TOKEN_LENGTH - 1), "shorter than 16 characters"),
        ("x" * (MIN_TOKEN_LENGTH - 1) + ":read", "shorter than 16 characters"),
        (TOKEN + ":admin", "unknown scope"),
    ],
)
def test_unusable_tokens_are_refused_without_echoing_them(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_tokens([SecretStr(TOKEN), SecretStr(value)])

    assert "#2" in str(caught.value)  # says which one, by position
    assert value.split(":")[0] not in str(caught.value)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("opsmith.internal", False),
    ],
)
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("api_auth", "tokens", "host", "required"),
    [
        ("auto", "", "127.0.0.1", False),
        ("auto", TOKEN, "127.0.0.1", True),
        ("auto", "", "0.0.0.0", True),
        ("off", TOKEN, "0.0.0.0", False),
        ("on", TOKEN, "127.0.0.1", True),
    ],
)
def test_when_auth_is_required(api_auth: str, tokens: str, host: str, required: bool, tmp_path: Path) -> None:
    settings = serve_settings(tmp_path / "home", api_auth=api_auth, api_tokens=tokens)
    assert auth_required(settings, host) is required


def test_authenticator_accepts_only_a_known_bearer_token() -> None:
    authenticator = Authenticator(parse_tokens([SecretStr(TOKEN)]), required=True)

    assert authenticator.identify(f"Bearer {TOKEN}").id == _fingerprint(TOKEN)  # type: ignore[union-attr]
    assert authenticator.identify(f"bearer  {TOKEN} ") is not None
    for header in (None, "", "Bearer", "Bearer   ", f"Basic {TOKEN}", f"Token {TOKEN}", f"Bearer {TOKEN}x", TOKEN):
        with pytest.raises(AuthenticationError):
            authenticator.identify(header)
    assert Authenticator([], required=False).identify(None) is None


def test_required_auth_without_tokens_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="OPSMITH_API_TOKENS"):
        Authenticator([], required=True)


# Rate limiter (units, on an injected clock) --------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_allows_a_burst_then_refills_continuously() -> None:
    clock = Clock()
    limiter = RateLimiter(60, clock=clock)  # one request a second, bursts of 60

    for _ in range(60):
        limiter.check("a")
    with pytest.raises(RateLimitedError) as caught:
        limiter.check("a")
    assert caught.value.retry_after == pytest.approx(1.0)

    clock.now += 0.5
    with pytest.raises(RateLimitedError) as caught:
        limiter.check("a")
    assert caught.value.retry_after == pytest.approx(0.5)

    clock.now += 0.5
    limiter.check("a")  # one request's worth refilled
    with pytest.raises(RateLimitedError):
        limiter.check("a")


def test_rate_limiter_buckets_are_per_key_and_capped() -> None:
    clock = Clock()
    limiter = RateLimiter(3, clock=clock)
    for _ in range(3):
        limiter.check("a")
    with pytest.raises(RateLimitedError):
        limiter.check("a")
    for _ in range(3):
        limiter.check("b")  # another key has its own bucket

    clock.now += 3600  # an hour idle refills to the burst size, not beyond
    for _ in range(3):
        limiter.check("a")
    with pytest.raises(RateLimitedError):
        limiter.check("a")


def test_rate_limit_zero_is_off() -> None:
    limiter = RateLimiter(0, clock=Clock())
    for _ in range(1000):
        limiter.check("a")


# Auth through the app ------------------------------------------------------------------------------------


async def test_auth_is_off_on_loopback_without_tokens(app: FastAPI) -> None:
    async with api_client(app) as client:
        info = await client.get("/v1/info")
        collections = await client.get("/v1/collections")

    assert info.json()["auth_required"] is False
    assert collections.status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-0123456789abcdef", f"Basic {TOKEN}", f"Token {TOKEN}", "Bearer "],
    ids=["missing", "unknown", "basic-scheme", "other-scheme", "empty"],
)
async def test_without_a_valid_bearer_token_api_calls_are_401(make_app: AppFactory, authorization: str | None) -> None:
    app = make_app(api_tokens=TOKENS_SETTING)
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with api_client(app, headers=headers) as client:
        response = await client.get("/v1/collections")

    problem = assert_problem(response, 401)
    assert response.headers["www-authenticate"] == 'Bearer realm="opsmith"'
    assert problem["type"] == "urn:opsmith:error:AuthenticationError"
    assert "send 'Authorization: Bearer TOKEN'" in problem["detail"]  # the remedy


async def test_a_valid_token_is_accepted(make_app: AppFactory) -> None:
    app = make_app(api_tokens=TOKENS_SETTING)
    async with api_client(app, token=TOKEN) as client:
        info = await client.get("/v1/info")
        collections = await client.get("/v1/collections")
        ask = await client.post("/v1/ask", json={"question": COVERED_QUESTION})

    assert info.json()["auth_required"] is True
    assert collections.status_code == 200
    assert ask.status_code == 200
    assert ask.json()["citations"]


@pytest.mark.parametrize("path", ["/v1/info", "/healthz", "/readyz", "/metrics", "/"])
async def test_info_health_metrics_and_pages_need_no_token(make_app: AppFactory, path: str) -> None:
    app = make_app(api_tokens=TOKENS_SETTING)
    async with api_client(app) as client:
        response = await client.get(path)

    assert response.status_code == 200


async def test_a_read_only_token_can_ask_but_not_ingest(make_app: AppFactory) -> None:
    app = make_app(api_tokens=TOKENS_SETTING)
    async with api_client(app, token=READ_TOKEN) as client:
        ask = await client.post("/v1/ask", json={"question": COVERED_QUESTION})
        ingest = await client.post("/v1/ingest", files=[("files", ("new.md", b"# New\n\nText.\n"))])
        jobs = await client.get("/v1/jobs")

    assert ask.status_code == 200
    problem = assert_problem(ingest, 403)
    assert problem["detail"] == str(PermissionDeniedError("ingest runbooks"))
    assert jobs.json() == {"jobs": []}  # nothing was queued


async def test_binding_all_interfaces_without_tokens_refuses_to_start(make_app: AppFactory) -> None:
    with pytest.raises(ConfigError, match="OPSMITH_API_TOKENS"):
        make_app(host="0.0.0.0")

    app = make_app(host="0.0.0.0", api_tokens=TOKEN)
    async with api_client(app) as client:
        assert (await client.get("/v1/info")).json()["auth_required"] is True
        assert (await client.get("/v1/collections")).status_code == 401


async def test_forced_auth_without_tokens_refuses_to_start(make_app: AppFactory) -> None:
    with pytest.raises(ConfigError, match="OPSMITH_API_TOKENS"):
        make_app(api_auth="on")


async def test_a_short_token_refuses_to_start(make_app: AppFactory) -> None:
    short = "short-tok3n"
    with pytest.raises(ConfigError, match="shorter than 16") as caught:
        make_app(api_tokens=f"{TOKEN},{short}")
    assert short not in str(caught.value)


# Rate limit through the app -------------------------------------------------------------------------------


async def test_the_request_over_the_rate_limit_is_a_429_problem_with_retry_after(make_app: AppFactory) -> None:
    app = make_app(rate_limit_per_minute=3)
    async with api_client(app) as client:
        allowed = [await client.get("/v1/jobs") for _ in range(3)]
        limited = await client.get("/v1/jobs")
        info = await client.get("/v1/info")
        health = await client.get("/healthz")

    assert [r.status_code for r in allowed] == [200, 200, 200]
    problem = assert_problem(limited, 429)
    assert problem["detail"].startswith("Rate limit of 3 requests per minute reached — retry in ")
    retry_after = int(limited.headers["retry-after"])
    assert 1 <= retry_after <= 20  # a third of a minute refills one request
    assert problem["detail"] == str(RateLimitedError(3, retry_after))
    # What load balancers and clients use to find the server is not limited.
    assert info.status_code == 200
    assert health.status_code == 200


async def test_each_token_has_its_own_rate_limit_bucket(make_app: AppFactory) -> None:
    app = make_app(api_tokens=TOKENS_SETTING, rate_limit_per_minute=2)
    async with api_client(app, token=TOKEN) as first, api_client(app, token=READ_TOKEN) as second:
        assert [(await first.get("/v1/jobs")).status_code for _ in range(3)] == [200, 200, 429]
        assert [(await second.get("/v1/jobs")).status_code for _ in range(3)] == [200, 200, 429]


async def test_without_auth_each_client_address_has_its_own_bucket(make_app: AppFactory) -> None:
    app = make_app(rate_limit_per_minute=1)
    async with api_client(app, client_ip="127.0.0.1") as one, api_client(app, client_ip="127.0.0.2") as two:
        assert [(await one.get("/v1/jobs")).status_code for _ in range(2)] == [200, 429]
        assert (await two.get("/v1/jobs")).status_code == 200


# Body size limit --------------------------------------------------------------------------------------------

BODY_LIMIT = 256


async def test_a_body_over_the_limit_is_a_413_problem(make_app: AppFactory) -> None:
    app = make_app(max_request_bytes=BODY_LIMIT)
    async with api_client(app) as client:
        small = await client.post("/v1/search", json={"query": "disk full"})
        large = await client.post("/v1/search", json={"query": "disk full " * 100})

    assert small.status_code == 200
    assert int(large.request.headers["content-length"]) > BODY_LIMIT
    problem = assert_problem(large, 413)
    assert problem["detail"] == str(RequestTooLargeError(BODY_LIMIT))


async def test_a_chunked_body_over_the_limit_is_a_413_problem(make_app: AppFactory) -> None:
    app = make_app(max_request_bytes=BODY_LIMIT)

    async def body() -> AsyncIterator[bytes]:
        yield b'{"query": "'
        for _ in range(20):
            yield b"disk full " * 4
        yield b'"}'

    async with api_client(app) as client:
        response = await client.post("/v1/search", content=body(), headers={"Content-Type": "application/json"})

    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_problem(response, 413)


async def test_a_chunked_body_under_the_limit_is_read_whole(make_app: AppFactory) -> None:
    app = make_app(max_request_bytes=BODY_LIMIT)

    async def body() -> AsyncIterator[bytes]:
        for piece in (b'{"query": ', b'"disk ', b'full", "k": 2}'):
            yield piece

    async with api_client(app) as client:
        response = await client.post("/v1/search", content=body(), headers={"Content-Type": "application/json"})

    assert response.status_code == 200, response.text
    assert response.json()["query"] == "disk full"
    assert len(response.json()["results"]) == 2


async def test_an_upload_over_the_limit_queues_no_job(make_app: AppFactory) -> None:
    app = make_app(max_request_bytes=1024)
    async with api_client(app) as client:
        response = await client.post("/v1/ingest", files=[("files", ("big.md", b"# Big\n\n" + b"x" * 4096))])
        jobs = await client.get("/v1/jobs")

    assert_problem(response, 413)
    assert jobs.json() == {"jobs": []}


# Request ids -------------------------------------------------------------------------------------------------


async def test_a_plain_client_request_id_is_echoed(app: FastAPI) -> None:
    async with api_client(app, headers={"X-Request-ID": "deploy-42.retry:1_a"}) as client:
        ok = await client.get("/v1/info")
        problem = await client.post("/v1/ask", json={"question": ""})

    assert ok.headers["x-request-id"] == "deploy-42.retry:1_a"
    assert assert_problem(problem, 422)["request_id"] == "deploy-42.retry:1_a"


@pytest.mark.parametrize(
    "given",
    ["abc\n", "abc\r\nX-Injected: 1", "a" * 65, "two words", "id;drop", "ïd".encode(), ""],
    ids=["trailing-newline", "crlf", "too-long", "space", "semicolon", "non-ascii", "empty"],
)
async def test_a_junk_client_request_id_is_replaced(app: FastAPI, given: str | bytes) -> None:
    async with api_client(app, headers={"X-Request-ID": given}) as client:
        response = await client.get("/v1/info")

    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"]), response.headers["x-request-id"]


async def test_every_response_has_a_unique_request_id(app: FastAPI) -> None:
    async with api_client(app) as client:
        ids = {(await client.get(path)).headers["x-request-id"] for path in ("/v1/info", "/healthz", "/nope") * 3}

    assert len(ids) == 9


# CORS ----------------------------------------------------------------------------------------------------------


async def test_cors_is_off_by_default(app: FastAPI) -> None:
    async with api_client(app, headers={"Origin": "https://ui.example"}) as client:
        response = await client.get("/v1/info")
        preflight = await client.options("/v1/ask", headers={"Access-Control-Request-Method": "POST"})

    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-origin" not in preflight.headers


async def test_cors_allows_only_the_configured_origins(make_app: AppFactory) -> None:
    app = make_app(cors_origins="https://ui.example", api_tokens=TOKENS_SETTING)
    preflight_headers = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    async with api_client(app) as client:
        # A preflight carries no credentials: it must pass without a token.
        allowed = await client.options("/v1/ask", headers={"Origin": "https://ui.example", **preflight_headers})
        other = await client.options("/v1/ask", headers={"Origin": "https://evil.example", **preflight_headers})
        simple = await client.get("/v1/info", headers={"Origin": "https://ui.example"})

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://ui.example"
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert other.headers.get("access-control-allow-origin") != "https://evil.example"
    assert simple.headers["access-control-allow-origin"] == "https://ui.example"
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()


# Logs -------------------------------------------------------------------------------------------------------------

OPENAI_KEY = "sk-proj-0penAIs3cretKEYvalue0123456789"
ANTHROPIC_KEY = "sk-ant-api03-anthr0picS3cretKEY0123456789"
WRONG_TOKEN = "guessed-token-that-is-also-secret-987"
WEBHOOK_ENV = "OPSMITH_TEST_ALERT_WEBHOOK"
WEBHOOK_PATH = "/services/T0SECRET/B0SECRET/XoXoWebhookS3cretPath"


def _access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "opsmith.access"]


async def test_logs_hold_no_secrets_and_access_lines_are_json(
    make_app: AppFactory, webhook_receiver: Receiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    webhook_receiver.status = 500  # the failure is logged: its message must not hold the URL
    webhook_url = webhook_receiver.url + WEBHOOK_PATH
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv(WEBHOOK_ENV, webhook_url)
    caplog.set_level(logging.DEBUG)
    app = make_app(api_tokens=TOKENS_SETTING, alert_webhook_env=WEBHOOK_ENV)
    alert = {
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "PostgresReplicationLag"},
                "annotations": {"summary": "Replica db-2 is far behind the primary."},
            }
        ]
    }

    async with api_client(app) as anonymous:
        assert (await anonymous.get("/v1/collections")).status_code == 401
        wrong = await anonymous.get("/v1/jobs", headers={"Authorization": f"Bearer {WRONG_TOKEN}"})
        assert wrong.status_code == 401
    async with api_client(app, token=READ_TOKEN) as reader:
        assert (await reader.post("/v1/ingest", files=[("files", ("a.md", b"# A\n"))])).status_code == 403
    async with api_client(app, token=TOKEN, headers={"X-Request-ID": "ask-1"}) as client:
        ask = await client.post("/v1/ask", json={"question": COVERED_QUESTION})
        alerted = await client.post("/v1/alerts/alertmanager", json=alert)
        missing = await client.post("/v1/ask", json={"question": COVERED_QUESTION, "collection": "nope"})

    assert ask.status_code == 200
    assert alerted.json()["notified"] is False
    assert missing.status_code == 404
    assert len(webhook_receiver.requests) == 1

    secrets = [TOKEN, READ_TOKEN, WRONG_TOKEN, OPENAI_KEY, ANTHROPIC_KEY, webhook_url, WEBHOOK_PATH]
    leaked = [secret for secret in secrets if secret in caplog.text]
    assert not leaked, f"secrets in the logs: {leaked}\n{caplog.text}"

    lines = _access_lines(caplog)
    assert len(lines) == 6
    for line in lines:
        assert {"request_id", "method", "path", "route", "status", "duration_ms", "token"} <= set(line)
        assert isinstance(line["duration_ms"], int | float)
        assert line["duration_ms"] >= 0
    by_request = {(line["method"], line["path"], line["status"]): line for line in lines}
    asked = by_request[("POST", "/v1/ask", 200)]
    assert asked["route"] == "/v1/ask"
    assert asked["request_id"] == "ask-1" == ask.headers["x-request-id"]
    assert asked["token"] == _fingerprint(TOKEN)
    assert by_request[("POST", "/v1/ingest", 403)]["token"] == _fingerprint(READ_TOKEN)
    assert by_request[("GET", "/v1/collections", 401)]["token"] is None
    assert by_request[("GET", "/v1/jobs", 401)]["token"] is None
