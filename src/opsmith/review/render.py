"""The human view of a review: one rich table per file, then a summary line."""

from __future__ import annotations

from itertools import groupby

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from opsmith.review.findings import ReviewResult

__all__ = ["render_table", "summary_line"]

_SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow"}


def render_table(result: ReviewResult) -> RenderableType:
    """Findings grouped by file (sorted by line), each row with its fix; then the summary.

    Every cell is a :class:`rich.text.Text`, so brackets in issues and paths are never
    read as markup.
    """
    parts: list[RenderableType] = []
    for file, items in groupby(result.findings, key=lambda f: f.file):
        table = Table(title=Text(file, style="bold"), title_justify="left", expand=False, show_lines=False)
        table.add_column("Line", justify="right", no_wrap=True)
        table.add_column("Severity", no_wrap=True)
        table.add_column("Category", no_wrap=True)
        table.add_column("Rule", no_wrap=True)
        table.add_column("Resource")
        table.add_column("Issue and fix", ratio=1)
        for finding in items:
            detail = Text(finding.issue)
            detail.append("\n→ " + finding.fix, style="dim")
            table.add_row(
                Text(str(finding.line)),
                Text(finding.severity, style=_SEVERITY_STYLE[finding.severity]),
                Text(finding.category),
                Text(finding.rule or "llm", style="cyan" if finding.rule else "magenta"),
                Text(finding.resource or "-"),
                detail,
            )
        parts.append(table)
    parts.append(Text(summary_line(result), style="bold"))
    return Group(*parts)


def summary_line(result: ReviewResult) -> str:
    """E.g. ``12 findings (5 critical, 7 warning) in 3 of 8 files: security 6, cost 3, correctness 3``."""
    files = len(result.files)
    if not result.findings:
        return f"No findings in {files} file{'s' if files != 1 else ''}."
    counts = result.counts()
    with_findings = len({f.file for f in result.findings})
    categories = ", ".join(f"{category} {len(items)}" for category, items in result.by_category().items())
    total = len(result.findings)
    return (
        f"{total} finding{'s' if total != 1 else ''} ({counts['critical']} critical, {counts['warning']} warning) "
        f"in {with_findings} of {files} file{'s' if files != 1 else ''}: {categories}"
    )
