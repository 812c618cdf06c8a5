"""Deterministic Terraform checks: the offline review and the grounding for the LLM.

Each rule is a small function over a :class:`~opsmith.review.module.Module`, registered
with :func:`rule` under an id: ``OPS-S…`` security, ``OPS-F…`` cost (FinOps),
``OPS-C…`` correctness. :data:`RULES` lists them all; :func:`run_rules` runs them.
"""

from __future__ import annotations

from opsmith.review.findings import Finding
from opsmith.review.module import Module
from opsmith.review.rules import correctness, cost, security
from opsmith.review.rules._registry import RULES, Hit, Rule, hit, rule

__all__ = ["RULES", "Hit", "Rule", "correctness", "cost", "hit", "rule", "run_rules", "security"]


def run_rules(module: Module, *, warnings: list[str] | None = None) -> list[Finding]:
    """Every rule's findings for ``module``.

    A rule that raises is skipped with a note in ``warnings`` (when given) rather than
    ending the review: one odd construct must not hide every other finding.
    """
    findings: list[Finding] = []
    for item in RULES.values():
        try:
            findings.extend(item.run(module))
        except Exception as exc:  # a bug in one rule must not stop the review
            if warnings is None:
                raise
            warnings.append(f"rule {item.id} failed on {module.directory}: {type(exc).__name__}: {exc}")
    return findings
