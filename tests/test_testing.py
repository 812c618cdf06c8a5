"""FakeChatModel: the provider stand-in that ships in opsmith.testing."""

from __future__ import annotations

import pytest

from opsmith.errors import ProviderTimeoutError
from opsmith.llm import ChatModel, Message, Usage
from opsmith.testing import FakeChatModel

ASK = [Message("system", "Be brief."), Message("user", "Why is etcd slow?")]


def test_is_a_chat_model() -> None:
    fake = FakeChatModel(["x"])
    assert isinstance(fake, ChatModel)
    assert (fake.provider, fake.model) == ("fake", "fake")


def test_close_is_part_of_the_seam() -> None:
    class NoClose:
        provider, model = "x", "x"

        def complete(self, *args: object, **kwargs: object) -> None: ...

        def stream(self, *args: object, **kwargs: object) -> None: ...

    assert not isinstance(NoClose(), ChatModel)
    fake = FakeChatModel(["x"])
    assert not fake.closed
    fake.close()
    assert fake.closed


def test_the_backend_closes_the_chat_model_it_was_given() -> None:
    from opsmith.backend import Backend
    from opsmith.config import load_settings

    fake = FakeChatModel(["x"])
    Backend(load_settings(), chat_model=fake).close()
    assert fake.closed


def test_cycles_queued_responses() -> None:
    fake = FakeChatModel(["first", "second"], model="fake-large")
    texts = [fake.complete(ASK).text for _ in range(5)]
    assert texts == ["first", "second", "first", "second", "first"]
    assert fake.complete(ASK).model == "fake-large"


def test_records_every_call() -> None:
    fake = FakeChatModel(["ok"])
    schema = {"type": "object"}
    fake.complete(ASK, max_tokens=50, temperature=0.1, json_schema=schema)
    list(fake.stream([Message("user", "again")]))
    assert fake.calls == [
        {"messages": ASK, "max_tokens": 50, "temperature": 0.1, "json_schema": schema, "stream": False},
        {
            "messages": [Message("user", "again")],
            "max_tokens": None,
            "temperature": None,
            "json_schema": None,
            "stream": True,
        },
    ]


def test_recorded_messages_are_a_copy() -> None:
    fake = FakeChatModel(["ok"])
    messages = [Message("user", "hi")]
    fake.complete(messages)
    messages.append(Message("user", "later"))
    assert fake.calls[0]["messages"] == [Message("user", "hi")]


def test_reply_computes_the_answer_from_the_input() -> None:
    fake = FakeChatModel(reply=lambda messages: f"{len(messages)}: {messages[-1].content.upper()}")
    assert fake.complete(ASK).text == "2: WHY IS ETCD SLOW?"


def test_echoes_the_last_user_message_by_default() -> None:
    fake = FakeChatModel()
    assert fake.complete([*ASK, Message("assistant", "Disk?")]).text == "Why is etcd slow?"


def test_usage_and_stop_reason() -> None:
    fake = FakeChatModel(["cut"], stop_reason="max_tokens", usage_per_call=Usage(7, 3))
    first = fake.complete(ASK)
    assert (first.usage.input_tokens, first.usage.output_tokens) == (7, 3)
    assert first.truncated is True
    first.usage.input_tokens += 100  # a caller mutating its copy must not leak into later calls
    assert fake.complete(ASK).usage == Usage(7, 3)
    assert FakeChatModel(["x"]).complete(ASK).usage == Usage(10, 5)


def test_queued_error_is_raised_on_its_call_and_uses_up_no_response() -> None:
    boom = ProviderTimeoutError("fake timeout — raise OPSMITH_LLM_TIMEOUT", provider="fake")
    fake = FakeChatModel(["a", "b"], errors=[None, boom])
    assert fake.complete(ASK).text == "a"
    with pytest.raises(ProviderTimeoutError) as info:
        fake.complete(ASK)
    assert info.value is boom
    assert fake.complete(ASK).text == "b"
    assert len(fake.calls) == 3


def test_queued_error_applies_to_streams() -> None:
    fake = FakeChatModel(["a"], errors=[RuntimeError("down")])
    with pytest.raises(RuntimeError, match="down"):
        list(fake.stream(ASK))


def test_stream_yields_word_deltas_then_the_full_response() -> None:
    text = "  Check the\tdisk,\nthen the network. "
    fake = FakeChatModel([text])
    events = list(fake.stream(ASK))
    deltas = [e.delta for e in events[:-1]]
    assert deltas == ["  Check ", "the\t", "disk,\n", "then ", "the ", "network. "]
    assert "".join(deltas) == text
    assert all(e.response is None for e in events[:-1])
    final = events[-1]
    assert final.delta == ""
    assert final.response is not None
    assert final.response.text == text
    assert final.response.usage == Usage(10, 5)


def test_stream_of_empty_text_yields_only_the_response() -> None:
    events = list(FakeChatModel([""]).stream(ASK))
    assert len(events) == 1
    assert events[0].response is not None


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="not both"):
        FakeChatModel(["a"], reply=lambda m: "b")
    with pytest.raises(ValueError, match="empty"):
        FakeChatModel([])


def test_stream_of_whitespace_only_text_keeps_it() -> None:
    events = list(FakeChatModel(["\n "]).stream(ASK))
    assert [e.delta for e in events[:-1]] == ["\n "]
