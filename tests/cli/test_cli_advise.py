"""`opsmith advise`: every example answers file, pure --json, the table output and bad answers."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from clitools import Run, assert_one_error_line

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "advise"


def _expected(path: Path, label: str) -> list[str]:
    match = re.search(rf"^# {label}: (.+)$", path.read_text(encoding="utf-8"), re.MULTILINE)
    return [part.strip() for part in match.group(1).split(",")] if match else []


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_each_example_reproduces_its_recommendation(cli_ok: Callable[..., Run], example: Path) -> None:
    data = cli_ok("advise", "--answers", str(example), "--json").json()
    assert [data["primary"]] == _expected(example, "expect")
    assert data["also"] == _expected(example, "also")
    assert all(set(step) == {"question", "answer", "reason"} for step in data["path"])
    assert "breakeven_queries" in data["costs"]
    assert data["next_commands"] or data["primary"] == "neither"


def test_examples_cover_every_recommendation() -> None:
    seen = {(*_expected(p, "expect"), *_expected(p, "also")) for p in EXAMPLES.glob("*.yaml")}
    assert {s[0] for s in seen} == {"prompt", "rag", "fine-tune", "long-context", "neither"}
    assert ("rag", "fine-tune") in seen


def test_table_output_shows_path_table_costs_and_commands(cli_ok: Callable[..., Run]) -> None:
    text = cli_ok("advise", "--answers", str(EXAMPLES / "rag-fine-tune.yaml")).stdout
    assert "Recommendation: rag + fine-tune" in text
    assert "The corpus is too large for one prompt" in text
    assert "★ rag" in text
    assert "★ fine-tune" in text
    assert "pays back after" in text
    assert "opsmith ingest runbooks/" in text


def test_table_output_gives_the_real_reason_there_is_no_breakeven(cli_ok: Callable[..., Run]) -> None:
    """rag.yaml sets no labeled_examples: the fine-tuned model is cheaper, there is just nothing to train."""
    data = cli_ok("advise", "--answers", str(EXAMPLES / "rag.yaml"), "--json").json()
    assert data["costs"]["fine-tune"] < data["costs"]["prompt"]
    assert data["costs"]["breakeven_queries"] is None
    text = " ".join(cli_ok("advise", "--answers", str(EXAMPLES / "rag.yaml")).stdout.split())
    assert "not cheaper" not in text
    assert "no breakeven: labeled_examples is 0, so there is no training run to pay back" in text
    assert "It also changes often" in text  # the example's "change weekly" is part of the reason


def test_unknown_key_is_one_error_line(cli_main: Callable[..., Run], tmp_path: Path) -> None:
    answers = tmp_path / "answers.yaml"
    answers.write_text("missing_knowlege: true\n")
    run = cli_main("advise", "--answers", str(answers), "--json")
    assert_one_error_line(run, "Unknown key 'missing_knowlege'", "missing_knowledge")
    assert run.stdout == ""


def test_unknown_model_is_one_error_line(cli_main: Callable[..., Run], tmp_path: Path) -> None:
    answers = tmp_path / "answers.yaml"
    answers.write_text("current_model: gpt-9\n")
    assert_one_error_line(cli_main("advise", "--answers", str(answers)), "Unknown model 'gpt-9'", "gpt-4.1")


def test_interactive_asks_only_the_questions_the_tree_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from opsmith.cli import app

    monkeypatch.setattr("opsmith.cli.advise._is_terminal", lambda: True)
    # incapable? no. missing knowledge? yes. corpus 40000. changes often? no. citations? no.
    # behaves wrong? no. too slow? no. then the six cost numbers take their defaults.
    typed = "n\ny\n40000\nn\nn\nn\nn\n" + "\n" * 6
    result = CliRunner().invoke(app, ["advise"], input=typed)
    assert result.exit_code == 0, result.output
    assert "Recommendation: long-context" in result.stdout
    assert "prompting" not in result.stdout.split("Approaches")[0].lower()
