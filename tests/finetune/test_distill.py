"""distill: a teacher (FakeChatModel) answers prompts into alpaca/chat rows, resumably, with accounting."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from opsmith.config import load_settings
from opsmith.errors import InputError, PathNotFoundError, ProviderAuthError, ProviderTimeoutError, TemplateError
from opsmith.finetune.distill import (
    DistillProgress,
    distill,
    failures_path,
    load_teacher,
    parse_teacher,
    prompt_id,
    read_prompts,
)
from opsmith.llm import Message, Usage
from opsmith.prompts import load_template
from opsmith.testing import FakeChatModel

ALERTS = [f"Alert {n}: disk on node-{n} is {80 + n}% full" for n in range(6)]


def _answer(messages: list[Message]) -> str:
    return f"summary of <{messages[-1].content}>"


def write_prompts(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    return write_prompts(tmp_path / "prompts.jsonl", [{"id": f"a{n}", "prompt": text} for n, text in enumerate(ALERTS)])


def test_alpaca_rows_answer_every_prompt(prompts: Path, tmp_path: Path) -> None:
    out = tmp_path / "data.jsonl"
    teacher = FakeChatModel(reply=_answer)
    report = distill(prompts, out, teacher=teacher, concurrency=1)
    rows = read_rows(out)
    assert rows[0] == {"id": "a0", "instruction": ALERTS[0], "input": "", "output": f"summary of <{ALERTS[0]}>"}
    assert [r["id"] for r in rows] == [f"a{n}" for n in range(6)]
    assert (report.prompts, report.answered, report.skipped_existing, report.failed) == (6, 6, 0, 0)
    assert report.teacher == "fake:fake"
    assert report.failures == []
    assert report.failures_file is None
    assert not failures_path(out).exists()
    assert next(c["messages"] for c in teacher.calls) == [Message("user", ALERTS[0])]


def test_chat_rows_and_alpaca_style_prompts(tmp_path: Path) -> None:
    prompts = write_prompts(
        tmp_path / "p.jsonl",
        [
            {"instruction": "Summarise the alert.", "input": "disk 91% on node-3"},
            {"instruction": "Name the runbook for replication lag.", "output": "ignored"},
        ],
    )
    out = tmp_path / "chat.jsonl"
    teacher = FakeChatModel(reply=_answer)
    distill(prompts, out, teacher=teacher, fmt="chat", concurrency=1)
    first, second = read_rows(out)
    user = "Summarise the alert.\n\ndisk 91% on node-3"
    assert first == {
        "id": prompt_id("Summarise the alert.", "disk 91% on node-3"),
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": f"summary of <{user}>"}],
    }
    assert second["messages"][0]["content"] == "Name the runbook for replication lag."
    assert teacher.calls[0]["messages"] == [Message("user", user)]


def test_ids_without_one_are_stable_hashes() -> None:
    assert prompt_id("x") == prompt_id("x", "") == prompt_id("x")
    assert prompt_id("x") != prompt_id("x", "y") != prompt_id("xy")
    assert prompt_id("x").startswith("p-")
    assert len(prompt_id("x")) == 18


def test_system_prompt_is_sent_and_left_out_of_rows_unless_asked(prompts: Path, tmp_path: Path) -> None:
    teacher = FakeChatModel(reply=_answer)
    distill(prompts, tmp_path / "a.jsonl", teacher=teacher, system="Be terse.", concurrency=1)
    assert all(c["messages"][0] == Message("system", "Be terse.") for c in teacher.calls)
    assert "Be terse." not in (tmp_path / "a.jsonl").read_text()

    kept = tmp_path / "kept.jsonl"
    distill(prompts, kept, teacher=FakeChatModel(reply=_answer), system="Be terse.", fmt="chat", include_system=True)
    assert all(r["messages"][0] == {"role": "system", "content": "Be terse."} for r in read_rows(kept))
    with pytest.raises(InputError, match="Alpaca rows have no system message"):
        distill(prompts, tmp_path / "x.jsonl", teacher=teacher, system="s", include_system=True)


def test_template_system_prompt_is_sent(prompts: Path, tmp_path: Path) -> None:
    settings = load_settings()
    teacher = FakeChatModel(reply=_answer)
    distill(prompts, tmp_path / "out.jsonl", teacher=teacher, template_id="incident-summary", settings=settings)
    expected = load_template("incident-summary", settings).system
    assert len(teacher.calls) == len(ALERTS)
    assert all(c["messages"][0] == Message("system", expected) for c in teacher.calls)
    with pytest.raises(TemplateError):
        distill(prompts, tmp_path / "x.jsonl", teacher=teacher, template_id="no-such-template", settings=settings)
    with pytest.raises(InputError, match="not both"):
        distill(prompts, tmp_path / "x.jsonl", teacher=teacher, template_id="incident-summary", system="s")


def test_max_tokens_and_temperature_are_passed(prompts: Path, tmp_path: Path) -> None:
    teacher = FakeChatModel(reply=_answer)
    distill(prompts, tmp_path / "out.jsonl", teacher=teacher, max_tokens=77, temperature=0.3)
    assert {(c["max_tokens"], c["temperature"]) for c in teacher.calls} == {(77, 0.3)}


def test_concurrency_writes_every_row_exactly_once(tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "p.jsonl", [{"prompt": f"alert number {n}"} for n in range(40)])
    running = 0
    most = 0
    lock = threading.Lock()

    def slow(messages: list[Message]) -> str:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        return _answer(messages)

    out = tmp_path / "out.jsonl"
    seen: list[DistillProgress] = []
    report = distill(prompts, out, teacher=FakeChatModel(reply=slow), concurrency=4, progress=seen.append)
    rows = read_rows(out)
    assert sorted(r["instruction"] for r in rows) == sorted(f"alert number {n}" for n in range(40))
    assert len({r["id"] for r in rows}) == 40
    assert all(r["output"] == f"summary of <{r['instruction']}>" for r in rows)
    assert 1 < most <= 4
    assert report.answered == 40
    assert [p.done for p in seen] == list(range(41))
    assert seen[-1].total == 40


def test_resume_after_a_crash_mid_file(prompts: Path, tmp_path: Path) -> None:
    out = tmp_path / "data.jsonl"
    crashing = FakeChatModel(reply=_answer, errors=[None, None, KeyboardInterrupt()])
    with pytest.raises(KeyboardInterrupt):
        distill(prompts, out, teacher=crashing, concurrency=1)
    # The call queued behind the crashing one may have finished too; it is kept if so.
    before = [r["id"] for r in read_rows(out)]
    assert before[:2] == ["a0", "a1"]
    assert "a2" not in before
    assert len(before) == len(set(before))
    # A kill in the middle of a write leaves half a line behind.
    with out.open("a", encoding="utf-8") as handle:
        handle.write('{"id": "a2", "instruction": "Alert 2: di')

    teacher = FakeChatModel(reply=_answer)
    report = distill(prompts, out, teacher=teacher, concurrency=2)
    rows = read_rows(out)
    assert sorted(r["id"] for r in rows) == [f"a{n}" for n in range(6)]
    assert len(rows) == 6
    assert all(r["output"] == f"summary of <{r['instruction']}>" for r in rows)
    asked = sorted(c["messages"][-1].content for c in teacher.calls)
    assert asked == [text for n, text in enumerate(ALERTS) if f"a{n}" not in before]
    assert (report.answered, report.skipped_existing) == (6 - len(before), len(before))
    assert report.repaired_partial_line

    # A third run has nothing left to do.
    idle = FakeChatModel(reply=_answer)
    again = distill(prompts, out, teacher=idle)
    assert (again.answered, again.skipped_existing, len(idle.calls)) == (0, 6, 0)
    assert len(read_rows(out)) == 6


def test_a_complete_last_line_without_newline_is_kept(prompts: Path, tmp_path: Path) -> None:
    out = tmp_path / "data.jsonl"
    out.write_text('{"id": "a0", "instruction": "x", "input": "", "output": "y"}', encoding="utf-8")
    report = distill(prompts, out, teacher=FakeChatModel(reply=_answer))
    rows = read_rows(out)
    assert [r["id"] for r in rows].count("a0") == 1
    assert len(rows) == 6
    assert (report.skipped_existing, report.repaired_partial_line) == (1, False)


def test_a_bad_line_before_the_last_is_an_error(prompts: Path, tmp_path: Path) -> None:
    out = tmp_path / "data.jsonl"
    out.write_text('{"id": "a0", "instruction": "x", "input": "", "output": "y"}\nnot json\n{"id": "a1"}\n')
    with pytest.raises(InputError, match=r"Line 2 of .* is not valid JSON"):
        distill(prompts, out, teacher=FakeChatModel(reply=_answer))


def test_output_in_the_other_format_is_an_error(prompts: Path, tmp_path: Path) -> None:
    out = tmp_path / "data.jsonl"
    distill(prompts, out, teacher=FakeChatModel(reply=_answer), fmt="chat")
    with pytest.raises(InputError, match=r"Line 1 of .* is a chat row but the format is alpaca — pass --format chat"):
        distill(prompts, out, teacher=FakeChatModel(reply=_answer), fmt="alpaca")


def test_failures_are_recorded_per_row_and_retried(prompts: Path, tmp_path: Path) -> None:
    out = tmp_path / "data.jsonl"
    teacher = FakeChatModel(
        reply=_answer,
        errors=[None, ProviderTimeoutError("fake timed out", provider="fake"), None, RuntimeError("boom")],
    )
    report = distill(prompts, out, teacher=teacher, concurrency=1)
    assert [r["id"] for r in read_rows(out)] == ["a0", "a2", "a4", "a5"]
    assert (report.answered, report.failed) == (4, 2)
    expected = [
        {"line": 2, "id": "a1", "error": "ProviderTimeoutError: fake timed out"},
        {"line": 4, "id": "a3", "error": "RuntimeError: boom"},
    ]
    assert [vars(f) for f in report.failures] == expected
    assert report.failures_file == str(tmp_path / "data.failures.jsonl")
    assert read_rows(failures_path(out)) == expected

    retry = FakeChatModel(reply=_answer)
    second = distill(prompts, out, teacher=retry, concurrency=1)
    assert [c["messages"][-1].content for c in retry.calls] == [ALERTS[1], ALERTS[3]]
    assert (second.answered, second.skipped_existing, second.failed) == (2, 4, 0)
    assert sorted(r["id"] for r in read_rows(out)) == [f"a{n}" for n in range(6)]
    assert not failures_path(out).exists()


def test_truncated_and_empty_answers_are_failures(prompts: Path, tmp_path: Path) -> None:
    out = tmp_path / "data.jsonl"
    cut = distill(prompts, out, teacher=FakeChatModel(["partial"], stop_reason="max_tokens"))
    assert (cut.answered, cut.failed) == (0, 6)
    assert "cut off at the token limit (5 output tokens) — raise --max-tokens" in cut.failures[0].error
    assert cut.output_tokens == 30  # paid for all the same
    empty = distill(prompts, out, teacher=FakeChatModel(["  "]))
    assert empty.failed == 6
    assert empty.failures[0].error == "the teacher returned an empty answer"
    assert out.read_text() == ""


def test_a_bad_key_stops_the_run(prompts: Path, tmp_path: Path) -> None:
    teacher = FakeChatModel(reply=_answer, errors=[None, ProviderAuthError("bad key", provider="fake")])
    with pytest.raises(ProviderAuthError):
        distill(prompts, tmp_path / "data.jsonl", teacher=teacher, concurrency=1)


def test_invalid_prompt_rows_are_reported_with_line_numbers(tmp_path: Path) -> None:
    prompts = write_prompts(
        tmp_path / "p.jsonl",
        [
            {"prompt": "fine one"},
            "{not json",
            "",
            ["a", "list"],
            {"prompt": ""},
            {"instruction": 3},
            {"text": "no known key"},
            {"prompt": "p", "instruction": "i"},
            {"prompt": "p", "input": "i"},
            {"id": True, "prompt": "x"},
            {"prompt": "fine one"},
            {"id": 7, "instruction": "ok", "input": None},
        ],
    )
    valid, failures = read_prompts(prompts)
    assert [(p.line, p.id) for p in valid] == [(1, prompt_id("fine one")), (12, "7")]
    got = {f.line: f.error for f in failures}
    assert sorted(got) == [2, 4, 5, 6, 7, 8, 9, 10, 11]
    assert got[2].startswith("invalid JSON")
    assert got[4].startswith("expected a JSON object, got list")
    assert got[5] == '"prompt" is empty'
    assert got[6] == '"instruction" must be text, got int'
    assert got[7].startswith('no "prompt" or "instruction"')
    assert got[8] == 'both "prompt" and "instruction" — give one of them'
    assert got[9].startswith('"input" goes with "instruction"')
    assert got[10].startswith('"id" must be non-empty text or an integer')
    assert got[11] == f"duplicate id '{prompt_id('fine one')}' (first on line 1)"

    out = tmp_path / "data.jsonl"
    report = distill(prompts, out, teacher=FakeChatModel(reply=_answer))
    assert (report.prompts, report.answered, report.failed) == (11, 2, 9)
    assert [row["line"] for row in read_rows(failures_path(out))] == [2, 4, 5, 6, 7, 8, 9, 10, 11]


def test_tokens_and_cost_are_exact(prompts: Path, tmp_path: Path) -> None:
    teacher = FakeChatModel(reply=_answer, usage_per_call=Usage(1000, 250))
    report = distill(prompts, tmp_path / "out.jsonl", teacher=teacher, price_in=3.0, price_out=15.0)
    assert (report.input_tokens, report.output_tokens) == (6000, 1500)
    assert report.cost_usd == pytest.approx(6000 * 3 / 1e6 + 1500 * 15 / 1e6, abs=1e-12)
    assert report.cost_usd == pytest.approx(0.0405)
    free = distill(prompts, tmp_path / "other.jsonl", teacher=FakeChatModel(reply=_answer))
    assert (free.input_tokens, free.output_tokens, free.cost_usd, free.price_source) == (60, 30, None, None)
    with pytest.raises(InputError, match="both prices"):
        distill(prompts, tmp_path / "x.jsonl", teacher=teacher, price_in=3.0)


def test_cost_falls_back_to_the_price_table(prompts: Path, tmp_path: Path) -> None:
    from opsmith.finetune.estimate import load_price_table

    row = next(o for o in load_price_table().offerings if "gpt-4o-mini" in o.aliases)
    teacher = FakeChatModel(reply=_answer, model="gpt-4o-mini", usage_per_call=Usage(1000, 250))
    report = distill(prompts, tmp_path / "out.jsonl", teacher=teacher)
    assert report.cost_usd == pytest.approx(
        (6000 * row.base.input_per_mtok + 1500 * row.base.output_per_mtok) / 1e6, abs=1e-12
    )
    assert report.price_source == f"price table: {row.id} (as of {row.as_of})"
    given = distill(prompts, tmp_path / "again.jsonl", teacher=teacher, price_in=1.0, price_out=2.0)
    assert (given.cost_usd, given.price_source) == (pytest.approx(0.009), "given")


def test_report_to_dict_has_the_documented_keys(prompts: Path, tmp_path: Path) -> None:
    data = distill(prompts, tmp_path / "out.jsonl", teacher=FakeChatModel(reply=_answer)).to_dict()
    for key in (
        "prompts",
        "answered",
        "skipped_existing",
        "failed",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "seconds",
        "output",
        "failures",
    ):
        assert key in data
    json.dumps(data)


def test_bad_arguments(prompts: Path, tmp_path: Path) -> None:
    teacher = FakeChatModel(reply=_answer)
    with pytest.raises(PathNotFoundError):
        distill(tmp_path / "missing.jsonl", tmp_path / "o.jsonl", teacher=teacher)
    with pytest.raises(InputError, match="Unknown format 'sharegpt'"):
        distill(prompts, tmp_path / "o.jsonl", teacher=teacher, fmt="sharegpt")
    with pytest.raises(InputError, match="is the prompts file"):
        distill(prompts, prompts, teacher=teacher)
    with pytest.raises(InputError, match="concurrency"):
        distill(prompts, tmp_path / "o.jsonl", teacher=teacher, concurrency=0)
    assert teacher.calls == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("anthropic:claude-sonnet-4-6", ("anthropic", "claude-sonnet-4-6")),
        ("openai:llama3.1:8b", ("openai", "llama3.1:8b")),
        ("local_hf:/models/student", ("local_hf", "/models/student")),
    ],
)
def test_parse_teacher(spec: str, expected: tuple[str, str]) -> None:
    assert parse_teacher(spec) == expected


@pytest.mark.parametrize("spec", ["claude", "none:x", "anthropic:", "bogus:model"])
def test_parse_teacher_rejects(spec: str) -> None:
    with pytest.raises(InputError, match="give PROVIDER:MODEL"):
        parse_teacher(spec)


def test_load_teacher_uses_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    from opsmith.llm.openai_compat import OpenAIChatModel

    settings = load_settings(base_url="http://127.0.0.1:9/v1", llm_max_tokens=99)
    teacher = load_teacher("openai:qwen2.5:7b", settings)
    assert isinstance(teacher, OpenAIChatModel)
    assert (teacher.model, teacher.base_url, teacher.max_tokens) == ("qwen2.5:7b", "http://127.0.0.1:9/v1", 99)
    teacher.close()


def test_the_example_prompts_distil_cleanly(tmp_path: Path) -> None:
    example = Path(__file__).parents[2] / "examples" / "finetune" / "distill-prompts.jsonl"
    valid, failures = read_prompts(example)
    assert failures == []
    assert len(valid) >= 10
    assert {p.input != "" for p in valid} == {True, False}  # both prompt shapes are shown
    teacher = FakeChatModel(['{"title": "t"}'])
    report = distill(example, tmp_path / "data.jsonl", teacher=teacher, template_id="incident-summary", fmt="chat")
    assert (report.answered, report.failed) == (len(valid), 0)
