"""HTTP plumbing shared by the hosted providers: retries, error mapping and SSE parsing.

:class:`ProviderHTTP` posts JSON to one provider with a sync ``httpx.Client``. It retries
transport errors, HTTP 429 and 5xx with exponential backoff and jitter (honouring
``retry-after``), and turns every failure into a one-line :class:`ProviderError` that names
the setting to fix. The API key is only ever sent as a header; it is scrubbed from any text
a provider echoes back and never appears in a message, log line or repr.

Each call has a total ``deadline`` (``OPSMITH_LLM_DEADLINE``, see :mod:`opsmith.llm._deadline`)
on top of the per-read ``timeout``: no request waits past it, no retry starts or sleeps past
it, and a watchdog shuts the socket under an answer still arriving when it passes. The call
then fails with :class:`ProviderDeadlineError`.

The retries here are the only ones a provider error gets in opsmith: one ``complete`` or
``stream`` sends at most ``1 + max_retries`` requests (``OPSMITH_LLM_MAX_RETRIES``), and
nothing above the provider (structured output, ask, review, compare, distill) retries a
:class:`ProviderError` again; structured output re-asks only on invalid output.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Self

import httpx

from opsmith._display import mask_url
from opsmith.errors import (
    ConfigError,
    ProviderAuthError,
    ProviderDeadlineError,
    ProviderError,
    ProviderRateLimitError,
    ProviderResponseError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from opsmith.llm._deadline import call_end, time_left

logger = logging.getLogger(__name__)

#: Longest wait we accept from a ``retry-after`` header, in seconds.
RETRY_AFTER_CAP_S = 30.0
#: Longest computed backoff between attempts, in seconds.
MAX_BACKOFF_S = 8.0
_DETAIL_CHARS = 200
_ERRNO_PREFIX = re.compile(r"^\[Errno -?\d+\]\s*")


@dataclass(frozen=True)
class SSEEvent:
    """One server-sent event: its ``event`` name (``message`` when unnamed) and ``data``."""

    event: str
    data: str

    @property
    def is_done(self) -> bool:
        """True for OpenAI's end-of-stream sentinel ``data: [DONE]``."""
        return self.data.strip() == "[DONE]"

    def json(self) -> Any:
        return json.loads(self.data)


def iter_sse(lines: Iterable[str]) -> Iterator[SSEEvent]:
    """Parse server-sent-event lines (``event:``, ``data:``, comments, blank-line dispatch).

    Multi-line ``data`` is joined with newlines, as the SSE spec says. A final event without
    its trailing blank line is still delivered, because some servers close without one.
    """
    event = ""
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield SSEEvent(event or "message", "\n".join(data))
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        # "id" and "retry" only matter for reconnecting streams; a completion never resumes.
    if data:
        yield SSEEvent(event or "message", "\n".join(data))


def error_detail(body: Any, text: str = "") -> str:
    """The human part of a provider's error body (Anthropic, OpenAI, vLLM, Ollama shapes)."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message = error.get("message")
            if isinstance(message, str) and message:
                return message
        if isinstance(error, str) and error:
            return error
        for key in ("message", "detail"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
    # An HTML error page from a proxy says nothing a one-line message can use.
    return "" if text.lstrip().startswith("<") else text


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty dict (lenient parsing of optional parts)."""
    return value if isinstance(value, dict) else {}


