"""A runbook put back together from its stored chunks: sections, blocks and exact source lines.

Retrieval works on chunks, but an answer is better made of a runbook's own parts: the section
that describes the problem, the one after it that says what to run, each code block whole.
The index keeps every chunk's text and the source line of each of its lines, so the runbook
can be rebuilt at question time without the original file (which a server that took an
upload no longer has): the chunks in order, the lines two pieces of a long section share
dropped, then split at headings as the chunker split it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

from opsmith.rag.chunking import _split_units
from opsmith.rag.documents import SourceLine
from opsmith.rag.store import StoredChunk

__all__ = ["Block", "Runbook", "Section"]

_HEADING_LEVEL = re.compile(r"^ {0,3}(#{1,6})\s")


@dataclass
class Block:
    """A heading, a paragraph or list, or a fenced code block, with its source lines."""

    kind: str  # "heading", "text" or "code"
    lines: list[SourceLine]

    # Cached: a runbook is scored for every question; its blocks never change.
    @cached_property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    @cached_property
    def start_line(self) -> int:
        return min((line.number for line in self.lines if line.number), default=0)

    @cached_property
    def end_line(self) -> int:
        return max((line.number for line in self.lines if line.number), default=0)


@dataclass
class Section:
    """One heading and the blocks under it, up to the next heading of any level."""

    index: int
    path: list[str]  # heading titles from the top, e.g. ["Title", "Diagnosis"]
    level: int  # the heading's level (1 for ``#``); 0 for text before the first heading
    blocks: list[Block] = field(default_factory=list)

    @cached_property
    def text(self) -> str:
        return "\n\n".join(block.text for block in self.blocks)

    @property
    def heading(self) -> str:
        return " > ".join(self.path)

    @cached_property
    def start_line(self) -> int:
        return min((b.start_line for b in self.blocks if b.start_line), default=0)

    @cached_property
    def end_line(self) -> int:
        return max((b.end_line for b in self.blocks), default=0)


@dataclass
class Runbook:
    """A runbook's sections in document order."""

    source: str
    title: str | None
    sections: list[Section]

    @property
    def text(self) -> str:
        return "\n\n".join(section.text for section in self.sections)

    def span(self, index: int) -> range:
        """Section ``index`` and its subsections (the sections up to the next heading of its level or above)."""
        level = self.sections[index].level
        end = index + 1
        # Text before the first heading (level 0) has no subsections.
        while level and end < len(self.sections) and self.sections[end].level > level:
            end += 1
        return range(index, end)

    def parents(self, index: int) -> list[int]:
        """The sections that contain section ``index``, nearest first."""
        found: list[int] = []
        level = self.sections[index].level
        for i in range(index - 1, -1, -1):
            candidate = self.sections[i].level
            if 0 < candidate < level:
                found.append(i)
                level = candidate
        return found

    @classmethod
    def from_chunks(cls, chunks: Sequence[StoredChunk]) -> Runbook:
        """Rebuild the runbook from all of its chunks (one version, any order)."""
        ordered = sorted(chunks, key=lambda c: c.chunk_index)
        lines: list[SourceLine] = []
        previous: list[SourceLine] = []
        exact_before = True
        for chunk in ordered:
            own = _numbered(chunk)
            exact = chunk.line_numbers is not None and len(chunk.line_numbers) == len(own)
            lines.extend([SourceLine(0, "")] if lines else [])
            skip = _overlap(previous, own) if exact and exact_before else _text_overlap(previous, own)
            lines.extend(own[skip:])
            previous, exact_before = own, exact
        sections: list[Section] = []
        for section in _split_units(lines):
            blocks = [Block(unit.kind, unit.lines) for unit in section.units]
            level = 0
            if blocks and blocks[0].kind == "heading":
                match = _HEADING_LEVEL.match(blocks[0].text)
                level = len(match.group(1)) if match else len(section.path)
            sections.append(Section(len(sections), list(section.path), level, blocks))
        first = ordered[0] if ordered else None
        return cls(first.source if first else "", first.title if first else None, sections)


def _numbered(chunk: StoredChunk) -> list[SourceLine]:
    texts = chunk.text.split("\n")
    numbers = chunk.line_numbers
    if not numbers or len(numbers) != len(texts):
        # An index made before line numbers were kept: count from the chunk's first line, which is
        # exact for text without blank lines and close otherwise; never past the chunk's last line.
        numbers = [min(chunk.start_line + i, chunk.end_line) for i in range(len(texts))]
    return [SourceLine(number if text.strip() else 0, text) for number, text in zip(numbers, texts, strict=True)]


def _text_overlap(previous: list[SourceLine], current: list[SourceLine]) -> int:
    """How many leading lines of ``current`` repeat the last lines of ``previous``, by text alone
    (line numbers estimated for an old index cannot be compared)."""
    for size in range(min(len(previous), len(current)), 0, -1):
        if [x.text for x in previous[-size:]] == [x.text for x in current[:size]]:
            return size
    return 0


def _overlap(previous: list[SourceLine], current: list[SourceLine]) -> int:
    """How many leading lines of ``current`` repeat the end of ``previous`` (a long section's overlap)."""
    if not previous:
        return 0
    seen = {(line.number, line.text) for line in previous if line.number}
    last = {line.number: line.text for line in previous if line.number}
    count = 0
    for line in current:
        if not line.number:
            if count:
                count += 1
                continue
            break
        # The overlap may also be the last words of a long line (same number, a suffix of its text).
        if (line.number, line.text) in seen or last.get(line.number, "").endswith(line.text):
            count += 1
        else:
            break
    # Never end on a blank line: it separates the overlap from what follows.
    while count and not current[count - 1].number:
        count -= 1
    return count if count < len(current) else len(current)
