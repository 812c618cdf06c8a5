"""The Slack-compatible incoming webhook: alert answers as a Slack message, and its delivery.

:func:`slack_message` lays out the answers to a batch of alerts (from
:meth:`opsmith.backend.Backend.answer_alerts`) in Slack's Block Kit, within Slack's limits;
:func:`post_webhook` sends it, never showing the URL (a secret) in an error or a log line;
:func:`notify` does both for the webhook the settings name, and reports how it went instead of
raising. Mattermost, Rocket.Chat and most chat tools accept the same body.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from opsmith.config import Settings, read_secret
from opsmith.errors import OpsmithError
from opsmith.schemas import AlertAnswer

__all__ = [
    "SLACK_MAX_BLOCKS",
    "SLACK_SECTION_LIMIT",
    "WEBHOOK_SETTING",
    "hide_webhook_requests",
    "notify",
    "post_webhook",
    "slack_message",
]

#: Slack rejects a section whose text is longer than this.
SLACK_SECTION_LIMIT = 3000
#: Slack rejects a message with more blocks than this.
SLACK_MAX_BLOCKS = 50
#: Named in webhook error messages as the place to fix the URL (the URL itself is a secret).
WEBHOOK_SETTING = "OPSMITH_ALERT_WEBHOOK_ENV"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)].rstrip() + "…"


# --- the message ---------------------------------------------------------------------------------


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


def _lines(citation: Mapping[str, Any]) -> str:
    start, end = citation.get("start_line"), citation.get("end_line")
    if isinstance(start, int) and isinstance(end, int) and end != start:
        return f" (lines {start}–{end})"
    if isinstance(start, int):
        return f" (line {start})"
    return ""


def _outcome(answer: Mapping[str, Any]) -> str:
    if not answer:
        return "not looked up"
    if answer.get("refused"):
        return "not in the runbooks"
    n = len(answer.get("citations") or [])
    return f"answered with {n} citation{'s' * (n != 1)}"


def _alert_blocks(result: AlertAnswer) -> list[dict[str, Any]]:
    status, runbook = result["status"], result["runbook"]
    icon = ":rotating_light:" if status.lower() == "firing" else ":white_check_mark:"
    title = f"{icon} *{_escape(result['alertname'] or 'Unnamed alert')}* · {_escape(status)}"
    if runbook:
        title += f"\nRunbook: `{_escape(runbook)}`"
    blocks = [_section(title)]

    # Typed as an answer, but read defensively: a message must go out whatever an answer lacks.
    answer: Mapping[str, Any] = result["answer"]
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
    summary = "; ".join(
        f"{r['alertname'] or 'Unnamed alert'} ({r['status']}): {_outcome(r['answer'])}" for r in results
    )
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


_HIDE_WEBHOOK_REQUESTS = _HideWebhookRequests()


def hide_webhook_requests() -> None:
    """Keep httpx's request log lines, which hold the full (secret) URL, out of the logs while
    :func:`post_webhook` sends; installed once, by :func:`post_webhook` itself and by the service."""
    logger = logging.getLogger("httpx")
    if _HIDE_WEBHOOK_REQUESTS not in logger.filters:
        logger.addFilter(_HIDE_WEBHOOK_REQUESTS)


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
    hide_webhook_requests()
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


def notify(
    results: Sequence[AlertAnswer], *, settings: Settings, external_url: str | None = None
) -> tuple[bool | None, str | None]:
    """Send the answers to the webhook whose URL is in the env var ``settings.alert_webhook_env`` names.

    Returns:
        ``(notified, error)``: ``(None, None)`` when no webhook is configured or there is nothing
        to send, ``(True, None)`` when it took the message, ``(False, reason)`` when it did not
        (the reason never holds the URL).
    """
    url = read_secret(settings.alert_webhook_env)
    if not url or not results:
        return None, None
    try:
        post_webhook(url, slack_message(results, external_url=external_url), timeout=settings.llm_timeout)
    except OpsmithError as exc:
        return False, str(exc)
    return True, None
