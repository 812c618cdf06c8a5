"""One time budget per LLM call (``llm_deadline``): connect, retries, backoff and the whole answer.

A provider turns its ``deadline`` seconds into an absolute end with :func:`call_end` when a
call starts, and stops at that moment whatever it is doing: waiting for a connection,
sleeping before a retry, or reading an answer that trickles in. ``llm_timeout`` cannot do
this: it bounds each wait for more data, so a server that sends one token a second never
trips it.

Inside a :func:`shared_deadline` block every call's budget counts from the start of the
block instead of the start of the call. :func:`~opsmith.llm.structured.complete_structured`
runs its re-asks in one, so the whole structured call ends within ``llm_deadline`` rather
than each re-ask starting a fresh budget.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class _Shared:
    started: float
    #: The tightest end a call in the block has used; None until a call with a deadline starts.
    end: float | None = None


_SHARED: ContextVar[_Shared | None] = ContextVar("opsmith_llm_shared_deadline", default=None)


@contextmanager
def shared_deadline() -> Iterator[None]:
    """Count the deadline of every provider call in the block from the block's start.

    Nested blocks share the outermost one's start.
    """
    if _SHARED.get() is not None:
        yield
        return
    token = _SHARED.set(_Shared(time.monotonic()))
    try:
        yield
    finally:
        _SHARED.reset(token)


def call_end(seconds: float | None) -> float | None:
    """The ``time.monotonic()`` by which a call with a budget of ``seconds`` must end; None for no deadline."""
    if seconds is None:
        return None
    shared = _SHARED.get()
    if shared is None:
        return time.monotonic() + seconds
    end = shared.started + seconds
    shared.end = end if shared.end is None else min(shared.end, end)
    return end


def time_left(end: float | None) -> float | None:
    """Seconds until ``end`` (a :func:`call_end` result); None when there is no deadline."""
    return None if end is None else end - time.monotonic()


def shared_time_left() -> float | None:
    """Seconds left in the enclosing :func:`shared_deadline` block, once a call in it has set its
    deadline; None before that, or outside a block."""
    shared = _SHARED.get()
    return None if shared is None else time_left(shared.end)
