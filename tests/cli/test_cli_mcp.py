"""``opsmith mcp`` as users start it: a busy port, and the Python SDK snippet in docs/integrations.md."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from clitools import Run, assert_one_error_line, script_path

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_http_on_a_busy_port_is_one_line(busy_port: int) -> None:
    proc = subprocess.run(
        [script_path(), "mcp", "--transport", "http", "--port", str(busy_port)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    run = Run(proc.returncode, proc.stdout, proc.stderr)
    assert_one_error_line(run, f"Cannot listen on 127.0.0.1:{busy_port}", "--port")
    assert run.exit_code == 2
    assert "Errno" not in run.stderr


def _sdk_snippet() -> str:
    """The Python block under "With the Python SDK" in docs/integrations.md, exactly as shown."""
    doc = (REPO / "docs" / "integrations.md").read_text(encoding="utf-8")
    after = doc[doc.index("With the Python SDK") :]
    match = re.search(r"```python\n(.*?)```", after, re.DOTALL)
    assert match, "docs/integrations.md has no Python SDK example"
    return match.group(1)


def _run_snippet(home: Path) -> subprocess.CompletedProcess[str]:
    # As a user runs it: `opsmith` on PATH, their OPSMITH_HOME (not the default) in the environment.
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OPSMITH_")},
        "OPSMITH_HOME": str(home),
        "PATH": f"{Path(script_path()).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HF_HUB_OFFLINE": "1",
    }
    return subprocess.run(
        [sys.executable, "-c", _sdk_snippet()], capture_output=True, text=True, env=env, timeout=120, check=False
    )


@pytest.mark.slow
def test_the_documented_sdk_snippet_reaches_a_non_default_home(ingested: Path, home: Path) -> None:
    assert home != Path.home() / ".opsmith"
    proc = _run_snippet(home)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()  # the answer (quoted runbook passages, or the refusal)
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_the_documented_sdk_snippet_reports_a_tool_error_as_its_message(home: Path) -> None:
    """With no index in the home, the tool fails: the snippet prints the CLI's line, not a TypeError."""
    proc = _run_snippet(home)
    assert proc.returncode == 1
    assert "TypeError" not in proc.stderr
    assert "No index named 'runbooks'" in proc.stderr.strip().splitlines()[-1]
