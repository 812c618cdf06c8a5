"""Alertmanager payloads, runbook questions and matching, the Slack body, and webhook delivery.

Delivery runs against a real HTTP server on loopback, so the bytes on the wire are checked.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from opsmith.errors import OpsmithError
from opsmith.serve.alerts import (
    MAX_QUESTION_CHARS,
    SLACK_MAX_BLOCKS,
    SLACK_SECTION_LIMIT,
    WEBHOOK_SETTING,
    Alert,
    AlertAnswer,
    AlertmanagerPayload,
    alert_question,
    is_specific,
    match_runbook,
    post_webhook,
    slack_message,
)

# A notification as Alertmanager 0.27 sends it, plus fields a future version might add.
PAYLOAD: dict[str, Any] = {
    "version": "4",
    "groupKey": '{}/{severity=~"warning|critical"}:{namespace="prod"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "opsmith",
    "groupLabels": {"namespace": "prod"},
    "commonLabels": {"namespace": "prod", "prometheus": "monitoring/k8s"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager.monitoring:9093",
    "someFutureField": {"nested": [1, 2, 3]},
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "KubePodCrashLooping",
                "severity": "warning",
                "namespace": "prod",
                "pod": "api-7d9f8c-xk2l",
                "container": "api",
                "job": "kube-state-metrics",
                "prometheus": "monitoring/k8s",
            },
            "annotations": {
                "summary": "Pod is crash looping.",
                "description": "Pod prod/api-7d9f8c-xk2l (api) is in waiting state (reason: CrashLoopBackOff).",
                "runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping",
            },
            "startsAt": "2024-05-01T10:00:00.000Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=max_over_time%28...%29&g0.tab=1",
            "fingerprint": "c6eadffa33fcdf37",
            "silenceURL": "http://alertmanager:9093/#/silences/new",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "NodeFilesystemSpaceFillingUp", "severity": "critical", "namespace": "prod"},
            "annotations": {"summary": "Filesystem is predicted to run out of space within the next 4 hours."},
            "startsAt": "2024-05-01T08:00:00Z",
            "endsAt": "2024-05-01T09:30:00Z",
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": "bc97ff14869b13e3",
        },
    ],
}


# --- payload ------------------------------------------------------------------------------------


def test_a_realistic_payload_parses_and_unknown_fields_are_ignored() -> None:
    payload = AlertmanagerPayload.model_validate(PAYLOAD)

    assert payload.version == "4"
    assert payload.receiver == "opsmith"
    assert payload.external_url == "http://alertmanager.monitoring:9093"
    assert payload.common_labels == {"namespace": "prod", "prometheus": "monitoring/k8s"}
    assert payload.truncated_alerts == 0
    assert [a.status for a in payload.alerts] == ["firing", "resolved"]
    assert [a.name for a in payload.firing_alerts()] == ["KubePodCrashLooping"]

    crash = payload.alerts[0]
    assert crash.fingerprint == "c6eadffa33fcdf37"
    assert crash.starts_at == "2024-05-01T10:00:00.000Z"
    assert crash.generator_url is not None
    assert crash.generator_url.startswith("http://prometheus:9090/")
    assert crash.runbook_url == PAYLOAD["alerts"][0]["annotations"]["runbook_url"]
    assert not hasattr(crash, "silenceURL")
    assert "someFutureField" not in payload.model_dump(by_alias=True)


def test_only_alerts_is_required_and_alert_fields_default() -> None:
    payload = AlertmanagerPayload.model_validate({"alerts": [{}]})
    alert = payload.alerts[0]
    assert alert.status == "firing"
    assert alert.firing
    assert alert.labels == {}
    assert alert.annotations == {}
    assert alert.name == ""
    assert alert.runbook_url is None
    assert payload.firing_alerts() == [alert]

    with pytest.raises(ValidationError):
        AlertmanagerPayload.model_validate({"version": "4", "status": "firing"})


def test_non_string_label_values_are_stringified_and_nulls_dropped() -> None:
    alert = Alert.model_validate(
        {"labels": {"alertname": "X", "port": 5432, "ratio": 0.5, "up": True, "gone": None}, "annotations": None}
    )
    assert alert.labels == {"alertname": "X", "port": "5432", "ratio": "0.5", "up": "true"}
    assert alert.annotations == {}


def test_the_models_describe_their_fields_for_the_openapi_schema() -> None:
    schema = AlertmanagerPayload.model_json_schema(by_alias=True)
    assert schema["required"] == ["alerts"]
    assert "externalURL" in schema["properties"]
    assert all("description" in prop for prop in schema["properties"].values())
    alert_schema = Alert.model_json_schema(by_alias=True)
    assert "startsAt" in alert_schema["properties"]
    assert all("description" in prop for prop in alert_schema["properties"].values())


# --- questions ----------------------------------------------------------------------------------


def test_the_question_names_the_alert_useful_labels_and_the_annotations() -> None:
    alert = AlertmanagerPayload.model_validate(PAYLOAD).alerts[0]
    question = alert_question(alert)

    assert question.startswith(
        "Alert KubePodCrashLooping (severity=warning, job=kube-state-metrics, namespace=prod, container=api): "
    )
    assert "Pod is crash looping." in question
    assert "CrashLoopBackOff" in question
    assert question.endswith("What should on-call check and do?")
    # Noise labels stay out; so does the runbook URL (matching it is a separate step).
    assert "prometheus=" not in question
    assert "pod=" not in question
    assert "https://" not in question


def test_the_example_from_the_brief() -> None:
    alert = Alert(
        labels={"alertname": "KubePodCrashLooping", "severity": "warning", "namespace": "prod"},
        annotations={"summary": "Pod prod/api is crash looping"},
    )
    assert alert_question(alert) == (
        "Alert KubePodCrashLooping (severity=warning, namespace=prod): Pod prod/api is crash looping."
        " What should on-call check and do?"
    )


def test_a_description_that_repeats_the_summary_is_said_once_and_whitespace_collapses() -> None:
    alert = Alert(
        labels={"alertname": "EtcdHighFsyncDurations"},
        annotations={
            "summary": "etcd fsync is slow",
            "description": "etcd   fsync\n is slow",
            "message": "99th percentile fsync durations are 1.2s on member etcd-0!",
        },
    )
    question = alert_question(alert)
    assert question == (
        "Alert EtcdHighFsyncDurations: etcd fsync is slow."
        " 99th percentile fsync durations are 1.2s on member etcd-0! What should on-call check and do?"
    )


def test_an_alert_without_a_name_or_annotations_still_gives_a_question() -> None:
    assert alert_question(Alert()) == "Alert. What should on-call check and do?"
    assert alert_question(Alert(labels={"severity": "critical", "service": "payments"})) == (
        "Alert (severity=critical, service=payments). What should on-call check and do?"
    )
    only_text = alert_question(Alert(annotations={"description": "Disk /var is 95% full"}))
    assert only_text == "Alert: Disk /var is 95% full. What should on-call check and do?"


@pytest.mark.parametrize(
    ("labels", "annotations", "specific"),
    [
        ({}, {}, False),
        ({"alertname": "X"}, {}, False),
        ({"alertname": "TestAlert", "severity": "critical"}, {}, False),
        ({"severity": "page", "namespace": "payments", "instance": "10.0.0.5:9100"}, {}, False),
        ({"alertname": "A1"}, {"summary": "Alert firing (critical)."}, False),
        ({"alertname": "KubePodCrashLooping"}, {}, True),
        ({"alertname": "DiskFull"}, {}, True),
        ({"alertname": "X"}, {"description": "Disk /var is 95% full"}, True),
        ({}, {"message": "etcd has no leader"}, True),
        ({"alertname": "high_error_rate"}, {}, True),
    ],
)
def test_an_alert_is_specific_when_its_name_or_text_says_what_is_wrong(
    labels: dict[str, str], annotations: dict[str, str], specific: bool
) -> None:
    assert is_specific(Alert(labels=labels, annotations=annotations)) is specific


def test_long_annotations_are_cut_but_the_name_and_the_closing_question_stay() -> None:
    alert = Alert(
        labels={"alertname": "HugeAlert", "severity": "page", "instance": "x" * 500},
        annotations={"description": "word " * 2000},
    )
    question = alert_question(alert)
    assert len(question) <= MAX_QUESTION_CHARS
    assert question.startswith("Alert HugeAlert (severity=page, instance=xxx")
    assert "x" * 101 not in question  # label values are capped too
    assert "…" in question
    assert question.endswith("What should on-call check and do?")

    short = alert_question(alert, max_chars=200)
    assert len(short) <= 200
    assert short.startswith("Alert HugeAlert")


def test_even_an_absurd_alert_name_respects_the_cap() -> None:
    question = alert_question(Alert(labels={"alertname": "A" * 5000}), max_chars=150)
    assert len(question) <= 150
    assert question.startswith("Alert AAAA")


# --- runbook matching ---------------------------------------------------------------------------

SOURCES = [
    "db/disk-full.md",
    "db/replication-lag.md",
    "kubernetes/KubePodCrashLooping.md",
    "etcd.html",
    "alerts/node/NodeFilesystemSpaceFillingUp.md",
    "network/dns/index.md",
]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping/",
            "kubernetes/KubePodCrashLooping.md",
        ),
        (
            "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping",
            "kubernetes/KubePodCrashLooping.md",
        ),
        ("https://github.com/org/repo/blob/main/runbooks/db/disk-full.md#diagnosis", "db/disk-full.md"),
        ("https://wiki.example.com/DB/Disk-Full?version=3", "db/disk-full.md"),
        ("http://docs.internal/ops/etcd.html", "etcd.html"),
        ("https://docs.internal/ops/etcd/index.html", "etcd.html"),
        ("https://docs.internal/runbooks/db%2Freplication%2Dlag.md", "db/replication-lag.md"),
        (
            "https://x.dev/runbooks/alerts/node/nodefilesystemspacefillingup/",
            "alerts/node/NodeFilesystemSpaceFillingUp.md",
        ),
        ("https://x.dev/network/dns/", "network/dns/index.md"),
        ("HTTPS://X.DEV/RUNBOOKS/DB/DISK-FULL.MD", "db/disk-full.md"),
    ],
)
def test_a_runbook_url_matches_the_source_its_path_ends_with(url: str, expected: str) -> None:
    assert match_runbook(url, SOURCES) == expected


@pytest.mark.parametrize(
    "url",
    [
        None,
        "",
        "   ",
        "https://runbooks.example.com/",
        "https://runbooks.example.com/db/unknown.md",
        "https://runbooks.example.com/disk-full.md.bak/other",
        "ftp://runbooks.example.com/db/disk-full.md",
        "file:///srv/runbooks/db/disk-full.md",
        "db/disk-full.md",  # not a URL
        "http://[::1/db/disk-full.md",  # invalid IPv6 host: urlsplit raises
        "not a url at all",
        "javascript:alert(1)",
    ],
)
def test_no_match_or_garbage_gives_none(url: str | None) -> None:
    assert match_runbook(url, SOURCES) is None


def test_the_longer_matching_tail_wins_and_equal_ties_give_none() -> None:
    sources = ["prod/db/disk-full.md", "staging/db/disk-full.md", "disk-full.md", "other/disk-full.md"]
    assert match_runbook("https://x.dev/prod/db/disk-full", sources) == "prod/db/disk-full.md"
    # Only "db/disk-full" is known, and two sources end with it equally well.
    assert match_runbook("https://x.dev/runbooks/db/disk-full", sources) is None
    # Matching only the file name: three sources tie.
    assert match_runbook("https://x.dev/disk-full.md", sources) is None
    # A unique file name is enough.
    assert match_runbook("https://x.dev/wiki/KubePodCrashLooping", SOURCES) == "kubernetes/KubePodCrashLooping.md"


def test_sources_may_be_a_generator_with_duplicates_and_odd_separators() -> None:
    sources = (s for s in ["db\\disk-full.md", "db\\disk-full.md", "./etcd.html"])
    assert match_runbook("https://x.dev/db/disk-full", sources) == "db\\disk-full.md"
    assert match_runbook("https://x.dev/etcd", ["./etcd.html"]) == "./etcd.html"
    assert match_runbook("https://x.dev/etcd", []) is None


def test_an_extension_is_only_a_short_alphabetic_suffix() -> None:
    # "v1.2" keeps its ".2", so it does not collapse onto "v1".
    assert match_runbook("https://x.dev/upgrade/v1.2", ["upgrade/v1.md", "upgrade/v1.2.md"]) == "upgrade/v1.2.md"


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


def test_alert_answer_to_dict_is_plain_json() -> None:
    data = _answered().to_dict()
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
