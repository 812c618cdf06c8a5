"""Pick and build the :class:`~opsmith.llm.ChatModel` that the settings ask for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsmith.config import read_secret
from opsmith.errors import ConfigError

if TYPE_CHECKING:
    from opsmith.config import Settings
    from opsmith.llm._base import ChatModel

__all__ = ["get_chat_model"]


def get_chat_model(settings: Settings) -> ChatModel | None:
    """Build the chat model for ``settings.provider``, or None for ``none`` (offline, extractive).

    Reads the key from the env var named by ``settings.resolved_key_env`` at call time.
    Raises :class:`ConfigError` when a hosted provider has no key, or ``local_hf`` has no
    model path or cannot load it. Provider modules are imported here, on demand.
    """
    provider = settings.provider
    if provider == "none":
        return None
    if provider == "local_hf":
        if not settings.model:
            raise ConfigError(
                "local_hf needs a model folder — set OPSMITH_MODEL or pass --model PATH"
                " (the base model; the LoRA adapter goes in OPSMITH_ADAPTER / --adapter)"
            )
        # Imports torch and transformers: only now, when a local model is really wanted.
        from opsmith.llm.local_hf import LocalHFChatModel

        return LocalHFChatModel(
            settings.model, settings.adapter, max_tokens=settings.llm_max_tokens, deadline=settings.llm_deadline
        )

    model = settings.resolved_model
    base_url = settings.resolved_base_url
    key_env = settings.resolved_key_env
    if not model:
        raise ConfigError(f"No model set for {provider} — set OPSMITH_MODEL")
    if not base_url:
        raise ConfigError(f"No endpoint set for {provider} — set OPSMITH_BASE_URL")
    api_key = read_secret(key_env)

    if provider == "anthropic":
        from opsmith.llm.anthropic import AnthropicChatModel

        env = key_env or "ANTHROPIC_API_KEY"
        if api_key is None:
            raise ConfigError(
                f"anthropic needs an API key but {env} is not set"
                f" — set {env}, or use OPSMITH_PROVIDER=none for offline extractive answers"
            )
        return AnthropicChatModel(
            model,
            api_key,
            base_url=base_url,
            timeout=settings.llm_timeout,
            deadline=settings.llm_deadline,
            max_retries=settings.llm_max_retries,
            max_tokens=settings.llm_max_tokens,
            key_env=env,
        )

    if provider == "openai":
        from opsmith.llm.openai_compat import OpenAIChatModel, is_openai_host

        env = key_env or "OPENAI_API_KEY"
        if api_key is None and is_openai_host(base_url):
            raise ConfigError(
                f"openai needs an API key but {env} is not set — set {env}, point OPSMITH_BASE_URL at a"
                " local server (vLLM, Ollama, llama.cpp), or use OPSMITH_PROVIDER=none for offline extractive answers"
            )
        return OpenAIChatModel(
            model,
            api_key,
            base_url=base_url,
            timeout=settings.llm_timeout,
            deadline=settings.llm_deadline,
            max_retries=settings.llm_max_retries,
            max_tokens=settings.llm_max_tokens,
            key_env=env,
        )

    raise ConfigError(f"Unknown provider {provider!r} — set OPSMITH_PROVIDER to none, anthropic, openai or local_hf")
