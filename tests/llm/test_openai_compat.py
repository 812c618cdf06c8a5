"""OpenAIChatModel at the wire: MockTransport for shapes and failures, plus one real local server."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest

from loopback import QuietHandler, read_json, send_json, serve
from opsmith.errors import (
    ConfigError,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimitError,
    ProviderResponseError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from opsmith.llm import ChatModel, Message
from opsmith.llm._http import SSEEvent, iter_sse
from opsmith.llm.openai_compat import OpenAIChatModel

KEY = "sk-proj-test-abcdef0123456789"


def completion(
    content: str | None = "Scale the deployment.", finish_reason: str = "stop", model: str = "gpt-4o-mini"
) -> dict[str, Any]:
    """A chat.completion object as OpenAI (and vLLM, Ollama, llama.cpp) return it."""
    return {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1_730_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {"prompt_tokens": 31, "completion_tokens": 6, "total_tokens": 37},
    }


class Recorder:
    """Serves scripted responses through ``httpx.MockTransport`` and keeps every request."""

    def __init__(self, *responses: httpx.Response | Exception) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        item = self.responses[min(len(self.requests), len(self.responses)) - 1]
        if isinstance(item, Exception):
            raise item
        return item

    def model(self, api_key: str | None = KEY, **kwargs: Any) -> OpenAIChatModel:
        kwargs.setdefault("max_retries", 2)
        return OpenAIChatModel(
            "gpt-test", api_key, transport=httpx.MockTransport(self), sleep=self.sleeps.append, **kwargs
        )

    def body(self, index: int = -1) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.requests[index].content)
        return data


def test_implements_the_chat_model_protocol() -> None:
    model = OpenAIChatModel("gpt-test")
    assert isinstance(model, ChatModel)
    assert (model.provider, model.model) == ("openai", "gpt-test")


def test_request_shape_with_key() -> None:
    recorder = Recorder(httpx.Response(200, json=completion()))
    recorder.model().complete(
        [Message("system", "You are an SRE."), Message("user", "pods pending")], temperature=0.0, max_tokens=50
    )
    request = recorder.requests[0]
    assert str(request.url) == "https://api.openai.com/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert recorder.body() == {
        "model": "gpt-test",
        "messages": [
            {"role": "system", "content": "You are an SRE."},
            {"role": "user", "content": "pods pending"},
        ],
        # OpenAI's own API gets the newer field; newer models reject max_tokens.
        "max_completion_tokens": 50,
        "temperature": 0.0,
    }


def test_local_server_gets_no_auth_header_and_max_tokens() -> None:
    recorder = Recorder(httpx.Response(200, json=completion()))
    recorder.model(api_key=None, base_url="http://localhost:11434/v1/", max_tokens=99).complete([Message("user", "hi")])
    request = recorder.requests[0]
    assert str(request.url) == "http://localhost:11434/v1/chat/completions"
    assert "authorization" not in request.headers
    body = recorder.body()
    assert body["max_tokens"] == 99
    assert "max_completion_tokens" not in body
    assert "temperature" not in body
    assert "response_format" not in body


def test_json_schema_is_sent_as_strict_response_format() -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    recorder = Recorder(httpx.Response(200, json=completion('{"ok": true}')))
    response = recorder.model().complete([Message("user", "ok?")], json_schema=schema)
    assert recorder.body()["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": True},
    }
    assert json.loads(response.text) == {"ok": True}


def test_parses_a_real_response_shape() -> None:
    recorder = Recorder(httpx.Response(200, json=completion()))
    response = recorder.model().complete([Message("user", "hi")])
    assert response.text == "Scale the deployment."
    assert response.model == "gpt-test"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (31, 6)
    assert response.stop_reason == "end"
    assert response.truncated is False
    assert response.latency_ms > 0


@pytest.mark.parametrize(
    ("raw", "normalised", "truncated"),
    [("stop", "end", False), ("length", "max_tokens", True), ("content_filter", "other", False)],
)
def test_finish_reason_is_normalised(raw: str, normalised: str, truncated: bool) -> None:
    recorder = Recorder(httpx.Response(200, json=completion(finish_reason=raw)))
    response = recorder.model().complete([Message("user", "hi")])
    assert (response.stop_reason, response.truncated) == (normalised, truncated)


def test_null_content_and_missing_usage_are_tolerated() -> None:
    body = completion(content=None, finish_reason="tool_calls")
    del body["usage"]
    recorder = Recorder(httpx.Response(200, json=body))
    response = recorder.model().complete([Message("user", "hi")])
    assert (response.text, response.usage.total_tokens, response.stop_reason) == ("", 0, "other")


def chunk(delta: dict[str, Any] | None, finish_reason: str | None = None, usage: Any = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        "usage": usage,
    }


def sse(*chunks: dict[str, Any], done: bool = True) -> bytes:
    text = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks)
    return (text + ("data: [DONE]\n\n" if done else "")).encode()


STREAM = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Drain "}),
    chunk({"content": "the node."}),
    chunk({}, finish_reason="length"),
    chunk(None, usage={"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}),
]


def test_streaming_with_include_usage() -> None:
    recorder = Recorder(httpx.Response(200, content=sse(*STREAM), headers={"content-type": "text/event-stream"}))
    events = list(recorder.model().stream([Message("user", "node NotReady")]))

    body = recorder.body()
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert [e.delta for e in events[:-1]] == ["Drain ", "the node."]
    final = events[-1].response
    assert final is not None
    assert final.text == "Drain the node."
    assert (final.usage.input_tokens, final.usage.output_tokens) == (12, 3)
    assert final.stop_reason == "max_tokens"
    assert final.truncated is True


def test_stream_without_done_still_ends_when_finish_reason_was_seen() -> None:
    recorder = Recorder(httpx.Response(200, content=sse(*STREAM[:4], done=False)))
    final = list(recorder.model().stream([Message("user", "hi")]))[-1].response
    assert final is not None
    assert final.text == "Drain the node."
    assert final.usage.total_tokens == 0


def test_stream_cut_off_midway_raises() -> None:
    recorder = Recorder(httpx.Response(200, content=sse(*STREAM[:2], done=False)))
    with pytest.raises(ProviderResponseError, match=r"\[DONE\]"):
        list(recorder.model().stream([Message("user", "hi")]))


def test_error_chunk_mid_stream_raises() -> None:
    error = {"error": {"message": "CUDA out of memory", "type": "InternalServerError", "code": 500}}
    recorder = Recorder(httpx.Response(200, content=sse(STREAM[1], error, done=False)))
    with pytest.raises(ProviderError, match="CUDA out of memory"):
        list(recorder.model().stream([Message("user", "hi")]))


def test_401_names_the_env_var_and_never_the_key() -> None:
    error = {"error": {"message": f"Incorrect API key provided: {KEY}", "type": "invalid_request_error"}}
    recorder = Recorder(httpx.Response(401, json=error))
    with pytest.raises(ProviderAuthError) as info:
        recorder.model().complete([Message("user", "hi")])
    assert "check OPENAI_API_KEY" in str(info.value)
    assert KEY not in str(info.value)
    assert len(recorder.requests) == 1


def test_401_without_a_key_says_one_is_needed() -> None:
    recorder = Recorder(httpx.Response(401, json={"error": "unauthorized"}))
    with pytest.raises(ProviderAuthError, match=r"wants an API key.*set OPENAI_API_KEY"):
        recorder.model(api_key=None, base_url="http://localhost:8000/v1").complete([Message("user", "hi")])


def test_retries_5xx_then_succeeds() -> None:
    recorder = Recorder(httpx.Response(503), httpx.Response(200, json=completion()))
    assert recorder.model().complete([Message("user", "hi")]).text == "Scale the deployment."
    assert len(recorder.requests) == 2
    assert len(recorder.sleeps) == 1


def test_retry_after_ms_header_is_honoured() -> None:
    recorder = Recorder(httpx.Response(429, headers={"retry-after-ms": "250"}), httpx.Response(200, json=completion()))
    recorder.model().complete([Message("user", "hi")])
    assert recorder.sleeps == [0.25]


def test_429_after_retries_is_a_rate_limit_error() -> None:
    recorder = Recorder(httpx.Response(429, headers={"retry-after": "1"}))
    with pytest.raises(ProviderRateLimitError):
        recorder.model(max_retries=3).complete([Message("user", "hi")])
    assert len(recorder.requests) == 4
    assert recorder.sleeps == [1.0, 1.0, 1.0]


def test_read_timeout_is_a_timeout_error() -> None:
    recorder = Recorder(httpx.ReadTimeout("timed out"))
    with pytest.raises(ProviderTimeoutError, match="OPSMITH_LLM_TIMEOUT"):
        recorder.model(max_retries=1).complete([Message("user", "hi")])
    assert len(recorder.requests) == 2


def test_connection_refused_names_base_url_setting() -> None:
    recorder = Recorder(httpx.ConnectError("[Errno 111] Connection refused"))
    with pytest.raises(ProviderUnavailableError) as info:
        recorder.model(api_key=None, base_url="http://localhost:9/v1", max_retries=0).complete([Message("user", "hi")])
    assert str(info.value) == (
        "Cannot reach openai at http://localhost:9/v1 (connection refused)"
        " — check OPSMITH_BASE_URL and that the server is running"
    )


def test_real_connection_refused_on_loopback() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port now; the OS refuses the connection.
    sleeps: list[float] = []
    with (
        OpenAIChatModel("m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=1, sleep=sleeps.append) as model,
        pytest.raises(ProviderUnavailableError, match=r"\(connection refused\) after 2 attempts.*OPSMITH_BASE_URL"),
    ):
        model.complete([Message("user", "hi")])
    assert len(sleeps) == 1


def test_base_url_without_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="OPSMITH_BASE_URL"):
        OpenAIChatModel("m", base_url="localhost:8000/v1").complete([Message("user", "hi")])


# A real HTTP server on loopback: no transport override, the whole httpx stack runs.


class _ChatHandler(QuietHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        self.received.append({"path": self.path, "headers": dict(self.headers.items()), "body": read_json(self)})
        send_json(self, completion("Increase the etcd heartbeat interval.", model="llama3.1:8b"))


@pytest.fixture
def chat_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    _ChatHandler.received = []
    with serve(_ChatHandler) as url:
        yield f"{url}/v1", _ChatHandler.received


def test_against_a_real_local_server(chat_server: tuple[str, list[dict[str, Any]]]) -> None:
    base_url, received = chat_server
    with OpenAIChatModel("llama3.1:8b", base_url=base_url, timeout=5, max_retries=0) as model:
        response = model.complete([Message("system", "Be brief."), Message("user", "etcd leader changes?")])

    assert response.text == "Increase the etcd heartbeat interval."
    assert (response.usage.input_tokens, response.usage.output_tokens) == (31, 6)
    assert len(received) == 1
    request = received[0]
    assert request["path"] == "/v1/chat/completions"
    assert "authorization" not in {name.lower() for name in request["headers"]}
    assert request["body"] == {
        "model": "llama3.1:8b",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "etcd leader changes?"},
        ],
        "max_tokens": 1024,
    }


def test_connect_timeout_is_unavailable_not_a_timeout() -> None:
    recorder = Recorder(httpx.ConnectTimeout("timed out"))
    with pytest.raises(ProviderUnavailableError, match=r"Cannot reach openai .*\(no connection within 3s\)"):
        recorder.model(max_retries=0, timeout=3).complete([Message("user", "hi")])


def test_sse_parser_handles_comments_multiline_data_and_a_missing_final_blank_line() -> None:
    lines = [": keep-alive", "event: delta", "data: one", "data:two", "id: 7", "", "", "data: [DONE]"]
    events = list(iter_sse(lines))
    assert events == [SSEEvent("delta", "one\ntwo"), SSEEvent("message", "[DONE]")]
    assert [e.is_done for e in events] == [False, True]
