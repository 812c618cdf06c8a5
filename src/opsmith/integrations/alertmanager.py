"""Prometheus Alertmanager alerts in, runbook questions out.

The receiver's library half: the webhook body as :class:`AlertmanagerPayload`, each firing
:class:`Alert` turned into a runbook question by :func:`alert_question`, the runbook its
``runbook_url`` annotation points at found by :func:`match_runbook`, and :func:`is_specific`,
which says whether an alert names what is wrong at all. :meth:`opsmith.backend.Backend.answer_alerts`
answers the alerts with these; ``POST /v1/alerts/alertmanager`` takes the notification, and
:mod:`opsmith.integrations.webhook` may forward the answers to a Slack-compatible webhook.

The payload is Alertmanager's webhook format, version 4. Unknown fields are accepted and ignored,
because Alertmanager adds fields over releases and Grafana sends a superset of the same shape.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "MAX_QUESTION_CHARS",
    "Alert",
    "AlertmanagerPayload",
    "alert_question",
    "is_specific",
    "match_runbook",
]

#: Questions are embedded and BM25-searched; a long alert description only dilutes them.
MAX_QUESTION_CHARS = 1000

#: Labels worth putting in a question, most useful first. Others (pod hashes, prometheus replica,
#: endpoint...) add noise to the search and are left out.
_QUESTION_LABELS = (
    "severity",
    "service",
    "job",
    "namespace",
    "cluster",
    "instance",
    "node",
    "deployment",
    "statefulset",
    "daemonset",
    "container",
    "persistentvolumeclaim",
    "mountpoint",
    "device",
)
_MAX_QUESTION_LABELS = 6
_MAX_LABEL_VALUE = 100
_MAX_ALERTNAME = 200
_QUESTION_TAIL = "What should on-call check and do?"

#: Annotation keys that carry a runbook link, in order of preference.
_RUNBOOK_KEYS = ("runbook_url", "runbook", "runbookURL", "runbook_link")


def _string_map(value: Any) -> Any:
    """Labels and annotations: drop nulls, stringify scalars; leave anything else to pydantic."""
    if value is None:
        return {}
    if isinstance(value, dict):
        # Alertmanager sends strings; other senders of this shape sometimes send numbers or nulls.
        return {
            str(k): ("true" if v else "false") if isinstance(v, bool) else str(v)
            for k, v in value.items()
            if isinstance(v, str | int | float)
        }
    return value


class Alert(BaseModel):
    """One alert in an Alertmanager webhook notification."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status: str = Field(
        default="firing", description='"firing" or "resolved". Only firing alerts are looked up in the runbooks.'
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Identifying labels; `alertname` names the alert, `severity`, `namespace`, `job`... narrow it.",
    )
    annotations: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Free text: `summary`, `description`, `message`, and `runbook_url` (matched to an indexed runbook)."
        ),
    )
    starts_at: str | None = Field(
        default=None, alias="startsAt", description="When the alert started firing (RFC 3339)."
    )
    ends_at: str | None = Field(default=None, alias="endsAt", description="When the alert resolved, or a zero time.")
    generator_url: str | None = Field(
        default=None, alias="generatorURL", description="Link to the expression that fired the alert."
    )
    fingerprint: str | None = Field(default=None, description="Alertmanager's stable identifier for this alert.")

    @field_validator("labels", "annotations", mode="before")
    @classmethod
    def _string_maps(cls, value: Any) -> Any:
        return _string_map(value)

    @property
    def name(self) -> str:
        """``labels.alertname``, or ``""`` when the alert has none."""
        return self.labels.get("alertname", "").strip()

    @property
    def firing(self) -> bool:
        return self.status.strip().lower() == "firing"

    @property
    def runbook_url(self) -> str | None:
        """The alert's runbook link from its annotations, if any."""
        for key in _RUNBOOK_KEYS:
            value = self.annotations.get(key, "").strip()
            if value:
                return value
        return None


