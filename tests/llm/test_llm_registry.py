"""get_chat_model: settings (including env vars) in, the right configured ChatModel out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from loopback import QuietHandler, read_json, send_json, serve
from opsmith.config import load_settings
from opsmith.errors import ConfigError
from opsmith.llm import Message, get_chat_model
from opsmith.llm.anthropic import AnthropicChatModel
from opsmith.llm.openai_compat import OpenAIChatModel


class _Handler(QuietHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = read_json(self)
        self.received.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
        send_json(
            self,
            {
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1},
            },
        )


@pytest.fixture
def local_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    _Handler.received = []
    with serve(_Handler) as url:
        yield f"{url}/v1", _Handler.received


def test_provider_none_gives_no_model() -> None:
    assert get_chat_model(load_settings()) is None
    assert get_chat_model(load_settings(provider="none")) is None


def test_anthropic_without_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        get_chat_model(load_settings(provider="anthropic"))
    assert "set ANTHROPIC_API_KEY, or use OPSMITH_PROVIDER=none" in str(info.value)


def test_anthropic_with_key_uses_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-xyz")
    model = get_chat_model(
        load_settings(provider="anthropic", llm_timeout=12.5, llm_deadline=30, llm_max_retries=1, llm_max_tokens=200)
    )
    assert isinstance(model, AnthropicChatModel)
    assert (model.model, model.base_url) == ("claude-sonnet-4-6", "https://api.anthropic.com")
    assert (model.timeout, model.deadline, model.max_retries, model.max_tokens) == (12.5, 30.0, 1, 200)
    assert "sk-ant-xyz" not in repr(model)


def test_custom_key_env_is_read_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSMITH_LLM_API_KEY_ENV", "TEAM_CLAUDE_KEY")
    with pytest.raises(ConfigError, match="set TEAM_CLAUDE_KEY"):
        get_chat_model(load_settings(provider="anthropic"))
    monkeypatch.setenv("TEAM_CLAUDE_KEY", "sk-ant-team")
    assert isinstance(get_chat_model(load_settings(provider="anthropic")), AnthropicChatModel)


def test_openai_without_key_against_openai_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"OPENAI_API_KEY.*OPSMITH_BASE_URL"):
        get_chat_model(load_settings(provider="openai"))


def test_openai_local_server_needs_no_key(local_server: tuple[str, list[dict[str, Any]]]) -> None:
    base_url, received = local_server
    model = get_chat_model(load_settings(provider="openai", base_url=base_url, model="qwen2.5:7b"))
    assert isinstance(model, OpenAIChatModel)
    with model:
        assert model.complete([Message("user", "ping")]).text == "pong"
    assert "authorization" not in received[0]["headers"]
    assert received[0]["body"]["model"] == "qwen2.5:7b"


def test_env_vars_are_honoured(monkeypatch: pytest.MonkeyPatch, local_server: tuple[str, list[dict[str, Any]]]) -> None:
    base_url, received = local_server
    monkeypatch.setenv("OPSMITH_PROVIDER", "openai")
    monkeypatch.setenv("OPSMITH_MODEL", "llama3.1:8b")
    monkeypatch.setenv("OPSMITH_BASE_URL", base_url)
    monkeypatch.setenv("OPSMITH_LLM_TIMEOUT", "5")
    monkeypatch.setenv("OPSMITH_LLM_DEADLINE", "9")
    monkeypatch.setenv("OPSMITH_LLM_MAX_RETRIES", "0")
    monkeypatch.setenv("OPSMITH_LLM_MAX_TOKENS", "77")
    monkeypatch.setenv("OPSMITH_LLM_API_KEY_ENV", "VLLM_TOKEN")
    monkeypatch.setenv("VLLM_TOKEN", "token-123")

    model = get_chat_model(load_settings())
    assert isinstance(model, OpenAIChatModel)
    assert (model.model, model.base_url, model.timeout, model.max_retries) == ("llama3.1:8b", base_url, 5.0, 0)
    assert model.deadline == 9.0
    with model:
        model.complete([Message("user", "ping")])
    assert received[0]["headers"]["authorization"] == "Bearer token-123"
    assert received[0]["body"]["max_tokens"] == 77


def test_local_hf_without_a_model_path_is_a_config_error() -> None:
    # Building a real local model is covered in test_local_hf.py.
    with pytest.raises(ConfigError, match="local_hf needs a model folder — set OPSMITH_MODEL or pass --model PATH"):
        get_chat_model(load_settings(provider="local_hf"))


def test_local_hf_with_a_missing_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Model path not found"):
        get_chat_model(load_settings(provider="local_hf", model=str(tmp_path / "nope")))
