"""SARIF 2.1.0 output, for GitHub code scanning and other SARIF viewers.

One run, tool ``opsmith``, with every rule in ``tool.driver.rules`` (plus one per
category for LLM findings, which have no rule id of their own). Levels: critical →
``error``, warning → ``warning``. Locations are file URIs relative to the current
directory when the file is under it (what code scanning expects from a checkout), else
absolute ``file://`` URIs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opsmith.review.findings import CATEGORIES, Finding, ReviewResult

__all__ = ["SARIF_SCHEMA", "SARIF_VERSION", "to_sarif"]

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
_LEVEL = {"critical": "error", "warning": "warning"}
#: GitHub ranks security alerts by this property (0-10) on the rule.
_SECURITY_SEVERITY = {"critical": "9.0", "warning": "5.0"}


def _llm_rule_id(category: str) -> str:
    return f"OPS-LLM-{category.upper()}"


def _rules() -> list[dict[str, Any]]:
    from opsmith.review.rules import RULES

    rules = []
    for rule in RULES.values():
        properties: dict[str, Any] = {
            "category": rule.category,
            "tags": [rule.category, "terraform"],
            "equivalents": list(rule.equivalents),
        }
        if rule.category == "security":
            properties["security-severity"] = _SECURITY_SEVERITY[rule.severity]
        rules.append(
            {
                "id": rule.id,
                "name": "".join(word.capitalize() for word in rule.check.__name__.split("_")),
                "shortDescription": {"text": rule.title},
                "fullDescription": {"text": rule.doc},
                "help": {"text": f"Fix: {rule.fix}"},
                "defaultConfiguration": {"level": _LEVEL[rule.severity]},
                "properties": properties,
            }
        )
    for category in CATEGORIES:
        properties = {"category": category, "tags": [category, "terraform", "llm"], "equivalents": []}
        if category == "security":
            properties["security-severity"] = _SECURITY_SEVERITY["warning"]
        rules.append(
            {
                "id": _llm_rule_id(category),
                "name": f"Llm{category.capitalize()}Review",
                "shortDescription": {"text": f"LLM reviewer: {category} finding"},
                "fullDescription": {"text": f"A {category} problem found by the LLM reviewer (no deterministic rule)."},
                "help": {"text": "Each result carries its own fix."},
                "defaultConfiguration": {"level": "warning"},
                "properties": properties,
            }
        )
    return rules


def _uri(path: Path | None, name: str) -> str:
    if path is None:
        return name
    absolute = path.resolve()
    try:
        return absolute.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return absolute.as_uri()


def to_sarif(result: ReviewResult, *, version: str = "") -> dict[str, Any]:
    """The review as a SARIF 2.1.0 log (a JSON-ready dict)."""
    rules = _rules()
    index = {rule["id"]: position for position, rule in enumerate(rules)}
    results = []
    for finding in result.findings:
        rule_id = finding.rule or _llm_rule_id(finding.category)
        results.append(_result(finding, rule_id, index.get(rule_id), result))
    driver: dict[str, Any] = {
        "name": "opsmith",
        "informationUri": "https://github.com/opsmith/opsmith",
        "rules": rules,
    }
    if version:
        driver["version"] = version
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {"driver": driver},
                "results": results,
                "columnKind": "unicodeCodePoints",
            }
        ],
    }


def _result(finding: Finding, rule_id: str, rule_index: int | None, result: ReviewResult) -> dict[str, Any]:
    path = result.sources.get(finding.file)
    location: dict[str, Any] = {
        "physicalLocation": {
            "artifactLocation": {"uri": _uri(path, finding.file)},
            "region": {"startLine": finding.line},
        }
    }
    if finding.resource:
        location["logicalLocations"] = [{"fullyQualifiedName": finding.resource, "kind": "resource"}]
    item: dict[str, Any] = {
        "ruleId": rule_id,
        "level": _LEVEL[finding.severity],
        "message": {"text": f"{finding.issue} Fix: {finding.fix}"},
        "locations": [location],
        "properties": {"category": finding.category, "source": finding.source, "resource": finding.resource},
    }
    if rule_index is not None:
        item["ruleIndex"] = rule_index
    return item
