"""Prometheus Alertmanager alerts in, runbook answers out.

The pure half of ``POST /v1/alerts/alertmanager``: no FastAPI, no retrieval. The app parses the
webhook body into :class:`AlertmanagerPayload`, turns each firing :class:`Alert` into a question
with :func:`alert_question`, narrows retrieval to the runbook its ``runbook_url`` annotation points
at with :func:`match_runbook`, answers, and may forward the results to a Slack-compatible incoming
webhook with :func:`slack_message` and :func:`post_webhook`.

The payload is Alertmanager's webhook format, version 4. Unknown fields are accepted and ignored,
because Alertmanager adds fields over releases and Grafana sends a superset of the same shape.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from opsmith.errors import OpsmithError

__all__ = [
    "MAX_QUESTION_CHARS",
    "SLACK_MAX_BLOCKS",
    "SLACK_SECTION_LIMIT",
    "WEBHOOK_SETTING",
    "Alert",
    "AlertAnswer",
    "AlertmanagerPayload",
    "alert_question",
    "is_specific",
    "match_runbook",
    "post_webhook",
    "slack_message",
]

#: Questions are embedded and BM25-searched; a long alert description only dilutes them.
MAX_QUESTION_CHARS = 1000
#: Slack rejects a section whose text is longer than this.
SLACK_SECTION_LIMIT = 3000
#: Slack rejects a message with more blocks than this.
SLACK_MAX_BLOCKS = 50
#: Named in webhook error messages as the place to fix the URL (the URL itself is a secret).
WEBHOOK_SETTING = "OPSMITH_ALERT_WEBHOOK_ENV"

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


# --- Slack ---------------------------------------------------------------------------------------


@dataclass
class AlertAnswer:
    """One alert's outcome: the question asked, the runbook it matched and the answer JSON.

    ``answer`` is the ``opsmith ask --json`` shape (``answer``, ``refused``, ``citations`` with
    ``source``, ``heading``, ``start_line``, ``end_line``, ``number``, and ``error``), or ``{}``
    when the alert was not looked up.
    """

    alertname: str
    fingerprint: str | None
    status: str
    question: str
    runbook: str | None
    answer: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _escape(text: str) -> str:
    """Slack's three control characters; everything else is literal in mrkdwn."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)


def _mrkdwn(markdown: str) -> str:
    """Escape an answer's Markdown and turn its bold and headings into Slack's ``*bold*``.

    Code blocks are left as they are: Slack renders ``` fences itself.
    """
    pieces = _escape(markdown).split("```")
    for i in range(0, len(pieces), 2):
        pieces[i] = _HEADING.sub(r"*\1*", _BOLD.sub(r"*\1*", pieces[i]))
    return "```".join(pieces)


def _fit(text: str, limit: int = SLACK_SECTION_LIMIT) -> str:
    """Cut escaped mrkdwn to ``limit`` characters without splitting an entity or leaving a fence open."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&", max(len(cut) - 5, 0))
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    if cut.count("```") % 2:
        cut = cut[: limit - 5]
        amp = cut.rfind("&", max(len(cut) - 5, 0))
        if amp != -1 and ";" not in cut[amp:]:
            cut = cut[:amp]
        return cut + "…\n```"
    return cut + "…"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _fit(text or " ")}}


def _lines(citation: dict[str, Any]) -> str:
    start, end = citation.get("start_line"), citation.get("end_line")
    if isinstance(start, int) and isinstance(end, int) and end != start:
        return f" (lines {start}–{end})"
    if isinstance(start, int):
        return f" (line {start})"
    return ""


def _outcome(answer: dict[str, Any]) -> str:
    if not answer:
        return "not looked up"
    if answer.get("refused"):
        return "not in the runbooks"
    n = len(answer.get("citations") or [])
    return f"answered with {n} citation{'s' * (n != 1)}"


def _alert_blocks(result: AlertAnswer) -> list[dict[str, Any]]:
    icon = ":rotating_light:" if result.status.lower() == "firing" else ":white_check_mark:"
    title = f"{icon} *{_escape(result.alertname or 'Unnamed alert')}* · {_escape(result.status)}"
    if result.runbook:
        title += f"\nRunbook: `{_escape(result.runbook)}`"
    blocks = [_section(title)]

    answer = result.answer
    if not answer:
        blocks.append(_section("_Not looked up in the runbooks._"))
        return blocks
    if answer.get("refused"):
        blocks.append(_section("*Not in the runbooks* — no indexed runbook covers this alert."))
    else:
        blocks.append(_section(_mrkdwn(str(answer.get("answer") or "").strip()) or "_(empty answer)_"))

    citations = [c for c in answer.get("citations") or [] if isinstance(c, dict)]
    if citations:
        lines = [
            f"[{c.get('number', i)}] {_escape(str(c.get('source', '?')))}{_lines(c)}"
            for i, c in enumerate(citations, start=1)
        ]
        blocks.append(_section("*Sources*\n" + "\n".join(lines)))
    if answer.get("error"):
        note = _clip(_one_line(str(answer["error"])), 300)
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"⚠ {_escape(note)}"}]})
    return blocks


def slack_message(results: Sequence[AlertAnswer], *, external_url: str | None = None) -> dict[str, Any]:
    """A Slack-compatible incoming-webhook body for a batch of alert answers.

    One header section, then per alert: its name and status (and matched runbook), the answer as
    mrkdwn cut to Slack's 3000-character section limit (or "Not in the runbooks" when refused),
    its citations as ``source (lines a–b)``, and any error note, with dividers between alerts.
    ``&``, ``<`` and ``>`` are escaped as Slack requires. Alerts that would take the message past
    Slack's 50-block limit are counted in a closing note instead.

    Args:
        results: The per-alert outcomes, in the order to show them.
        external_url: Alertmanager's ``externalURL``; linked at the end when it is http(s).

    Returns:
        ``{"text": <plain fallback summary>, "blocks": [...]}``.
    """
    n = len(results)
    summary = "; ".join(f"{r.alertname or 'Unnamed alert'} ({r.status}): {_outcome(r.answer)}" for r in results)
    text = _fit(_escape(f"opsmith: {n} alert{'s' * (n != 1)}" + (f" — {summary}" if summary else "")))

    link: dict[str, Any] | None = None
    if external_url and urlsplit(external_url).scheme.lower() in {"http", "https"}:
        href = _escape(external_url.replace("|", "%7C"))
        link = {"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{href}|Open Alertmanager>"}]}

    blocks: list[dict[str, Any]] = [_section(f"*opsmith runbook answers for {n} alert{'s' * (n != 1)}*")]
    # Keep room for the "more alerts" note and the Alertmanager link.
    budget = SLACK_MAX_BLOCKS - 1 - (link is not None)
    shown = 0
    for result in results:
        alert_blocks = [{"type": "divider"}, *_alert_blocks(result)]
        if len(blocks) + len(alert_blocks) > budget:
            break
        blocks.extend(alert_blocks)
        shown += 1
    if shown < n:
        left = n - shown
        blocks.append(_section(f"_…and {left} more alert{'s' * (left != 1)} not shown._"))
    if link is not None:
        blocks.append(link)
    return {"text": text, "blocks": blocks}


# --- delivery ------------------------------------------------------------------------------------

#: A short error code in the response body (Slack: ``no_service``, ``invalid_payload``...).
_ERROR_CODE = re.compile(r"[A-Za-z0-9_]{1,40}")
_RETRY_DELAY_S = 0.5


def _detail(response: httpx.Response, url: str) -> str:
    try:
        body = response.text.strip()
    except Exception:
        return ""
    # Only a bare code, and never anything that is part of the (secret) URL.
    if _ERROR_CODE.fullmatch(body) and body.lower() not in url.lower():
        return f": {body}"
    return ""


_posting = threading.local()


class _HideWebhookRequests(logging.Filter):
    """httpx logs every request's full URL at INFO; a webhook URL is a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_posting, "active", False)


