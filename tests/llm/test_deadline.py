"""The total deadline of one LLM call (``llm_deadline``), against real HTTP servers on loopback.

Each server here misbehaves the way a slow or hostile one does: it trickles an answer, sends
a body byte by byte, or fails with 503 forever. ``llm_timeout`` (an idle timeout) never trips
on any of them; the deadline must. The servers give up after about 15 seconds, so without a
deadline the call would end, late and successfully, and the test would fail rather than hang.
Assertions are on what ended and why, with only a loose bound on time (no tight timings).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import BaseModel

from loopback import send_json
from opsmith.config import load_settings
from opsmith.errors import ProviderDeadlineError, ProviderTimeoutError, StructuredOutputError
from opsmith.llm import Message, get_chat_model
from opsmith.llm.anthropic import AnthropicChatModel
from opsmith.llm.openai_compat import OpenAIChatModel
from opsmith.llm.structured import complete_structured
from opsmith.testing import FakeChatModel

HI = [Message("user", "pods pending?")]
#: How long a misbehaving server keeps going before it gives up (and a call without a deadline ends).
GIVE_UP_S = 15.0
#: "Ended at about the deadline" means well under this, far from GIVE_UP_S; no tight timings.
ENDED_S = 10.0

Respond = Callable[[BaseHTTPRequestHandler, threading.Event], None]


@dataclass
class Server:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """Start loopback HTTP servers whose POST handler is ``respond(handler, stop)``; ``keep_alive``
    speaks HTTP/1.1, so the client reuses its connection."""
    started: list[tuple[ThreadingHTTPServer, threading.Thread]] = []
    stop = threading.Event()

    def start(respond: Respond, *, keep_alive: bool = False) -> Server:
        state = Server("")

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                state.requests.append(json.loads(self.rfile.read(length)))
                # The client hanging up is what a deadline does.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    respond(self, stop)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        started.append((server, thread))
        state.url = f"http://127.0.0.1:{server.server_address[1]}"
        return state

    yield start
    stop.set()
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _openai_chunk(text: str, finish: str | None = None) -> str:
    choice = {"index": 0, "delta": {"content": text} if text else {}, "finish_reason": finish}
    return f"data: {json.dumps({'choices': [choice]})}\n\n"


def _anthropic_event(kind: str, **data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"


STREAMS = {
    "openai": (
        "",
        _openai_chunk("tok "),
        _openai_chunk("", "stop") + "data: [DONE]\n\n",
    ),
    "anthropic": (
        _anthropic_event("message_start", message={"usage": {"input_tokens": 5, "output_tokens": 0}}),
        _anthropic_event("content_block_delta", index=0, delta={"type": "text_delta", "text": "tok "}),
        _anthropic_event("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 9})
        + _anthropic_event("message_stop"),
    ),
}


def trickle_stream(provider: str, every: float = 0.2) -> Respond:
    """A 200 event stream that sends one token every ``every`` seconds until GIVE_UP_S."""
    head, token, tail = STREAMS[provider]

    def respond(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream")
        handler.end_headers()  # HTTP/1.0: the body runs until the server closes
        handler.wfile.write(head.encode())
        given_up = time.monotonic() + GIVE_UP_S
        while time.monotonic() < given_up and not stop.wait(every):
            handler.wfile.write(token.encode())
            handler.wfile.flush()
        handler.wfile.write(tail.encode())

    return respond


def slow_body(payload: dict[str, Any], every: float = 0.05) -> Respond:
    """A 200 JSON answer with a correct length, sent one byte every ``every`` seconds."""
    body = json.dumps(payload).encode()
    assert len(body) * every > GIVE_UP_S * 0.8  # slow enough that only a deadline ends it early

    def respond(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        handler.send_response(200)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(body)))
        handler.end_headers()
        for byte in body:
            if stop.wait(every):
                return
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()

    return respond


def always_503(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    send_json(handler, {"error": {"message": "overloaded", "type": "server_error"}}, 503)


def completion(content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-slow",
        "object": "chat.completion",
        "model": "slow",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


def openai_from_settings(url: str, monkeypatch: pytest.MonkeyPatch, deadline: str) -> Any:
    """An OpenAI-compatible model built as `opsmith ask` builds it, from env settings."""
    for name, value in {
        "OPSMITH_PROVIDER": "openai",
        "OPSMITH_BASE_URL": f"{url}/v1",
        "OPSMITH_MODEL": "slow",
        "OPSMITH_LLM_TIMEOUT": "3",  # the setting: an idle timeout the trickle never trips
        "OPSMITH_LLM_MAX_RETRIES": "0",
        "OPSMITH_LLM_DEADLINE": deadline,
    }.items():
        monkeypatch.setenv(name, value)
    return get_chat_model(load_settings())


def test_a_trickling_stream_is_cut_at_the_deadline(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve(trickle_stream("openai"))
    model = openai_from_settings(server.url, monkeypatch, deadline="1")
    deltas: list[str] = []

    def read_stream() -> None:
        deltas.extend(event.delta for event in model.stream(HI))

    started = time.monotonic()
    with model, pytest.raises(ProviderDeadlineError) as caught:
        read_stream()
    elapsed = time.monotonic() - started

    assert elapsed < ENDED_S
    assert deltas  # tokens did arrive: it was cut while still sending, not refused up front
    error = caught.value
    assert isinstance(error, ProviderTimeoutError)
    assert error.deadline == 1.0
    assert "still sending its answer at the 1s deadline" in str(error)
    assert "raise OPSMITH_LLM_DEADLINE" in str(error)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_both_providers_cut_a_stream_at_the_deadline(serve: Callable[..., Server], provider: str) -> None:
    server = serve(trickle_stream(provider, every=0.1))
    model: OpenAIChatModel | AnthropicChatModel
    if provider == "openai":
        model = OpenAIChatModel("slow", base_url=f"{server.url}/v1", timeout=3, deadline=0.5, max_retries=0)
    else:
        model = AnthropicChatModel("slow", "sk-ant-test", base_url=server.url, timeout=3, deadline=0.5)

    started = time.monotonic()
    with model, pytest.raises(ProviderDeadlineError, match="OPSMITH_LLM_DEADLINE"):
        list(model.stream(HI))
    assert time.monotonic() - started < ENDED_S


def test_a_body_sent_byte_by_byte_is_cut_at_the_deadline(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve(slow_body(completion("Scale the deployment out to six replicas. " * 6)))
    model = openai_from_settings(server.url, monkeypatch, deadline="1")

    started = time.monotonic()
    with model, pytest.raises(ProviderDeadlineError) as caught:
        model.complete(HI)

    assert time.monotonic() - started < ENDED_S
    assert "did not finish within the 1s deadline" in str(caught.value)
    assert "OPSMITH_LLM_DEADLINE" in str(caught.value)
    assert len(server.requests) == 1  # a deadline is never retried


def test_retries_and_their_backoff_stop_at_the_deadline(serve: Callable[..., Server]) -> None:
    server = serve(always_503)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    # Without the deadline, 20 retries with backoff up to 8 s would take minutes.
    model = OpenAIChatModel(
        "m", base_url=f"{server.url}/v1", timeout=3, deadline=1, max_retries=20, retry_base_delay=0.2, sleep=sleep
    )
    started = time.monotonic()
    with model, pytest.raises(ProviderDeadlineError) as caught:
        model.complete(HI)

    assert time.monotonic() - started < ENDED_S
    assert 2 <= len(server.requests) < 21
    assert sum(waits) < 1.0  # no wait was started that would end past the deadline
    message = str(caught.value)
    assert f"after {len(server.requests)} attempts (last attempt: HTTP 503)" in message
    assert "raise OPSMITH_LLM_DEADLINE" in message


def test_a_finished_call_leaves_its_pooled_connection_alone(serve: Callable[..., Server]) -> None:
    def ok(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        if len(server.requests) == 2:
            stop.wait(0.8)  # the second answer is slow, but well within its own deadline
        send_json(handler, completion("Drain the node."))

    server = serve(ok, keep_alive=True)
    with OpenAIChatModel("m", base_url=f"{server.url}/v1", deadline=1.0, max_retries=0) as model:
        assert model.complete(HI).text == "Drain the node."
        time.sleep(0.5)
        # The second call reuses the connection and is still waiting when the first call's
        # deadline passes (at 1.0 s): the first call's watchdog must not shut it.
        assert model.complete(HI).text == "Drain the node."
    assert len(server.requests) == 2


class Verdict(BaseModel):
    ok: bool


def test_structured_reasks_share_one_deadline(serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch) -> None:
    def slow_invalid(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        if stop.wait(1.0):
            return
        send_json(handler, completion("not json"))

    server = serve(slow_invalid)
    model = openai_from_settings(server.url, monkeypatch, deadline="1.5")

    # Each answer takes 1 s, well within 1.5 s; the re-ask must not get a fresh 1.5 s.
    with model, pytest.raises(ProviderDeadlineError):
        complete_structured(model, HI, Verdict, max_attempts=3)
    assert len(server.requests) <= 2


def test_structured_output_never_retries_a_spent_deadline() -> None:
    spent = ProviderDeadlineError("fake did not finish within the 1s deadline", provider="fake", deadline=1.0)
    fake = FakeChatModel(['{"ok": true}'], errors=[spent])
    with pytest.raises(ProviderDeadlineError):
        complete_structured(fake, HI, Verdict, max_attempts=3)
    assert len(fake.calls) == 1


def test_without_a_deadline_structured_output_still_reasks() -> None:
    fake = FakeChatModel(["nope", '{"ok": true}'])
    assert complete_structured(fake, HI, Verdict).value == Verdict(ok=True)
    with pytest.raises(StructuredOutputError):
        complete_structured(FakeChatModel(["nope"]), HI, Verdict, max_attempts=2)