class AlertmanagerPayload(BaseModel):
    """Alertmanager's webhook body (``webhook_configs``, version 4); only ``alerts`` is required."""

    model_config = ConfigDict(
        extra="ignore",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "version": "4",
                    "groupKey": '{}:{alertname="KubePodCrashLooping"}',
                    "truncatedAlerts": 0,
                    "status": "firing",
                    "receiver": "opsmith",
                    "groupLabels": {"alertname": "KubePodCrashLooping"},
                    "commonLabels": {"alertname": "KubePodCrashLooping", "severity": "warning"},
                    "commonAnnotations": {},
                    "externalURL": "http://alertmanager:9093",
                    "alerts": [
                        {
                            "status": "firing",
                            "labels": {
                                "alertname": "KubePodCrashLooping",
                                "severity": "warning",
                                "namespace": "prod",
                                "pod": "api-7d9f",
                            },
                            "annotations": {
                                "summary": "Pod prod/api-7d9f is crash looping.",
                                "runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping/",
                            },
                            "startsAt": "2024-05-01T10:00:00Z",
                            "endsAt": "0001-01-01T00:00:00Z",
                            "generatorURL": "http://prometheus:9090/graph?g0.expr=...",
                            "fingerprint": "c6eadffa33fcdf37",
                        }
                    ],
                }
            ]
        },
    )

    version: str | None = Field(default=None, description='Payload format version; Alertmanager sends "4".')
    group_key: str | None = Field(default=None, alias="groupKey", description="Identifies the alert group.")
    truncated_alerts: int = Field(
        default=0, alias="truncatedAlerts", description="Alerts left out because of the receiver's max_alerts."
    )
    status: str | None = Field(default=None, description='"firing" if any alert in the group fires, else "resolved".')
    receiver: str | None = Field(default=None, description="The Alertmanager receiver that sent this.")
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels", description="Labels grouped by.")
    common_labels: dict[str, str] = Field(
        default_factory=dict, alias="commonLabels", description="Labels every alert in the group shares."
    )
    common_annotations: dict[str, str] = Field(
        default_factory=dict, alias="commonAnnotations", description="Annotations every alert in the group shares."
    )
    external_url: str | None = Field(default=None, alias="externalURL", description="Link back to the Alertmanager.")
    alerts: list[Alert] = Field(description="The alerts in this notification, firing and resolved.")

    @field_validator("group_labels", "common_labels", "common_annotations", mode="before")
    @classmethod
    def _string_maps(cls, value: Any) -> Any:
        return _string_map(value)

    def firing_alerts(self) -> list[Alert]:
        """The alerts that are firing, in payload order."""
        return [alert for alert in self.alerts if alert.firing]


# --- questions -----------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)].rstrip() + "…"


def _sentence(text: str) -> str:
    return text if text[-1] in ".!?…:" else text + "."


#: Words every alert may carry; they say nothing about which runbook applies.
_GENERIC_WORDS = frozenset(
    {
        "alert",
        "alerts",
        "alertname",
        "firing",
        "resolved",
        "severity",
        "critical",
        "warning",
        "warn",
        "info",
        "page",
        "none",
        "high",
        "medium",
        "low",
        "major",
        "minor",
        "test",
    }
)
_WORD_PARTS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def is_specific(alert: Alert) -> bool:
    """Whether the alert says what is wrong, so that a runbook search can be about it.

    It does when its name or its ``summary``, ``description`` or ``message`` annotation holds a
    word of at least two letters that not every alert carries (``KubePodCrashLooping`` does;
    no name, ``X``, ``TestAlert`` or only ``severity=critical`` do not). Labels such as
    ``namespace`` or ``instance`` say where, not what, so they do not count. Searching for an
    alert that is not specific finds whatever runbook mentions alerts and severities most, so
    such alerts are refused like a question the runbooks do not cover.
    """
    texts = [alert.name, *(alert.annotations.get(key, "") for key in ("summary", "description", "message"))]
    for text in texts:
        for part in _WORD_PARTS.findall(text):
            word = part.lower()
            if len(word) >= 2 and not word.isdigit() and word not in _GENERIC_WORDS:
                return True
    return False


