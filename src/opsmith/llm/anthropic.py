"""Claude through the Anthropic Messages API (``POST /v1/messages``), on plain ``httpx``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from typing import Any

import httpx

from opsmith.errors import ProviderError, ProviderRateLimitError, ProviderUnavailableError
from opsmith.llm._base import ChatResponse, Message, StreamEvent, Usage
from opsmith.llm._http import HTTPChatModelBase, ProviderHTTP, as_dict, as_int

__all__ = ["ANTHROPIC_VERSION", "DEFAULT_BASE_URL", "AnthropicChatModel", "normalise_stop_reason"]

DEFAULT_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"

_STOP_REASONS = {
    "end_turn": "end",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    # The input plus output filled the context window: the answer is cut off all the same.
    "model_context_window_exceeded": "max_tokens",
}


def normalise_stop_reason(reason: Any) -> str:
    """Anthropic's ``stop_reason`` as ``end``, ``max_tokens``, ``stop_sequence`` or ``other``."""
    return _STOP_REASONS.get(reason, "other") if isinstance(reason, str) else "other"


class AnthropicChatModel(HTTPChatModelBase):
    """A :class:`~opsmith.llm.ChatModel` for Claude.

    Args:
        model: Model name, e.g. ``claude-sonnet-4-6``.
        api_key: Sent as ``x-api-key``; never logged or shown.
        base_url: API root without ``/v1``.
        timeout: Seconds per connect/read/write.
        deadline: Seconds for a whole call: connect, retries, backoff and the answer (None: no limit).
        max_retries: Retries on transport errors, 429 and 5xx; the only retries a call gets.
        max_tokens: Output cap when a call gives none (the API requires one).
        transport: An ``httpx`` transport, e.g. ``httpx.MockTransport`` in tests.
        sleep: Waits between retries; tests pass a recorder.
        key_env: The env var holding the key, named in auth errors.
        retry_base_delay: First backoff in seconds.
    """

    provider = "anthropic"

    def __init__(
        self,
        model: str,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 60.0,
        deadline: float | None = 120.0,
        max_retries: int = 3,
        max_tokens: int = 1024,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        key_env: str = "ANTHROPIC_API_KEY",
        retry_base_delay: float = 0.5,
    ) -> None:
        self.model = model
        self.max_tokens = max_tokens
        self.base_url = base_url.rstrip("/")
        self._http = ProviderHTTP(
            provider=self.provider,
            base_url=self.base_url,
            headers={
                "x-api-key": api_key,
                "anthropic-version": ANTHROPIC_VERSION,
                "content-type": "application/json",
                "accept": "application/json",
            },
            timeout=timeout,
            deadline=deadline,
            max_retries=max_retries,
            key_env=key_env,
            secret=api_key,
            api="the Anthropic API (https://api.anthropic.com, without /v1)",
            transport=transport,
            sleep=sleep,
            base_delay=retry_base_delay,
        )

    def __repr__(self) -> str:
        return f"AnthropicChatModel(model={self.model!r}, base_url={self.base_url!r})"

    def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> ChatResponse:
        """One request/response call; see :class:`~opsmith.llm.ChatModel`."""
        body = self._body(messages, max_tokens, temperature)
        if json_schema is not None:
            # Structured outputs are GA under ``output_config.format`` (no beta header); the
            # beta ``output_format`` + ``structured-outputs-2025-11-13`` spelling is deprecated.
            body["output_config"] = {"format": {"type": "json_schema", "schema": json_schema}}
        started = time.perf_counter()
        data = self._http.post_json("/v1/messages", body)
        latency_ms = (time.perf_counter() - started) * 1000
        if not isinstance(data, dict) or not isinstance(data.get("content"), list):
            raise self._http.bad_response("a body without a content list")
        text = "".join(
            block["text"]
            for block in data["content"]
            if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str)
        )
        usage = as_dict(data.get("usage"))
        return ChatResponse(
            text=text,
            model=self.model,
            usage=Usage(as_int(usage.get("input_tokens")), as_int(usage.get("output_tokens"))),
            stop_reason=normalise_stop_reason(data.get("stop_reason")),
            latency_ms=latency_ms,
        )

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Iterator[StreamEvent]:
        """Yield text deltas as they arrive, then one event carrying the full response."""
        body = self._body(messages, max_tokens, temperature)
        body["stream"] = True
        started = time.perf_counter()
        pieces: list[str] = []
        usage = Usage()
        stop_reason = "other"
        with closing(self._http.stream_events("/v1/messages", body)) as events:
            for event in events:
                try:
                    data = as_dict(event.json())
                except ValueError as exc:
                    raise self._http.bad_response(f"a stream event that is not JSON ({event.data[:60]!r})") from exc
                kind = data.get("type") or event.event
                if kind == "message_start":
                    start_usage = as_dict(as_dict(data.get("message")).get("usage"))
                    usage = Usage(as_int(start_usage.get("input_tokens")), as_int(start_usage.get("output_tokens")))
                elif kind == "content_block_delta":
                    delta = as_dict(data.get("delta"))
                    text = delta.get("text")
                    if delta.get("type") == "text_delta" and isinstance(text, str) and text:
                        pieces.append(text)
                        yield StreamEvent(delta=text)
                elif kind == "message_delta":
                    stop_reason = normalise_stop_reason(as_dict(data.get("delta")).get("stop_reason"))
                    # Counts in message_delta are cumulative, so they replace rather than add.
                    end_usage = as_dict(data.get("usage"))
                    if "input_tokens" in end_usage:
                        usage.input_tokens = as_int(end_usage["input_tokens"])
                    if "output_tokens" in end_usage:
                        usage.output_tokens = as_int(end_usage["output_tokens"])
                elif kind == "message_stop":
                    response = ChatResponse(
                        text="".join(pieces),
                        model=self.model,
                        usage=usage,
                        stop_reason=stop_reason,
                        latency_ms=(time.perf_counter() - started) * 1000,
                    )
                    yield StreamEvent(response=response)
                    return
                elif kind == "error":
                    raise _stream_error(as_dict(data.get("error")), self._http.scrub)
                # ping, content_block_start/stop and future event types carry nothing we need.
        raise self._http.bad_response("a stream that ended before message_stop")

    def _body(self, messages: Sequence[Message], max_tokens: int | None, temperature: float | None) -> dict[str, Any]:
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens if max_tokens is None else max_tokens,
            "messages": [{"role": m.role, "content": m.content} for m in messages if m.role != "system"],
        }
        if system:
            body["system"] = system
        if temperature is not None:
            body["temperature"] = temperature
        return body


def _stream_error(error: dict[str, Any], scrub: Callable[[str], str]) -> ProviderError:
    kind = error.get("type") if isinstance(error.get("type"), str) else "error"
    detail = scrub(error["message"]) if isinstance(error.get("message"), str) else "no details"
    head = f"anthropic failed mid-stream ({kind}: {detail})"
    if kind in {"overloaded_error", "api_error"}:
        return ProviderUnavailableError(f"{head} — retry later", provider="anthropic")
    if kind == "rate_limit_error":
        return ProviderRateLimitError(f"{head} — wait and retry, or send fewer requests at once", provider="anthropic")
    return ProviderError(f"{head} — check OPSMITH_MODEL and the request size", provider="anthropic")
