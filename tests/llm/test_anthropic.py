"""AnthropicChatModel at the wire: outgoing requests, real response shapes, retries, errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from opsmith.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderRateLimitError,
    ProviderResponseError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from opsmith.llm import ChatModel, Message
from opsmith.llm.anthropic import AnthropicChatModel

KEY = "sk-ant-test-0123456789abcdef"

Handler = Callable[[httpx.Request], httpx.Response]


def message_body(text: str = "Restart the kubelet.", stop_reason: str = "end_turn", **extra: Any) -> dict[str, Any]:
    """A response shaped like the Messages API's (fields as documented, ids made up)."""
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 42,
            "output_tokens": 7,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
        **extra,
    }


class Recorder:
    """Serves scripted responses through ``httpx.MockTransport`` and keeps every request."""

    def __init__(self, *responses: httpx.Response | Exception | Handler) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        item = self.responses[min(len(self.requests), len(self.responses)) - 1]
        if isinstance(item, Exception):
            raise item
        if callable(item):
            return item(request)
        return item

    def model(self, **kwargs: Any) -> AnthropicChatModel:
        kwargs.setdefault("max_retries", 2)
        return AnthropicChatModel(
            "claude-test", KEY, transport=httpx.MockTransport(self), sleep=self.sleeps.append, **kwargs
        )

    def body(self, index: int = -1) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.requests[index].content)
        return data


@pytest.fixture
def ok() -> Recorder:
    return Recorder(httpx.Response(200, json=message_body()))


def test_implements_the_chat_model_protocol(ok: Recorder) -> None:
    model = ok.model()
    assert isinstance(model, ChatModel)
    assert (model.provider, model.model) == ("anthropic", "claude-test")


def test_request_shape(ok: Recorder) -> None:
    ok.model().complete(
        [
            Message("system", "You are an SRE."),
            Message("system", "Cite runbooks."),
            Message("user", "etcd is slow"),
            Message("assistant", "Which version?"),
            Message("user", "3.5"),
        ],
        temperature=0.2,
    )

    request = ok.requests[0]
    assert request.method == "POST"
    assert str(request.url) == "https://api.anthropic.com/v1/messages"
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert ok.body() == {
        "model": "claude-test",
        "max_tokens": 1024,
        "system": "You are an SRE.\n\nCite runbooks.",
        "messages": [
            {"role": "user", "content": "etcd is slow"},
            {"role": "assistant", "content": "Which version?"},
            {"role": "user", "content": "3.5"},
        ],
        "temperature": 0.2,
    }


def test_max_tokens_per_call_overrides_default_and_base_url_is_used() -> None:
    recorder = Recorder(httpx.Response(200, json=message_body()))
    recorder.model(base_url="http://127.0.0.1:9999/", max_tokens=300).complete([Message("user", "hi")], max_tokens=64)
    assert str(recorder.requests[0].url) == "http://127.0.0.1:9999/v1/messages"
    body = recorder.body()
    assert body["max_tokens"] == 64
    assert "system" not in body
    assert "temperature" not in body
    assert "output_config" not in body


