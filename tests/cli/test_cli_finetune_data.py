"""`opsmith finetune validate` and `opsmith finetune estimate`: JSON shapes, exit codes, --fix, errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from clitools import Run, assert_one_error_line

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "finetune"
REPORT_KEYS = [
    "path",
    "format",
    "ok",
    "records",
    "valid",
    "clean",
    "token_counter",
    "sequence_len",
    "near_duplicate_threshold",
    "stats",
    "error_counts",
    "errors",
    "warnings",
    "fix",
]
GOOD = {"instruction": "Summarise the alert.", "input": "RedisDown redis-ratelimit-0", "output": '{"sev": 2}'}
OTHER = {"instruction": "Summarise the alert.", "input": "KubeNodeNotReady ip-10-0-7-44", "output": '{"sev": 3}'}


@pytest.fixture
def bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        "\n".join(
            [json.dumps(GOOD), "{not json", json.dumps({"instruction": "x"}), json.dumps(GOOD), json.dumps(OTHER)]
        )
        + "\n"
    )
    return path


def test_validate_clean_example_exits_0_with_the_json_report(cli: Callable[..., Run]) -> None:
    run = cli("finetune", "validate", str(EXAMPLES / "alert-summaries.alpaca.jsonl"), "--json")
    assert run.exit_code == 0, run.stderr
    data = run.json()
    assert list(data) == REPORT_KEYS
    assert (data["format"], data["ok"], data["errors"], data["fix"]) == ("alpaca", True, [], None)
    assert data["records"] == data["clean"] >= 50
    assert [w["kind"] for w in data["warnings"]] == ["few_examples"]
    assert list(data["stats"]) == ["count", "prompt_tokens", "completion_tokens", "total_tokens"]
    assert list(data["stats"]["prompt_tokens"]) == ["min", "p50", "p95", "max"]
    assert data["token_counter"] == "approx: chars/4"


def test_validate_reports_errors_by_line_and_exits_1(cli: Callable[..., Run], bad_file: Path) -> None:
    run = cli("finetune", "validate", str(bad_file), "--json")
    assert run.exit_code == 1
    data = run.json()
    assert [(e["line"], e["kind"]) for e in data["errors"]] == [
        (2, "invalid_json"),
        (3, "missing_field"),
        (4, "duplicate"),
    ]
    assert data["error_counts"] == {"invalid_json": 1, "missing_field": 1, "duplicate": 1}


def test_validate_human_output(cli: Callable[..., Run], bad_file: Path) -> None:
    run = cli("finetune", "validate", str(bad_file))
    assert run.exit_code == 1
    assert "3 errors" in run.stdout
    assert "line 4  duplicate  duplicate of line 1" in run.stdout
    assert "prompt" in run.stdout
    assert "p95" in run.stdout
    assert "2 usable examples" in run.stderr  # warnings go to stderr
    clean = cli("finetune", "validate", str(EXAMPLES / "alert-summaries.chat.jsonl"))
    assert clean.exit_code == 0
    assert "No errors." in clean.stdout
    assert ": chat · " in clean.stdout


def test_validate_fix_writes_a_clean_copy(cli: Callable[..., Run], bad_file: Path, tmp_path: Path) -> None:
    before = bad_file.read_bytes()
    out = tmp_path / "fixed.jsonl"
    run = cli("finetune", "validate", str(bad_file), "--fix", str(out), "--json")
    assert run.exit_code == 0  # the input has errors, but the file written to train on has none
    assert run.json()["ok"] is False  # the report is still the input's
    assert run.json()["fix"] == {
        "path": str(out),
        "kept": 2,
        "dropped": {"invalid_json": 1, "missing_field": 1, "duplicate": 1},
        "repaired": {},
        "clean": True,
    }
    assert out.read_text() == json.dumps(GOOD) + "\n" + json.dumps(OTHER) + "\n"
    assert bad_file.read_bytes() == before
    assert cli("finetune", "validate", str(out), "--json").exit_code == 0


@pytest.fixture
def broken_text_file(tmp_path: Path) -> Path:
    """A cut-off emoji (a lone surrogate, as its JSON escape) and a line nested 1,000 deep."""
    path = tmp_path / "broken.jsonl"
    cut = '{"instruction": "Summarise the alert.", "input": "DiskFull db-1 \\ud83d", "output": "{\\"sev\\": 1}"}'
    path.write_text("\n".join([json.dumps(GOOD), cut, "[" * 1000, json.dumps(OTHER)]) + "\n")
    return path


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_validate_reports_a_lone_surrogate_and_deep_nesting_by_line(
    cli_main: Callable[..., Run], broken_text_file: Path, json_flag: list[str]
) -> None:
    run = cli_main("finetune", "validate", str(broken_text_file), *json_flag)
    assert run.exit_code == 1  # errors found: not a crash (that would be a traceback, or exit 2)
    assert "Traceback" not in run.stdout + run.stderr
    if json_flag:
        data = run.json()
        assert [(e["line"], e["kind"]) for e in data["errors"]] == [(2, "lone_surrogate"), (3, "invalid_json")]
        assert (data["records"], data["valid"]) == (4, 3)
    else:
        assert "line 2  lone_surrogate  lone surrogate \\ud83d" in run.stdout
        assert "line 3  invalid_json  invalid JSON: nested too deeply" in run.stdout


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_validate_fix_repairs_a_lone_surrogate_and_drops_deep_nesting(
    cli_main: Callable[..., Run], broken_text_file: Path, tmp_path: Path, json_flag: list[str]
) -> None:
    out = tmp_path / "fixed.jsonl"
    run = cli_main("finetune", "validate", str(broken_text_file), "--fix", str(out), *json_flag)
    assert run.exit_code == 0  # the written file validates with no errors
    assert "Traceback" not in run.stdout + run.stderr
    if json_flag:
        fix = run.json()["fix"]
        assert (fix["kept"], fix["dropped"], fix["repaired"]) == (3, {"invalid_json": 1}, {"lone_surrogate": 1})
    else:
        assert "dropped 1 (invalid_json 1); repaired 1 (lone_surrogate 1, lone surrogates removed)" in run.stdout
        assert "It validates with no errors." in run.stdout
    rows = [json.loads(line) for line in out.read_bytes().decode("utf-8").splitlines()]  # valid UTF-8
    assert rows == [
        GOOD,
        {"instruction": "Summarise the alert.", "input": "DiskFull db-1 ", "output": '{"sev": 1}'},
        OTHER,
    ]
    assert cli_main("finetune", "validate", str(out), "--json").exit_code == 0


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_validate_fix_exits_1_when_no_row_is_left(
    cli_main: Callable[..., Run], tmp_path: Path, json_flag: list[str]
) -> None:
    data = tmp_path / "all-bad.jsonl"
    data.write_text("{not json\n" + json.dumps({"instruction": "x"}) + "\n")
    out = tmp_path / "fixed.jsonl"
    run = cli_main("finetune", "validate", str(data), "--fix", str(out), *json_flag)
    assert run.exit_code == 1  # an empty file is nothing to train on
    assert out.read_text() == ""
    if json_flag:
        assert (run.json()["fix"]["kept"], run.json()["fix"]["clean"]) == (0, False)
    else:
        assert "No rows were left to train on." in run.stdout


def test_validate_fix_refuses_the_input_path(cli_main: Callable[..., Run], bad_file: Path) -> None:
    before = bad_file.read_bytes()
    run = cli_main("finetune", "validate", str(bad_file), "--fix", str(bad_file))
    assert run.exit_code == 2
    assert_one_error_line(run, "is the input file")
    assert bad_file.read_bytes() == before


def test_validate_missing_file_exits_2(cli_main: Callable[..., Run], tmp_path: Path) -> None:
    run = cli_main("finetune", "validate", str(tmp_path / "nope.jsonl"), "--json")
    assert run.exit_code == 2
    assert run.stdout == ""
    assert_one_error_line(run, "Path not found", "nope.jsonl")


@pytest.mark.slow  # imports transformers
def test_validate_sequence_len_with_a_local_tokenizer(
    cli: Callable[..., Run], tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    pytest.importorskip("torch", reason="needs the train extra (torch)")
    from opsmith.finetune.tiny import build_tiny_llama

    model = build_tiny_llama(tmp_path_factory.mktemp("tiny") / "model")
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({**GOOD, "input": "qzx vjk " * 40}) + "\n" + json.dumps(OTHER) + "\n")
    approx = cli("finetune", "validate", str(path), "--sequence-len", "150", "--json").json()
    assert approx["ok"]
    assert approx["token_counter"] == "approx: chars/4"
    run = cli("finetune", "validate", str(path), "--sequence-len", "150", "--base-model", str(model), "--json")
    assert run.exit_code == 1
    data = run.json()
    assert data["token_counter"] == f"tokenizer:{model}"
    assert [(e["line"], e["kind"]) for e in data["errors"]] == [(1, "too_long")]
    missing = cli("finetune", "validate", str(path), "--base-model", str(tmp_path / "absent"), "--json").json()
    assert missing["token_counter"] == "approx: chars/4"
    assert "approximate_tokens" in [w["kind"] for w in missing["warnings"]]


def test_validate_json_stays_pure_in_a_real_shell(opsmith_script: Callable[..., Run], bad_file: Path) -> None:
    run = opsmith_script("finetune", "validate", str(bad_file), "--json")
    assert run.exit_code == 1
    assert len(run.json()["errors"]) == 3
    assert "Traceback" not in run.stderr


def test_estimate_the_forty_dollar_example(cli: Callable[..., Run]) -> None:
    run = cli("finetune", "estimate", "--tokens", "5000000", "--price-per-mtok", "8", "--json")
    assert run.exit_code == 0, run.stderr
    data = run.json()
    assert (data["training_tokens"], data["epochs"], data["training_cost_usd"]) == (5_000_000, 1.0, 40.0)
    assert data["costs"][0]["source"] == "--price-per-mtok"
    human = cli("finetune", "estimate", "--tokens", "5000000", "--price-per-mtok", "8")
    assert "Training tokens: 5,000,000" in human.stdout
    assert "$40.00" in human.stdout


def test_estimate_from_a_data_file_with_params(cli: Callable[..., Run]) -> None:
    run = cli(
        "finetune",
        "estimate",
        str(EXAMPLES / "alert-summaries.alpaca.jsonl"),
        "--epochs",
        "3",
        "--params",
        "8B",
        "--gpu",
        "L4",
        "--json",
    )
    assert run.exit_code == 0, run.stderr
    data = run.json()
    assert data["data"]["format"] == "alpaca"
    assert data["data"]["errors"] == 0
    assert data["training_tokens"] == 3 * data["data_tokens"] > 0
    assert data["gpu"]["name"] == "L4-24GB"
    assert set(data["methods"]) == {"lora", "qlora", "full"}
    for item in data["methods"].values():
        for key in (
            "memory_gb",
            "memory_formula",
            "gpus_needed",
            "tokens_per_second",
            "throughput_source",
            "gpu_hours",
        ):
            assert key in item
    assert data["memory_gb"] == data["methods"]["lora"]["memory_gb"]
    assert {c["offering"] for c in data["costs"]} == {"together/sft-lora-up-to-16b", "fireworks/sft-up-to-16b"}


def test_estimate_with_a_price_table_file(cli: Callable[..., Run], tmp_path: Path) -> None:
    table = tmp_path / "prices.yaml"
    table.write_text(
        yaml.safe_dump(
            {
                "table_version": "ours-1",
                "offerings": [
                    {
                        "id": "ours/8b",
                        "provider": "Us",
                        "model": "ours-8b",
                        "training_per_mtok": 4,
                        "source": "invoice 2025-08",
                        "as_of": "2025-08-31",
                    }
                ],
            }
        )
    )
    shipped = cli("finetune", "estimate", "--tokens", "5000000", "--base-model", "ours-8b", "--params", "8B", "--json")
    assert "ours/8b" not in {c["offering"] for c in shipped.json()["costs"]}  # only in the team's table
    run = cli(
        "finetune",
        "estimate",
        "--tokens",
        "5000000",
        "--base-model",
        "ours-8b",
        "--params",
        "8B",
        "--price-table",
        str(table),
        "--json",
    )
    data = run.json()
    assert (data["training_cost_usd"], data["price_table"]["version"]) == (20.0, "ours-1")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--epochs", "2"], ["DATA.jsonl file or --tokens N"]),
        (["--tokens", "5", "--gpu", "V100"], ["Unknown GPU 'V100'"]),
        (["--tokens", "5", "--params", "lots"], ["8B, 1.5B or 350M"]),
        (["--tokens", "5", "--base-model", "acme/secret"], ["--params"]),
        (["missing.jsonl"], ["Path not found"]),
    ],
)
def test_estimate_usage_errors_exit_2(cli_main: Callable[..., Run], args: list[str], fragments: list[str]) -> None:
    run = cli_main("finetune", "estimate", *args, "--json")
    assert run.exit_code == 2
    assert run.stdout == ""
    assert_one_error_line(run, *fragments)
