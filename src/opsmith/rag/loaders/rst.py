"""reStructuredText (``.rst``): section titles become ``#`` headings, code blocks become fences.

Heading levels follow docutils (each adornment style gets the next level the first time it
appears); ``code-block``/``code``/``sourcecode`` directives and ``::`` literal blocks become
fenced code. Everything else passes through with its line number.
"""

from __future__ import annotations

import re

from opsmith.rag.documents import SourceLine
from opsmith.rag.loaders._common import Format, decode_text, fenced, first_h1, split_lines

__all__ = ["FORMAT", "load"]


def load(raw: bytes, notes: list[str]) -> tuple[list[SourceLine], str | None]:
    """The file's lines, its first title the document's."""
    lines = _rst_lines(split_lines(decode_text(raw, notes)))
    return lines, first_h1(lines)


FORMAT = Format("rst", (".rst",), load)

_RST_ADORNMENT_RE = re.compile(r"""^([!-/:-@\[-`{-~])\1+[ \t]*$""")
_RST_CODE_DIRECTIVE_RE = re.compile(r"^([ \t]*)\.\.[ \t]+(?:code-block|code|sourcecode)::[ \t]*(\S*)")
_RST_DIRECTIVE_RE = re.compile(r"^[ \t]*\.\.[ \t]")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _rst_lines(raw_lines: list[str]) -> list[SourceLine]:
    """Section titles become ``#`` headings; code directives and ``::`` blocks become fences.

    Heading levels follow docutils: each (overline?, character) style gets the next level
    the first time it appears.
    """
    # docutils expands tabs to 8 columns before measuring indentation; so do we.
    lines = [line.expandtabs(8) for line in raw_lines]
    styles: dict[tuple[bool, str], int] = {}
    out: list[SourceLine] = []

    def heading(style: tuple[bool, str], number: int, title: str) -> None:
        level = styles.setdefault(style, len(styles) + 1)
        out.append(SourceLine(number, f"{'#' * min(level, 6)} {title}"))

    i = 0
    while i < len(lines):
        text = lines[i]
        blank_before = i == 0 or not lines[i - 1].strip()
        directive = _RST_CODE_DIRECTIVE_RE.match(text)
        if directive:
            # The directive, its options and the blank lines after it all collapse into the opening fence.
            _, body, after = _rst_block(lines, i + 1, len(directive.group(1)), skip_options=True)
            if body:
                out.extend(fenced(i + 1, directive.group(2), body))
                i = after
                continue
        elif blank_before and _rst_overlined_title(lines, i):
            heading((True, text.strip()[0]), i + 2, lines[i + 1].strip())
            i += 3
            continue
        elif blank_before and _rst_underlined_title(lines, i):
            heading((False, lines[i + 1].strip()[0]), i + 1, text.strip())
            i += 2
            continue
        elif text.rstrip().endswith("::") and not _RST_DIRECTIVE_RE.match(text):
            gap, body, after = _rst_block(lines, i + 1, _indent(text), skip_options=False)
            if body:
                # docutils: a lone "::" vanishes, " ::" is dropped, "text::" renders as "text:".
                stripped = text.rstrip()
                if stripped.strip() != "::":
                    kept = stripped[:-2].rstrip() if stripped[-3:-2].isspace() else stripped[:-1]
                    out.append(SourceLine(i + 1, kept))
                out.extend(gap)
                out.extend(fenced(body[0].number, "", body))
                i = after
                continue
        out.append(SourceLine(i + 1, raw_lines[i]))
        i += 1
    return out


def _rst_overlined_title(lines: list[str], i: int) -> bool:
    if i + 2 >= len(lines):
        return False
    over, title, under = lines[i], lines[i + 1].strip(), lines[i + 2]
    return (
        bool(title)
        and not _RST_ADORNMENT_RE.match(title)
        and bool(_RST_ADORNMENT_RE.match(over))
        and bool(_RST_ADORNMENT_RE.match(under))
        and over.strip()[0] == under.strip()[0]
        and len(under.strip()) >= len(title)
    )


def _rst_underlined_title(lines: list[str], i: int) -> bool:
    if i + 1 >= len(lines):
        return False
    title, under = lines[i], lines[i + 1]
    return (
        bool(title.strip())
        and not title[0].isspace()  # an indented line is a block quote, not a title
        and not _RST_ADORNMENT_RE.match(title)
        and not _RST_DIRECTIVE_RE.match(title)
        and bool(_RST_ADORNMENT_RE.match(under))
        and len(under.strip()) >= len(title.strip())
    )


def _rst_block(
    lines: list[str], start: int, marker_indent: int, *, skip_options: bool
) -> tuple[list[SourceLine], list[SourceLine], int]:
    """The block indented under a marker line: blank lines before it, its de-indented lines, the index after it."""
    i = start
    if skip_options:
        while i < len(lines) and lines[i].strip().startswith(":") and _indent(lines[i]) > marker_indent:
            i += 1
    end = i
    last_content = -1
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > marker_indent):
        if lines[end].strip():
            last_content = end
        end += 1
    if last_content < 0:
        return [], [], start
    first_content = next(k for k in range(i, last_content + 1) if lines[k].strip())
    span = range(first_content, last_content + 1)
    dedent = min(_indent(lines[k]) for k in span if lines[k].strip())
    body = [SourceLine(k + 1, lines[k][dedent:].rstrip() if lines[k].strip() else "") for k in span]
    gap = [SourceLine(k + 1, "") for k in range(i, first_content)]
    return gap, body, last_content + 1