logging.getLogger("httpx").addFilter(_HideWebhookRequests())


def post_webhook(
    url: str, body: dict[str, Any], *, timeout: float = 10.0, transport: httpx.BaseTransport | None = None
) -> None:
    """POST ``body`` as JSON to a (Slack-compatible) incoming webhook.

    One attempt, plus a single retry after half a second only when the connection could not be
    made, since then the message was certainly not delivered. HTTP errors, 5xx included, and read
    timeouts are not retried: the receiver may already have posted the message, and a duplicate
    page is worse than a missing one. Redirects are not followed.

    Args:
        url: The webhook URL. It is a secret: it never appears in an error message.
        body: The JSON body, e.g. from :func:`slack_message`.
        timeout: Seconds for each of connecting, sending and reading.
        transport: An httpx transport to use instead of the network (tests).

    Raises:
        OpsmithError: The URL is not http(s), the receiver could not be reached or answered in
            time, or it answered with a non-2xx status. The message names the status and the
            setting to check, never the URL, and does not chain httpx's exception (whose text
            may hold the URL).
    """
    remedy = f"check the URL in the env var named by {WEBHOOK_SETTING}"
    try:
        scheme = urlsplit(url).scheme.lower()
    except (ValueError, AttributeError):
        scheme = ""
    if scheme not in {"http", "https"}:
        raise OpsmithError(f"The alert webhook URL is not an http(s) URL — {remedy}")

    failure: str | None = None
    _posting.active = True
    try:
        with httpx.Client(timeout=timeout, transport=transport, follow_redirects=False) as client:
            for attempt in range(2):
                try:
                    response = client.post(url, json=body)
                except (httpx.ConnectError, httpx.ConnectTimeout):
                    failure = f"Could not connect to the alert webhook — {remedy} and that the host is reachable"
                    if attempt == 0:
                        time.sleep(_RETRY_DELAY_S)
                        continue
                except httpx.TimeoutException:
                    failure = (
                        f"The alert webhook did not answer within {timeout:g}s"
                        " — check that the receiving service is up, or raise the timeout"
                    )
                except (httpx.HTTPError, httpx.InvalidURL) as exc:
                    failure = f"Sending to the alert webhook failed ({type(exc).__name__}) — {remedy}"
                else:
                    if response.is_success:
                        return
                    status = f"HTTP {response.status_code}{_detail(response, url)}"
                    if response.is_server_error:
                        failure = (
                            f"The alert webhook failed ({status}) — the receiving service had an error;"
                            f" check its status, then {remedy}"
                        )
                    else:
                        failure = f"The alert webhook rejected the message ({status}) — {remedy}"
                break
    finally:
        _posting.active = False
    # Raised outside the except blocks so httpx's exception (its text may hold the URL) is not chained.
    raise OpsmithError(failure or f"Sending to the alert webhook failed — {remedy}")
