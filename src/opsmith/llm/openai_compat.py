"""OpenAI Chat Completions (``POST {base_url}/chat/completions``) and the servers that speak it.

Works with OpenAI itself and with local servers exposing the same API: vLLM, Ollama
(``http://localhost:11434/v1``), llama.cpp's ``llama-server``, LM Studio. Local servers
usually need no key, so ``Authorization`` is only sent when one is given.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from typing import Any

import httpx

from opsmith.errors import ProviderError
from opsmith.llm._base import ChatResponse, Message, StreamEvent, Usage
from opsmith.llm._http import HTTPChatModelBase, ProviderHTTP, as_dict, as_int, error_detail

__all__ = ["DEFAULT_BASE_URL", "OPENAI_HOST", "OpenAIChatModel", "is_openai_host", "normalise_finish_reason"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
OPENAI_HOST = "api.openai.com"

_FINISH_REASONS = {"stop": "end", "length": "max_tokens"}


def normalise_finish_reason(reason: Any) -> str:
    """OpenAI's ``finish_reason`` as ``end``, ``max_tokens`` or ``other``."""
    return _FINISH_REASONS.get(reason, "other") if isinstance(reason, str) else "other"


def is_openai_host(base_url: str) -> bool:
    """True when ``base_url`` is OpenAI's own API rather than a compatible server."""
    try:
        return httpx.URL(base_url).host == OPENAI_HOST
    except httpx.InvalidURL:
        return False


class OpenAIChatModel(HTTPChatModelBase):
    """A :class:`~opsmith.llm.ChatModel` for any OpenAI-compatible chat completions endpoint.

    Args:
        model: Model name as the server knows it (``gpt-4o-mini``, ``llama3.1:8b``, ...).
        api_key: Sent as ``Authorization: Bearer``; None for servers that need no key.
        base_url: Endpoint root including ``/v1``.
        timeout: Seconds per connect/read/write.
        deadline: Seconds for a whole call: connect, retries, backoff and the answer (None: no limit).
        max_retries: Retries on transport errors, 429 and 5xx; the only retries a call gets.
        max_tokens: Output cap when a call gives none.
        transport: An ``httpx`` transport, e.g. ``httpx.MockTransport`` in tests.
        sleep: Waits between retries; tests pass a recorder.
        key_env: The env var holding the key, named in auth errors.
        retry_base_delay: First backoff in seconds.
    """

    provider = "openai"

    def __init__(
        self,
        model: str,
        api_key: str | None = None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 60.0,
        deadline: float | None = 120.0,
        max_retries: int = 3,
        max_tokens: int = 1024,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        key_env: str = "OPENAI_API_KEY",
        retry_base_delay: float = 0.5,
    ) -> None:
        self.model = model
        self.max_tokens = max_tokens
        self.base_url = base_url.rstrip("/")
        headers = {"content-type": "application/json", "accept": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        # OpenAI's newer models reject ``max_tokens``; most compatible servers only know it.
        self._max_tokens_field = "max_completion_tokens" if is_openai_host(self.base_url) else "max_tokens"
        self._http = ProviderHTTP(
            provider=self.provider,
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            deadline=deadline,
            max_retries=max_retries,
            key_env=key_env,
            secret=api_key,
            api="an OpenAI-compatible endpoint ending in /v1, e.g. http://localhost:8000/v1",
            transport=transport,
            sleep=sleep,
            base_delay=retry_base_delay,
        )

    def __repr__(self) -> str:
        return f"OpenAIChatModel(model={self.model!r}, base_url={self.base_url!r})"

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
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": json_schema, "strict": True},
            }
        started = time.perf_counter()
        data = self._http.post_json("/chat/completions", body)
        latency_ms = (time.perf_counter() - started) * 1000
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise self._http.bad_response("a body without choices")
        choice = choices[0]
        content = as_dict(choice.get("message")).get("content")
        usage = as_dict(data.get("usage"))
        return ChatResponse(
            text=content if isinstance(content, str) else "",
            model=self.model,
            usage=Usage(as_int(usage.get("prompt_tokens")), as_int(usage.get("completion_tokens"))),
            stop_reason=normalise_finish_reason(choice.get("finish_reason")),
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
        body["stream_options"] = {"include_usage": True}
        started = time.perf_counter()
        pieces: list[str] = []
        usage = Usage()
        finish_reason: str | None = None
        with closing(self._http.stream_events("/chat/completions", body)) as events:
            for event in events:
                if event.is_done:
                    break
                try:
                    data = as_dict(event.json())
                except ValueError as exc:
                    raise self._http.bad_response(f"a stream chunk that is not JSON ({event.data[:60]!r})") from exc
                if "error" in data:
                    detail = self._http.scrub(error_detail(data) or "no details")
                    raise ProviderError(
                        f"openai at {self._http.base_url} failed mid-stream ({detail}) — retry, or check OPSMITH_MODEL",
                        provider=self.provider,
                    )
                chunk_usage = data.get("usage")
                if isinstance(chunk_usage, dict):
                    usage = Usage(
                        as_int(chunk_usage.get("prompt_tokens")), as_int(chunk_usage.get("completion_tokens"))
                    )
                choices = data.get("choices")
                if not isinstance(choices, list) or not choices:
                    continue
                choice = as_dict(choices[0])
                text = as_dict(choice.get("delta")).get("content")
                if isinstance(text, str) and text:
                    pieces.append(text)
                    yield StreamEvent(delta=text)
                if isinstance(choice.get("finish_reason"), str):
                    finish_reason = choice["finish_reason"]
            else:
                # Some servers close without ``[DONE]``; a finish_reason already marks the end.
                if finish_reason is None:
                    raise self._http.bad_response("a stream that ended before [DONE]")
        response = ChatResponse(
            text="".join(pieces),
            model=self.model,
            usage=usage,
            stop_reason=normalise_finish_reason(finish_reason),
            latency_ms=(time.perf_counter() - started) * 1000,
        )
        yield StreamEvent(response=response)

    def _body(self, messages: Sequence[Message], max_tokens: int | None, temperature: float | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            self._max_tokens_field: self.max_tokens if max_tokens is None else max_tokens,
        }
        if temperature is not None:
            body["temperature"] = temperature
        return body
