"""Every rule has a failing and a passing example; the failing one fires on the marked lines only."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from reviewtools import hits
from rule_cases import CASES
from ruletools import Case, marked_lines

from opsmith.review import ReviewResult
from opsmith.review.rules import RULES


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rule_fires_on_the_marked_lines(case: Case, review_tf: Callable[..., ReviewResult]) -> None:
    # Markers come off before review (a heredoc would carry them), leaving the lines in place.
    result = review_tf(case.failing.replace(" # <-", ""))
    expected = marked_lines(case.failing)
    assert expected, "the failing example must mark at least one line with '# <-'"
    found = sorted({f.line for f in hits(result, case.rule)})
    assert found == expected, [f"{f.line}: {f.issue}" for f in result.findings]
    for finding in hits(result, case.rule):
        assert finding.category == RULES[case.rule].category
        assert finding.issue
        assert finding.fix
        assert finding.source == "rules"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rule_passes_the_fixed_version(case: Case, review_tf: Callable[..., ReviewResult]) -> None:
    result = review_tf(case.passing)
    assert hits(result, case.rule) == [], [f"{f.line}: {f.issue}" for f in hits(result, case.rule)]


def test_every_rule_has_a_case() -> None:
    assert sorted(RULES) == sorted({case.rule for case in CASES})


def test_rule_metadata_is_complete() -> None:
    for rule in RULES.values():
        assert rule.id.startswith(("OPS-S", "OPS-F", "OPS-C"))
        prefix = {"security": "OPS-S", "cost": "OPS-F", "correctness": "OPS-C"}[rule.category]
        assert rule.id.startswith(prefix), rule.id
        assert rule.severity in {"critical", "warning"}
        for part in (rule.title, rule.fix, rule.doc, rule.equivalents):
            assert part, rule.id
        assert rule.check.__doc__, f"{rule.id} needs a docstring"
