"""`opsmith review`: exit codes, pure --json, SARIF files, table output, bad input, the LLM step."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from clitools import Run, assert_one_error_line

from opsmith.errors import ProviderUnavailableError, StoreError
from opsmith.testing import FakeChatModel

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "terraform"
ITEM_KEYS = ["severity", "line", "issue", "fix", "file", "resource", "rule", "source"]


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


WARNING_ONLY = 'resource "aws_s3_bucket" "data" {\n  bucket = "acme-data"\n}\n'


def test_clean_module_exits_0(cli: Callable[..., Run]) -> None:
    run = cli("review", str(EXAMPLES / "clean"))
    assert run.exit_code == 0, run.stderr
    assert "No findings in 6 files." in run.stdout


def test_vulnerable_module_exits_1_and_shows_a_table_per_file(cli: Callable[..., Run]) -> None:
    run = cli("review", str(EXAMPLES / "vulnerable"))
    assert run.exit_code == 1
    assert "s3.tf" in run.stdout
    assert "OPS-S003" in run.stdout
    assert "compute.tf" in run.stdout
    assert "critical" in run.stdout
    assert "findings (" in run.stdout


@pytest.mark.parametrize(
    ("fail_on", "vulnerable_code", "warning_only_code"),
    [("critical", 1, 0), ("warning", 1, 1), ("none", 0, 0)],
)
def test_fail_on(
    fail_on: str, vulnerable_code: int, warning_only_code: int, cli: Callable[..., Run], tmp_path: Path
) -> None:
    warnings_only = write(tmp_path / "w", {"main.tf": WARNING_ONLY})
    assert cli("review", str(EXAMPLES / "vulnerable"), "--fail-on", fail_on, "--json").exit_code == vulnerable_code
    assert cli("review", str(warnings_only), "--fail-on", fail_on, "--json").exit_code == warning_only_code


def test_json_is_exactly_the_contract(cli: Callable[..., Run]) -> None:
    run = cli("review", str(EXAMPLES / "vulnerable"), "--json")
    data = run.json()
    assert list(data) == ["security", "cost", "correctness"]
    items = [item for group in data.values() for item in group]
    assert items
    assert all(list(item) == ITEM_KEYS for item in items)
    assert {item["source"] for item in items} == {"rules"}
    assert all(not Path(item["file"]).is_absolute() for item in items)
    for group in data.values():
        assert [(i["file"], i["line"]) for i in group] == sorted((i["file"], i["line"]) for i in group)


def test_json_stdout_stays_pure_when_there_are_warnings(cli: Callable[..., Run], tmp_path: Path) -> None:
    folder = write(tmp_path / "m", {"main.tf": WARNING_ONLY, "notes.md": "# notes\n"})
    run = cli("review", str(folder / "main.tf"), str(folder / "notes.md"), "--json")
    assert run.exit_code == 0
    assert list(run.json()) == ["security", "cost", "correctness"]
    assert "skipped" in run.stderr
    assert "notes.md: not a .tf file" in run.stderr


def test_sarif_file_is_written(cli: Callable[..., Run], tmp_path: Path) -> None:
    target = tmp_path / "out" / "review.sarif"
    run = cli("review", str(EXAMPLES / "vulnerable"), "--sarif", str(target), "--json")
    assert run.exit_code == 1
    log = json.loads(target.read_text())
    assert log["version"] == "2.1.0"
    results = log["runs"][0]["results"]
    assert len(results) == sum(len(group) for group in run.json().values())
    assert {r["level"] for r in results} == {"error", "warning"}


def test_syntax_error_is_reported_and_the_rest_reviewed(cli: Callable[..., Run], tmp_path: Path) -> None:
    folder = write(
        tmp_path / "m",
        {
            "broken.tf": 'resource "aws_sqs_queue" "q" {\n  name =\n}\n',
            "main.tf": WARNING_ONLY,
        },
    )
    run = cli("review", str(folder), "--json")
    assert run.exit_code == 1
    data = run.json()
    assert [(i["file"], i["line"], i["rule"]) for i in data["correctness"]] == [("broken.tf", 2, "OPS-C000")]
    assert any(i["file"] == "main.tf" for i in data["security"])


def test_table_output_is_markup_safe(cli: Callable[..., Run], tmp_path: Path) -> None:
    folder = write(tmp_path / "m", {"net[bold].tf": WARNING_ONLY})
    run = cli("review", str(folder))
    assert run.exit_code == 0
    assert "net[bold].tf" in run.stdout


def test_empty_folder_is_one_error_line_and_exit_2(cli_main: Callable[..., Run], tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    run = cli_main("review", str(tmp_path / "empty"))
    assert run.exit_code == 2
    assert_one_error_line(run, "No Terraform files (.tf) found")


def test_only_non_tf_files_is_an_input_error(cli_main: Callable[..., Run], tmp_path: Path) -> None:
    folder = write(tmp_path / "docs", {"README.md": "# hi\n", "plan.json": "{}"})
    run = cli_main("review", str(folder))
    assert run.exit_code == 2
    assert_one_error_line(run, "No Terraform files (.tf) found", "2 other files ignored")


def test_missing_path_is_exit_2(cli_main: Callable[..., Run], tmp_path: Path) -> None:
    run = cli_main("review", str(tmp_path / "nope"))
    assert run.exit_code == 2
    assert_one_error_line(run, "Path not found")


def test_bad_fail_on_value_is_a_usage_error(cli: Callable[..., Run]) -> None:
    run = cli("review", str(EXAMPLES / "clean"), "--fail-on", "high")
    assert run.exit_code == 2


def test_no_path_is_a_usage_error(cli: Callable[..., Run]) -> None:
    assert cli("review").exit_code == 2


def test_provider_without_a_key_fails_fast(cli_main: Callable[..., Run]) -> None:
    run = cli_main("review", str(EXAMPLES / "clean"), "--provider", "anthropic")
    assert run.exit_code == 2
    assert_one_error_line(run, "ANTHROPIC_API_KEY")


def test_no_llm_skips_the_provider_entirely(cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(settings: object) -> None:
        raise AssertionError("get_chat_model must not be called with --no-llm")

    monkeypatch.setattr("opsmith.llm.registry.get_chat_model", explode)
    run = cli("review", str(EXAMPLES / "clean"), "--provider", "anthropic", "--no-llm")
    assert run.exit_code == 0, run.stderr


def test_provider_outage_warns_and_exits_from_the_rules(
    cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    outage = ProviderUnavailableError("fake is unreachable (503) — try again later", provider="fake", status=503)
    fake = FakeChatModel(["{}"], errors=[outage] * 10)
    monkeypatch.setattr("opsmith.llm.registry.get_chat_model", lambda settings: fake)
    run = cli("review", str(EXAMPLES / "vulnerable"), "--json")
    assert run.exit_code == 1
    assert list(run.json()) == ["security", "cost", "correctness"]
    assert "LLM review skipped: fake is unreachable (503)" in run.stderr
    clean = cli("review", str(EXAMPLES / "clean"), "--json")
    assert clean.exit_code == 0
    assert "LLM review skipped" in clean.stderr


def test_llm_findings_show_up_in_json(cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    folder = write(tmp_path / "m", {"main.tf": WARNING_ONLY})
    reply = {
        "security": [],
        "cost": [],
        "correctness": [
            {
                "severity": "warning",
                "line": 2,
                "file": "main.tf",
                "resource": None,
                "issue": "Bucket name is hard-coded and global, so a second environment collides",
                "fix": 'Use bucket_prefix = "acme-data-" or add the environment to the name.',
            }
        ],
    }
    monkeypatch.setattr("opsmith.llm.registry.get_chat_model", lambda settings: FakeChatModel([json.dumps(reply)]))
    run = cli("review", str(folder), "--json")
    assert run.exit_code == 0
    [llm] = run.json()["correctness"]
    assert (llm["source"], llm["rule"], llm["resource"]) == ("llm", None, "aws_s3_bucket.data")


def test_console_script_shows_no_traceback(opsmith_script: Callable[..., Run], tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "junk.tf").write_bytes(b"\x00\x01\x02binary\xff\xfe" * 100)
    (folder / "main.tf").write_text(WARNING_ONLY)
    run = opsmith_script("review", str(folder), "--json")
    assert run.exit_code == 1
    assert "Traceback" not in run.stderr
    data = json.loads(run.stdout)
    assert [i["file"] for i in data["correctness"]] == ["junk.tf"]


def test_unwritable_sarif_path_is_one_error_line(cli_main: Callable[..., Run], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    run = cli_main("review", str(EXAMPLES / "clean"), "--sarif", str(blocker / "out.sarif"))
    assert run.exit_code == 2
    assert_one_error_line(run, "Cannot write SARIF to")


def test_hcl_nested_800_deep_is_a_finding_not_a_crash(cli_main: Callable[..., Run], tmp_path: Path) -> None:
    deep = "locals {\n  x = " + "[" * 800 + "]" * 800 + "\n}\n"
    folder = write(tmp_path / "m", {"deep.tf": deep, "main.tf": WARNING_ONLY})
    run = cli_main("review", str(folder), "--json")
    assert run.exit_code == 1  # a critical OPS-C000 finding, as for any file that cannot be parsed
    assert "Traceback" not in run.stderr
    [problem] = json.loads(run.stdout)["correctness"]
    assert (problem["file"], problem["line"], problem["rule"]) == ("deep.tf", 2, "OPS-C000")
    assert problem["issue"].startswith("Nested too deeply to review")


@pytest.mark.parametrize(
    "error",
    [RecursionError("maximum recursion depth exceeded"), StoreError("The store broke — restart it")],
    ids=["bug", "exit-1-error"],
)
def test_a_review_that_cannot_finish_exits_2_never_1(
    error: Exception, cli_main: Callable[..., Run], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def crash(paths: object) -> object:
        raise error

    monkeypatch.setattr("opsmith.review.runner.collect_files", crash)
    run = cli_main("review", str(write(tmp_path / "m", {"main.tf": WARNING_ONLY})), "--json")
    assert run.exit_code == 2  # exit 1 would tell CI the Terraform has findings
    assert run.stdout == ""
    line = assert_one_error_line(run, str(error).split(" — ")[0])
    if isinstance(error, RecursionError):
        assert "internal error (RecursionError" in line


def test_show_redacted_prints_what_the_llm_would_get_and_sends_nothing(
    cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stripe = "sk" + "_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
    github = "gh" + "p_" + "Xq7aL2mN9pR4sT6vW8yZ0bC3dE5fG1hJ2kL4"
    folder = write(
        tmp_path / "m",
        {
            "main.tf": (
                'resource "aws_ssm_parameter" "stripe" {\n'
                '  name  = "/app/stripe"\n'
                '  type  = "String"\n'
                f'  value = "{stripe}"\n'
                "}\n"
                'resource "aws_instance" "web" {\n'
                '  ami       = "ami-0c55b159cbfafe1f0"\n'
                "  user_data = <<-EOF\n"
                f"    export GITHUB_TOKEN={github}\n"
                "  EOF\n"
                "}\n"
            )
        },
    )

    def explode(settings: object) -> None:
        raise AssertionError("--show-redacted must not build a chat model")

    monkeypatch.setattr("opsmith.llm.registry.get_chat_model", explode)
    run = cli("review", str(folder), "--show-redacted", "--provider", "openai", "--base-url", "http://127.0.0.1:9/v1")
    assert run.exit_code == 0, run.stderr
    assert stripe not in run.stdout
    assert github not in run.stdout
    lines = run.stdout.splitlines()
    assert lines[0] == "# file: main.tf"
    assert lines[4] == '   4 |   value = "<redacted>"'
    assert lines[9] == "   9 |     export GITHUB_TOKEN=<redacted>"
    assert "OPS-" not in run.stdout  # a preview, not a review
