"""Alertmanager payloads, and the runbook questions and matches made from their alerts.

The receiver route (``POST /v1/alerts/alertmanager``) is tested in tests/serve/test_app.py, the
Slack message and its delivery in test_webhook.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from opsmith.integrations.alertmanager import (
    MAX_QUESTION_CHARS,
    Alert,
    AlertmanagerPayload,
    alert_question,
    is_specific,
    match_runbook,
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
