"""Helpers for driving the ``opsmith`` CLI three ways.

* :func:`cli` runs ``opsmith.cli.app`` in-process through typer's ``CliRunner``, for the
  success paths. ``OpsmithError`` propagates out of ``app`` (``main`` turns it into a red
  line), so a failure there shows up as ``result.exception``.
* :func:`cli_main` runs the console-script entry point ``opsmith.cli.main`` in-process, for
  the error paths: one red line on stderr and ``SystemExit`` with the error's exit code.
* :func:`opsmith_script` runs the installed console script in a subprocess, proving what
  a user at a shell sees (no traceback, exit status, pure JSON on stdout).

Every test has its own ``OPSMITH_HOME`` (see ``tests/conftest.py``), so each builds its
own tiny index; ingesting the corpus below takes well under a second.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from clitools import Run, script_path, write_runbooks
from typer.testing import CliRunner

from opsmith.cli import app, main


@pytest.fixture
def home() -> Path:
    """This test's OPSMITH_HOME (set by the autouse fixture in tests/conftest.py)."""
    return Path(os.environ["OPSMITH_HOME"])


@pytest.fixture
def runbooks(tmp_path: Path) -> Path:
    """Four small runbooks (one in a subfolder) in a fresh folder."""
    return write_runbooks(tmp_path / "runbooks")


@pytest.fixture
def cli() -> Callable[..., Run]:
    runner = CliRunner()

    def invoke(*args: str) -> Run:
        result = runner.invoke(app, list(args))
        return Run(result.exit_code, result.stdout, result.stderr, result.exception)

    return invoke


@pytest.fixture
def cli_ok(cli: Callable[..., Run]) -> Callable[..., Run]:
    """Like :func:`cli`, but the command must succeed."""

    def invoke(*args: str) -> Run:
        run = cli(*args)
        if run.exception is not None and not isinstance(run.exception, SystemExit):
            raise run.exception
        assert run.exit_code == 0, f"opsmith {' '.join(args)} exited {run.exit_code}: {run.stderr}"
        return run

    return invoke


@pytest.fixture
def cli_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    def invoke(*args: str) -> Run:
        capsys.readouterr()  # drop anything printed before this run
        monkeypatch.setattr(sys, "argv", ["opsmith", *args])
        code: int | str | None = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code
        captured = capsys.readouterr()
        return Run(code if isinstance(code, int) else 1, captured.out, captured.err)

    return invoke


@pytest.fixture
def opsmith_script() -> Callable[..., Run]:
    """Run the installed console script with this test's environment (OPSMITH_HOME included)."""
    script = script_path()

    def invoke(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Run:
        proc = subprocess.run(
            [script, *args],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "60", **(env or {})},
            timeout=timeout,
            check=False,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)

    return invoke


@pytest.fixture(scope="session")
def _prebuilt_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus ingested once per session; tests get a copy (20 ms instead of 600 ms)."""
    home = tmp_path_factory.mktemp("prebuilt-home")
    folder = write_runbooks(tmp_path_factory.mktemp("prebuilt") / "runbooks")
    with pytest.MonkeyPatch.context() as mp:
        # Session fixtures run before the per-test isolation, so isolate here too.
        for name in [n for n in os.environ if n.startswith("OPSMITH_")]:
            mp.delenv(name)
        mp.setenv("OPSMITH_HOME", str(home))
        mp.setenv("HF_HUB_OFFLINE", "1")
        result = CliRunner().invoke(app, ["ingest", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    return home / "qdrant"


@pytest.fixture
def ingested(runbooks: Path, home: Path, _prebuilt_index: Path) -> Path:
    """The runbooks, ingested into the default collection of this test's home.

    Sources are relative to the folder given, so the copied index matches ``runbooks``
    exactly: re-ingesting it reports every file unchanged."""
    shutil.copytree(_prebuilt_index, home / "qdrant", ignore=shutil.ignore_patterns(".lock"))
    return runbooks
