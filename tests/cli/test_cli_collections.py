"""``opsmith collections delete`` asks first on a terminal, and needs --yes without one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from clitools import Run, assert_one_error_line
from typer.testing import CliRunner

from opsmith.cli import app


def _names(cli_ok: Callable[..., Run]) -> list[str]:
    return [row["name"] for row in cli_ok("collections", "list", "--json").json()["collections"]]


def test_without_a_terminal_delete_needs_yes(
    ingested: Path, cli_main: Callable[..., Run], cli_ok: Callable[..., Run]
) -> None:
    run = cli_main("collections", "delete", "runbooks")
    assert_one_error_line(run, "Not deleting collection 'runbooks'", "chunks", "pass --yes")
    assert run.exit_code == 2
    assert "runbooks" in _names(cli_ok)
    assert cli_main("collections", "delete", "runbooks", "--yes").exit_code == 0
    assert _names(cli_ok) == []


@pytest.mark.parametrize(("typed", "deleted"), [("y\n", True), ("n\n", False), ("\n", False)])
def test_on_a_terminal_delete_asks_first(
    ingested: Path, cli_ok: Callable[..., Run], monkeypatch: pytest.MonkeyPatch, typed: str, deleted: bool
) -> None:
    monkeypatch.setattr("opsmith.cli.rag._stdin_is_terminal", lambda: True)

    result = CliRunner().invoke(app, ["collections", "delete", "runbooks", "--json"], input=typed)

    assert "Delete collection 'runbooks' (" in result.stderr  # the question goes to stderr...
    if deleted:
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == '{\n  "deleted": "runbooks"\n}'  # ...so stdout stays one JSON document
        assert _names(cli_ok) == []
    else:
        assert result.exit_code == 1
        assert "Nothing deleted." in result.stderr
        assert result.stdout == ""
        assert _names(cli_ok) == ["runbooks"]


def test_an_unknown_collection_is_reported_before_asking(
    cli_main: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("opsmith.cli.rag._stdin_is_terminal", lambda: True)
    run = cli_main("collections", "delete", "nope")
    assert_one_error_line(run, "No index named 'nope'")
