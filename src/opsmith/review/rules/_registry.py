"""The rule seam: a :class:`Rule` is metadata plus a check that yields :class:`Hit` objects."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from opsmith.review.findings import Category, Finding, Severity
from opsmith.review.hcl import Block
from opsmith.review.module import Module

__all__ = ["RULES", "Check", "Hit", "Rule", "hit", "rule"]


@dataclass(frozen=True)
class Hit:
    """One place a rule fired. ``issue``/``fix``/``severity`` override the rule's defaults."""

    file: str
    line: int
    resource: str | None
    issue: str
    fix: str | None = None
    severity: Severity | None = None


Check = Callable[[Module], Iterable[Hit]]


@dataclass(frozen=True)
class Rule:
    """A deterministic check.

    ``title`` is the one-line issue, ``fix`` the default remedy, ``equivalents`` the ids of
    the checkov/tfsec checks (or terraform validate) covering the same ground, and
    ``keywords`` the words an LLM finding must contain to count as this rule's finding.
    """

    id: str
    category: Category
    severity: Severity
    title: str
    fix: str
    equivalents: tuple[str, ...]
    keywords: tuple[str, ...]
    check: Check

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.check) or self.title

    def run(self, module: Module) -> list[Finding]:
        return [
            Finding(
                category=self.category,
                severity=h.severity or self.severity,
                line=h.line,
                issue=h.issue,
                fix=h.fix or self.fix,
                file=h.file,
                resource=h.resource,
                rule=self.id,
                source="rules",
            )
            for h in self.check(module)
        ]


#: Every rule, by id, in registration order.
RULES: dict[str, Rule] = {}


def rule(
    id: str,
    *,
    category: Category,
    severity: Severity,
    title: str,
    fix: str,
    equivalents: tuple[str, ...] = (),
    keywords: tuple[str, ...] = (),
) -> Callable[[Check], Check]:
    """Register the decorated check under ``id``."""

    def register(check: Check) -> Check:
        if id in RULES:
            raise ValueError(f"Rule {id} is registered twice")
        RULES[id] = Rule(id, category, severity, title, fix, equivalents, keywords, check)
        return check

    return register


def hit(
    block: Block,
    issue: str,
    *,
    line: int | None = None,
    fix: str | None = None,
    severity: Severity | None = None,
) -> Hit:
    """A :class:`Hit` on ``block`` (at ``line``, default the block's first line)."""
    line = line if line is not None else block.line
    top = block
    while top.parent is not None:
        top = top.parent
    resource = top.address_at(line)
    return Hit(file=block.file, line=line, resource=resource, issue=issue, fix=fix, severity=severity)
