"""The shipped examples: the vulnerable module trips every rule, the clean one none, and the
labelled flaws are found (recall >= 0.9 under the benchmark's matching rule)."""

from __future__ import annotations

import json

from reviewtools import EXAMPLES

from opsmith.config import Settings
from opsmith.review import review
from opsmith.review.rules import RULES


def test_vulnerable_module_exercises_every_rule(settings: Settings) -> None:
    result = review([EXAMPLES / "vulnerable"], settings=settings, use_llm=False)
    assert result.warnings == []
    assert sorted(set(RULES) - {f.rule for f in result.findings}) == []
    assert result.exit_code("critical") == 1


def test_clean_module_has_no_findings(settings: Settings) -> None:
    result = review([EXAMPLES / "clean"], settings=settings, use_llm=False)
    assert result.warnings == []
    assert [f"{f.file}:{f.line} {f.rule} {f.issue}" for f in result.findings] == []
    assert result.exit_code("warning") == 0


def test_labelled_flaws_are_found(settings: Settings) -> None:
    labels = json.loads((EXAMPLES / "labelled" / "labels.json").read_text())
    flaws, tolerance = labels["flaws"], labels["tolerance_lines"]
    assert len(flaws) >= 30
    assert {f["category"] for f in flaws} == {"security", "cost", "correctness"}
    for flaw in flaws:
        assert flaw["rule"] in RULES
        assert RULES[flaw["rule"]].category == flaw["category"]
        assert (EXAMPLES / "labelled" / flaw["file"]).is_file()
    result = review([EXAMPLES / "labelled"], settings=settings, use_llm=False)
    found = [
        flaw
        for flaw in flaws
        if any(
            f.rule == flaw["rule"] and f.file == flaw["file"] and abs(f.line - flaw["line"]) <= tolerance
            for f in result.findings
        )
    ]
    assert len(found) / len(flaws) >= 0.9
