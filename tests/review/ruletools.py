"""Table-driven rule tests: each case is a failing and a passing module for one rule.

In the failing Terraform, every line that must carry a finding of the rule ends with
``# <-`` (removed before review); the test checks the rule fires on exactly those lines. The passing Terraform
must give no finding of that rule.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    rule: str
    failing: str
    passing: str
    name: str = ""

    @property
    def id(self) -> str:
        return f"{self.rule}-{self.name}" if self.name else self.rule


def marked_lines(text: str) -> list[int]:
    lines = textwrap.dedent(text).lstrip("\n").splitlines()
    return [number for number, line in enumerate(lines, start=1) if line.rstrip().endswith("# <-")]
