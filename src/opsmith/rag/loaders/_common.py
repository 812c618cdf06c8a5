"""What the format modules share: the :class:`Format` record, bytes to text, and line helpers.

Every format produces markdown-like :class:`~opsmith.rag.documents.SourceLine` lists (``#``
headings, fenced code), so the helpers here are about those lines: splitting text the way
editors count lines, fences, the first ``#`` title, and escaping body text that would read
as markdown structure.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from dataclasses import dataclass

from opsmith.rag.documents import SkipFile, SourceLine

__all__ = [
    "Format",
    "Load",
    "collapse",
    "decode_text",
    "escape_block_syntax",
    "fence_after",
    "fenced",
    "first_h1",
    "split_lines",
]

#: Reads a file's raw bytes into lines and a title (or None), appending notes for the user to
#: the list it is given; raises :class:`~opsmith.rag.documents.SkipFile` for a file it cannot index.
Load = Callable[[bytes, list[str]], tuple[list[SourceLine], str | None]]


@dataclass(frozen=True)
class Format:
    """One document format: the ``kind`` its documents get, the suffixes it reads, its loader."""

    kind: str
    suffixes: tuple[str, ...]
    load: Load


# --------------------------------------------------------------------------- bytes to text

_BINARY_SAMPLE = 8192
# Share of control bytes above which a "text" file is really binary. ESC is allowed
# because logs with ANSI colours are legitimate text.
_MAX_CONTROL_SHARE = 0.10
_TEXT_CONTROL_BYTES = frozenset(b"\t\n\v\f\r\x1b")

_UNDECODABLE_WARNING = "not valid UTF-8; undecodable bytes replaced"


def decode_text(raw: bytes, warnings_out: list[str]) -> str:
    """``raw`` as UTF-8 text with ``\\n`` line ends; raises :class:`SkipFile` for binary or blank content."""
    sample = raw[:_BINARY_SAMPLE]
    if b"\x00" in sample:
        raise SkipFile("binary content")
    control = sum(1 for byte in sample if (byte < 32 or byte == 127) and byte not in _TEXT_CONTROL_BYTES)
    if control > _MAX_CONTROL_SHARE * len(sample):
        raise SkipFile("binary content")
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        warnings_out.append(_UNDECODABLE_WARNING)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise SkipFile("empty file")
    return text


def split_lines(text: str) -> list[str]:
    # str.splitlines() would also split on \f, \v and U+2028, which editors do not count
    # as line breaks; citations must match what the user sees.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


# --------------------------------------------------------------------------- markdown-like lines

_FENCE_RE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
_ATX_H1_RE = re.compile(r"^#[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")


def fence_after(fence: str | None, text: str) -> str | None:
    """The open fence marker after ``text``, given the one open before it (None: outside code)."""
    match = _FENCE_RE.match(text)
    if match is None:
        return fence
    marker = match.group(1)
    if fence is None:
        return marker
    # Only a bare run of the same character, at least as long, closes a fence.
    if marker[0] == fence[0] and len(marker) >= len(fence) and not text.strip(" " + marker[0]):
        return None
    return fence


def fenced(opening: int, language: str, body: list[SourceLine]) -> list[SourceLine]:
    """``body`` in a fence none of its own lines can close; the closing fence takes the last line's number."""
    runs = [len(m.group(0)) for line in body if (m := re.match(r"`{3,}", line.text.lstrip()))]
    fence = "`" * max([3, *(run + 1 for run in runs)])
    return [SourceLine(opening, fence + language), *body, SourceLine(body[-1].number, fence)]


def first_h1(lines: list[SourceLine]) -> str | None:
    """The text of the first ``# title`` line outside code, if any."""
    fence: str | None = None
    for line in lines:
        before, fence = fence, fence_after(fence, line.text)
        if before is None and fence is None:
            heading = _ATX_H1_RE.match(line.text)
            if heading and heading.group(1).strip():
                return heading.group(1).strip()
    return None


def collapse(text: str) -> str:
    """``text`` with each run of whitespace made one space, trimmed."""
    return " ".join(text.split())


_BLOCK_SYNTAX_RE = re.compile(r"^(\s*)(#|```|~~~)")


def escape_block_syntax(text: str) -> str:
    """Backslash-escape a leading ``#`` or fence so converted body text is not read as a heading or code."""
    return _BLOCK_SYNTAX_RE.sub(r"\1\\\2", text, count=1)
