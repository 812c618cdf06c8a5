"""Evaluation metrics on hand-made results, and the question file reader."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from opsmith.errors import InputError
from opsmith.rag.answer import Answer, answer_question
from opsmith.rag.evaluate import (
    EvalQuestion,
    QuestionResult,
    evaluate,
    gold_warning,
    llm_context,
    load_questions,
    plot_support,
    score,
    suggest_threshold,
)
from opsmith.rag.retrieve import Retriever


def _answerable(qid: str, ranked: list[str], *, refused: bool = False, ok: bool | None = True) -> QuestionResult:
    return QuestionResult(qid, refused, ranked, "answer", ok, answerable=True, gold=["gold.md"])


def _unanswerable(qid: str, *, refused: bool) -> QuestionResult:
    return QuestionResult(qid, refused, ["a.md"], "answer", None, answerable=False, gold=[])


def _ranked(rank: int | None, length: int = 10) -> list[str]:
    """``length`` sources with the gold one at ``rank`` (1-based), or nowhere."""
    return [("gold.md" if i == rank else f"other-{i}.md") for i in range(1, length + 1)]


def test_score_gives_the_standard_metrics() -> None:
    results = [
        _answerable("q1", _ranked(1)),
        _answerable("q2", _ranked(3)),
        _answerable("q3", _ranked(6), ok=False),
        _answerable("q4", _ranked(None), refused=True, ok=None),  # a false refusal
        _answerable("q5", _ranked(2)),
        _unanswerable("u1", refused=True),
        _unanswerable("u2", refused=False),
        _unanswerable("u3", refused=False),
    ]
    summary = score(results)

    assert (summary["questions_total"], summary["answerable"], summary["unanswerable"]) == (8, 5, 3)
    assert summary["recall@1"] == 0.2  # q1
    assert summary["recall@5"] == 0.6  # q1, q2, q5
    assert summary["mrr@10"] == pytest.approx((1 + 1 / 3 + 1 / 6 + 0 + 1 / 2) / 5, abs=1e-4)
    ndcg = (1 + 1 / math.log2(4) + 1 / math.log2(7) + 0 + 1 / math.log2(3)) / 5
    assert summary["ndcg@10"] == pytest.approx(ndcg, abs=1e-4)
    assert summary["refusal_precision"] == 0.5  # u1 right, q4 wrong
    assert summary["refusal_recall"] == pytest.approx(1 / 3, abs=1e-4)  # u1 of u1..u3
    assert summary["false_refusal_rate"] == 0.2
    assert summary["must_include_rate"] == 0.6  # q1, q2, q5


def test_rank_beyond_ten_counts_for_nothing_and_any_gold_source_counts() -> None:
    beyond = _answerable("far", _ranked(11, length=12))
    two_golds = QuestionResult("two", False, ["x.md", "b.md", "a.md"], "", True, answerable=True, gold=["a.md", "b.md"])
    summary = score([beyond, two_golds])

    assert summary["recall@5"] == 0.5
    assert summary["mrr@10"] == pytest.approx(0.25)  # (0 + 1/2) / 2
    assert summary["ndcg@10"] == pytest.approx((1 / math.log2(3)) / 2, abs=1e-4)


def test_refusal_metrics_are_none_without_their_denominator() -> None:
    summary = score([_answerable("q1", _ranked(1))])
    assert summary["refusal_precision"] is None  # nothing refused
    assert summary["refusal_recall"] is None  # no unanswerable questions
    assert summary["recall@1"] == 1.0


def test_evaluate_dedupes_sources_and_checks_must_include() -> None:
    questions = [
        EvalQuestion("q1", "disk full?", ["db.md"], ["df -h", "pg_archivecleanup"], True),
        EvalQuestion("q2", "cache?", ["cache.md"], ["redis-cli"], True),
        EvalQuestion("u1", "mainframe?", [], [], False),
    ]
    ranked = {
        "disk full?": ["db.md", "db.md", "cache.md"] + [f"s{i}.md" for i in range(12)],
        "cache?": ["db.md", "db.md", "cache.md"],
        "mainframe?": ["db.md"],
    }
    answers = {
        "disk full?": ("Run df -h, then pg_archivecleanup [1].", False),
        "cache?": ("Run something else.", False),
        "mainframe?": ("Not in the runbooks.", True),
    }
    ticks: list[int] = []

    def ask(question: str) -> Answer:
        text, refused = answers[question]
        return Answer(question, text, refused, [], "none", {"retrieve": 1.0, "generate": 0.0, "total": 1.0})

    summary = evaluate(questions, rank=lambda q: ranked[q], ask=ask, progress=ticks.append)

    rows = {row["id"]: row for row in summary["questions"]}
    assert rows["q1"]["ranked_sources"][:3] == ["db.md", "cache.md", "s0.md"]
    assert len(rows["q1"]["ranked_sources"]) == 10
    assert rows["q2"]["ranked_sources"] == ["db.md", "cache.md"]
    assert (rows["q1"]["must_include_ok"], rows["q2"]["must_include_ok"], rows["u1"]["must_include_ok"]) == (
        True,
        False,
        None,
    )
    assert rows["u1"]["refused"] is True
    assert {"id", "refused", "ranked_sources", "answer", "must_include_ok"} <= set(rows["q1"])
    assert summary["recall@1"] == 0.5
    assert summary["mrr@10"] == 0.75
    assert summary["must_include_rate"] == 0.5
    assert (summary["refusal_precision"], summary["refusal_recall"]) == (1.0, 1.0)
    assert ticks == [1, 1, 1]
    json.dumps(summary)  # the --json output must serialise


def _write_lines(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_load_questions_reads_the_shared_format(tmp_path: Path) -> None:
    path = _write_lines(
        tmp_path,
        [
            json.dumps({"id": "q-1", "question": "Why?", "gold": ["a.md"], "must_include": ["x"], "answerable": True}),
            "",
            json.dumps({"id": 2, "question": "Unknown?", "gold": [], "must_include": []}),
        ],
    )
    first, second = load_questions(path)
    assert first == EvalQuestion("q-1", "Why?", ["a.md"], ["x"], True)
    assert second == EvalQuestion("2", "Unknown?", [], [], False)  # no gold: unanswerable


@pytest.mark.parametrize(
    "bad",
    ["{not json", json.dumps({"id": "q-3", "gold": []}), json.dumps(["a list"])],
    ids=["broken-json", "missing-question", "not-an-object"],
)
def test_load_questions_error_names_the_line(tmp_path: Path, bad: str) -> None:
    good = json.dumps({"id": "q-1", "question": "Why?", "gold": ["a.md"], "must_include": [], "answerable": True})
    path = _write_lines(tmp_path, [good, "", bad, good])
    with pytest.raises(InputError) as caught:
        load_questions(path)
    message = str(caught.value)
    assert f"{path}:3:" in message
    assert '"question"' in message  # says what a line needs


def test_load_questions_missing_or_empty_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_questions(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="no questions"):
        load_questions(_write_lines(tmp_path, ["", "  "]))


def test_load_questions_rejects_a_string_where_a_list_belongs(tmp_path: Path) -> None:
    row = {"id": "q-1", "question": "Why?", "gold": "a.md", "must_include": [], "answerable": True}
    with pytest.raises(InputError, match=r":1: .*'gold' must be a list of strings"):
        load_questions(_write_lines(tmp_path, [json.dumps(row)]))


def _with_support(answerable: bool, support: float) -> QuestionResult:
    return QuestionResult("q", False, [], "", None, answerable, [], support)


def test_suggested_threshold_refuses_most_unanswerable_within_the_false_refusal_budget() -> None:
    results = [_with_support(True, s) for s in (1.0, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 1.95)]
    results += [_with_support(False, s) for s in (0.5, 0.8, 1.1, 1.25)]
    # Refusing below 1.1001 costs one answerable question (10%) and catches three of four.
    assert suggest_threshold(results) == pytest.approx(1.1001)
    # With no false refusals allowed, only scores below the lowest answerable one are refused.
    assert suggest_threshold(results, max_false_refusals=0.0) == pytest.approx(0.8001)
    assert suggest_threshold([_with_support(True, 1.0)]) is None


def test_support_plot_is_a_png(tmp_path: Path) -> None:
    rows = [{"support": s, "answerable": a} for s, a in ((1.3, True), (1.6, True), (0.7, False))]
    path = plot_support(rows, 1.0, tmp_path / "plots" / "support.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 5_000


def _question(qid: str, *gold: str, answerable: bool = True) -> EvalQuestion:
    return EvalQuestion(qid, "question", list(gold), [], answerable)


def test_gold_warning_is_none_when_every_gold_source_is_indexed() -> None:
    questions = [_question("a", "db/disk.md"), _question("b", "tls.md"), _question("u", answerable=False)]
    assert gold_warning(questions, {"db/disk.md", "tls.md", "other.md"}, "runbooks") is None


def test_gold_warning_names_a_prefixed_source_when_no_gold_path_is_indexed() -> None:
    questions = [_question("a", "db/disk.md"), _question("b", "tls.md")]
    indexed = {"runbooks/db/disk.md", "runbooks/tls.md"}
    message = gold_warning(questions, indexed, "demo")
    assert message is not None
    assert message.startswith("No gold source of this question set is in collection 'demo'")
    assert "'db/disk.md'" in message  # a gold path
    assert "'runbooks/db/disk.md' is indexed" in message  # the same file, as the collection names it
    assert message.endswith("ingest the folder the gold paths are relative to, or fix the gold paths")


def test_gold_warning_shows_an_indexed_source_when_nothing_matches() -> None:
    message = gold_warning([_question("a", "db/disk.md")], {"kafka/lag.md", "certs/tls.md"}, "demo")
    assert message is not None
    assert "gold paths look like 'db/disk.md', and indexed sources look like 'certs/tls.md'" in message
    empty = gold_warning([_question("a", "db/disk.md")], set(), "demo")
    assert empty is not None
    assert "the collection holds no sources" in empty


def test_gold_warning_counts_the_missing_ones_when_some_are_indexed() -> None:
    questions = [_question("a", "db/disk.md"), _question("b", "tls.md"), _question("c", "typo.md")]
    message = gold_warning(questions, {"db/disk.md", "tls.md"}, "runbooks")
    assert message is not None
    assert message.startswith("1 of 3 gold sources are not in collection 'runbooks'")
    assert "e.g. 'typo.md'" in message


def test_gold_warning_ignores_the_gold_of_unanswerable_questions() -> None:
    assert gold_warning([_question("u", "gone.md", answerable=False)], {"a.md"}, "runbooks") is None


def test_evaluate_measures_the_context_the_answer_length_and_not_covered_terms() -> None:
    """Each figure is known by construction: context texts, token counts and answers are scripted."""
    questions = [
        EvalQuestion("q1", "one?", ["a.md"], ["cmd-a"], True),  # in answer and context
        EvalQuestion("q2", "two?", ["a.md"], ["cmd-b"], True),  # in context only
        EvalQuestion("q3", "three?", ["a.md"], ["cmd-c"], True),  # in neither; flagged
        EvalQuestion("q4", "four?", ["a.md"], ["cmd-d"], True),  # refused: no context counted
        EvalQuestion("u1", "near?", [], [], False),  # answered but flagged: a near-miss caught
        EvalQuestion("u2", "far?", [], [], False),  # refused
        EvalQuestion("u3", "miss?", [], [], False),  # answered as if covered
    ]
    replies = {
        "one?": ("run cmd-a", False, []),
        "two?": ("see the runbook", False, []),
        "three?": ("xx", False, ["--flag"]),
        "four?": ("Not in the runbooks.", True, []),
        "near?": ("closest runbook", False, ["noout"]),
        "far?": ("Not in the runbooks.", True, []),
        "miss?": ("an answer", False, []),
    }
    contexts = {"one?": ("cmd-a", 100), "two?": ("cmd-b here", 300), "three?": ("other", 200), "near?": ("x", 50)}
    contexts["miss?"] = ("y", 400)
    asked_for_context: list[str] = []

    def ask(question: str) -> Answer:
        text, refused, missing = replies[question]
        no_time = {"retrieve": 1.0, "generate": 0.0, "total": 1.0}
        return Answer(question, text, refused, [], "none", no_time, not_covered=missing)

    def context(question: str) -> tuple[str, int]:
        asked_for_context.append(question)
        return contexts[question]

    summary = evaluate(questions, rank=lambda q: ["a.md"], ask=ask, context=context)

    # Refused: no LLM would be called, so no context is measured.
    assert "four?" not in asked_for_context
    assert "far?" not in asked_for_context
    assert summary["must_include_rate"] == 0.25  # q1
    assert summary["context_must_include_rate"] == 0.5  # q1, q2 of four answerable
    # Answered questions only (q1, q2, q3, u1, u3): tokens 100, 300, 200, 50, 400.
    assert (summary["context_tokens_median"], summary["context_tokens_p95"]) == (200, 400)
    lengths = sorted(len(replies[q][0]) for q in ("one?", "two?", "three?", "near?", "miss?"))
    assert (summary["answer_chars_median"], summary["answer_chars_p95"]) == (lengths[2], lengths[-1])
    assert summary["unanswerable_refused_or_flagged"] == pytest.approx(2 / 3, abs=1e-4)  # u1 flagged, u2 refused
    assert summary["answerable_flagged"] == 0.25  # q3
    rows = {row["id"]: row for row in summary["questions"]}
    assert (rows["q2"]["context_must_include_ok"], rows["q2"]["context_tokens"]) == (True, 300)
    assert (rows["u1"]["flagged"], rows["u1"]["not_covered"]) == (True, ["noout"])
    assert rows["u2"]["flagged"] is False  # refused, not flagged
    json.dumps(summary)


def test_without_a_context_function_the_context_figures_are_zero() -> None:
    question = EvalQuestion("q1", "one?", ["a.md"], ["x"], True)
    reply = Answer("one?", "x", False, [], "none", {"retrieve": 1.0, "generate": 0.0, "total": 1.0})
    summary = evaluate([question], rank=lambda q: ["a.md"], ask=lambda q: reply)
    assert (summary["context_must_include_rate"], summary["context_tokens_median"]) == (0.0, 0)
    assert summary["unanswerable_refused_or_flagged"] is None


def test_eval_figures_on_a_real_index(shared_retriever: Retriever) -> None:
    """The real pipeline on the test corpus: the context the LLM would get holds the command, stays
    within its budget, and a question about a tool no runbook mentions is flagged, not passed off."""
    questions = [
        EvalQuestion(
            "q1", "The disk is full on the database host, what do I do?", ["db/disk-full.md"], ["du -sh"], True
        ),
        EvalQuestion("u1", "The database disk is full. How do I run pg_repack --no-order on it?", [], [], False),
    ]

    def ask(question: str) -> Answer:
        # Refusal off: this corpus is too small for the default threshold to let the near-miss through,
        # and the flag is what is under test.
        return answer_question(question, retriever=shared_retriever, refusal_threshold=0.0)

    def rank(question: str) -> list[str]:
        return [hit.chunk.source for hit in shared_retriever.search(question, k=10)]

    summary = evaluate(questions, rank=rank, ask=ask, context=llm_context(shared_retriever, k=5, context_tokens=400))
    rows = {row["id"]: row for row in summary["questions"]}
    tight = evaluate(questions, rank=rank, ask=ask, context=llm_context(shared_retriever, k=5, context_tokens=30))

    assert rows["q1"]["context_must_include_ok"] is True
    assert 30 < rows["q1"]["context_tokens"] <= 400
    assert 0 < tight["questions"][0]["context_tokens"] <= 30
    assert rows["u1"]["refused"] is False
    assert rows["u1"]["not_covered"] == ["pg_repack", "--no-order"]
    assert summary["unanswerable_refused_or_flagged"] == 1.0
    assert summary["answerable_flagged"] == 0.0
