"""The LLM step, driven through FakeChatModel at the ChatModel seam.

Covers: valid findings merged; prose, partial JSON and wrong schema re-asked; a model that
never complies, truncation and a provider outage all leaving the rule findings with a
warning; out-of-range lines and unknown files dropped and counted; secrets redacted before
the prompt; rule findings listed in the prompt; large inputs split into several requests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from reviewtools import hits, write_tf

from opsmith.config import Settings
from opsmith.errors import ProviderUnavailableError
from opsmith.llm import Message
from opsmith.review import review
from opsmith.review.hcl import parse_text
from opsmith.review.llm import llm_review, numbered_source
from opsmith.testing import FakeChatModel

MAIN = """\
resource "aws_s3_bucket" "state" {
  bucket = "acme-terraform-state"
  acl    = "public-read"
}

resource "aws_db_instance" "db" {
  engine            = "postgres"
  instance_class    = "db.t3.micro"
  allocated_storage = 20
  storage_encrypted = true
  password          = "hunter2-very-secret"
}
"""


def answer(**lists: list[dict[str, Any]]) -> str:
    return json.dumps({"security": [], "cost": [], "correctness": [], **lists})


def item(line: int, issue: str, *, file: str = "main.tf", resource: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "severity": extra.get("severity", "warning"),
        "line": line,
        "file": file,
        "resource": resource,
        "issue": issue,
        "fix": extra.get("fix", "Do the right thing."),
    }


VERSIONING = item(2, "State bucket has no versioning, so a bad apply cannot be rolled back", resource="wrong.address")


@pytest.fixture
def module(tmp_path: Path) -> Path:
    return write_tf(tmp_path / "infra", {"main.tf": MAIN})


def prompt_text(fake: FakeChatModel, call: int = 0) -> str:
    messages: list[Message] = fake.calls[call]["messages"]
    return "\n".join(m.content for m in messages)


def test_valid_llm_findings_are_merged_with_rule_findings(module: Path, settings: Settings) -> None:
    fake = FakeChatModel([answer(security=[VERSIONING])])
    result = review([module], settings=settings, chat_model=fake)
    assert len(fake.calls) == 1
    llm = [f for f in result.findings if f.source == "llm"]
    assert len(llm) == 1
    assert (llm[0].file, llm[0].line, llm[0].rule, llm[0].category) == ("main.tf", 2, None, "security")
    assert llm[0].resource == "aws_s3_bucket.state"  # mapped to the block that spans the line
    assert hits(result, "OPS-S003")  # the rules' findings are all still there
    assert result.warnings == []
    assert result.dropped_llm_findings == 0
    assert result.llm is not None
    assert result.llm.findings == 1
    assert result.llm.attempts == 1
    assert result.llm.template.startswith("terraform-review")
    assert [f.line for f in result.findings] == sorted(f.line for f in result.findings)


def test_prompt_holds_numbered_source_and_the_rule_findings(module: Path, settings: Settings) -> None:
    fake = FakeChatModel([answer()])
    review([module], settings=settings, chat_model=fake)
    prompt = fake.calls[0]["messages"][-1].content
    assert "# file: main.tf" in prompt
    assert '   3 |   acl    = "public-read"' in prompt
    already = json.loads(prompt.split("Already reported (JSON list; do not repeat these):")[1].strip())
    assert {"file": "main.tf", "line": 3, "rule": "OPS-S003"}.items() <= already[0].items()
    assert fake.calls[0]["json_schema"] is not None  # provider-native schema enforcement requested


@pytest.mark.parametrize(
    "bad",
    [
        "Sure! Here are the problems I found: the bucket is public.",
        '{"security": [{"severity": "warning", "line": 2, "file": "main.tf"',
        json.dumps({"security": [{"severity": "high", "line": 2, "file": "main.tf", "issue": "x"}], "cost": []}),
    ],
    ids=["prose", "partial-json", "wrong-schema"],
)
def test_invalid_output_is_re_asked_then_used(bad: str, module: Path, settings: Settings) -> None:
    fake = FakeChatModel([bad, answer(security=[VERSIONING])])
    result = review([module], settings=settings, chat_model=fake)
    assert len(fake.calls) == 2
    reask = fake.calls[1]["messages"][-1].content
    assert reask.startswith("Your previous reply could not be used")
    assert len([f for f in result.findings if f.source == "llm"]) == 1
    assert result.warnings == []
    assert result.llm is not None
    assert result.llm.attempts == 2


def test_a_model_that_never_complies_leaves_the_rules_and_a_warning(module: Path, settings: Settings) -> None:
    fake = FakeChatModel(["I cannot help with that."])
    result = review([module], settings=settings, chat_model=fake)
    assert len(fake.calls) == settings.llm_max_attempts
    assert all(f.source == "rules" for f in result.findings)
    assert hits(result, "OPS-S003")
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith("LLM review skipped: ")
    assert "\n" not in result.warnings[0]
    assert result.exit_code("critical") == 1  # from the rules


def test_truncated_output_is_skipped_with_a_warning(module: Path, settings: Settings) -> None:
    fake = FakeChatModel(['{"security": ['], stop_reason="max_tokens")
    result = review([module], settings=settings, chat_model=fake)
    assert result.warnings
    assert result.warnings[0].startswith("LLM review skipped: ")
    assert all(f.source == "rules" for f in result.findings)


def test_provider_outage_keeps_rule_findings_and_warns(module: Path, settings: Settings) -> None:
    outage = ProviderUnavailableError("fake is unreachable (503) — try again later", provider="fake", status=503)
    fake = FakeChatModel([answer()], errors=[outage] * 10)
    result = review([module], settings=settings, chat_model=fake)
    assert len(fake.calls) == 1  # the provider owns retries; review does not retry its error
    assert result.warnings == ["LLM review skipped: fake is unreachable (503) — try again later"]
    assert result.findings
    assert all(f.source == "rules" for f in result.findings)
    assert result.llm is None
    assert result.exit_code("critical") == 1
    assert result.exit_code("none") == 0


def test_out_of_range_lines_and_unknown_files_are_dropped_and_counted(module: Path, settings: Settings) -> None:
    fake = FakeChatModel(
        [
            answer(
                security=[VERSIONING, item(99, "Line past the end of the file")],
                cost=[item(3, "A file that was never sent", file="other.tf")],
                correctness=[item(1, "Fine", file="./main.tf", resource=None)],
            )
        ]
    )
    result = review([module], settings=settings, chat_model=fake)
    assert result.dropped_llm_findings == 2
    llm = sorted((f.line, f.category) for f in result.findings if f.source == "llm")
    assert llm == [(1, "correctness"), (2, "security")]


def test_llm_finding_restating_a_rule_finding_is_a_duplicate(module: Path, settings: Settings) -> None:
    restated = item(3, "Bucket ACL is public-read, so anyone can read the state", severity="critical")
    fake = FakeChatModel([answer(security=[restated])])
    result = review([module], settings=settings, chat_model=fake)
    assert [f.source for f in result.findings if f.line == 3] == ["rules"]
    assert result.llm is not None
    assert result.llm.duplicates == 1


def test_secrets_never_reach_the_model(tmp_path: Path, settings: Settings) -> None:
    secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    folder = write_tf(
        tmp_path,
        {
            "main.tf": MAIN,
            "provider.tf": (
                f'provider "aws" {{\n  access_key = "AKIAIOSFODNN7EXAMPLE"\n  secret_key = "{secret_key}"\n}}\n'
            ),
        },
    )
    fake = FakeChatModel(["not json", answer()])
    result = review([folder], settings=settings, chat_model=fake)
    assert len(fake.calls) == 2
    sent = "\n".join(prompt_text(fake, i) for i in range(len(fake.calls)))
    for secret in ("hunter2-very-secret", "AKIAIOSFODNN7EXAMPLE", secret_key):
        assert secret not in sent
    assert '  11 |   password          = "<redacted>"' in sent
    # The rules still saw the real file.
    assert len(hits(result, "OPS-S013")) == 3


def test_no_llm_call_when_use_llm_is_false(module: Path, settings: Settings) -> None:
    fake = FakeChatModel([answer()])
    result = review([module], settings=settings, chat_model=fake, use_llm=False)
    assert fake.calls == []
    assert result.llm is None


def test_large_inputs_are_split_into_several_requests(tmp_path: Path, settings: Settings) -> None:
    files = [parse_text(MAIN, name=f"f{i}.tf") for i in range(3)]
    size = len(numbered_source(files[0]))
    fake = FakeChatModel([answer(cost=[item(7, "Sized for a bigger load than dev needs", file="f0.tf")]), answer()])
    outcome = llm_review(files, [], chat_model=fake, settings=settings, max_prompt_chars=size * 2 + 10)
    assert len(fake.calls) == 2
    assert "# file: f2.tf" in fake.calls[1]["messages"][-1].content
    assert [f.file for f in outcome.findings] == ["f0.tf"]
    assert outcome.findings[0].resource == "aws_db_instance.db"


def test_a_file_too_big_to_send_is_noted(settings: Settings) -> None:
    files = [parse_text(MAIN, name="main.tf")]
    fake = FakeChatModel([answer()])
    outcome = llm_review(files, [], chat_model=fake, settings=settings, max_prompt_chars=50)
    assert fake.calls == []
    assert outcome.warnings
    assert "too large to send" in outcome.warnings[0]
