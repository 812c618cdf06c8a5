"""What the middleware and the routes share: one :class:`Service` per app, over the warm backend."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

import anyio.to_thread
from fastapi import Depends, Request

from opsmith.backend import Backend
from opsmith.config import Settings
from opsmith.errors import OpsmithError
from opsmith.serve.jobs import JobManager
from opsmith.serve.limits import ByteBudget
from opsmith.serve.metrics import ServiceMetrics
from opsmith.serve.security import Authenticator, RateLimiter

__all__ = ["Service", "ServiceDep", "in_thread", "with_llm_slot"]

log = logging.getLogger("opsmith.serve")

T = TypeVar("T")


@dataclass
class Service:
    """Everything the routes share: the warm backend, jobs, metrics and the security pieces."""

    settings: Settings
    backend: Backend
    metrics: ServiceMetrics
    jobs: JobManager
    authenticator: Authenticator
    limiter: RateLimiter
    body_budget: ByteBudget
    owns_backend: bool = True
    readiness: dict[str, str] = field(default_factory=lambda: {"status": "loading"})

    def warm_up(self) -> None:
        """Load the embedder and the store; readiness says how it went."""
        try:
            self.backend.warm_up()
        except OpsmithError as exc:
            self.readiness = {"status": "failed", "detail": str(exc)}
            log.error(json.dumps({"event": "warm_up_failed", "detail": str(exc)}))
        else:
            self.readiness = {"status": "ready"}


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(_service)]


async def in_thread(call: Callable[[], T]) -> T:
    """``call`` on a worker thread: retrieval, generation and review block, and never run on the event loop."""
    return await anyio.to_thread.run_sync(call)


async def with_llm_slot(service: Service, call: Callable[[], T]) -> T:
    """``call`` on a worker thread, holding an LLM slot taken first (503 at once when none is free).

    A cancelled request still holds the slot until its thread is done: a worker thread cannot
    be stopped, and the LLM call in it goes on.
    """
    with service.backend.llm_slot():
        return await in_thread(call)
