"""``opsmith ingest``, ``search``, ``ask`` and ``collections`` on a real local Qdrant index."""

from __future__ import annotations

import typing
from collections.abc import Callable
from pathlib import Path

import pytest
from clitools import ANSWERABLE, RUNBOOKS, UNRELATED, Run

from opsmith.cli.rag import Mode, Provider
from opsmith.config import ProviderName, RetrievalMode

INGEST_KEYS = {"added", "changed", "unchanged", "removed", "kept_outside", "chunks", "seconds", "skipped"}
RESULT_KEYS = {"source", "heading", "start_line", "end_line", "score", "text"}
ASK_KEYS = {"question", "answer", "refused", "citations", "provider", "timings_ms"}
CITATION_KEYS = {"source", "heading", "start_line", "end_line", "score"}


def test_help_lists_every_command(cli_ok: Callable[..., Run]) -> None:
    run = cli_ok("--help")
    for command in ("ingest", "search", "ask", "eval", "doctor", "collections"):
        assert command in run.stdout


def test_cli_choices_match_the_settings_model() -> None:
    # The CLI spells these out to keep `--help` free of pydantic; they must not drift.
    assert typing.get_args(Mode) == typing.get_args(RetrievalMode)
    assert typing.get_args(Provider) == typing.get_args(ProviderName)


# ingest -------------------------------------------------------------------------------------


def test_ingest_json_reports_files_then_reruns_as_unchanged(runbooks: Path, cli_ok: Callable[..., Run]) -> None:
    (runbooks / "diagram.png").write_bytes(b"\x89PNG\r\n\x1a\n")

    first = cli_ok("ingest", str(runbooks), "--json").json()

    assert first.keys() >= INGEST_KEYS
    assert (first["added"], first["changed"], first["unchanged"], first["removed"]) == (len(RUNBOOKS), 0, 0, 0)
    assert first["chunks"] >= len(RUNBOOKS)  # every file gave at least one chunk
    assert isinstance(first["seconds"], float)
    assert first["skipped"] == [{"path": "diagram.png", "reason": "unsupported file type .png"}]

    again = cli_ok("ingest", str(runbooks), "--json").json()
    assert (again["added"], again["changed"], again["unchanged"], again["removed"]) == (0, 0, len(RUNBOOKS), 0)
    assert again["chunks"] == 0


def test_ingest_json_counts_changed_and_removed_files(runbooks: Path, cli_ok: Callable[..., Run]) -> None:
    cli_ok("ingest", str(runbooks), "--json")
    (runbooks / "kafka-consumer-lag.md").write_text("# Kafka consumer lag\n\nPage the data team.\n", encoding="utf-8")
    (runbooks / "certs" / "tls-expiry.md").unlink()

    report = cli_ok("ingest", str(runbooks), "--json").json()

    assert (report["added"], report["changed"], report["unchanged"], report["removed"]) == (0, 1, 2, 1)
    assert report["chunks"] == 1  # only the changed file was re-embedded

    listed = cli_ok("search", "certbot renew", "--json", "-k", "20").json()
    sources = {row["source"] for row in listed["results"]}
    assert "certs/tls-expiry.md" not in sources
    assert "kafka-consumer-lag.md" in sources


def test_prebuilt_index_matches_the_test_corpus(ingested: Path, cli_ok: Callable[..., Run]) -> None:
    # The `ingested` fixture copies an index built once per session; it must be what an
    # ingest of this test's own runbooks folder would have produced.
    report = cli_ok("ingest", str(ingested), "--json").json()
    assert (report["added"], report["changed"], report["unchanged"], report["removed"]) == (0, 0, len(RUNBOOKS), 0)


def test_ingest_human_output_summarises_on_stdout(runbooks: Path, cli_ok: Callable[..., Run]) -> None:
    run = cli_ok("ingest", str(runbooks))
    assert f"runbooks: {len(RUNBOOKS)} added, 0 changed, 0 unchanged, 0 removed" in run.stdout
    assert "outside the given paths" not in run.stdout


def test_ingesting_one_new_file_keeps_the_collection(
    runbooks: Path, tmp_path: Path, cli_ok: Callable[..., Run]
) -> None:
    cli_ok("ingest", str(runbooks), "--json")
    new = tmp_path / "new-runbook.md"
    new.write_text("# Zookeeper quorum lost\n\nRestart the follower with systemctl.\n", encoding="utf-8")

    run = cli_ok("ingest", str(new))

    summary = f"1 added, 0 changed, 0 unchanged, 0 removed, 0 skipped · kept {len(RUNBOOKS)} runbooks outside"
    assert summary in run.stdout
    listed = cli_ok("search", "restart", "--json", "-k", "20").json()
    assert {row["source"] for row in listed["results"]} == {*RUNBOOKS, "new-runbook.md"}
    again = cli_ok("ingest", str(new), "--json").json()
    assert (again["unchanged"], again["removed"], again["kept_outside"]) == (1, 0, len(RUNBOOKS))


