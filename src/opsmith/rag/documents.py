"""Loaded documents, normalised to markdown-like lines that remember where they came from.

Loaders turn every supported format into a list of :class:`SourceLine`: headings become
``#`` lines, code blocks become fenced blocks, and each line keeps the line number it has
in the original file (for PDF: in the extracted text). The chunker then only has to
understand markdown, and citations can point at real lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Document", "SkipFile", "SourceLine"]


@dataclass(frozen=True)
class SourceLine:
    number: int  # 1-based line in the original file
    text: str


@dataclass
class Document:
    source: str  # path relative to the PATH the user gave; the id of the document everywhere
    path: Path
    kind: str  # "md", "txt", "rst", "html" or "pdf"
    sha256: str  # of the raw file bytes; ingest replaces it with the indexed version (bytes + chunking recipe)
    lines: list[SourceLine]
    title: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


class SkipFile(Exception):
    """Raised by a loader for a file that cannot be indexed; ``reason`` is shown to the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
