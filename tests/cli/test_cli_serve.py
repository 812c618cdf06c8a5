"""``opsmith serve`` as a user runs it: a real process on a free loopback port, embedded defaults, no key."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from clitools import Run, assert_one_error_line


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(ingested: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`opsmith serve` on a free port over this test's index, stopped with Ctrl-C at the end."""
    port = _free_port()
    env = {**os.environ, "OPSMITH_PROVIDER": "none"}
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("opsmith")), "serve", "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, f"opsmith serve exited early: {proc.stderr.read() if proc.stderr else ''}"
            assert time.monotonic() < deadline, "opsmith serve was not ready within 60 s"
            time.sleep(0.2)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()


@pytest.mark.slow  # starts `opsmith serve` in a subprocess
def test_serve_answers_with_the_embedded_defaults_and_no_key(served: tuple[str, subprocess.Popen[str]]) -> None:
    base, proc = served
    page = httpx.get(f"{base}/", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    answer = httpx.post(f"{base}/v1/ask", json={"question": "The node disk is almost full, what do I run?"}, timeout=30)
    assert answer.status_code == 200
    body = answer.json()
    assert body["refused"] is False
    assert body["provider"] == "none"
    assert body["citations"][0]["source"] == "disk-full.md"
    info = httpx.get(f"{base}/v1/info", timeout=10).json()
    assert info["auth_required"] is False  # loopback, no tokens

    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) in (0, 130)
    log_lines = [line for line in (proc.stderr.read() if proc.stderr else "").splitlines() if line.startswith("{")]
    access = [json.loads(line) for line in log_lines if '"logger": "opsmith.access"' in line]
    assert {"/", "/v1/ask", "/v1/info"} <= {entry["route"] for entry in access}
    assert all(entry["request_id"] and entry["duration_ms"] >= 0 for entry in access)


def test_serve_on_all_interfaces_needs_a_token(opsmith_script: Callable[..., Run]) -> None:
    run = opsmith_script("serve", "--host", "0.0.0.0", "--port", str(_free_port()))
    assert_one_error_line(run, "no API token is set", "OPSMITH_API_TOKENS")


def test_short_tokens_are_refused_without_being_echoed(opsmith_script: Callable[..., Run]) -> None:
    run = opsmith_script("serve", "--port", str(_free_port()), env={"OPSMITH_API_TOKENS": "hunter2"})
    line = assert_one_error_line(run, "API token #1 is shorter than 16 characters")
    assert "hunter2" not in line


def test_a_port_in_use_is_one_line(ingested: Path, opsmith_script: Callable[..., Run]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        run = opsmith_script("serve", "--port", str(busy.getsockname()[1]))
    assert_one_error_line(run, "Cannot listen on 127.0.0.1:", "--port")
