"""One owner for retries: the provider retries a failed request, and nothing above it does again.

Real servers on loopback count the requests that one call sends, with the model built from
settings as `opsmith ask` and `opsmith review` build it: ``1 + llm_max_retries`` against a
server that always fails, for a plain call and a structured call alike, and one request per
answer when answers come but the first one is invalid. The 503s carry ``retry-after: 0`` so
the provider's backoff does not slow the tests down; the count is what is asserted.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import BaseModel

from loopback import QuietHandler, read_json, send_json, serve
from opsmith.config import load_settings
from opsmith.errors import ProviderUnavailableError, StructuredOutputError
from opsmith.llm import ChatModel, Message, get_chat_model
from opsmith.llm.structured import complete_structured

HI = [Message("user", "Is the disk on db-1 filling up?")]
PROVIDERS = ["openai", "anthropic"]
#: Stands for "the server is overloaded", in each provider's error shape.
UNAVAILABLE = {"error": {"message": "overloaded", "type": "server_error"}}


class Verdict(BaseModel):
    ok: bool


@dataclass
class Script:
    """What the server answers: ``replies[i]`` to request ``i``, the last one from then on."""

    provider: str
    replies: list[int | str]  # an HTTP error status, or the text of a 200 answer
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, text: str) -> dict[str, Any]:
        if self.provider == "anthropic":
            return {
                "id": "msg_01",
                "type": "message",
                "role": "assistant",
                "model": "m",
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 9, "output_tokens": 3},
            }
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
        }


Start = Callable[[str, list[int | str]], tuple[Script, ChatModel]]


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[Start]:
    """``start(provider, replies)`` runs a scripted server; returns it and a model built from settings."""
    stack = ExitStack()

    def start(provider: str, replies: list[int | str]) -> tuple[Script, ChatModel]:
        script = Script(provider, replies)

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                with script.lock:
                    script.requests.append(read_json(self))
                    reply = script.replies[min(len(script.requests), len(script.replies)) - 1]
                if isinstance(reply, int):
                    body = json.dumps(UNAVAILABLE).encode()
                    self.send_response(reply)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(body)))
                    self.send_header("retry-after", "0")
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    send_json(self, script.answer(reply))

        url = stack.enter_context(serve(Handler))
        monkeypatch.setenv("OPSMITH_PROVIDER", provider)
        monkeypatch.setenv("OPSMITH_MODEL", "m")
        monkeypatch.setenv("OPSMITH_BASE_URL", url if provider == "anthropic" else f"{url}/v1")
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0123456789")
        model = get_chat_model(load_settings())
        stack.callback(model.close)
        return script, model

    with stack:
        yield start


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("retries", [None, 1])
def test_a_server_that_always_fails_sees_one_plus_max_retries_requests(
    scripted: Start, monkeypatch: pytest.MonkeyPatch, provider: str, retries: int | None
) -> None:
    if retries is not None:
        monkeypatch.setenv("OPSMITH_LLM_MAX_RETRIES", str(retries))
    settings = load_settings()
    expected = 1 + settings.llm_max_retries  # 4 with the default of 3
    assert settings.llm_max_attempts > 1  # so a structured call could re-ask, and must not

    script, model = scripted(provider, [503])
    with pytest.raises(ProviderUnavailableError, match=f"HTTP 503.* after {expected} attempts"):
        model.complete(HI)
    assert len(script.requests) == expected

    script.requests.clear()
    with pytest.raises(ProviderUnavailableError, match=f"after {expected} attempts"):
        complete_structured(model, HI, Verdict, max_attempts=settings.llm_max_attempts)
    assert len(script.requests) == expected  # not expected x max_attempts, as it once was


@pytest.mark.parametrize("provider", PROVIDERS)
def test_invalid_json_then_valid_is_two_requests(scripted: Start, provider: str) -> None:
    script, model = scripted(provider, ["Sure! It is fine.", '{"ok": true}'])

    result = complete_structured(model, HI, Verdict, max_attempts=3)

    assert result.value == Verdict(ok=True)
    assert result.attempts == 2
    assert len(script.requests) == 2
    reask = json.dumps(script.requests[1])
    assert "Sure! It is fine." in reask  # the invalid reply went back with the errors
    assert "not JSON" in reask


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_transient_failure_is_retried_by_the_provider_without_using_an_attempt(
    scripted: Start, provider: str
) -> None:
    script, model = scripted(provider, [503, '{"ok": true}'])

    result = complete_structured(model, HI, Verdict, max_attempts=1)

    assert result.value == Verdict(ok=True)
    assert result.attempts == 1
    assert len(script.requests) == 2
    assert script.requests[0] == script.requests[1]  # the same request again, not a re-ask


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_model_that_never_complies_gets_exactly_max_attempts_requests(scripted: Start, provider: str) -> None:
    script, model = scripted(provider, ["no"])

    with pytest.raises(StructuredOutputError, match="in 3 attempts"):
        complete_structured(model, HI, Verdict, max_attempts=3)

    assert len(script.requests) == 3
