"""Bad input: one readable line on stderr, a non-zero exit status, no traceback, nothing lost."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from clitools import ANSWERABLE, RUNBOOKS, Run, assert_one_error_line

from opsmith.config import load_settings
from opsmith.rag.store import QdrantStore

# In-process, through the console-script entry point ------------------------------------------


def test_missing_path(tmp_path: Path, cli_main: Callable[..., Run]) -> None:
    missing = tmp_path / "no-such-runbooks"
    run = cli_main("ingest", str(missing), "--json")
    assert run.exit_code == 2
    assert run.stdout == ""
    assert_one_error_line(run, "Path not found", str(missing))


def test_error_text_that_looks_like_markup_is_printed_as_is(tmp_path: Path, cli_main: Callable[..., Run]) -> None:
    missing = tmp_path / "[/old] [bold]runbooks"
    run = cli_main("ingest", str(missing))
    assert_one_error_line(run, str(missing))


def test_empty_folder(tmp_path: Path, cli_main: Callable[..., Run]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    run = cli_main("ingest", str(empty))
    assert run.exit_code == 2
    assert_one_error_line(run, "No files to ingest", str(empty), ".md")


def test_folder_of_unsupported_files_is_like_an_empty_one(tmp_path: Path, cli_main: Callable[..., Run]) -> None:
    folder = tmp_path / "pictures"
    folder.mkdir()
    (folder / "diagram.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    run = cli_main("ingest", str(folder), "--json")
    assert_one_error_line(run, "No files to ingest")


@pytest.mark.parametrize("question", ["", "   \n\t"])
def test_empty_question(ingested: Path, cli_main: Callable[..., Run], question: str) -> None:
    run = cli_main("ask", question, "--json")
    assert run.exit_code == 2
    assert run.stdout == ""
    assert_one_error_line(run, "The question is empty")


def test_empty_search_query(ingested: Path, cli_main: Callable[..., Run]) -> None:
    run = cli_main("search", " ", "--json")
    assert_one_error_line(run, "empty")


@pytest.mark.parametrize("command", ["ask", "search"])
def test_unknown_collection(ingested: Path, cli_main: Callable[..., Run], command: str) -> None:
    run = cli_main(command, ANSWERABLE, "--collection", "nope", "--json")
    assert run.exit_code == 1
    assert run.stdout == ""
    assert_one_error_line(run, "No index named 'nope'", "opsmith ingest", "--collection nope")


def test_no_index_at_all(cli_main: Callable[..., Run]) -> None:
    run = cli_main("ask", ANSWERABLE)
    assert_one_error_line(run, "No index named 'runbooks'", "opsmith ingest")


def test_embedder_mismatch_names_both_models(cli_main: Callable[..., Run]) -> None:
    with QdrantStore(load_settings()) as store:
        store.ensure_collection("runbooks", embedder="other-model", dimension=384)

    for args in (("ask", ANSWERABLE), ("search", "disk")):
        run = cli_main(*args, "--json")
        assert run.exit_code == 1
        assert_one_error_line(run, "other-model", "all-MiniLM-L6-v2", "OPSMITH_EMBEDDER")


def test_ingest_into_a_collection_of_another_embedder_is_refused(
    runbooks: Path, cli_main: Callable[..., Run], cli_ok: Callable[..., Run]
) -> None:
    with QdrantStore(load_settings()) as store:
        store.ensure_collection("runbooks", embedder="other-model", dimension=768)
    run = cli_main("ingest", str(runbooks), "--json")
    assert_one_error_line(run, "other-model (768d)", "all-MiniLM-L6-v2 (384d)")
    # Nothing was written into the foreign collection.
    listed = cli_ok("collections", "list", "--json").json()
    assert listed["collections"] == [{"name": "runbooks", "points": 0, "embedder": "other-model", "dimension": 768}]


def test_delete_unknown_collection(cli_main: Callable[..., Run]) -> None:
    run = cli_main("collections", "delete", "nope")
    assert run.exit_code == 1
    assert_one_error_line(run, "No index named 'nope'")


BAD_COLLECTIONS = ["a/b", "/abs", "..", "", "x" * 256]


@pytest.mark.parametrize("name", BAD_COLLECTIONS, ids=["slash", "absolute", "dotdot", "empty", "too-long"])
def test_bad_collection_names_are_one_line(name: str, runbooks: Path, home: Path, cli_main: Callable[..., Run]) -> None:
    for args in (
        ("ingest", str(runbooks), "--collection", name),
        ("ask", ANSWERABLE, "--collection", name),
        ("search", "disk", "--collection", name, "--json"),
        ("collections", "delete", name),
    ):
        run = cli_main(*args)
        assert run.exit_code == 2, (args, run.stderr)
        assert run.stdout == ""
        assert_one_error_line(run, "is not allowed", "--collection runbooks")
    assert not (home / "qdrant" / "collection").exists() or not any((home / "qdrant" / "collection").iterdir())


@pytest.mark.parametrize("name", ["..", "a/b"])
def test_a_bad_collection_in_the_environment_or_config_file_is_a_config_error(
    name: str, monkeypatch: pytest.MonkeyPatch, home: Path, cli_main: Callable[..., Run]
) -> None:
    monkeypatch.setenv("OPSMITH_COLLECTION", name)
    run = cli_main("search", "disk")
    assert run.exit_code == 2
    assert_one_error_line(run, "Invalid settings", "collection", "is not allowed", "OPSMITH_*")

    monkeypatch.delenv("OPSMITH_COLLECTION")
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(f"collection = {name!r}\n", encoding="utf-8")
    run = cli_main("collections", "list")
    assert run.exit_code == 2
    assert_one_error_line(run, "Invalid settings", "is not allowed", "config.toml")


def test_a_file_url_for_qdrant_is_a_config_error(monkeypatch: pytest.MonkeyPatch, cli_main: Callable[..., Run]) -> None:
    expected = ("http:// or https://", "'file://'", "unset", "embedded index")
    monkeypatch.setenv("OPSMITH_QDRANT_URL", "file:///var/lib/qdrant")
    run = cli_main("collections", "list")
    assert run.exit_code == 2
    assert_one_error_line(run, "qdrant_url", *expected)

    monkeypatch.delenv("OPSMITH_QDRANT_URL")
    run = cli_main("search", "disk", "--qdrant-url", "file:///var/lib/qdrant")
    assert run.exit_code == 2
    assert_one_error_line(run, *expected)


def _remove_deep(top: Path) -> None:
    """Remove a very deep tree bottom-up: shutil.rmtree (and pytest's tmp cleanup) recurse once per level."""
    folders, pending = [], [top]
    while pending:
        folder = pending.pop()
        folders.append(folder)
        for child in folder.iterdir():
            if child.is_dir() and not child.is_symlink():
                pending.append(child)
            else:
                child.unlink()
    for folder in reversed(folders):
        folder.rmdir()


@pytest.fixture
def deep_runbooks(runbooks: Path) -> Iterator[Path]:
    """``runbooks`` with one more runbook 1,000 folders down."""
    deep = runbooks / "deep"
    bottom = deep
    bottom.mkdir()
    for _ in range(999):  # one level at a time: mkdir(parents=True) recurses too
        bottom = bottom / "d"
        bottom.mkdir()
    (bottom / "bottom.md").write_text("# Bottom\n\nThe deepest runbook: restart the abyss service.\n", encoding="utf-8")
    yield runbooks
    _remove_deep(deep)


def test_a_tree_a_thousand_folders_deep_is_ingested(deep_runbooks: Path, cli_main: Callable[..., Run]) -> None:
    run = cli_main("ingest", str(deep_runbooks), "--json")

    assert run.exit_code == 0, run.stderr
    assert "Traceback" not in run.stderr
    report = json.loads(run.stdout)
    assert (report["added"], report["skipped"]) == (len(RUNBOOKS) + 1, [])


def test_missing_provider_key_fails_before_touching_the_index(
    monkeypatch: pytest.MonkeyPatch, cli_main: Callable[..., Run]
) -> None:
    # No index exists either: the provider check comes first, so this is the error reported.
    monkeypatch.setenv("OPSMITH_PROVIDER", "anthropic")
    run = cli_main("ask", ANSWERABLE)
    assert run.exit_code == 2
    assert_one_error_line(run, "ANTHROPIC_API_KEY", "OPSMITH_PROVIDER=none")


def test_invalid_setting_names_the_problem(monkeypatch: pytest.MonkeyPatch, cli_main: Callable[..., Run]) -> None:
    monkeypatch.setenv("OPSMITH_TOP_K", "0")
    run = cli_main("search", "disk")
    assert run.exit_code == 2
    assert_one_error_line(run, "top_k", "OPSMITH_*")


def test_broken_config_file(cli_main: Callable[..., Run], home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("provider = \n", encoding="utf-8")
    run = cli_main("collections", "list")
    assert_one_error_line(run, "config.toml", "TOML")


def test_an_error_leaves_the_index_usable_in_the_same_process(
    ingested: Path, monkeypatch: pytest.MonkeyPatch, cli_main: Callable[..., Run], cli_ok: Callable[..., Run]
) -> None:
    # Local Qdrant allows one client per index: a client leaked by a failed command would
    # lock out the next one (the HTTP service runs many commands in one process).
    assert cli_main("ask", ANSWERABLE, "--collection", "nope").exit_code == 1
    assert cli_main("search", "", "--json").exit_code == 2
    monkeypatch.setenv("OPSMITH_PROVIDER", "anthropic")  # no key: fails after settings are read
    assert cli_main("ask", ANSWERABLE).exit_code == 2
    monkeypatch.delenv("OPSMITH_PROVIDER")
    assert cli_ok("search", "disk", "--json").json()["results"]


# Bad files: skipped or warned, counted, and stdout stays pure JSON -----------------------


@pytest.mark.slow  # fresh console-script processes
def test_binary_and_non_utf8_files_are_reported_on_stderr(runbooks: Path, opsmith_script: Callable[..., Run]) -> None:
    (runbooks / "dump.md").write_bytes(b"\x00\x01\x02binary\x00" * 50)
    (runbooks / "legacy.txt").write_bytes("Caf\xe9 r\xe9seau: restart the proxy.\n".encode("latin-1"))

    run = opsmith_script("ingest", str(runbooks), "--json")

    assert run.exit_code == 0, run.stderr
    report = json.loads(run.stdout)  # stdout is exactly one JSON document
    assert report["added"] == len(RUNBOOKS) + 1  # the latin-1 file is indexed, decoded with replacement
    assert {"path": "dump.md", "reason": "binary content"} in report["skipped"]
    assert [w["path"] for w in report["warnings"]] == ["legacy.txt"]
    assert "warning: skipped dump.md: binary content" in run.stderr
    assert "warning: legacy.txt:" in run.stderr


# The real console script: what a user at a shell sees ---------------------------------------


@pytest.mark.slow  # several fresh console-script processes
def test_script_errors_are_one_line_even_on_a_narrow_terminal(
    tmp_path: Path, opsmith_script: Callable[..., Run]
) -> None:
    # COLUMNS=60 (set by the fixture) is narrower than every message below.
    cases = [
        (("ingest", str(tmp_path / "missing")), 2, "Path not found"),
        (("ask", ""), 2, "The question is empty"),
        (("search", "disk", "--collection", "nope", "--json"), 1, "run `opsmith ingest PATH --collection nope` first"),
    ]
    for args, code, fragment in cases:
        run = opsmith_script(*args)
        assert run.exit_code == code, (args, run.stderr)
        assert run.stdout == ""
        line = assert_one_error_line(run, fragment)
        assert len(line) > 60


@pytest.mark.slow  # several fresh console-script processes
def test_script_json_is_pure_on_stdout(runbooks: Path, opsmith_script: Callable[..., Run]) -> None:
    ingest = opsmith_script("ingest", str(runbooks), "--json")
    assert json.loads(ingest.stdout)["added"] == len(RUNBOOKS)
    ask = opsmith_script("ask", ANSWERABLE, "--json")
    assert ask.exit_code == 0
    assert json.loads(ask.stdout)["refused"] is False
    assert ask.stderr == ""


# A second process holding the local index -----------------------------------------------------

HOLDER = """
import sys, time
from qdrant_client import QdrantClient
client = QdrantClient(path=sys.argv[1])
print("ready", flush=True)
time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def index_held_elsewhere(ingested: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process with the local index open (bounded: it exits by itself after 60 s)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(load_settings().index_path), "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        yield holder
    finally:
        holder.kill()
        holder.wait(timeout=10)
        if holder.stdout is not None:
            holder.stdout.close()


def test_second_process_on_the_local_index(
    index_held_elsewhere: subprocess.Popen[str], opsmith_script: Callable[..., Run]
) -> None:
    run = opsmith_script("search", "disk", "--json")
    assert run.exit_code == 1
    assert run.stdout == ""
    assert_one_error_line(run, "another opsmith process", "single-process", "Qdrant server", "OPSMITH_QDRANT_URL")


def test_doctor_reports_a_locked_index_instead_of_failing(
    index_held_elsewhere: subprocess.Popen[str], cli_ok: Callable[..., Run]
) -> None:
    store = cli_ok("doctor", "--json").json()["store"]
    assert "OPSMITH_QDRANT_URL" in store["error"]
    assert "collections" not in store
