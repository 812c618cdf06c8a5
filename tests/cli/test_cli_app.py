"""The top-level app: ``--version``, and how wide tables are when nobody watches a terminal."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from clitools import Run, script_path

import opsmith

REPO = Path(__file__).resolve().parents[2]
VULNERABLE = REPO / "examples" / "terraform" / "vulnerable"


def test_version(cli_ok: Callable[..., Run]) -> None:
    run = cli_ok("--version")
    assert run.stdout == f"opsmith {opsmith.__version__}\n"
    assert opsmith.__version__ == importlib.metadata.version("opsmith")  # the package and its metadata agree


def _unattended(*args: str, columns: int | None = None) -> str:
    """stdout of the real script with no terminal anywhere (stdin too), as in a CI job."""
    env = {k: v for k, v in os.environ.items() if k not in {"COLUMNS", "LINES"}}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    proc = subprocess.run(
        [script_path(), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in proc.stderr
    return proc.stdout


def test_tables_keep_their_width_when_no_terminal_is_attached() -> None:
    """A CI log is not an 80-column terminal: rows stay on one line, names stay whole."""
    text = _unattended("review", str(VULNERABLE), "--fail-on", "none")
    lines = text.splitlines()
    assert max(len(line) for line in lines) > 100
    row = next(line for line in lines if "OPS-S007" in line)
    assert "aws_instance.bastion" in row
    assert "root volume is not encrypted (no root_block_device)" in row
    assert "…" not in text


@pytest.mark.parametrize("columns", [60, 120])
def test_columns_sets_the_width_and_long_words_fold_instead_of_being_cut(columns: int) -> None:
    text = _unattended("review", str(VULNERABLE), "--fail-on", "none", columns=columns)
    rows = [line for line in text.splitlines() if line.startswith("│")]
    assert max(len(line) for line in rows) <= columns
    assert "…" not in text  # a resource address or a command cut short cannot be copied
    # Folded, every character is still there: read the resource column down, without the borders.
    resources = "".join(row.split("│")[5].strip() for row in rows)
    assert "aws_instance.bastion" in resources
