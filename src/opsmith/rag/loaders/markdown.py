"""Markdown (``.md``, ``.markdown``): already the shape every loader produces.

Lines pass through as they are, except YAML (``---``) or TOML (``+++``) front matter, which is
dropped (its ``title`` becomes the document's), and setext titles (a line underlined with ``===``
or ``---``), which become ``#``/``##`` headings so the chunker sees one heading syntax.
"""

from __future__ import annotations

import re

from opsmith.rag.documents import SourceLine
from opsmith.rag.loaders._common import Format, collapse, decode_text, fence_after, first_h1, split_lines

__all__ = ["FORMAT", "load", "markdown_lines"]


def load(raw: bytes, notes: list[str]) -> tuple[list[SourceLine], str | None]:
    """The file's lines; its title from front matter, else its first ``#`` heading."""
    lines, title = markdown_lines(split_lines(decode_text(raw, notes)))
    return lines, title or first_h1(lines)


FORMAT = Format("md", (".md", ".markdown"), load)

_SETEXT_RE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
# A line that markdown reads as something other than paragraph text cannot be a setext title.
_NOT_PARAGRAPH_RE = re.compile(r"^(?: {4}|\t| {0,3}(?:#|>|[-*+][ \t]|\d+[.)][ \t]|\||```|~~~|<))")


def markdown_lines(raw_lines: list[str]) -> tuple[list[SourceLine], str | None]:
    """``raw_lines`` with front matter dropped and setext titles made ``#`` lines; the front matter's title."""
    start, title = _front_matter(raw_lines)
    out: list[SourceLine] = []
    fence: str | None = None
    i = start
    while i < len(raw_lines):
        text = raw_lines[i]
        number = i + 1
        before, fence = fence, fence_after(fence, text)
        if before is None and fence is None and i + 1 < len(raw_lines) and _is_setext_title(raw_lines, i, start):
            underline = raw_lines[i + 1].strip()
            level = "#" if underline.startswith("=") else "##"
            out.append(SourceLine(number, f"{level} {text.strip()}"))
            i += 2
            continue
        out.append(SourceLine(number, text))
        i += 1
    return out, title


def _is_setext_title(raw_lines: list[str], i: int, start: int) -> bool:
    text = raw_lines[i]
    if not text.strip() or _NOT_PARAGRAPH_RE.match(text) or not _SETEXT_RE.match(raw_lines[i + 1]):
        return False
    # Only single-line paragraphs: for a multi-line one CommonMark turns the whole
    # paragraph into the heading, which is rarely what the author of a runbook meant.
    return i == start or not raw_lines[i - 1].strip()


def _front_matter(raw_lines: list[str]) -> tuple[int, str | None]:
    """Index of the first line after YAML/TOML front matter (0 if none), and its title."""
    if not raw_lines or raw_lines[0].rstrip() not in ("---", "+++"):
        return 0, None
    opener = raw_lines[0].rstrip()
    closers = ("---", "...") if opener == "---" else ("+++",)
    for end in range(1, len(raw_lines)):
        if raw_lines[end].rstrip() in closers:
            break
    else:
        return 0, None  # never closed: a thematic break, not front matter
    data = _parse_front_matter(opener, "\n".join(raw_lines[1:end]))
    value = data.get("title") if isinstance(data, dict) else None
    title = collapse(str(value)) if isinstance(value, (str, int, float)) else ""
    return end + 1, title or None


def _parse_front_matter(opener: str, body: str) -> object:
    # Malformed front matter is still front matter: it is stripped, it just gives no title.
    if opener == "---":
        import yaml

        try:
            return yaml.safe_load(body)
        except yaml.YAMLError:
            return None
    import tomllib

    try:
        return tomllib.loads(body)
    except tomllib.TOMLDecodeError:
        return None
