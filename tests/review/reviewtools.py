"""Helpers shared by the review tests (imported by name, like tests/cli/clitools.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from opsmith.review import Finding, ReviewResult

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "terraform"


def write_tf(folder: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (name -> text, dedented) under ``folder``; returns the folder."""
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return folder


def hits(result: ReviewResult, rule: str) -> list[Finding]:
    """The findings of one rule."""
    return [f for f in result.findings if f.rule == rule]