def test_json_schema_uses_structured_outputs(ok: Recorder) -> None:
    schema = {"type": "object", "properties": {"severity": {"type": "string"}}, "required": ["severity"]}
    ok.model().complete([Message("user", "classify")], json_schema=schema)
    assert ok.body()["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert "output_format" not in ok.body()


def test_parses_a_real_response_shape() -> None:
    body = message_body()
    body["content"] = [
        {"type": "thinking", "thinking": "hmm", "signature": "x"},
        {"type": "text", "text": "Check disk "},
        {"type": "text", "text": "latency first."},
    ]
    recorder = Recorder(httpx.Response(200, json=body))
    response = recorder.model().complete([Message("user", "etcd is slow")])
    assert response.text == "Check disk latency first."
    assert response.model == "claude-test"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (42, 7)
    assert response.stop_reason == "end"
    assert response.truncated is False
    assert response.latency_ms > 0


@pytest.mark.parametrize(
    ("raw", "normalised", "truncated"),
    [
        ("end_turn", "end", False),
        ("max_tokens", "max_tokens", True),
        ("stop_sequence", "stop_sequence", False),
        ("model_context_window_exceeded", "max_tokens", True),
        ("tool_use", "other", False),
        ("refusal", "other", False),
    ],
)
def test_stop_reason_is_normalised(raw: str, normalised: str, truncated: bool) -> None:
    recorder = Recorder(httpx.Response(200, json=message_body(stop_reason=raw)))
    response = recorder.model().complete([Message("user", "hi")])
    assert response.stop_reason == normalised
    assert response.truncated is truncated


def sse(*events: tuple[str, dict[str, Any]]) -> bytes:
    return "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events).encode()


STREAM_EVENTS: list[tuple[str, dict[str, Any]]] = [
    (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "claude-sonnet-4-6",
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 25, "output_tokens": 1},
            },
        },
    ),
    ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ("ping", {"type": "ping"}),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Check "}},
    ),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "etcd disk latency."}},
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
            "usage": {"output_tokens": 15},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
]


def test_streaming_assembles_text_usage_and_stop_reason() -> None:
    recorder = Recorder(httpx.Response(200, content=sse(*STREAM_EVENTS), headers={"content-type": "text/event-stream"}))
    events = list(recorder.model().stream([Message("user", "etcd is slow")], max_tokens=15))

    assert recorder.body()["stream"] is True
    assert recorder.body()["max_tokens"] == 15
    assert [e.delta for e in events[:-1]] == ["Check ", "etcd disk latency."]
    final = events[-1].response
    assert final is not None
    assert final.text == "Check etcd disk latency."
    assert (final.usage.input_tokens, final.usage.output_tokens) == (25, 15)
    assert final.stop_reason == "max_tokens"
    assert final.truncated is True
    assert all(e.response is None for e in events[:-1])


def test_error_event_mid_stream_raises_provider_error() -> None:
    events = [
        *STREAM_EVENTS[:4],
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ]
    recorder = Recorder(httpx.Response(200, content=sse(*events), headers={"content-type": "text/event-stream"}))
    stream = recorder.model().stream([Message("user", "hi")])
    assert next(stream).delta == "Check "
    with pytest.raises(ProviderUnavailableError, match="Overloaded") as info:
        next(stream)
    assert info.value.provider == "anthropic"


def test_stream_cut_off_before_message_stop_raises() -> None:
    recorder = Recorder(
        httpx.Response(200, content=sse(*STREAM_EVENTS[:4]), headers={"content-type": "text/event-stream"})
    )
    with pytest.raises(ProviderResponseError, match="message_stop"):
        list(recorder.model().stream([Message("user", "hi")]))


def test_401_names_the_env_var_and_never_the_key() -> None:
    error_body = {
        "type": "error",
        "error": {"type": "authentication_error", "message": f"invalid x-api-key {KEY}"},
    }
    recorder = Recorder(httpx.Response(401, json=error_body))
    model = recorder.model()
    with pytest.raises(ProviderAuthError) as info:
        model.complete([Message("user", "hi")])

    message = str(info.value)
    assert message.startswith("anthropic rejected the API key (HTTP 401")
    assert "check ANTHROPIC_API_KEY" in message
    assert "OPSMITH_LLM_API_KEY_ENV" in message
    assert KEY not in message
    assert KEY not in repr(info.value)
    assert KEY not in repr(model)
    assert "\n" not in message
    assert info.value.status == 401
    assert len(recorder.requests) == 1  # auth failures are not retried
    assert recorder.sleeps == []


def test_auth_error_names_a_custom_key_env() -> None:
    recorder = Recorder(httpx.Response(403, json={"type": "error", "error": {"type": "permission_error"}}))
    with pytest.raises(ProviderAuthError, match="check CLAUDE_KEY"):
        recorder.model(key_env="CLAUDE_KEY").complete([Message("user", "hi")])