def test_links_out_of_the_folder_are_reported_and_read_only_when_asked(
    runbooks: Path, tmp_path: Path, cli_ok: Callable[..., Run]
) -> None:
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$zanzibar-quokka:19000:0:99999:7:::\n", encoding="utf-8")
    (runbooks / "x.txt").symlink_to(secret)

    run = cli_ok("ingest", str(runbooks), "--json")

    assert run.json()["skipped"] == [
        {"path": "x.txt", "reason": f"links outside {runbooks} — not read; pass --follow-symlinks to read it"}
    ]
    assert "warning: skipped x.txt: links outside" in run.stderr
    assert "x.txt" not in _sources(cli_ok)

    followed = cli_ok("ingest", str(runbooks), "--follow-symlinks", "--json").json()
    assert (followed["added"], followed["skipped"]) == (1, [])
    assert "x.txt" in _sources(cli_ok)


def _sources(cli_ok: Callable[..., Run]) -> set[str]:
    return {row["source"] for row in cli_ok("search", "root", "--json", "-k", "50").json()["results"]}


# search -------------------------------------------------------------------------------------


def test_search_json_shape_and_top_hit(ingested: Path, cli_ok: Callable[..., Run]) -> None:
    data = cli_ok("search", "pg_last_xact_replay_timestamp replica lag", "--json").json()

    assert data["query"] == "pg_last_xact_replay_timestamp replica lag"
    assert data["results"], "no results"
    for row in data["results"]:
        assert row.keys() >= RESULT_KEYS
        assert isinstance(row["start_line"], int)
        assert row["start_line"] <= row["end_line"]
        assert isinstance(row["score"], float)
    top = data["results"][0]
    assert top["source"] == "postgres-replication-lag.md"
    assert "Diagnosis" in top["heading"]
    assert "pg_last_xact_replay_timestamp" in top["text"]
    # The cited lines are the lines of the file that hold the quoted text.
    lines = RUNBOOKS["postgres-replication-lag.md"].splitlines()
    quoted = "\n".join(lines[top["start_line"] - 1 : top["end_line"]])
    assert "pg_last_xact_replay_timestamp" in quoted
    scores = [row["score"] for row in data["results"]]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("k", [1, 3])
def test_search_respects_k(ingested: Path, cli_ok: Callable[..., Run], k: int) -> None:
    data = cli_ok("search", "alert fires", "--json", "-k", str(k)).json()
    assert len(data["results"]) == k


@pytest.mark.parametrize(
    ("mode", "query", "expected"),
    [
        ("dense", "the disk on a machine is running out of space", "disk-full.md"),
        ("sparse", "kafka-consumer-groups.sh payments", "kafka-consumer-lag.md"),
        ("hybrid", "renew the TLS certificate with certbot", "certs/tls-expiry.md"),
    ],
)
def test_search_modes(ingested: Path, cli_ok: Callable[..., Run], mode: str, query: str, expected: str) -> None:
    data = cli_ok("search", query, "--mode", mode, "--json", "-k", "3").json()
    assert data["mode"] == mode
    assert data["results"][0]["source"] == expected


def test_search_sparse_scores_differ_from_dense(ingested: Path, cli_ok: Callable[..., Run]) -> None:
    # BM25 scores are unbounded sums; dense scores are cosines. Same query, different scorer.
    query = "docker system prune journalctl"
    dense = cli_ok("search", query, "--mode", "dense", "--json", "-k", "1").json()["results"][0]
    sparse = cli_ok("search", query, "--mode", "sparse", "--json", "-k", "1").json()["results"][0]
    assert dense["source"] == sparse["source"] == "disk-full.md"
    assert dense["score"] <= 1.0
    assert sparse["score"] > 1.0


def test_search_rejects_an_unknown_mode(ingested: Path, cli: Callable[..., Run]) -> None:
    run = cli("search", "disk", "--mode", "fuzzy")
    assert run.exit_code == 2
    assert "fuzzy" in run.stderr
    assert run.stdout == ""


def test_search_human_output(ingested: Path, cli_ok: Callable[..., Run]) -> None:
    run = cli_ok("search", "certbot renew", "-k", "2")
    assert "1. certs/tls-expiry.md:" in run.stdout
    assert "score=" in run.stdout


