"""The ``ChatModel`` seam: chat messages in; text, usage and stop reason out; streaming.

Every provider (Anthropic, OpenAI-compatible servers, a local transformers model, the
test fake) implements this protocol and nothing more. Retrieval, review and the
comparison harness only ever talk to a ``ChatModel``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]

#: Stop reasons (normalised across providers) that mean the output was cut off.
TRUNCATION_STOP_REASONS = frozenset({"max_tokens", "length"})


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass
class ChatResponse:
    """One completed call. ``stop_reason`` is normalised: ``end``, ``max_tokens``, ``stop_sequence``, ``other``."""

    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    stop_reason: str = "end"
    latency_ms: float = 0.0

    @property
    def truncated(self) -> bool:
        return self.stop_reason in TRUNCATION_STOP_REASONS


@dataclass
class StreamEvent:
    """A streamed piece: ``delta`` text, and on the last event the full ``response``."""

    delta: str = ""
    response: ChatResponse | None = None


@runtime_checkable
class ChatModel(Protocol):
    """An LLM you can chat with.

    ``provider`` and ``model`` name it in logs and results. ``json_schema``, when given, asks
    the provider to constrain output to that schema with its native mechanism (callers still
    validate). Implementations raise :class:`opsmith.errors.ProviderError` subclasses.
    Whoever creates a model calls :meth:`close` when done with it.
    """

    provider: str
    model: str

    def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> ChatResponse: ...

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Iterator[StreamEvent]: ...

    def close(self) -> None:
        """Release what the model holds, such as an HTTP connection pool (a no-op when it holds nothing)."""
        ...