def test_429_then_200_retries_once_honouring_retry_after() -> None:
    recorder = Recorder(
        httpx.Response(
            429, headers={"retry-after": "2"}, json={"type": "error", "error": {"type": "rate_limit_error"}}
        ),
        httpx.Response(200, json=message_body(text="ok")),
    )
    response = recorder.model().complete([Message("user", "hi")])
    assert response.text == "ok"
    assert len(recorder.requests) == 2
    assert recorder.sleeps == [2.0]
    assert recorder.body(0) == recorder.body(1)


def test_retry_after_is_capped() -> None:
    recorder = Recorder(
        httpx.Response(429, headers={"retry-after": "3600"}),
        httpx.Response(200, json=message_body()),
    )
    recorder.model().complete([Message("user", "hi")])
    assert recorder.sleeps == [30.0]


def test_429_after_all_retries_is_a_rate_limit_error() -> None:
    recorder = Recorder(httpx.Response(429, json={"type": "error", "error": {"message": "slow down"}}))
    with pytest.raises(ProviderRateLimitError, match="slow down") as info:
        recorder.model(max_retries=1).complete([Message("user", "hi")])
    assert len(recorder.requests) == 2
    assert info.value.status == 429
    assert "after 2 attempts" in str(info.value)


def test_500_on_every_attempt_is_unavailable_after_backoff() -> None:
    recorder = Recorder(httpx.Response(500, json={"type": "error", "error": {"type": "api_error", "message": "boom"}}))
    with pytest.raises(ProviderUnavailableError) as info:
        recorder.model(max_retries=2, retry_base_delay=1.0).complete([Message("user", "hi")])
    assert len(recorder.requests) == 3
    assert info.value.status == 500
    assert "HTTP 500" in str(info.value)
    assert "OPSMITH_BASE_URL" in str(info.value)
    # Exponential backoff with jitter: attempt n waits within [base*2^(n-1)/2, base*2^(n-1)].
    assert len(recorder.sleeps) == 2
    assert 0.5 <= recorder.sleeps[0] <= 1.0
    assert 1.0 <= recorder.sleeps[1] <= 2.0


def test_other_4xx_is_not_retried() -> None:
    recorder = Recorder(
        httpx.Response(
            400,
            json={"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: too big"}},
        )
    )
    with pytest.raises(ProviderError, match="max_tokens: too big") as info:
        recorder.model().complete([Message("user", "hi")])
    assert type(info.value) is ProviderError
    assert info.value.status == 400
    assert len(recorder.requests) == 1


def test_read_timeout_after_retries_is_a_timeout_error() -> None:
    recorder = Recorder(httpx.ReadTimeout("timed out"))
    with pytest.raises(ProviderTimeoutError) as info:
        recorder.model(max_retries=2, timeout=7).complete([Message("user", "hi")])
    assert len(recorder.requests) == 3
    assert len(recorder.sleeps) == 2
    message = str(info.value)
    assert "OPSMITH_LLM_TIMEOUT" in message
    assert "7s" in message
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)


def test_transport_error_then_success_recovers() -> None:
    recorder = Recorder(httpx.ConnectError("[Errno 111] Connection refused"), httpx.Response(200, json=message_body()))
    assert recorder.model().complete([Message("user", "hi")]).text == "Restart the kubelet."
    assert len(recorder.requests) == 2


def test_unparseable_body_is_a_response_error() -> None:
    recorder = Recorder(httpx.Response(200, content=b"<html>gateway</html>"))
    with pytest.raises(ProviderResponseError, match="not JSON"):
        recorder.model().complete([Message("user", "hi")])
    assert len(recorder.requests) == 1


def test_json_without_content_is_a_response_error() -> None:
    recorder = Recorder(httpx.Response(200, json={"choices": []}))
    with pytest.raises(ProviderResponseError, match="OPSMITH_BASE_URL"):
        recorder.model().complete([Message("user", "hi")])


def test_close_is_idempotent_and_context_manager_closes(ok: Recorder) -> None:
    with ok.model() as model:
        model.complete([Message("user", "hi")])
    model.close()
