"""The compare harness: metrics maths, bootstrap, diagnosis, cost, cache and report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsmith.compare import EvalItem, ResultCache, Variant, compare, load_evalset, paired_bootstrap, write_report
from opsmith.compare.diagnosis import diagnose_item
from opsmith.compare.metrics import must_include_coverage, recall_at_k, refusal_correct, schema_valid, token_f1
from opsmith.compare.run import cost_per_1k
from opsmith.finetune.estimate import load_price_table
from opsmith.llm._base import Message
from opsmith.testing import FakeChatModel

EXAMPLES = Path(__file__).parents[2] / "examples" / "compare"
SCHEMA = {"type": "object", "properties": {"severity": {"type": "string"}}, "required": ["severity"]}
ITEMS = [
    EvalItem("a", "How do I check replication lag?", must_include=("pg_stat_replication",)),
    EvalItem("b", "Classify the incident", json_schema=SCHEMA),
    EvalItem("c", "How do I repair Cassandra?", answerable=False),
]


def scripted(answers: dict[str, str]) -> FakeChatModel:
    def reply(messages: list[Message]) -> str:
        text = messages[-1].content
        return next(v for k, v in answers.items() if k in text)

    return FakeChatModel(reply=reply)


def test_metrics_by_hand() -> None:
    assert token_f1("the cat sat", "cat sat down") == pytest.approx(2 * (2 / 2) * (2 / 3) / (1 + 2 / 3))
    assert must_include_coverage("run SHOW POOLS; now", ["show pools;", "--bigkeys"]) == 0.5
    assert schema_valid('```json\n{"severity": "sev2"}\n```', SCHEMA)
    assert not schema_valid('{"sev": 1}', SCHEMA)
    assert not schema_valid("not json", SCHEMA)
    assert refusal_correct(answerable=False, refused=True)
    assert not refusal_correct(answerable=True, refused=True)
    assert recall_at_k(["x.md", "x.md", "y.md", "z.md"], ["z.md"], 2) == 0.0
    assert recall_at_k(["x.md", "x.md", "y.md", "z.md"], ["z.md"], 3) == 1.0
    assert recall_at_k(["x.md"], [], 3) is None


def test_bootstrap_significance() -> None:
    same = paired_bootstrap("a", [0.5, 1.0, 0.0] * 10, "b", [0.5, 1.0, 0.0] * 10)
    assert not same.significant
    assert same.diff == 0
    better = paired_bootstrap("a", [0.0, 0.2, 0.1] * 10, "b", [1.0, 0.9, 0.8] * 10)
    assert better.significant
    assert better.ci_low > 0
    noisy = paired_bootstrap("a", [0.0, 1.0] * 5, "b", [1.0, 0.0] * 5)
    assert not noisy.significant


def test_diagnosis_per_item() -> None:
    item = EvalItem("f", "q", json_schema=SCHEMA, gold_sources=("g.md",))
    rag_ok = {"score": 1.0, "retrieved": ["g.md"], "schema_valid": True}
    prompt_bad = {"score": 0.0, "retrieved": [], "schema_valid": False}
    assert diagnose_item(item, {"prompt": prompt_bad, "rag": rag_ok}) == ["knowledge_gap", "behaviour_gap"]
    missed = {"score": 0.0, "retrieved": ["other.md"], "schema_valid": False}
    assert diagnose_item(item, {"prompt": prompt_bad, "rag": missed}) == ["retrieval_miss"]


def test_cost_per_1k_from_price_table() -> None:
    prices = load_price_table()
    priced = FakeChatModel(["x"], model="gpt-4.1-mini")
    priced.provider = "openai"  # a fake at the seam, priced like the hosted model it stands in for
    variant = Variant("prompt", priced, rag=False)
    cost, note = cost_per_1k(variant, 1000, 500, prices)
    assert cost == pytest.approx(1000 * (1000 * 0.40 + 500 * 1.60) / 1e6)
    assert "gpt-4.1-mini" in note
    mystery = FakeChatModel(["x"], model="mystery")
    mystery.provider = "openai"
    unknown = Variant("prompt", mystery, rag=False)
    cost, note = cost_per_1k(unknown, 1000, 500, prices)
    assert cost is None
    assert "not in the price table" in note


def test_compare_scores_caches_and_reports(tmp_path: Path) -> None:
    good = scripted(
        {"replication": "Check pg_stat_replication", "Classify": '{"severity": "sev2"}', "Cassandra": "I don't know"}
    )
    bad = scripted({"replication": "Restart it", "Classify": "sev2", "Cassandra": "Run nodetool repair"})
    variants = [Variant("prompt", bad, rag=False), Variant("finetuned", good, rag=False, finetuned=True)]
    with ResultCache(tmp_path / "c.sqlite") as cache:
        result = compare(ITEMS, variants, retriever=None, cache=cache)
    assert result.variants["finetuned"]["score"] == 1.0
    assert result.variants["prompt"]["score"] == 0.0
    assert result.variants["prompt"]["refusal_correct"] == pytest.approx(2 / 3, abs=1e-3)
    assert result.recommendation is not None
    assert result.recommendation["primary"]
    calls = len(good.calls) + len(bad.calls)
    with ResultCache(tmp_path / "c.sqlite") as cache:
        again = compare(ITEMS, variants, retriever=None, cache=cache)
    assert len(good.calls) + len(bad.calls) == calls == 6
    assert again.variants == result.variants

    paths = write_report(result, tmp_path / "report")
    assert json.loads(paths["report.json"].read_text())["variants"]["finetuned"]["score"] == 1.0
    assert "<table>" in paths["report.html"].read_text()
    assert "finetuned" in paths["report.html"].read_text()
    assert paths["report.md"].read_text().startswith("# opsmith compare")
    png = paths["scores.png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 5000


def test_example_eval_set_loads() -> None:
    items = load_evalset(EXAMPLES / "eval.jsonl")
    assert len(items) >= 30
    assert sum(not i.answerable for i in items) >= 4
    assert sum(i.json_schema is not None for i in items) >= 4
    assert len(load_evalset(EXAMPLES / "general.jsonl")) >= 10
