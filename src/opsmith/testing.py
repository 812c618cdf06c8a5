"""Test helpers that ship with opsmith, for your tests as well as ours.

:class:`FakeChatModel` stands in for a real provider at the :class:`~opsmith.llm.ChatModel`
seam: no network, no key, deterministic output, and a record of every call.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from opsmith.llm._base import ChatResponse, Message, StreamEvent, Usage

__all__ = ["FakeChatModel"]

_WORD = re.compile(r"\s*\S+\s*")


class FakeChatModel:
    """A scripted :class:`~opsmith.llm.ChatModel`.

    Answers come from ``responses`` in order, starting again at the first when they run
    out, or from ``reply(messages)`` when given. With neither, it echoes the last user
    message. ``errors[i]``, when not None, is raised on call ``i`` (counting from 0, streams
    included) instead of answering; the call is still recorded but uses up no response. Each call appends a dict
    with ``messages``, ``max_tokens``, ``temperature``, ``json_schema`` and ``stream`` to
    :attr:`calls`; :attr:`closed` tells whether :meth:`close` was called.

    Example::

        from opsmith.llm import Message
        from opsmith.testing import FakeChatModel

        fake = FakeChatModel(["not json", '{"severity": "high"}'])
        first = fake.complete([Message("user", "Classify: disk full")])
        assert first.text == "not json"
        fake.complete([Message("user", "That was not JSON, try again")])
        assert len(fake.calls) == 2
        assert "try again" in fake.calls[1]["messages"][-1].content

        echo = FakeChatModel(reply=lambda messages: messages[-1].content.upper())
        assert echo.complete([Message("user", "hi")]).text == "HI"

    Args:
        responses: Texts returned in turn, cycling.
        reply: Computes the text from the messages instead.
        stop_reason: Normalised stop reason of every response (``max_tokens`` to fake truncation).
        model: Reported model name.
        usage_per_call: Token usage each response reports; ``Usage(10, 5)`` when None.
        errors: Per-call exceptions to raise, None meaning "answer normally".
    """

    provider = "fake"

    def __init__(
        self,
        responses: list[str] | None = None,
        *,
        reply: Callable[[list[Message]], str] | None = None,
        stop_reason: str = "end",
        model: str = "fake",
        usage_per_call: Usage | None = None,
        errors: list[Exception | None] | None = None,
    ) -> None:
        if responses is not None and reply is not None:
            raise ValueError("Give FakeChatModel either responses or reply, not both")
        if responses is not None and not responses:
            raise ValueError("FakeChatModel responses is empty — queue at least one text, or pass reply")
        self.model = model
        self.responses = list(responses) if responses is not None else None
        self.reply = reply
        self.stop_reason = stop_reason
        self.usage_per_call = usage_per_call if usage_per_call is not None else Usage(10, 5)
        self.errors = list(errors) if errors is not None else []
        self.calls: list[dict[str, Any]] = []
        self.closed = False
        self._served = 0

    def __repr__(self) -> str:
        return f"FakeChatModel(model={self.model!r}, calls={len(self.calls)})"

    def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> ChatResponse:
        """Record the call, then raise its queued error or return the next response."""
        return self._respond(messages, max_tokens, temperature, json_schema, stream=False)

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Iterator[StreamEvent]:
        """Like :meth:`complete`, yielding the text word by word, then the full response.

        The call is recorded (and any queued error raised) when iteration starts.
        """
        response = self._respond(messages, max_tokens, temperature, None, stream=True)
        # Each piece is a word with the whitespace around it, so the pieces join back exactly.
        for piece in _WORD.findall(response.text) or ([response.text] if response.text else []):
            yield StreamEvent(delta=piece)
        yield StreamEvent(response=response)

    def close(self) -> None:
        """Record that the model was closed (it holds nothing to release)."""
        self.closed = True

    def _respond(
        self,
        messages: Sequence[Message],
        max_tokens: int | None,
        temperature: float | None,
        json_schema: dict[str, Any] | None,
        *,
        stream: bool,
    ) -> ChatResponse:
        index = len(self.calls)
        history = list(messages)
        self.calls.append(
            {
                "messages": history,
                "max_tokens": max_tokens,
                "temperature": temperature,
                "json_schema": json_schema,
                "stream": stream,
            }
        )
        error = self.errors[index] if index < len(self.errors) else None
        if error is not None:
            raise error
        if self.reply is not None:
            text = self.reply(history)
        elif self.responses is not None:
            text = self.responses[self._served % len(self.responses)]
        else:
            text = next((m.content for m in reversed(history) if m.role == "user"), "")
        self._served += 1
        return ChatResponse(
            text=text,
            model=self.model,
            # A copy per call, so a caller that adds usages up cannot change what later calls report.
            usage=replace(self.usage_per_call),
            stop_reason=self.stop_reason,
        )
