"""The JSON contract, ordering, exit codes, and merging rule and LLM findings."""

from __future__ import annotations

import pytest

from opsmith.review.findings import Finding, ReviewResult, llm_kind, merge_findings


def finding(**overrides: object) -> Finding:
    base: dict[str, object] = {
        "category": "security",
        "severity": "warning",
        "line": 3,
        "issue": "Bucket is public",
        "fix": "Make it private",
        "file": "main.tf",
        "resource": "aws_s3_bucket.a",
        "rule": "OPS-S003",
        "source": "rules",
    }
    base.update(overrides)
    return Finding(**base)  # type: ignore[arg-type]


def test_json_item_has_exactly_the_contract_keys() -> None:
    item = finding().to_dict()
    assert list(item) == ["severity", "line", "issue", "fix", "file", "resource", "rule", "source"]
    assert finding(resource=None, rule=None, source="llm").to_dict()["rule"] is None


def test_to_dict_groups_by_category_with_all_three_keys() -> None:
    result = ReviewResult(findings=[finding(category="cost", rule="OPS-F001")])
    data = result.to_dict()
    assert list(data) == ["security", "cost", "correctness"]
    assert data["security"] == []
    assert data["correctness"] == []
    assert len(data["cost"]) == 1


@pytest.mark.parametrize(
    ("severities", "fail_on", "code"),
    [
        ([], "critical", 0),
        (["warning"], "critical", 0),
        (["critical"], "critical", 1),
        (["warning"], "warning", 1),
        (["critical"], "warning", 1),
        (["critical", "warning"], "none", 0),
    ],
)
def test_exit_code_follows_fail_on(severities: list[str], fail_on: str, code: int) -> None:
    result = ReviewResult(findings=[finding(severity=s) for s in severities])
    assert result.exit_code(fail_on) == code  # type: ignore[arg-type]


def test_merge_sorts_by_file_then_line_and_drops_exact_repeats() -> None:
    a = finding(file="b.tf", line=1)
    b = finding(file="a.tf", line=9)
    c = finding(file="a.tf", line=2)
    merged, duplicates = merge_findings([a, b, c, c])
    assert [(f.file, f.line) for f in merged] == [("a.tf", 2), ("a.tf", 9), ("b.tf", 1)]
    assert duplicates == 0


def test_two_hits_of_one_rule_in_one_block_both_stay() -> None:
    merged, _ = merge_findings([finding(line=3), finding(line=5, issue="Another port open")])
    assert len(merged) == 2


def test_llm_finding_restating_a_rule_is_dropped_in_favour_of_the_rule() -> None:
    rule = finding(line=3, rule="OPS-S003", issue='S3 bucket ACL "public-read" is public')
    same_line = finding(line=3, rule=None, source="llm", issue="The bucket can be read by anyone")
    by_keywords = finding(line=7, rule=None, source="llm", issue="The ACL on this bucket grants public read")
    new = finding(
        line=7,
        rule=None,
        source="llm",
        issue="Versioning is disabled on a bucket holding state",
        category="correctness",
    )
    keyword_rules = [("OPS-S003", "security", ("acl",))]

    def block_of(file: str, line: int) -> str:
        return "aws_s3_bucket.a"

    merged, duplicates = merge_findings(
        [rule], [same_line, by_keywords, new], block_of=block_of, keyword_rules=keyword_rules
    )
    assert duplicates == 2
    assert [f.source for f in merged] == ["rules", "llm"]
    assert merged[1].category == "correctness"


def test_two_llm_findings_saying_the_same_thing_merge() -> None:
    one = finding(rule=None, source="llm", line=4, issue="No lifecycle rule on the bucket", category="cost")
    two = finding(
        rule=None, source="llm", line=5, issue="No lifecycle rule on the bucket, so logs pile up", category="cost"
    )
    merged, duplicates = merge_findings([], [one, two], block_of=lambda file, line: "aws_s3_bucket.a")
    assert len(merged) == 1
    assert duplicates == 1
    assert llm_kind(one) == llm_kind(two) == "cost:lifecycle rule bucket"