def alert_question(alert: Alert, *, max_chars: int = MAX_QUESTION_CHARS) -> str:
    """Build a short, retrieval-friendly runbook question from an alert.

    Uses the alert name, up to six useful labels (severity, service, job, namespace, instance...)
    and the ``summary``, ``description`` and ``message`` annotations, collapsed to one line.

    Args:
        alert: The alert. Every field may be missing; the result is still a usable question.
        max_chars: Upper bound on the length; the annotation text is cut first, the name and
            the closing question are kept.

    Returns:
        E.g. ``"Alert KubePodCrashLooping (severity=warning, namespace=prod): Pod prod/api is crash
        looping. What should on-call check and do?"``.
    """
    name = _clip(_one_line(alert.name), _MAX_ALERTNAME)
    labels = [
        f"{key}={_clip(_one_line(alert.labels[key]), _MAX_LABEL_VALUE)}"
        for key in _QUESTION_LABELS
        if _one_line(alert.labels.get(key, ""))
    ][:_MAX_QUESTION_LABELS]

    head = f"Alert {name}" if name else "Alert"
    if labels:
        head += f" ({', '.join(labels)})"

    texts: list[str] = []
    for key in ("summary", "description", "message"):
        text = _one_line(alert.annotations.get(key, ""))
        # Alert rules often repeat the summary in the description; say it once.
        if text and not any(text.lower() in seen.lower() for seen in texts):
            texts.append(_sentence(text))
    body = " ".join(texts)

    room = max_chars - len(head) - len(": ") - len(" ") - len(_QUESTION_TAIL)
    if body and room >= 20:
        return f"{head}: {_clip(body, room)} {_QUESTION_TAIL}"
    return _clip(f"{head}. {_QUESTION_TAIL}", max_chars)


# --- runbook matching ----------------------------------------------------------------------------

#: A trailing ``.ext`` on the last segment: 1–8 characters, at least one a letter (so "v1.2" keeps ".2").
_EXTENSION = re.compile(r"\.(?=[a-z0-9]*[a-z])[a-z0-9]{1,8}$")
#: Last segments that stand for their folder (``kubernetes/foo/`` is ``kubernetes/foo/index.html``).
_INDEX_NAMES = {"index", "_index", "readme"}


def _segments(path: str) -> list[str]:
    parts = [part.strip().lower() for part in path.replace("\\", "/").split("/")]
    parts = [part for part in parts if part and part != "."]
    if parts:
        parts[-1] = _EXTENSION.sub("", parts[-1])
        if parts[-1] in _INDEX_NAMES:
            parts.pop()
    return parts


def _common_tail(a: list[str], b: list[str]) -> int:
    n = 0
    while n < len(a) and n < len(b) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def match_runbook(runbook_url: str | None, sources: Iterable[str]) -> str | None:
    """The indexed source a ``runbook_url`` annotation points at, or ``None``.

    Compares the URL's path with each source path from the end, segment by segment, ignoring
    case, percent-encoding, the query and fragment, a trailing ``/``, a last segment named
    ``index``, ``_index`` or ``README``, and file extensions. So
    ``https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping/`` matches
    ``kubernetes/KubePodCrashLooping.md``, and
    ``https://github.com/org/repo/blob/main/runbooks/db/disk-full.md#diagnosis`` matches
    ``db/disk-full.md``.

    Args:
        runbook_url: The annotation's value; anything but an http(s) URL with a path gives ``None``.
        sources: Indexed source paths, relative (``db/disk-full.md``).

    Returns:
        The source with the longest matching tail (at least the last segment). ``None`` when no
        source matches or two different sources match equally well. Never raises.
    """
    if not isinstance(runbook_url, str) or not runbook_url.strip():
        return None
    try:
        parts = urlsplit(runbook_url.strip())
        if parts.scheme.lower() not in {"http", "https"} or not parts.netloc:
            return None
        wanted = _segments(unquote(parts.path))
    except ValueError:
        return None
    if not wanted:
        return None

    best: list[str] = []
    best_len = 0
    for source in dict.fromkeys(sources):
        if not isinstance(source, str):
            continue
        n = _common_tail(wanted, _segments(source))
        if n == 0 or n < best_len:
            continue
        if n > best_len:
            best, best_len = [source], n
        else:
            best.append(source)
    return best[0] if len(best) == 1 else None
