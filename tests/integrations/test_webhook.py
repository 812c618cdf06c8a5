"""The Slack-compatible webhook: the message built from alert answers, and its delivery.

Delivery runs against a real HTTP server on loopback, so the bytes on the wire are checked.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsmith.config import load_settings
from opsmith.errors import OpsmithError
from opsmith.integrations.webhook import (
    SLACK_MAX_BLOCKS,
    SLACK_SECTION_LIMIT,
    WEBHOOK_SETTING,
    hide_webhook_requests,
    notify,
    post_webhook,
    slack_message,
)
from opsmith.schemas import AlertAnswer

# --- Slack --------------------------------------------------------------------------------------


def _answered(**overrides: Any) -> AlertAnswer:
    values: dict[str, Any] = {
        "alertname": "KubePodCrashLooping",
        "fingerprint": "c6eadffa33fcdf37",
        "status": "firing",
        "question": "Alert KubePodCrashLooping: ... What should on-call check and do?",
        "runbook": "kubernetes/KubePodCrashLooping.md",
        "answer": {
            "answer": "## First\nRun **kubectl logs --previous** [1] and check `limits` <memory> & restarts [2].",
            "refused": False,
            "citations": [
                {
                    "source": "kubernetes/KubePodCrashLooping.md",
                    "heading": "Diagnosis",
                    "start_line": 12,
                    "end_line": 30,
                    "number": 1,
                },
                {"source": "kubernetes/oom.md", "heading": "OOMKilled", "start_line": 5, "end_line": 5, "number": 2},
            ],
            "error": None,
        },
    }
    values.update(overrides)
    return AlertAnswer(**values)


def _texts(message: dict[str, Any]) -> list[str]:
    out = []
    for block in message["blocks"]:
        if block["type"] == "section":
            out.append(block["text"]["text"])
        elif block["type"] == "context":
            out.extend(element["text"] for element in block["elements"])
    return out


def test_the_slack_body_has_a_fallback_and_a_section_per_part_of_each_alert() -> None:
    refused = _answered(
        alertname="NodeDiskPressure",
        fingerprint=None,
        runbook=None,
        answer={"answer": "Not in the runbooks: …", "refused": True, "citations": [], "error": None},
    )
    message = slack_message([_answered(), refused], external_url="http://alertmanager:9093/?a=1&b=2")

    assert set(message) == {"text", "blocks"}
    assert message["text"] == (
        "opsmith: 2 alerts — KubePodCrashLooping (firing): answered with 2 citations;"
        " NodeDiskPressure (firing): not in the runbooks"
    )
    assert {block["type"] for block in message["blocks"]} <= {"section", "divider", "context"}
    for block in message["blocks"]:
        if block["type"] == "section":
            assert block["text"]["type"] == "mrkdwn"

    texts = _texts(message)
    joined = "\n".join(texts)
    assert "*KubePodCrashLooping* · firing" in joined
    assert "Runbook: `kubernetes/KubePodCrashLooping.md`" in joined
    # Markdown bold and headings become Slack bold; inline code survives.
    assert "*First*\nRun *kubectl logs --previous* [1]" in joined
    assert "`limits`" in joined
    assert "[1] kubernetes/KubePodCrashLooping.md (lines 12–30)" in joined
    assert "[2] kubernetes/oom.md (line 5)" in joined
    assert "*NodeDiskPressure* · firing" in joined
    assert "*Not in the runbooks*" in joined
    assert texts[-1] == "<http://alertmanager:9093/?a=1&amp;b=2|Open Alertmanager>"
    assert sum(block["type"] == "divider" for block in message["blocks"]) == 2
    json.dumps(message)  # the body must be JSON-serialisable as is


def test_slack_control_characters_are_escaped_everywhere() -> None:
    result = _answered(
        alertname="A<b>&c",
        runbook="x<y>.md",
        answer={
            "answer": "Use <!channel> & check a > b",
            "refused": False,
            "citations": [{"source": "s&<t>.md", "start_line": 1, "end_line": 2, "number": 1}],
            "error": "provider <down> & out",
        },
    )
    message = slack_message([result])
    joined = "\n".join(_texts(message))

    assert "Use &lt;!channel&gt; &amp; check a &gt; b" in joined
    assert "*A&lt;b&gt;&amp;c*" in joined
    assert "`x&lt;y&gt;.md`" in joined
    assert "[1] s&amp;&lt;t&gt;.md (lines 1–2)" in joined
    assert "provider &lt;down&gt; &amp; out" in joined
    assert message["text"].startswith("opsmith: 1 alert — A&lt;b&gt;&amp;c (firing)")
    # No raw control characters apart from the ones Slack's own syntax uses (none here: no link).
    for text in [*_texts(message), message["text"]]:
        assert "<" not in text
        assert ">" not in text
        assert "&" not in text.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "")


def test_a_long_answer_is_cut_to_the_section_limit_without_breaking_entities_or_fences() -> None:
    long_answer = "Check this & that. " * 400  # escapes to far more than 3000 characters
    message = slack_message([_answered(answer={"answer": long_answer, "refused": False, "citations": []})])
    for text in _texts(message):
        assert len(text) <= SLACK_SECTION_LIMIT
    answer_text = _texts(message)[2]
    assert len(answer_text) > SLACK_SECTION_LIMIT - 10
    assert answer_text.endswith("…")
    assert answer_text.removesuffix("…").replace("&amp;", "").count("&") == 0

    fenced = "Run:\n```\n" + "kubectl get pods -A\n" * 400 + "```\nDone."
    text = _texts(slack_message([_answered(answer={"answer": fenced, "refused": False, "citations": []})]))[2]
    assert len(text) <= SLACK_SECTION_LIMIT
    assert text.count("```") % 2 == 0
    assert text.endswith("…\n```")


@pytest.mark.parametrize("cut_at", range(SLACK_SECTION_LIMIT - 8, SLACK_SECTION_LIMIT + 2))
def test_truncation_never_leaves_half_an_entity(cut_at: int) -> None:
    answer = "x" * cut_at + "&&&&&&&&&&" + "y" * 100
    text = _texts(slack_message([_answered(answer={"answer": answer, "refused": False, "citations": []})]))[2]
    assert len(text) <= SLACK_SECTION_LIMIT
    body = text.removesuffix("…")
    assert body.replace("&amp;", "").strip("xy") == ""


def test_many_alerts_stay_under_slacks_block_limit_and_are_counted() -> None:
    results = [_answered(alertname=f"Alert{i}") for i in range(40)]
    message = slack_message(results, external_url="https://am.example.com")
    blocks = message["blocks"]
    assert len(blocks) <= SLACK_MAX_BLOCKS
    shown = sum(block["type"] == "divider" for block in blocks)
    assert 0 < shown < 40
    assert f"…and {40 - shown} more alerts not shown" in _texts(message)[-2]
    assert _texts(message)[-1] == "<https://am.example.com|Open Alertmanager>"
    # The plain-text fallback still names every alert.
    assert message["text"].count("(firing)") == 40


def test_unlooked_up_and_empty_answers_and_bad_external_urls() -> None:
    resolved = _answered(status="resolved", runbook=None, answer={})
    empty = _answered(answer={"answer": "", "refused": False, "citations": []})
    message = slack_message([resolved, empty], external_url="javascript:alert(1)")
    joined = "\n".join(_texts(message))
    assert ":white_check_mark: *KubePodCrashLooping* · resolved" in joined
    assert "_Not looked up in the runbooks._" in joined
    assert "_(empty answer)_" in joined
    assert "Open Alertmanager" not in joined
    assert "(resolved): not looked up" in message["text"]
    assert "answered with 0 citations" in message["text"]

    assert slack_message([])["text"] == "opsmith: 0 alerts"


def test_an_alert_answer_is_plain_json() -> None:
    data = _answered()
    assert data["alertname"] == "KubePodCrashLooping"
    assert data["runbook"] == "kubernetes/KubePodCrashLooping.md"
    assert data["answer"]["citations"][0]["number"] == 1
    assert json.loads(json.dumps(data)) == data


# --- webhook delivery ---------------------------------------------------------------------------


@dataclass
class Receiver:
    """A loopback HTTP server that records each POST and answers with a set status."""

    url: str
    status: int = 200
    reply: bytes = b"ok"
    delay_s: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    # A proxy from the environment would send loopback traffic elsewhere.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)

    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            state.requests.append(
                {"path": self.path, "content_type": self.headers.get("Content-Type"), "json": json.loads(raw)}
            )
            if state.delay_s:
                time.sleep(state.delay_s)
            self.send_response(state.status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(state.reply)))
            self.end_headers()
            self.wfile.write(state.reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # Shaped like a Slack webhook: the path is the secret.
    state.url = f"http://127.0.0.1:{server.server_address[1]}/services/T0SECRET/B0SECRET/xoxsecrettoken"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _assert_secret_free(err: OpsmithError, url: str) -> None:
    message = str(err)
    assert url not in message
    assert "127.0.0.1" not in message
    assert "SECRET" not in message
    assert "secret" not in message
    assert WEBHOOK_SETTING in message or "receiving service" in message
    assert "\n" not in message
    # httpx's exception (whose text may hold the URL) must not ride along in the traceback.
    assert err.__cause__ is None
    assert err.__context__ is None or err.__suppress_context__


def test_post_webhook_delivers_the_json_body(receiver: Receiver) -> None:
    body = slack_message([_answered()])
    post_webhook(receiver.url, body)

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert request["path"] == "/services/T0SECRET/B0SECRET/xoxsecrettoken"
    assert request["content_type"] == "application/json"
    assert request["json"] == body


@pytest.mark.parametrize(
    ("status", "reply", "expected"),
    [
        (404, b"no_service", "The alert webhook rejected the message (HTTP 404: no_service)"),
        (403, b"invalid_token", "The alert webhook rejected the message (HTTP 403: invalid_token)"),
        (400, b"<html>error page mentioning http://127.0.0.1/services/T0SECRET</html>", "(HTTP 400)"),
        (500, b"oops", "The alert webhook failed (HTTP 500: oops)"),
        (503, b"", "The alert webhook failed (HTTP 503)"),
        (302, b"", "The alert webhook rejected the message (HTTP 302)"),
    ],
)
def test_an_error_status_raises_without_the_url_and_is_not_retried(
    receiver: Receiver, status: int, reply: bytes, expected: str
) -> None:
    receiver.status = status
    receiver.reply = reply
    with pytest.raises(OpsmithError) as info:
        post_webhook(receiver.url, {"text": "hi"})

    assert expected in str(info.value)
    _assert_secret_free(info.value, receiver.url)
    assert len(receiver.requests) == 1  # a 5xx may still have posted: no duplicate


def test_a_reply_that_echoes_part_of_the_url_is_not_quoted(receiver: Receiver) -> None:
    receiver.status = 404
    receiver.reply = b"xoxsecrettoken"
    with pytest.raises(OpsmithError) as info:
        post_webhook(receiver.url, {"text": "hi"})
    assert str(info.value).startswith("The alert webhook rejected the message (HTTP 404) — ")
    _assert_secret_free(info.value, receiver.url)


def test_a_slow_receiver_times_out_with_a_clear_message(receiver: Receiver) -> None:
    receiver.delay_s = 1.0
    started = time.monotonic()
    with pytest.raises(OpsmithError) as info:
        post_webhook(receiver.url, {"text": "hi"}, timeout=0.2)
    assert time.monotonic() - started < 0.9
    assert "did not answer within 0.2s" in str(info.value)
    _assert_secret_free(info.value, receiver.url)
    assert len(receiver.requests) == 1


def test_an_unreachable_receiver_is_tried_twice_then_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/services/T0SECRET/B0SECRET/xoxsecrettoken"

    attempts: list[float] = []
    real = httpx.HTTPTransport()

    class Counting(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            attempts.append(time.monotonic())
            return real.handle_request(request)

    with pytest.raises(OpsmithError) as info:
        post_webhook(url, {"text": "hi"}, transport=Counting())
    assert str(info.value).startswith("Could not connect to the alert webhook — ")
    _assert_secret_free(info.value, url)
    assert len(attempts) == 2
    assert attempts[1] - attempts[0] >= 0.4


def test_a_connection_failure_then_success_delivers_once() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ConnectError("connection refused to https://hooks.example/T0SECRET", request=request)
        return httpx.Response(200, text="ok")

    post_webhook("https://hooks.example/T0SECRET", {"text": "hi"}, transport=httpx.MockTransport(handler))
    assert len(calls) == 2
    assert json.loads(calls[1].content) == {"text": "hi"}


def test_other_transport_errors_carry_only_their_type() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("garbled reply from https://hooks.example/T0SECRET", request=request)

    url = "https://hooks.example/T0SECRET"
    with pytest.raises(OpsmithError) as info:
        post_webhook(url, {"text": "hi"}, transport=httpx.MockTransport(handler))
    assert "(RemoteProtocolError)" in str(info.value)
    _assert_secret_free(info.value, url)


@pytest.mark.parametrize("url", ["", "hooks.slack.com/services/T0SECRET", "ftp://x/T0SECRET", "http://[::1/T0SECRET"])
def test_a_url_that_is_not_http_is_refused_before_sending(url: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:  # pragma: no cover - must not be called
        raise AssertionError("sent")

    with pytest.raises(OpsmithError) as info:
        post_webhook(url, {"text": "hi"}, transport=httpx.MockTransport(handler))
    message = str(info.value)
    assert "SECRET" not in message
    assert WEBHOOK_SETTING in message


# --- the settings' webhook, and the logs ---------------------------------------------------------


def test_notify_sends_to_the_configured_webhook_and_reports_instead_of_raising(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = load_settings(home=tmp_path, alert_webhook_env="OPSMITH_TEST_ALERT_WEBHOOK")
    monkeypatch.delenv("OPSMITH_TEST_ALERT_WEBHOOK", raising=False)
    assert notify([_answered()], settings=settings) == (None, None)  # the env var it names is unset
    assert notify([_answered()], settings=load_settings(home=tmp_path)) == (None, None)  # no webhook configured
    assert receiver.requests == []

    monkeypatch.setenv("OPSMITH_TEST_ALERT_WEBHOOK", receiver.url)
    assert notify([], settings=settings) == (None, None)  # nothing to say
    assert notify([_answered()], settings=settings, external_url="http://am:9093") == (True, None)
    assert receiver.requests[-1]["json"] == slack_message([_answered()], external_url="http://am:9093")

    receiver.status = 500
    notified, error = notify([_answered()], settings=settings)
    assert notified is False
    assert error is not None
    assert error.startswith("The alert webhook failed (HTTP 500")
    assert "xoxsecrettoken" not in error
    assert len(receiver.requests) == 2


def test_importing_the_integrations_installs_no_logging_filter() -> None:
    code = (
        "import logging, opsmith.integrations.webhook, opsmith.integrations.alertmanager\n"
        "print(len(logging.getLogger('httpx').filters))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "0"


def test_httpx_logs_no_webhook_url_while_posting_and_the_filter_is_installed_once(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="httpx")
    post_webhook(receiver.url, {"text": "hi"})
    post_webhook(receiver.url, {"text": "again"})
    hide_webhook_requests()
    assert len(receiver.requests) == 2
    assert "xoxsecrettoken" not in caplog.text
    assert sum(type(f).__name__ == "_HideWebhookRequests" for f in logging.getLogger("httpx").filters) == 1
    # Only the webhook's requests are hidden: other httpx traffic is still logged.
    with httpx.Client() as client:
        client.post(receiver.url.replace("xoxsecrettoken", "public"), json={})
    assert "/services/T0SECRET/B0SECRET/public" in caplog.text
