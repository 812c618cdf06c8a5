"""A password inside a URL setting (``http://svc:PASS@host``) is used, but never printed.

``doctor`` is covered in test_cli_doctor.py; here are the error lines of the LLM provider and
of a Qdrant server, over real sockets.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from clitools import ANSWERABLE, Run, assert_one_error_line

from loopback import QuietHandler, read_json, send_json, serve

PASSWORD = "Pa55-in-the-url"


def error_line(run: Run) -> str:
    """The red line of a failed ``ask`` (the timings line precedes it on stderr)."""
    assert run.exit_code == 1
    [line] = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    return line


@pytest.fixture
def provider_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    def point_at(base_url: str) -> None:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("OPSMITH_PROVIDER", "openai")
        monkeypatch.setenv("OPSMITH_MODEL", "test")
        monkeypatch.setenv("OPSMITH_BASE_URL", base_url)
        monkeypatch.setenv("OPSMITH_LLM_MAX_RETRIES", "0")

    return point_at


@pytest.fixture
def failing_llm_server() -> Iterator[tuple[int, list[str]]]:
    """An OpenAI-compatible endpoint that records each Authorization header and answers HTTP 500."""
    seen: list[str] = []

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            read_json(self)
            seen.append(self.headers.get("authorization", ""))
            send_json(self, {"error": {"message": "upstream model crashed"}}, 500)

    with serve(Handler) as url:
        yield int(url.rsplit(":", 1)[1]), seen


def test_a_refused_provider_connection_masks_the_password(
    ingested: Path, provider_env: Callable[[str], None], cli_main: Callable[..., Run]
) -> None:
    provider_env(f"http://svc:{PASSWORD}@127.0.0.1:1/v1")  # nothing listens on port 1

    run = cli_main("ask", ANSWERABLE)
    line = error_line(run)
    assert "Cannot reach openai at http://svc:***@127.0.0.1:1/v1" in line
    assert PASSWORD not in run.stdout + run.stderr, line

    as_json = cli_main("ask", ANSWERABLE, "--json")
    assert "http://svc:***@127.0.0.1:1/v1" in as_json.json()["error"]
    assert PASSWORD not in as_json.stdout + as_json.stderr


def test_the_password_still_reaches_the_server_but_not_the_error_line(
    ingested: Path,
    provider_env: Callable[[str], None],
    failing_llm_server: tuple[int, list[str]],
    cli_main: Callable[..., Run],
) -> None:
    port, seen = failing_llm_server
    provider_env(f"http://svc:{PASSWORD}@127.0.0.1:{port}/v1?api_key=query-secret")

    run = cli_main("ask", ANSWERABLE)
    assert seen == ["Basic " + base64.b64encode(f"svc:{PASSWORD}".encode()).decode()]  # masked only for display
    line = error_line(run)
    assert f"openai at http://svc:***@127.0.0.1:{port}/v1?api_key=*** failed (HTTP 500" in line
    assert PASSWORD not in run.stdout + run.stderr, line
    assert "query-secret" not in run.stdout + run.stderr


def test_an_unreachable_qdrant_server_masks_the_password(cli_main: Callable[..., Run]) -> None:
    run = cli_main("search", "disk full", "--qdrant-url", f"http://qdrant:{PASSWORD}@127.0.0.1:1")
    line = assert_one_error_line(run, "Cannot reach Qdrant at http://qdrant:***@127.0.0.1:1")
    assert PASSWORD not in run.stdout + run.stderr, line
