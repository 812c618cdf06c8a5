"""The table view: grouped by file, markup-safe, with a summary line."""

from __future__ import annotations

from rich.console import Console

from opsmith.review.findings import Finding, ReviewResult
from opsmith.review.render import render_table, summary_line


def render(result: ReviewResult) -> str:
    console = Console(width=160, record=True, color_system=None)
    console.print(render_table(result))
    return console.export_text()


def test_findings_are_grouped_by_file_with_a_summary() -> None:
    result = ReviewResult(
        files=["a.tf", "b.tf", "c.tf"],
        findings=[
            Finding("security", "critical", 3, "Open to [bold]the world[/]", "Close it", "a.tf", "aws_x.y", "OPS-S012"),
            Finding("cost", "warning", 9, "Too big", "Shrink it", "a.tf", "aws_x.z", "OPS-F001"),
            Finding("correctness", "warning", 1, "Odd", "Fix it", "b.tf", None, None, "llm"),
        ],
    )
    text = render(result)
    assert text.index("a.tf") < text.index("OPS-S012") < text.index("OPS-F001") < text.index("b.tf")
    assert "Open to [bold]the world[/]" in text  # printed literally, never as markup
    assert "→ Close it" in text
    assert "3 findings (1 critical, 2 warning) in 2 of 3 files: security 1, cost 1, correctness 1" in text


def test_no_findings() -> None:
    assert summary_line(ReviewResult(files=["main.tf"])) == "No findings in 1 file."
