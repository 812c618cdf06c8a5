"""``opsmith eval retrieval`` on a toy question set."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from clitools import ANSWERABLE, UNRELATED, Run, assert_one_error_line

QUESTIONS: list[dict[str, Any]] = [
    {
        "id": "pg-lag",
        "question": ANSWERABLE,
        "gold": ["postgres-replication-lag.md"],
        "must_include": ["pg_last_xact_replay_timestamp"],
        "answerable": True,
    },
    {
        "id": "disk",
        "question": "How do I free space when the node disk is almost full?",
        "gold": ["disk-full.md"],
        "must_include": ["docker system prune -af"],
        "answerable": True,
    },
    {
        "id": "tls",
        "question": "How do I check when the TLS certificate expires?",
        "gold": ["certs/tls-expiry.md"],
        "must_include": ["openssl x509 -enddate"],
        "answerable": True,
    },
    {"id": "bread", "question": UNRELATED, "gold": [], "must_include": [], "answerable": False},
]

METRICS = ("recall@1", "recall@5", "mrr@10", "ndcg@10", "refusal_precision", "refusal_recall", "must_include_rate")


def write_questions(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_eval_retrieval_json(ingested: Path, tmp_path: Path, cli_ok: Callable[..., Run]) -> None:
    questions = write_questions(tmp_path / "questions.jsonl", QUESTIONS)

    data = cli_ok("eval", "retrieval", str(questions), "--collection", "runbooks", "--json").json()

    for key in METRICS:
        assert key in data
    assert data["recall@5"] == 1.0
    assert data["recall@1"] == 1.0
    assert data["mrr@10"] == 1.0
    assert data["ndcg@10"] == 1.0
    assert data["refusal_recall"] == 1.0
    assert data["refusal_precision"] == 1.0
    assert data["must_include_rate"] == 1.0

    rows = {row["id"]: row for row in data["questions"]}
    assert list(rows) == ["pg-lag", "disk", "tls", "bread"]
    for row in rows.values():
        assert {"id", "refused", "ranked_sources", "answer", "must_include_ok"} <= row.keys()
        assert len(row["ranked_sources"]) == len(set(row["ranked_sources"]))  # sources, de-duplicated
    assert rows["pg-lag"]["ranked_sources"][0] == "postgres-replication-lag.md"
    assert rows["pg-lag"]["must_include_ok"] is True
    assert "pg_last_xact_replay_timestamp" in rows["pg-lag"]["answer"]
    assert rows["bread"]["refused"] is True
    assert rows["bread"]["must_include_ok"] is None


def test_eval_metrics_follow_the_ranks(ingested: Path, tmp_path: Path, cli_ok: Callable[..., Run]) -> None:
    # Gold files that are *not* the best match rank lower, and the metrics must say so.
    rows = [
        {**QUESTIONS[0], "gold": ["kafka-consumer-lag.md"], "must_include": ["not in any runbook"]},
        QUESTIONS[1],
        {**QUESTIONS[2], "gold": ["nowhere.md"]},
    ]
    questions = write_questions(tmp_path / "questions.jsonl", rows)

    data = cli_ok("eval", "retrieval", str(questions), "--json").json()

    ranks = []
    for row, asked in zip(data["questions"], rows, strict=True):
        found = [i + 1 for i, source in enumerate(row["ranked_sources"]) if source in asked["gold"]]
        ranks.append(found[0] if found else None)
    assert ranks[0] is not None
    assert ranks[0] > 1
    assert ranks[1] == 1
    assert ranks[2] is None
    assert data["recall@1"] == round(1 / 3, 4)
    assert data["mrr@10"] == round((1 / ranks[0] + 1) / 3, 4)
    assert data["ndcg@10"] == round((1 / math.log2(ranks[0] + 1) + 1) / 3, 4)
    assert data["must_include_rate"] == round(2 / 3, 4)
    assert data["refusal_recall"] is None  # no unanswerable questions to refuse


def test_eval_human_output(ingested: Path, tmp_path: Path, cli_ok: Callable[..., Run]) -> None:
    questions = write_questions(tmp_path / "questions.jsonl", QUESTIONS)
    run = cli_ok("eval", "retrieval", str(questions))
    assert "recall@5" in run.stdout
    assert "1.000" in run.stdout


def test_malformed_questions_file_names_the_line(ingested: Path, tmp_path: Path, cli_main: Callable[..., Run]) -> None:
    path = tmp_path / "questions.jsonl"
    path.write_text(json.dumps(QUESTIONS[0]) + "\n" + '{"id": "q2", "question": \n', encoding="utf-8")

    run = cli_main("eval", "retrieval", str(path), "--json")

    assert run.exit_code == 2
    assert run.stdout == ""
    assert_one_error_line(run, f"{path}:2:")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('{"id": "q1", "gold": []}\n', ":1:"),  # no question
        ("", "holds no questions"),
    ],
)
def test_unusable_questions_files(
    ingested: Path, tmp_path: Path, cli_main: Callable[..., Run], content: str, fragment: str
) -> None:
    path = tmp_path / "questions.jsonl"
    path.write_text(content, encoding="utf-8")
    assert_one_error_line(cli_main("eval", "retrieval", str(path)), fragment)


def test_missing_questions_file(tmp_path: Path, cli_main: Callable[..., Run]) -> None:
    run = cli_main("eval", "retrieval", str(tmp_path / "nope.jsonl"))
    assert_one_error_line(run, "Question file not found")


def test_eval_unknown_collection(tmp_path: Path, cli_main: Callable[..., Run]) -> None:
    questions = write_questions(tmp_path / "questions.jsonl", QUESTIONS)
    run = cli_main("eval", "retrieval", str(questions), "--collection", "nope")
    assert_one_error_line(run, "No index named 'nope'", "opsmith ingest")


def test_eval_plot_and_suggested_threshold(ingested: Path, tmp_path: Path, cli_ok: Callable[..., Run]) -> None:
    questions = write_questions(tmp_path / "questions.jsonl", QUESTIONS)
    plot = tmp_path / "support.png"

    data = cli_ok("eval", "retrieval", str(questions), "-c", "runbooks", "--plot", str(plot), "--json").json()

    assert data["plot"] == str(plot)
    assert plot.read_bytes()[:4] == b"\x89PNG"
    supports = {q["id"]: q["support"] for q in data["questions"]}
    assert supports["bread"] < data["refusal_threshold"] <= min(v for k, v in supports.items() if k != "bread")
    assert data["suggested_refusal_threshold"] is not None


def test_eval_warns_when_no_gold_path_is_in_the_collection(
    runbooks: Path, tmp_path: Path, cli_ok: Callable[..., Run]
) -> None:
    """The corpus's parent folder ingested: every source carries a prefix, and recall reads 0."""
    cli_ok("ingest", str(runbooks.parent), "--collection", "prefixed", "--json")
    questions = write_questions(tmp_path / "questions.jsonl", QUESTIONS)

    run = cli_ok("eval", "retrieval", str(questions), "--collection", "prefixed")

    assert "recall@5" in run.stdout
    warning = " ".join(run.stderr.split())
    assert warning.startswith("warning: No gold source of this question set is in collection 'prefixed'")
    assert "gold paths look like 'certs/tls-expiry.md'" in warning
    assert "'runbooks/certs/tls-expiry.md' is indexed" in warning
    data = cli_ok("eval", "retrieval", str(questions), "--collection", "prefixed", "--json").json()
    assert data["recall@5"] == 0.0
    assert len(data["warnings"]) == 1
    assert data["warnings"][0].startswith("No gold source")


def test_eval_has_no_warning_when_the_gold_paths_are_indexed(
    ingested: Path, tmp_path: Path, cli_ok: Callable[..., Run]
) -> None:
    questions = write_questions(tmp_path / "questions.jsonl", QUESTIONS)
    run = cli_ok("eval", "retrieval", str(questions), "--json")
    assert run.json()["warnings"] == []
    assert "warning" not in run.stderr


def test_eval_without_its_kind_suggests_eval_retrieval(
    cli: Callable[..., Run], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_questions(tmp_path / "questions.jsonl", QUESTIONS)
    run = cli("eval", "questions.jsonl")
    assert run.exit_code == 2
    message = " ".join(run.stderr.replace("│", " ").split())  # typer draws usage errors in a box
    assert "No such command 'questions.jsonl'. Did you mean `opsmith eval retrieval questions.jsonl`?" in message
    typo = cli("eval", "retreival", "questions.jsonl")
    assert "Did you mean 'retrieval'?" in typo.stderr  # a misspelt kind keeps typer's own suggestion