def test_human_output_prints_headings_that_look_like_markup(runbooks: Path, cli_ok: Callable[..., Run]) -> None:
    (runbooks / "logs.md").write_text(
        "# Log volume\n\n## Clean [/var/log] with [bold]logrotate[/bold]\n\nRun `logrotate -f /etc/logrotate.conf`.\n",
        encoding="utf-8",
    )
    cli_ok("ingest", str(runbooks), "--json")
    heading = "Clean [/var/log] with [bold]logrotate[/bold]"
    assert heading in cli_ok("search", "logrotate /var/log", "-k", "1").stdout
    assert heading in cli_ok("ask", "How do I force logrotate to clean /var/log?").stdout


# ask ----------------------------------------------------------------------------------------


def test_ask_json_answerable(ingested: Path, cli_ok: Callable[..., Run]) -> None:
    data = cli_ok("ask", ANSWERABLE, "--json").json()

    assert data.keys() >= ASK_KEYS
    assert data["question"] == ANSWERABLE
    assert data["refused"] is False
    assert data["provider"] == "none"
    assert "pg_last_xact_replay_timestamp" in data["answer"]
    assert data["citations"]
    for citation in data["citations"]:
        assert citation.keys() >= CITATION_KEYS
    assert data["citations"][0]["source"] == "postgres-replication-lag.md"
    timings = data["timings_ms"]
    assert set(timings) >= {"retrieve", "generate", "total"}
    assert all(isinstance(value, float) and value >= 0 for value in timings.values())
    assert timings["total"] >= timings["retrieve"]
    assert data.get("error") is None
    # The commands of what it quoted, each with the runbook line it is on, and nothing missing.
    assert data["commands"]
    lines = (ingested / "postgres-replication-lag.md").read_text().splitlines()
    for command in data["commands"]:
        assert command["source"] == "postgres-replication-lag.md"
        assert command["text"].splitlines()[0].strip() in lines[command["line"] - 1]
    assert data["not_covered"] == []


def test_ask_json_unrelated_question_is_refused(ingested: Path, cli_ok: Callable[..., Run]) -> None:
    data = cli_ok("ask", UNRELATED, "--json").json()
    assert data["refused"] is True
    assert data["citations"] == []
    assert "not in the runbooks" in data["answer"].lower()


def test_ask_human_output_cites_sources(ingested: Path, cli_ok: Callable[..., Run]) -> None:
    run = cli_ok("ask", ANSWERABLE)
    assert "pg_last_xact_replay_timestamp" in run.stdout
    assert "Sources" in run.stdout
    assert "[1] postgres-replication-lag.md:" in run.stdout
    assert "retrieve" in run.stderr  # timings are a side note on stderr, not part of the answer


def test_ask_human_output_refusal(ingested: Path, cli_ok: Callable[..., Run]) -> None:
    run = cli_ok("ask", UNRELATED)
    assert "Not in the runbooks" in run.stdout
    assert "Sources" not in run.stdout


def test_ask_respects_k(ingested: Path, cli_ok: Callable[..., Run]) -> None:
    data = cli_ok("ask", ANSWERABLE, "--json", "-k", "1").json()
    assert len(data["citations"]) == 1
    assert len(data["retrieved"]) == 1


# collections --------------------------------------------------------------------------------


def test_collections_list_and_delete(runbooks: Path, cli_ok: Callable[..., Run]) -> None:
    empty = cli_ok("collections", "list", "--json").json()
    assert empty["collections"] == []

    cli_ok("ingest", str(runbooks), "--json")
    cli_ok("ingest", str(runbooks / "certs"), "--collection", "tls", "--json")
    listed = cli_ok("collections", "list", "--json").json()
    by_name = {row["name"]: row for row in listed["collections"]}
    assert set(by_name) == {"runbooks", "tls"}
    assert by_name["runbooks"]["points"] > by_name["tls"]["points"] > 0
    assert by_name["runbooks"]["embedder"] == "all-MiniLM-L6-v2"
    assert by_name["runbooks"]["dimension"] == 384

    assert cli_ok("collections", "delete", "tls", "--yes", "--json").json() == {"deleted": "tls"}
    remaining = cli_ok("collections", "list", "--json").json()
    assert [row["name"] for row in remaining["collections"]] == ["runbooks"]


def test_collections_list_human(runbooks: Path, cli_ok: Callable[..., Run]) -> None:
    assert "No collections" in cli_ok("collections", "list").stdout
    cli_ok("ingest", str(runbooks), "--json")
    assert "runbooks" in cli_ok("collections", "list").stdout