def as_int(value: Any) -> int:
    """A token count from JSON: ints pass, anything else (null, missing) counts as 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class ProviderHTTP:
    """Posts JSON to one provider with retries; maps failures to :class:`ProviderError`.

    Args:
        provider: Name used in messages (``anthropic``, ``openai``).
        base_url: Endpoint root; request paths are appended to it.
        headers: Sent with every request (auth included).
        timeout: Seconds for each connect, read and write (``OPSMITH_LLM_TIMEOUT``).
        deadline: Seconds for a whole call, retries and answer included (``OPSMITH_LLM_DEADLINE``);
            None for none.
        max_retries: Extra attempts after the first on transport errors, 429 and 5xx.
        key_env: Env var that holds the key, named in auth errors.
        secret: The API key, only so it can be scrubbed from echoed text.
        api: What ``base_url`` should point at, named in bad-response errors.
        transport: An ``httpx`` transport (``MockTransport`` in tests).
        sleep: Called with the seconds to wait between attempts.
        base_delay: First backoff in seconds; doubles each retry, capped at ``max_delay``.
        rng: Returns a float in [0, 1) for jitter.
    """

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        headers: Mapping[str, str],
        timeout: float,
        deadline: float | None = None,
        max_retries: int,
        key_env: str | None,
        secret: str | None,
        api: str,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        base_delay: float = 0.5,
        max_delay: float = MAX_BACKOFF_S,
        retry_after_cap: float = RETRY_AFTER_CAP_S,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.provider = provider
        # Shown in messages, so masked (a URL may carry a password); requests use the real one.
        self.base_url = mask_url(base_url.rstrip("/"))
        self._base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.deadline = deadline
        self.max_retries = max(0, max_retries)
        self.key_env = key_env
        self.api = api
        self.sleep = sleep
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.retry_after_cap = retry_after_cap
        self._rng = rng
        self._headers = dict(headers)
        self._secret = secret
        self._transport = transport
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ProviderHTTP(provider={self.provider!r}, base_url={self.base_url!r})"

    # Public --------------------------------------------------------------------------------

    def post_json(self, path: str, body: Mapping[str, Any]) -> Any:
        """POST ``body`` and return the decoded JSON answer."""
        _, content = self._send(path, body, call_end(self.deadline), stream=False)
        try:
            return json.loads(content)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            start = content[:60].decode("utf-8", "replace")
            raise self.bad_response(f"a body that is not JSON (starts {start!r})") from exc

    def stream_events(self, path: str, body: Mapping[str, Any]) -> Generator[SSEEvent, None, None]:
        """POST ``body`` and yield the server-sent events of the answer.

        Retries happen only before the first byte; a stream cut off midway raises, and so does
        one still running at the deadline.
        """
        end = call_end(self.deadline)
        response, _ = self._send(path, body, end, stream=True)
        watchdog = _Watchdog(response, end)
        try:
            try:
                yield from iter_sse(self._lines(response, end))
            except httpx.TransportError as exc:
                if watchdog.fired or _past(end):
                    raise self._deadline_error(1, midstream=True) from exc
                if isinstance(exc, httpx.TimeoutException):
                    raise self._timeout_error(attempts=1, midstream=True) from exc
                raise ProviderUnavailableError(
                    f"The {self.provider} stream from {self.base_url} broke off ({self._describe(exc)})"
                    " — retry, or check OPSMITH_BASE_URL and that the server is running",
                    provider=self.provider,
                ) from exc
            if watchdog.fired:  # the socket was shut just as the stream ended: it may be cut short
                raise self._deadline_error(1, midstream=True)
        finally:
            watchdog.cancel()
            response.close()

    def bad_response(self, what: str, *, status: int | None = None) -> ProviderResponseError:
        """A :class:`ProviderResponseError` for an answer whose shape we cannot use."""
        return ProviderResponseError(
            f"{self.provider} at {self.base_url} returned {self.scrub(what)}"
            f" — check that OPSMITH_BASE_URL points at {self.api}",
            provider=self.provider,
            status=status,
        )

    def scrub(self, text: str) -> str:
        """``text`` on one line, shortened, with the API key replaced by ``<redacted>``."""
        text = " ".join(text.split())
        if self._secret:
            text = text.replace(self._secret, "<redacted>")
        if len(text) > _DETAIL_CHARS:
            text = text[: _DETAIL_CHARS - 1] + "…"
        return text

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # Internals -----------------------------------------------------------------------------

    def _client_or_new(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    headers=self._headers, timeout=httpx.Timeout(self.timeout), transport=self._transport
                )
            return self._client

    def _url(self, path: str) -> httpx.URL:
        raw = self._base_url + path
        try:
            url = httpx.URL(raw)
        except httpx.InvalidURL as exc:
            raise self._bad_url() from exc
        if url.scheme not in {"http", "https"} or not url.host:
            raise self._bad_url()
        return url

    def _bad_url(self) -> ConfigError:
        return ConfigError(
            f"{self.base_url!r} is not a usable {self.provider} URL — set OPSMITH_BASE_URL to a full URL"
            " such as http://localhost:8000/v1"
        )

    def _send(
        self, path: str, body: Mapping[str, Any], end: float | None, *, stream: bool
    ) -> tuple[httpx.Response, bytes]:
        """Post with retries until ``end``; returns the open response (``stream``) or the read body."""
        url = self._url(path)
        client = self._client_or_new()
        attempt = 0
        last: str | None = None
        while True:
            left = time_left(end)
            if left is not None and left <= 0:
                raise self._deadline_error(attempt, last=last)
            attempt += 1
            retry_after: float | None = None
            cause: BaseException | None = None
            failure: ProviderError
            # Every wait is cut to what is left of the deadline, so a timeout then is the deadline's.
            timeout = self.timeout if left is None else min(self.timeout, left)
            try:
                request = client.build_request("POST", url, json=body, timeout=timeout)
                response = client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                if timeout < self.timeout:
                    raise self._deadline_error(attempt, last=last) from exc
                if isinstance(exc, httpx.ConnectTimeout):
                    failure, cause = self._unreachable(exc, attempt), exc
                else:
                    failure, cause = self._timeout_error(attempt), exc
            except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                failure, cause = self._unreachable(exc, attempt), exc
            except httpx.TransportError as exc:
                raise self._unreachable(exc, attempt) from exc
            else:
                if response.status_code < 400:
                    if stream:
                        return response, b""
                    try:
                        return response, self._read(response, end, attempt)
                    except httpx.TimeoutException as exc:
                        failure, cause = self._timeout_error(attempt), exc
                    except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                        failure, cause = self._unreachable(exc, attempt), exc
                else:
                    try:
                        content = self._read(response, end, attempt)
                    except (httpx.TransportError, ProviderDeadlineError):
                        content = b""  # the status alone still tells the user what to fix
                    failure = self._status_error(response, content, attempt)
                    if not _retryable_status(response.status_code):
                        raise failure
                    retry_after = _retry_after(response.headers)
            if attempt > self.max_retries:
                raise failure from cause
            last = f"HTTP {failure.status}" if failure.status else self._describe(cause) if cause else None
            delay = self._delay(attempt, retry_after)
            left = time_left(end)
            if left is not None and delay >= left:
                # Waiting would use up the deadline: stop now, saying what the last attempt met.
                raise self._deadline_error(attempt, last=last) from cause
            logger.debug(
                "%s: %s; retrying in %.2fs (attempt %d of %d)",
                self.provider,
                failure.message,
                delay,
                attempt + 1,
                self.max_retries + 1,
            )
            self.sleep(delay)

    def _read(self, response: httpx.Response, end: float | None, attempts: int) -> bytes:
        """The whole body of ``response``, read by ``end``; closes it."""
        watchdog = _Watchdog(response, end)
        content = bytearray()
        try:
            for chunk in response.iter_bytes():
                if _past(end):
                    raise self._deadline_error(attempts)
                content += chunk
        except httpx.TransportError as exc:
            if watchdog.fired or _past(end):
                raise self._deadline_error(attempts) from exc
            raise
        finally:
            watchdog.cancel()
            response.close()
        if watchdog.fired:  # the socket was shut just as the body ended: it may be cut short
            raise self._deadline_error(attempts)
        return bytes(content)

    def _lines(self, response: httpx.Response, end: float | None) -> Iterator[str]:
        for line in response.iter_lines():
            if _past(end):
                raise self._deadline_error(1, midstream=True)
            yield line

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return max(0.0, min(retry_after, self.retry_after_cap))
        backoff = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        # Jitter spreads out clients that failed together so they do not retry in lockstep.
        return backoff * (0.5 + 0.5 * self._rng())

    def _status_error(self, response: httpx.Response, content: bytes, attempts: int) -> ProviderError:
        status = response.status_code
        text = content.decode(response.encoding or "utf-8", "replace")
        try:
            body: Any = json.loads(text) if text else None
        except json.JSONDecodeError:
            body = None
        detail = self.scrub(error_detail(body, text))
        suffix = f": {detail}" if detail else ""
        tried = _attempts(attempts)
        provider = self.provider
        if status in {401, 403}:
            env = self.key_env or "OPSMITH_LLM_API_KEY_ENV"
            if self._secret:
                message = (
                    f"{provider} rejected the API key (HTTP {status}{suffix}) — check {env}"
                    " (or set OPSMITH_LLM_API_KEY_ENV to the variable that holds it)"
                )
            else:
                message = (
                    f"{provider} at {self.base_url} wants an API key (HTTP {status}{suffix}) — set {env}"
                    " (or set OPSMITH_LLM_API_KEY_ENV to the variable that holds it)"
                )
            return ProviderAuthError(message, provider=provider, status=status)
        if status == 429:
            return ProviderRateLimitError(
                f"{provider} is rate limiting requests (HTTP 429{suffix}){tried}"
                " — wait and retry, send fewer requests at once, or raise OPSMITH_LLM_MAX_RETRIES",
                provider=provider,
                status=status,
            )
        if status >= 500:
            return ProviderUnavailableError(
                f"{provider} at {self.base_url} failed (HTTP {status}{suffix}){tried}"
                " — retry later, or check OPSMITH_BASE_URL and the server's logs",
                provider=provider,
                status=status,
            )
        if status == 404:
            return ProviderError(
                f"{provider} at {self.base_url} answered HTTP 404{suffix} — check OPSMITH_BASE_URL and OPSMITH_MODEL",
                provider=provider,
                status=status,
            )
        return ProviderError(
            f"{provider} rejected the request (HTTP {status}{suffix})"
            " — check OPSMITH_MODEL and OPSMITH_LLM_MAX_TOKENS, or shorten the input",
            provider=provider,
            status=status,
        )

    def _timeout_error(self, attempts: int, *, midstream: bool = False) -> ProviderTimeoutError:
        what = "stopped sending mid-stream for" if midstream else "did not answer within"
        return ProviderTimeoutError(
            f"{self.provider} at {self.base_url} {what} {self.timeout:g}s{_attempts(attempts)}"
            " — raise OPSMITH_LLM_TIMEOUT or check the server's load",
            provider=self.provider,
        )

    def _deadline_error(
        self, attempts: int, *, last: str | None = None, midstream: bool = False
    ) -> ProviderDeadlineError:
        deadline = self.deadline or 0.0
        if midstream:
            what = f"was still sending its answer at the {deadline:g}s deadline"
        else:
            what = f"did not finish within the {deadline:g}s deadline{_attempts(attempts)}"
            if last:
                what += f" (last attempt: {last})"
        return ProviderDeadlineError(
            f"{self.provider} at {self.base_url} {what}"
            " — raise OPSMITH_LLM_DEADLINE (or lower OPSMITH_LLM_MAX_TOKENS), or check the server's load",
            provider=self.provider,
            deadline=deadline,
        )

    def _unreachable(self, exc: httpx.TransportError, attempts: int) -> ProviderUnavailableError:
        return ProviderUnavailableError(
            f"Cannot reach {self.provider} at {self.base_url} ({self._describe(exc)}){_attempts(attempts)}"
            " — check OPSMITH_BASE_URL and that the server is running",
            provider=self.provider,
        )

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, httpx.ConnectTimeout):
            return f"no connection within {self.timeout:g}s"
        text = _ERRNO_PREFIX.sub("", str(exc).strip())
        if not text:
            text = type(exc).__name__
        text = text[:1].lower() + text[1:]
        return self.scrub(text)


class _Watchdog:
    """Shuts the socket under ``response`` at ``end``, so a read blocked on it returns then.

    httpx's timeouts bound each read, not the whole body; a server that keeps sending a byte
    now and then would never trip them. Only closing the socket under the read cuts it at a
    wall-clock moment. Transports without a socket (``MockTransport``) get no watchdog: their
    readers still check the clock between chunks.
    """

    def __init__(self, response: httpx.Response, end: float | None) -> None:
        self.fired = False
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        sock = _socket_of(response) if end is not None else None
        if sock is not None and end is not None:
            self._timer = threading.Timer(max(0.0, end - time.monotonic()), self._fire, args=(sock,))
            self._timer.daemon = True
            self._timer.start()

    def _fire(self, sock: socket.socket) -> None:
        with self._lock:
            if self._timer is None:
                return  # cancelled: the connection may already serve another request
            self.fired = True
            # The plain socket's shutdown, also under TLS: it wakes the blocked read without
            # touching the SSL object that the reading thread is using. OSError: already closed.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def cancel(self) -> None:
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()


def _socket_of(response: httpx.Response) -> socket.socket | None:
    stream = response.extensions.get("network_stream")
    get_extra_info = getattr(stream, "get_extra_info", None)
    sock = get_extra_info("socket") if callable(get_extra_info) else None
    return sock if isinstance(sock, socket.socket) else None


def _past(end: float | None) -> bool:
    return end is not None and time.monotonic() >= end


def _attempts(attempts: int) -> str:
    return f" after {attempts} attempts" if attempts > 1 else ""


def _retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from ``retry-after-ms`` (OpenAI) or ``retry-after`` (seconds or a date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return float(millis) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HTTPChatModelBase:
    """What every HTTP provider shares: its :class:`ProviderHTTP` client's settings and lifetime."""

    _http: ProviderHTTP

    @property
    def timeout(self) -> float:
        """Seconds per connect/read/write."""
        return self._http.timeout

    @property
    def deadline(self) -> float | None:
        """Seconds for a whole call: connect, retries, backoff and the answer."""
        return self._http.deadline

    @property
    def max_retries(self) -> int:
        """Retries after the first attempt on transport errors, 429 and 5xx."""
        return self._http.max_retries

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying connection pool."""
        self._http.close()
