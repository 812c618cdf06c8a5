"""Training-data validation: every problem class at its line, formats, stats, tokens, --fix."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from opsmith.errors import InputError, PathNotFoundError
from opsmith.finetune.data import (
    APPROX_COUNTER,
    MIN_EXAMPLES,
    TokenCounter,
    ValidationReport,
    check_fix_target,
    fix_file,
    validate_file,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "finetune"
SUMMARISE = "Summarise this alert as JSON with title and severity."


def alpaca(input_text: str, output: str, instruction: str = SUMMARISE) -> dict[str, Any]:
    return {"instruction": instruction, "input": input_text, "output": output}


def chat(*turns: tuple[str, Any]) -> dict[str, Any]:
    return {"messages": [{"role": role, "content": content} for role, content in turns]}


def write_lines(path: Path, lines: list[str | dict[str, Any]]) -> Path:
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    path.write_text(text, encoding="utf-8")
    return path


def kinds_by_line(report: ValidationReport) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for problem in report.errors:
        found.setdefault(problem.line, []).append(problem.kind)
    return found


ROW_A = alpaca("KubePodCrashLooping checkout-api restarted 6 times, OOMKilled", '{"title": "checkout OOM", "sev": 2}')
ROW_B = alpaca(
    "PostgresReplicationLagHigh replica pg-orders-2 is 184 seconds behind the primary while the wal receiver"
    " keeps streaming and the primary handles a bulk import of the nightly catalogue",
    '{"title": "pg-orders-2 lagging", "severity": "sev3"}',
)
# ROW_B with one word changed: 2 of 33 word bigrams differ, Jaccard 31/35 = 0.89.
ROW_B_NEAR = {**ROW_B, "input": ROW_B["input"].replace("bulk", "large")}

ALPACA_LINES: list[str | dict[str, Any]] = [
    ROW_A,  # 1 ok
    '{"instruction": "Summarise", "output": ',  # 2 invalid JSON
    "[1, 2, 3]",  # 3 not an object
    alpaca("RedisMemoryHigh redis-sessions 95%", "   "),  # 4 empty output
    {"instruction": SUMMARISE, "input": "NodeNotReady ip-10-0-7-44"},  # 5 missing output
    {"instruction": 42, "output": "sev3"},  # 6 wrong type
    ROW_A,  # 7 duplicate of line 1
    ROW_B,  # 8 ok
    ROW_B_NEAR,  # 9 near-duplicate of line 8
    alpaca("KafkaConsumerLagHigh payments 184000 behind", "KafkaConsumerLagHigh payments 184000 behind!"),  # 10 copy
    {**ROW_A, "output": '{"title": "something else entirely", "severity": "sev4"}'},  # 11 same prompt as line 1
    chat(("user", "hello"), ("assistant", "hi")),  # 12 a chat row in an alpaca file
    alpaca("TLSCertificateExpiringSoon shop.example.com 9 days", "{}", instruction="Rate it"),  # 13 ok
    {"instruction": SUMMARISE, "input": None, "output": "x"},  # 14 input is null
]

EXPECTED_ALPACA = {
    2: ["invalid_json"],
    3: ["not_object"],
    4: ["empty_field"],
    5: ["missing_field"],
    6: ["wrong_type"],
    7: ["duplicate"],
    9: ["near_duplicate"],
    10: ["copied_output"],
    11: ["near_duplicate"],
    12: ["mixed_format"],
    14: ["wrong_type"],
}


@pytest.fixture
def alpaca_problems(tmp_path: Path) -> Path:
    return write_lines(tmp_path / "problems.jsonl", ALPACA_LINES)


def test_every_alpaca_problem_is_reported_at_its_line_and_nothing_else(alpaca_problems: Path) -> None:
    report = validate_file(alpaca_problems)
    assert report.format == "alpaca"
    assert kinds_by_line(report) == EXPECTED_ALPACA
    assert report.records == len(ALPACA_LINES)
    assert report.valid == 7  # lines 1, 7, 8, 9, 10, 11 and 13
    assert report.clean == 3  # lines 1, 8 and 13
    assert not report.ok


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (2, "invalid JSON"),
        (3, "not a list"),
        (4, "'output' is empty"),
        (5, "missing field 'output'"),
        (6, "'instruction' must be a string, not a number"),
        (7, "duplicate of line 1"),
        (9, "near-duplicate of line 8"),
        (10, "merely copies the input"),
        (11, "same prompt as line 1"),
        (12, "a chat row in an alpaca file (from line 1)"),
        (14, "'input' must be a string, not null"),
    ],
)
def test_messages_name_the_problem(alpaca_problems: Path, line: int, fragment: str) -> None:
    report = validate_file(alpaca_problems)
    messages = [p.message for p in report.errors if p.line == line]
    assert any(fragment in message for message in messages), messages


CHAT_LINES: list[str | dict[str, Any]] = [
    chat(("system", "You summarise alerts."), ("user", "NodeNotReady ip-10-0-7-44"), ("assistant", '{"sev": 3}')),
    chat(("human", "RedisDown redis-ratelimit-0"), ("assistant", '{"sev": 2}')),  # 2 unknown role
    chat(("user", "KafkaBrokerDown kafka-5"), ("assistant", '{"sev": 2}'), ("user", "and now?")),  # 3 ends with user
    chat(("system", "You summarise alerts."), ("assistant", '{"sev": 1}')),  # 4 no user turn
    chat(("user", ["a", "list"]), ("assistant", "x")),  # 5 content of the wrong type
    {"messages": "user: hi"},  # 6 messages not a list
    {"messages": [{"content": "no role"}, {"role": "assistant", "content": "x"}]},  # 7 missing role
    {"messages": []},  # 8 empty
    chat(("user", "EtcdHighFsyncDuration etcd-2 p99 1.2s"), ("assistant", "EtcdHighFsyncDuration etcd-2 p99 1.2s")),
    alpaca("x", "y"),  # 10 an alpaca row in a chat file
]

EXPECTED_CHAT = {
    2: ["unknown_role"],
    3: ["bad_turns"],
    4: ["bad_turns"],
    5: ["wrong_type"],
    6: ["wrong_type"],
    7: ["missing_field"],
    8: ["empty_field"],
    9: ["copied_output"],
    10: ["mixed_format"],
}


def test_every_chat_problem_is_reported_at_its_line(tmp_path: Path) -> None:
    report = validate_file(write_lines(tmp_path / "chat.jsonl", CHAT_LINES))
    assert report.format == "chat"
    assert kinds_by_line(report) == EXPECTED_CHAT
    messages = {p.line: p.message for p in report.errors}
    assert "'human'" in messages[2]
    assert "use 'user'" in messages[2]
    assert "must be 'assistant'" in messages[3]
    assert "no user turn" in messages[4]


def test_invalid_utf8_is_reported_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bytes.jsonl"
    path.write_bytes(json.dumps(ROW_A).encode() + b"\n" + b'{"instruction": "caf\xe9"}\n' + json.dumps(ROW_B).encode())
    report = validate_file(path)
    assert kinds_by_line(report) == {2: ["invalid_json"]}
    assert "UTF-8" in report.errors[0].message
    assert report.clean == 2  # the last line has no trailing newline and still counts


# A cut-off emoji: the high half of a surrogate pair, as a JSON escape (the file itself is ASCII).
CUT_EMOJI = '{"instruction": "Summarise this alert.", "input": "DiskFull db-1 \\ud83d", "output": "disk full"}'
DEEP = "[" * 1000


def test_a_lone_surrogate_is_reported_at_its_line_and_the_rest_is_checked(tmp_path: Path) -> None:
    pair = '{"instruction": "Summarise this alert.", "input": "DiskFull \\ud83d\\udd25", "output": "disk full"}'
    path = write_lines(tmp_path / "d.jsonl", [ROW_A, CUT_EMOJI, ROW_A, ROW_B, pair])
    report = validate_file(path)
    assert kinds_by_line(report) == {2: ["lone_surrogate"], 3: ["duplicate"]}  # a whole pair (line 5) is fine
    problem = report.errors[0]
    assert "\\ud83d" in problem.message  # named by its escape: the message itself must print
    assert "--fix removes it" in problem.message
    json.dumps(report.to_dict(), ensure_ascii=False).encode("utf-8")  # no surrogate reaches the report
    assert report.valid == 5


def test_a_lone_surrogate_row_is_still_checked_for_other_problems(tmp_path: Path) -> None:
    surrogate_copy = '{"instruction": "Summarise this alert.", "input": "x \\udc00", "output": "x"}'
    chat_row = '{"messages": [{"role": "user\\ud800", "content": "hi"}, {"role": "assistant", "content": "yo"}]}'
    report = validate_file(write_lines(tmp_path / "d.jsonl", [ROW_A, surrogate_copy, chat_row]))
    assert kinds_by_line(report) == {2: ["lone_surrogate", "copied_output"], 3: ["lone_surrogate", "mixed_format"]}


def test_deeply_nested_json_is_reported_at_its_line_and_the_rest_is_checked(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [DEEP, ROW_A, "[" * 5000 + "]" * 5000, ROW_A])
    for fmt in ("auto", "alpaca"):  # auto detection reads every line too
        report = validate_file(path, fmt=fmt)
        assert kinds_by_line(report) == {1: ["invalid_json"], 3: ["invalid_json"], 4: ["duplicate"]}
        assert report.errors[0].message == "invalid JSON: nested too deeply to read (about 1,000 levels or more)"
        assert report.format == "alpaca"


def test_fix_removes_lone_surrogates_and_keeps_the_row(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [ROW_A, CUT_EMOJI, DEEP, ROW_B])
    result = fix_file(validate_file(path), tmp_path / "out.jsonl")

    assert (result.kept, result.dropped, result.repaired) == (3, {"invalid_json": 1}, {"lone_surrogate": 1})
    data = result.path.read_bytes()
    data.decode("utf-8")  # valid UTF-8
    lines = data.decode().splitlines()
    assert lines[0] == json.dumps(ROW_A)  # untouched rows are copied byte for byte
    assert json.loads(lines[1]) == {
        "instruction": "Summarise this alert.",
        "input": "DiskFull db-1 ",
        "output": "disk full",
    }
    assert lines[2] == json.dumps(ROW_B)
    again = validate_file(result.path, min_examples=1)
    assert again.ok
    assert result.to_dict()["repaired"] == {"lone_surrogate": 1}


def test_fix_drops_a_row_with_a_lone_surrogate_and_another_error(tmp_path: Path) -> None:
    duplicate = '{"instruction": "Summarise this alert.", "input": "DiskFull db-1 \\ud83d", "output": "disk full"}'
    path = write_lines(tmp_path / "d.jsonl", [CUT_EMOJI, duplicate])
    result = fix_file(validate_file(path), tmp_path / "out.jsonl")
    assert (result.kept, result.dropped, result.repaired) == (1, {"duplicate": 1}, {"lone_surrogate": 1})


@pytest.mark.parametrize(
    ("lines", "fmt", "detected"),
    [
        ([ROW_A, ROW_B], "auto", "alpaca"),
        ([CHAT_LINES[0]], "auto", "chat"),
        (["not json", {"other": 1}, CHAT_LINES[0]], "auto", "chat"),  # the first row that names a format
        ([{"other": 1}], "auto", None),
    ],
)
def test_auto_detection(tmp_path: Path, lines: list[Any], fmt: str, detected: str | None) -> None:
    report = validate_file(write_lines(tmp_path / "d.jsonl", lines), fmt=fmt)
    assert report.format == detected
    if detected is None:
        assert [p.kind for p in report.errors] == ["unknown_format"]


def test_an_explicit_format_turns_the_other_format_into_errors(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "a.jsonl", [ROW_A, ROW_B])
    report = validate_file(path, fmt="chat")
    assert report.format == "chat"
    assert kinds_by_line(report) == {1: ["mixed_format"], 2: ["mixed_format"]}
    with pytest.raises(InputError, match="Unknown format"):
        validate_file(path, fmt="sharegpt")


def test_few_examples_warning_counts_usable_rows(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [ROW_A, ROW_A, ROW_B])
    report = validate_file(path)
    few = [p for p in report.warnings if p.kind == "few_examples"]
    assert len(few) == 1
    assert few[0].line == 0
    assert f"2 usable examples; at least {MIN_EXAMPLES:,}" in few[0].message
    assert not [p for p in validate_file(path, min_examples=2).warnings if p.kind == "few_examples"]
    assert [p.kind for p in validate_file(path, min_examples=3).warnings] == ["few_examples"]


def test_blank_lines_are_a_warning_not_a_row(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [ROW_A, "", "   ", ROW_B])
    report = validate_file(path, min_examples=1)
    assert report.ok
    assert report.records == 2
    assert [(p.kind, p.message) for p in report.warnings] == [
        ("blank_lines", "2 blank line(s) ignored (the first is line 2)")
    ]


def test_copy_detection_spares_short_extractions(tmp_path: Path) -> None:
    long_input = (
        "FIRING NginxIngress5xxHigh ingress shop-frontend host shop.example.com 5xx ratio 14% upstream frontend-svc"
    )
    rows = [
        alpaca(long_input, "frontend-svc", instruction="Name the upstream service"),  # a short extraction
        alpaca(long_input, long_input.upper(), instruction="Repeat"),  # equal after normalisation
        alpaca(long_input, "ingress shop-frontend host shop.example.com 5xx ratio 14%", instruction="Trim it"),
        alpaca("", "Say hello", instruction="Say hello"),  # output equals the instruction
    ]
    report = validate_file(write_lines(tmp_path / "d.jsonl", rows))
    assert kinds_by_line(report) == {2: ["copied_output"], 3: ["copied_output"], 4: ["copied_output"]}


def _random_text(rng: random.Random, words: int) -> str:
    return " ".join(f"w{rng.randrange(5000)}" for _ in range(words))


def _bigrams(text: str) -> set[tuple[str, str]]:
    words = text.lower().split()
    return set(zip(words, [*words[1:], "\0"], strict=True))


def test_near_duplicates_match_a_brute_force_jaccard(tmp_path: Path) -> None:
    rng = random.Random(7)
    rows: list[dict[str, Any]] = []
    originals: list[int] = []
    planted = 0
    for _ in range(300):
        rows.append(alpaca(_random_text(rng, 30), _random_text(rng, 8), instruction="same instruction"))
        originals.append(len(rows) - 1)
        if rng.random() < 0.15:
            source = rows[rng.choice(originals)]
            words = source["input"].split()
            words[rng.randrange(1, 29)] = "changed"  # one substitution: Jaccard 36/40 = 0.9
            rows.append({**source, "input": " ".join(words)})
            planted += 1
    report = validate_file(write_lines(tmp_path / "d.jsonl", rows))

    bigrams = [_bigrams(f"{row['input']} {row['output']}") for row in rows]
    similar = {
        later + 1: {
            earlier + 1
            for earlier in range(later)
            if len(bigrams[later] & bigrams[earlier]) >= 0.8 * len(bigrams[later] | bigrams[earlier])
        }
        for later in range(len(rows))
    }
    expected = {line for line, earlier in similar.items() if earlier}
    assert len(expected) >= planted > 20
    found = {p.line: p.message for p in report.errors}
    assert set(found) == expected
    assert all(p.kind == "near_duplicate" for p in report.errors)
    for line, message in found.items():
        named = int(message.split("near-duplicate of line ")[1].split()[0])
        assert named in similar[line]


def test_the_threshold_is_honoured(tmp_path: Path) -> None:
    text = "one two three four five six seven eight nine ten"
    rows = [alpaca(text, "out a"), alpaca(text.replace("five", "5"), "out a")]  # Jaccard 10/14 ≈ 0.71
    path = write_lines(tmp_path / "d.jsonl", rows)
    assert validate_file(path).ok
    assert kinds_by_line(validate_file(path, near_duplicate_threshold=0.5)) == {2: ["near_duplicate"]}


def test_stats_under_the_approximation(tmp_path: Path) -> None:
    rows = [
        alpaca("", "o" * (chars - 1) + str(n), instruction="i" * 39 + str(n))
        for n, chars in enumerate((4, 8, 40, 400, 81))
    ]
    report = validate_file(write_lines(tmp_path / "d.jsonl", rows))
    assert report.token_counter == "approx: chars/4"
    stats = report.stats
    assert (stats.prompt_tokens.min, stats.prompt_tokens.max) == (10, 10)
    assert stats.completion_tokens.to_dict() == {"min": 1, "p50": 10, "p95": 100, "max": 100}
    assert stats.total_tokens == 5 * 10 + (1 + 2 + 10 + 100 + 21)
    assert stats.count == 5


def test_sequence_len_uses_the_base_models_tokenizer_when_it_is_local(tiny_model: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    # Made-up words split into many tokens with the tiny vocabulary: about 1 token per byte
    # rather than the approximation's 4 bytes per token.
    odd = "zqv xkj wpf qzb vvx jjq " * 20
    rows = [alpaca(odd, "sev2", instruction="Rate"), alpaca("disk full", "sev3", instruction="Rate")]
    path = write_lines(tmp_path / "d.jsonl", rows)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    counts = [
        len(tokenizer(text, add_special_tokens=False)["input_ids"])
        for text in (f"Rate\n\n{odd}", "sev2", "Rate\n\ndisk full", "sev3")
    ]
    limit = 200
    assert (len(odd) + 10) // 4 < limit < counts[0] + counts[1]  # only the tokenizer sees it as too long

    approximate = validate_file(path, sequence_len=limit)
    assert approximate.ok
    assert approximate.token_counter == "approx: chars/4"

    exact = validate_file(path, sequence_len=limit, base_model=str(tiny_model))
    assert exact.token_counter == f"tokenizer:{tiny_model}"
    assert kinds_by_line(exact) == {1: ["too_long"]}
    assert f"{counts[0] + counts[1]} tokens" in exact.errors[0].message
    assert "tokenizer:" in exact.errors[0].message
    assert exact.stats.total_tokens == sum(counts)
    assert exact.stats.prompt_tokens.max == counts[0]


def test_a_missing_tokenizer_falls_back_and_says_so(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [ROW_A])
    report = validate_file(path, base_model=str(tmp_path / "no-such-model"), min_examples=1)
    assert report.token_counter == "approx: chars/4"
    assert [p.kind for p in report.warnings] == ["approximate_tokens"]


def test_a_plain_counting_function_can_stand_in_for_a_tokenizer(tmp_path: Path) -> None:
    def words(texts: list[str]) -> list[int]:
        return [len(text.split()) for text in texts]

    path = write_lines(tmp_path / "d.jsonl", [alpaca("a b c", "d e")])
    report = validate_file(path, tokenizer=words, sequence_len=5)
    assert report.token_counter == "tokenizer:words"
    assert report.stats.total_tokens == 12 + 2  # the instruction's 9 words and the input's 3, the output's 2
    assert kinds_by_line(report) == {1: ["too_long"]}
    counter = TokenCounter("tokenizer:fixed", lambda texts: [1] * len(texts))
    assert validate_file(path, tokenizer=counter).stats.total_tokens == 2
    assert APPROX_COUNTER.count(["abcde"]) == [2]


def test_fix_keeps_clean_lines_byte_for_byte_and_leaves_the_input_alone(alpaca_problems: Path, tmp_path: Path) -> None:
    # A valid row written with odd spacing and key order must come out exactly as it went in.
    odd = '{ "output" : "{\\"title\\": \\"rate\\"}",   "instruction":"Rate this", "input": "NodeClockSkew +2.4s" }'
    with alpaca_problems.open("a", encoding="utf-8") as handle:
        handle.write("\n" + odd + "\r\n")
    before = alpaca_problems.read_bytes()
    report = validate_file(alpaca_problems)
    result = fix_file(report, tmp_path / "clean" / "fixed.jsonl")

    assert alpaca_problems.read_bytes() == before
    lines = before.split(b"\n")
    expected = [lines[0], lines[7], lines[12], odd.encode() + b"\r"]  # rows 1, 8, 13 and the odd one
    assert result.path.read_bytes() == b"".join(line + b"\n" for line in expected)
    assert result.kept == 4
    assert result.dropped == {
        "invalid_json": 1,
        "not_object": 1,
        "empty_field": 1,
        "missing_field": 1,
        "wrong_type": 2,
        "duplicate": 1,
        "near_duplicate": 2,
        "copied_output": 1,
        "mixed_format": 1,
    }
    again = validate_file(result.path, min_examples=1)
    assert again.ok
    assert again.clean == 4


def test_fix_drops_over_length_rows(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [ROW_A, alpaca("x" * 4000, "y"), ROW_B])
    result = fix_file(validate_file(path, sequence_len=500), tmp_path / "out.jsonl")
    assert result.dropped == {"too_long": 1}
    assert result.path.read_text().splitlines() == [json.dumps(ROW_A), json.dumps(ROW_B)]


def test_fix_never_writes_over_the_input(alpaca_problems: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = alpaca_problems.read_bytes()
    report = validate_file(alpaca_problems)
    monkeypatch.chdir(alpaca_problems.parent)
    for target in (alpaca_problems, Path("problems.jsonl"), Path("./sub/../problems.jsonl")):
        with pytest.raises(InputError, match="is the input file"):
            fix_file(report, target)
    link = alpaca_problems.with_name("link.jsonl")
    link.symlink_to(alpaca_problems)
    with pytest.raises(InputError, match="is the input file"):
        check_fix_target(alpaca_problems, link)
    with pytest.raises(InputError, match="is a folder"):
        check_fix_target(alpaca_problems, alpaca_problems.parent)
    assert alpaca_problems.read_bytes() == before


def test_fix_refuses_a_file_that_changed_since_validation(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [ROW_A])
    report = validate_file(path)
    write_lines(path, [ROW_A, ROW_B])
    with pytest.raises(InputError, match="changed after it was validated"):
        fix_file(report, tmp_path / "out.jsonl")


def test_missing_or_unreadable_input(tmp_path: Path) -> None:
    with pytest.raises(PathNotFoundError):
        validate_file(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="not a file"):
        validate_file(tmp_path)
    with pytest.raises(InputError, match="sequence-len"):
        validate_file(write_lines(tmp_path / "d.jsonl", [ROW_A]), sequence_len=0)


def test_an_empty_file_has_no_rows_and_warns(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    report = validate_file(path)
    assert (report.records, report.format, report.ok) == (0, None, True)
    assert [p.kind for p in report.warnings] == ["few_examples"]


@pytest.mark.parametrize("name", ["alert-summaries.alpaca.jsonl", "alert-summaries.chat.jsonl"])
def test_the_examples_are_clean(name: str) -> None:
    report = validate_file(EXAMPLES / name, sequence_len=512)
    assert report.errors == []
    assert [p.kind for p in report.warnings] == ["few_examples"]
    assert report.records == report.clean >= 50
    assert report.format == ("chat" if ".chat." in name else "alpaca")


def test_the_two_example_files_hold_the_same_examples() -> None:
    alpaca_rows = [json.loads(line) for line in (EXAMPLES / "alert-summaries.alpaca.jsonl").read_text().splitlines()]
    chat_rows = [json.loads(line) for line in (EXAMPLES / "alert-summaries.chat.jsonl").read_text().splitlines()]
    assert len(alpaca_rows) == len(chat_rows)
    for a, c in zip(alpaca_rows, chat_rows, strict=True):
        roles = [m["role"] for m in c["messages"]]
        assert roles == ["system", "user", "assistant"]
        assert c["messages"][1]["content"] == a["input"]
        assert c["messages"][2]["content"] == a["output"]
        summary = json.loads(a["output"])
        assert list(summary) == ["title", "severity", "impact", "suspected_cause", "next_steps"]
        assert summary["severity"] in {"sev1", "sev2", "sev3", "sev4"}
        assert isinstance(summary["next_steps"], list)
        assert summary["next_steps"]
