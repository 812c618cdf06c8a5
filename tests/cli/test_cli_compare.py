"""`opsmith compare` end to end with the offline demo provider over real retrieval."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from opsmith.cli import app

EVAL = [
    {
        "id": "lag",
        "question": "How do I measure Postgres replication lag?",
        "reference": {"must_include": ["pg_last_xact_replay_timestamp"]},
        "gold_sources": ["postgres-replication-lag.md"],
    },
    {"id": "none", "question": "How do I patch Windows Server hosts?", "answerable": False},
]


def test_compare_json_end_to_end(ingested: Path, tmp_path: Path) -> None:
    eval_set = tmp_path / "eval.jsonl"
    eval_set.write_text("\n".join(json.dumps(row) for row in EVAL), encoding="utf-8")
    args = ["compare", str(eval_set), "--variants", "prompt,rag", "--provider", "fake", "--json"]
    result = CliRunner().invoke(app, [*args, "--report", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["label"] == "demo (fake provider)"
    assert set(data["variants"]) == {"prompt", "rag"}
    assert data["variants"]["rag"]["recall@k"] == 1.0
    assert data["comparisons"][0]["a"] == "prompt"
    # The recommendation follows from what was measured: retrieval supplied the fact that the
    # prompt-only variant lacked (a knowledge gap) on an item whose gold source must be cited.
    assert data["diagnosis"]["counts"] == {"knowledge_gap": 1, "behaviour_gap": 0, "retrieval_miss": 0}
    answers = data["diagnosis"]["answers"]
    assert (answers["missing_knowledge"], answers["needs_citations"], answers["behavior_wrong"]) == (True, True, False)
    assert data["recommendation"]["primary"] == "rag"
    rows = {row["id"]: row["results"] for row in data["items"]}
    assert rows["lag"]["rag"]["retrieved"][0] == "postgres-replication-lag.md"
    assert rows["none"]["rag"]["refused"] is True  # the off-topic question found too little support
    assert (tmp_path / "r" / "scores.png").is_file()


def test_compare_finetuned_needs_a_model(tmp_path: Path) -> None:
    eval_set = tmp_path / "eval.jsonl"
    eval_set.write_text(json.dumps(EVAL[0]), encoding="utf-8")
    result = CliRunner().invoke(app, ["compare", str(eval_set), "--variants", "finetuned", "--provider", "fake"])
    assert result.exit_code != 0
    assert "--adapter" in str(result.exception)
