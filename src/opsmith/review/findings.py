"""Findings, the review result, and how rule and LLM findings are merged.

A :class:`Finding` is one problem at one line. Its JSON form is the public contract::

    {"severity": "critical"|"warning", "line": int, "issue": str, "fix": str,
     "file": str, "resource": str|null, "rule": str|null, "source": "rules"|"llm"}

and :meth:`ReviewResult.to_dict` groups findings as
``{"security": [...], "cost": [...], "correctness": [...]}``, sorted by file and line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from opsmith.schemas import Finding as FindingJSON
    from opsmith.schemas import ReviewFindings, ReviewSummary

__all__ = [
    "CATEGORIES",
    "Category",
    "FailOn",
    "Finding",
    "LlmReport",
    "ReviewResult",
    "Severity",
    "Skipped",
    "Source",
    "llm_kind",
    "merge_findings",
]

Category = Literal["security", "cost", "correctness"]
Severity = Literal["critical", "warning"]
Source = Literal["rules", "llm"]
FailOn = Literal["critical", "warning", "none"]

CATEGORIES: tuple[Category, ...] = ("security", "cost", "correctness")
_SEVERITY_RANK = {"warning": 1, "critical": 2}
_FAIL_RANK = {"none": 99, "critical": 2, "warning": 1}


@dataclass(frozen=True)
class Finding:
    """One problem at one line of one file."""

    category: Category
    severity: Severity
    line: int
    issue: str
    fix: str
    file: str
    resource: str | None = None
    rule: str | None = None
    source: Source = "rules"

    def to_dict(self) -> FindingJSON:
        """The JSON item (the category is the key it is listed under)."""
        return {
            "severity": self.severity,
            "line": self.line,
            "issue": self.issue,
            "fix": self.fix,
            "file": self.file,
            "resource": self.resource,
            "rule": self.rule,
            "source": self.source,
        }

    @property
    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.file, self.line, CATEGORIES.index(self.category), self.rule or "~", self.issue)


@dataclass(frozen=True)
class Skipped:
    """A path that was not reviewed, and why."""

    path: str
    reason: str


@dataclass
class LlmReport:
    """What the LLM step did: who answered, how many tries and tokens, and what was dropped."""

    provider: str
    model: str
    template: str = ""
    attempts: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float = 0.0
    call_id: str | None = None
    findings: int = 0
    duplicates: int = 0


@dataclass
class ReviewResult:
    """Everything one review produced.

    ``findings`` are merged, deduplicated and sorted. ``files`` are the names of the files
    reviewed; ``skipped`` the paths passed over (with why); ``warnings`` one-line notes for
    the user (an LLM step that was skipped, say). ``dropped_llm_findings`` counts LLM
    findings thrown away because their file or line did not exist. ``llm`` says what the
    LLM step did (None when it did not run).
    """

    findings: list[Finding] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dropped_llm_findings: int = 0
    llm: LlmReport | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    #: File name (as findings give it) -> its path on disk, for SARIF locations.
    sources: dict[str, Path] = field(default_factory=dict)

    def by_category(self) -> dict[Category, list[Finding]]:
        grouped: dict[Category, list[Finding]] = {category: [] for category in CATEGORIES}
        for finding in self.findings:
            grouped[finding.category].append(finding)
        return grouped

    def to_dict(self) -> ReviewFindings:
        """Exactly ``{"security": [...], "cost": [...], "correctness": [...]}``."""
        grouped = self.by_category()
        return {
            "security": [f.to_dict() for f in grouped["security"]],
            "cost": [f.to_dict() for f in grouped["cost"]],
            "correctness": [f.to_dict() for f in grouped["correctness"]],
        }

    def summary(self, fail_on: FailOn = "critical") -> ReviewSummary:
        """Counts, the CI verdict at ``fail_on`` and what was reviewed, skipped and noted."""
        counts = self.counts()
        return {
            "critical": counts["critical"],
            "warning": counts["warning"],
            "failed": self.exit_code(fail_on) == 1,
            "fail_on": fail_on,
            "files": list(self.files),
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "warnings": list(self.warnings),
        }

    def counts(self) -> dict[str, int]:
        return {
            "critical": sum(f.severity == "critical" for f in self.findings),
            "warning": sum(f.severity == "warning" for f in self.findings),
        }

    def exit_code(self, fail_on: FailOn = "critical") -> int:
        """1 when a finding is at or above ``fail_on`` (``none`` never fails), else 0."""
        threshold = _FAIL_RANK[fail_on]
        return 1 if any(_SEVERITY_RANK[f.severity] >= threshold for f in self.findings) else 0


# Merging ------------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset({"the", "a", "an", "is", "are", "of", "to", "on", "in", "for", "and", "this", "with", "has", "no"})


def llm_kind(finding: Finding, keyword_rules: Iterable[tuple[str, str, tuple[str, ...]]] = ()) -> str:
    """The dedupe kind of an LLM finding.

    When its text matches a rule's keywords (all of them, same category), the kind is that
    rule's id, so a model restating a rule's finding merges into it. Otherwise it is the
    category plus the first three meaningful words of the issue, lower-cased.
    """
    words = [w for w in _WORD.findall(finding.issue.lower()) if w not in _STOP]
    text = " ".join(words)
    for rule_id, category, keywords in keyword_rules:
        if category == finding.category and keywords and all(k in text for k in keywords):
            return rule_id
    return f"{finding.category}:{' '.join(words[:3])}"


def merge_findings(
    rule_findings: Iterable[Finding],
    llm_findings: Iterable[Finding] = (),
    *,
    block_of: Any = None,
    keyword_rules: Iterable[tuple[str, str, tuple[str, ...]]] = (),
) -> tuple[list[Finding], int]:
    """Merge, dedupe by (file, block, kind) preferring rule findings, and sort by file and line.

    Rule findings only drop exact repeats (same file, line, rule and issue): two open ports
    in one security group are two findings. ``block_of(file, line)`` names the block a line
    falls in (None outside any block); without it the finding's ``resource`` stands in. An LLM finding also counts as a
    duplicate when a rule finding of the same category sits on the same line. Returns the
    merged list and how many LLM findings were duplicates.
    """
    keyword_rules = list(keyword_rules)
    seen: set[tuple[str, str | None, str]] = set()
    rule_lines: set[tuple[str, int, str]] = set()
    merged: list[Finding] = []
    exact: set[tuple[str, int, str | None, str]] = set()
    for finding in rule_findings:
        if (finding.file, finding.line, finding.rule, finding.issue) in exact:
            continue
        exact.add((finding.file, finding.line, finding.rule, finding.issue))
        seen.add((finding.file, _block_key(finding, block_of), finding.rule or ""))
        rule_lines.add((finding.file, finding.line, finding.category))
        merged.append(finding)
    duplicates = 0
    for finding in llm_findings:
        key = (finding.file, _block_key(finding, block_of), llm_kind(finding, keyword_rules))
        if key in seen or (finding.file, finding.line, finding.category) in rule_lines:
            duplicates += 1
            continue
        seen.add(key)
        merged.append(finding)
    merged.sort(key=lambda f: f.sort_key)
    return merged, duplicates


def _block_key(finding: Finding, block_of: Any) -> str | None:
    if block_of is not None:
        block = block_of(finding.file, finding.line)
        if block is not None:
            return str(block)
    return finding.resource
