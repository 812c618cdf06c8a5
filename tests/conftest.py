"""Shared fixtures: an isolated OPSMITH_HOME for every test and no network beyond loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and (
        host in {"localhost", "::1"} or host.startswith("127.") or self.family == socket.AF_UNIX
    ):
        return _real_connect(self, address)
    raise RuntimeError(f"Network access blocked in tests: {address!r}")


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "opsmith-home"
    monkeypatch.setenv("OPSMITH_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    for name in (
        "OPSMITH_PROVIDER",
        "OPSMITH_MODEL",
        "OPSMITH_BASE_URL",
        "OPSMITH_QDRANT_URL",
        "OPSMITH_CONFIG",
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "OPSMITH_COLLECTION",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    return home


@pytest.fixture
def opsmith_home(_isolated_env: Path) -> Path:
    """The per-test OPSMITH_HOME (not created until something writes to it)."""
    return _isolated_env
