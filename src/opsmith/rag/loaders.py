"""Turn files into :class:`~opsmith.rag.documents.Document` objects.

Every supported format is normalised to markdown-like :class:`SourceLine` lists: ``#``
headings and fenced code blocks, each line keeping the 1-based line number it has in the
original file. A file that cannot be indexed raises :class:`SkipFile` with a reason the user
can act on. bs4 and pypdf are imported only when an HTML or PDF file is loaded.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import math
import os
import re
import stat
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from opsmith.rag.documents import Document, SkipFile, SourceLine

if TYPE_CHECKING:
    from bs4 import BeautifulSoup
    from bs4.element import NavigableString, PageElement, Tag

__all__ = ["SUPPORTED_SUFFIXES", "file_digest", "load_document", "open_file"]

_KIND_BY_SUFFIX = {
    ".md": "md",
    ".markdown": "md",
    ".txt": "txt",
    ".rst": "rst",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(_KIND_BY_SUFFIX)

_BINARY_SAMPLE = 8192
# Share of control bytes above which a "text" file is really binary. ESC is allowed
# because logs with ANSI colours are legitimate text.
_MAX_CONTROL_SHARE = 0.10
_TEXT_CONTROL_BYTES = frozenset(b"\t\n\v\f\r\x1b")

_UNDECODABLE_WARNING = "not valid UTF-8; undecodable bytes replaced"


def load_document(path: Path, source: str, *, max_bytes: int, suffix: str | None = None) -> Document:
    """Read ``path`` and normalise it to markdown-like lines that keep their original line numbers.

    Args:
        path: the file to read; its suffix (case-insensitive) picks the loader.
        source: the document id stored on the result (the path relative to what the user gave).
        max_bytes: files larger than this are skipped (``OPSMITH_MAX_FILE_BYTES``).
        suffix: picks the loader instead of ``path``'s own; ingest reads a symlink's target by
            its real path, but the link's name says what the file is.

    Returns:
        A :class:`Document`. ``sha256`` is of the raw bytes. For PDF, a line number is the
        1-based line in the text extracted from all pages in order (pages joined, numbering
        continues from one page to the next), since a PDF has no source lines of its own.

    Raises:
        SkipFile: the file is unsupported, too large, unreadable, not a regular file (a FIFO,
            a device), binary, empty, an encrypted PDF, or a PDF without extractable text.
    """
    suffix = (path.suffix if suffix is None else suffix).lower()
    kind = _KIND_BY_SUFFIX.get(suffix)
    if kind is None:
        raise SkipFile(f"unsupported file type {suffix or '(no extension)'}")
    with open_file(path, max_bytes=max_bytes) as handle:
        try:
            raw = handle.read(max_bytes + 1)
        except OSError as err:
            raise SkipFile(_cannot_read(err)) from None
    if len(raw) > max_bytes:  # the file grew between stat and read
        raise _too_large(max_bytes)
    if not raw.strip():
        raise SkipFile("empty file")

    doc = Document(source=source, path=path, kind=kind, sha256=hashlib.sha256(raw).hexdigest(), lines=[])
    if kind == "pdf":
        doc.lines, doc.title, doc.warnings = _load_pdf(raw)
        return doc

    text = _decode_text(raw, doc.warnings)
    if not text.strip():
        raise SkipFile("empty file")
    raw_lines = _split_lines(text)
    title: str | None
    if kind == "html":
        doc.lines, title = _html_lines(text)
    elif kind == "rst":
        doc.lines, title = _rst_lines(raw_lines), None
    else:
        doc.lines, title = _markdown_lines(raw_lines)
    if title is None and kind != "txt":
        title = _first_h1(doc.lines)
    doc.title = title
    if not any(line.text.strip() for line in doc.lines):
        raise SkipFile("no text content")
    return doc


# --------------------------------------------------------------------------- reading files

_READ_BLOCK = 1 << 20
_FILE_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a folder",
}  # what a path can be besides a regular file (a symlink is followed first)


def open_file(path: Path, *, max_bytes: int) -> BinaryIO:
    """Open ``path`` for reading, having read nothing, if it is a regular file of at most ``max_bytes``.

    Kind and size come from ``stat`` before the file is opened, so a huge file is never read and
    a FIFO or a device (``/dev/zero``) is never opened; they are checked again on the open file
    in case it was swapped in between (the open does not block on a FIFO).

    Raises:
        SkipFile: the file is missing, unreadable, not a regular file, or over ``max_bytes``.
    """
    try:
        _check_file(os.stat(path), max_bytes)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as err:
        raise SkipFile(_cannot_read(err)) from None
    try:
        _check_file(os.fstat(fd), max_bytes)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_digest(path: Path, *, max_bytes: int, prefix: bytes = b"") -> str:
    """SHA-256 of ``prefix`` and the bytes of ``path``, read in blocks (see :func:`open_file`)."""
    digest = hashlib.sha256(prefix)
    seen = 0
    with open_file(path, max_bytes=max_bytes) as handle:
        try:
            while block := handle.read(_READ_BLOCK):
                seen += len(block)
                if seen > max_bytes:  # the file grew after it was checked
                    raise _too_large(max_bytes)
                digest.update(block)
        except OSError as err:
            raise SkipFile(_cannot_read(err)) from None
    return digest.hexdigest()


def _check_file(status: os.stat_result, max_bytes: int) -> None:
    if not stat.S_ISREG(status.st_mode):
        kind = _FILE_KINDS.get(stat.S_IFMT(status.st_mode), "unknown kind")
        raise SkipFile(f"not a regular file ({kind}) — not read")
    if status.st_size > max_bytes:
        raise _too_large(max_bytes)


def _too_large(max_bytes: int) -> SkipFile:
    limit = f"{max_bytes / 1_000_000:.1f} MB" if max_bytes >= 100_000 else f"{max_bytes} bytes"
    return SkipFile(f"larger than {limit} (OPSMITH_MAX_FILE_BYTES) — split it or raise the limit")


def _cannot_read(err: OSError) -> str:
    return f"cannot read: {(err.strerror or str(err)).lower()}"


# --------------------------------------------------------------------------- text input


def _decode_text(raw: bytes, warnings_out: list[str]) -> str:
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
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _split_lines(text: str) -> list[str]:
    # str.splitlines() would also split on \f, \v and U+2028, which editors do not count
    # as line breaks; citations must match what the user sees.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX_H1_RE = re.compile(r"^#[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")


def _fence_after(fence: str | None, text: str) -> str | None:
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


def _fenced(opening: int, language: str, body: list[SourceLine]) -> list[SourceLine]:
    """``body`` in a fence none of its own lines can close; the closing fence takes the last line's number."""
    runs = [len(m.group(0)) for line in body if (m := re.match(r"`{3,}", line.text.lstrip()))]
    fence = "`" * max([3, *(run + 1 for run in runs)])
    return [SourceLine(opening, fence + language), *body, SourceLine(body[-1].number, fence)]


def _first_h1(lines: list[SourceLine]) -> str | None:
    fence: str | None = None
    for line in lines:
        before, fence = fence, _fence_after(fence, line.text)
        if before is None and fence is None:
            heading = _ATX_H1_RE.match(line.text)
            if heading and heading.group(1).strip():
                return heading.group(1).strip()
    return None


# --------------------------------------------------------------------------- markdown and text

_SETEXT_RE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
# A line that markdown reads as something other than paragraph text cannot be a setext title.
_NOT_PARAGRAPH_RE = re.compile(r"^(?: {4}|\t| {0,3}(?:#|>|[-*+][ \t]|\d+[.)][ \t]|\||```|~~~|<))")


def _markdown_lines(raw_lines: list[str]) -> tuple[list[SourceLine], str | None]:
    start, title = _front_matter(raw_lines)
    out: list[SourceLine] = []
    fence: str | None = None
    i = start
    while i < len(raw_lines):
        text = raw_lines[i]
        number = i + 1
        before, fence = fence, _fence_after(fence, text)
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
    title = _collapse(str(value)) if isinstance(value, (str, int, float)) else ""
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


# --------------------------------------------------------------------------- reStructuredText

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
                out.extend(_fenced(i + 1, directive.group(2), body))
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
                out.extend(_fenced(body[0].number, "", body))
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


# --------------------------------------------------------------------------- HTML

_HTML_DROP = frozenset({"script", "style", "noscript", "nav", "header", "footer", "template", "svg", "head"})
_HTML_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_HTML_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "dialog", "div",
        "dl", "dt", "fieldset", "figcaption", "figure", "form", "hgroup", "hr", "html", "li", "main",
        "menu", "ol", "p", "section", "summary", "table", "tbody", "td", "tfoot", "th", "thead", "ul",
    }
)  # fmt: skip
_LANGUAGE_CLASS_RE = re.compile(r"^(?:language|lang)-(.+)$")


def _collapse(text: str) -> str:
    return " ".join(text.split())


_BLOCK_SYNTAX_RE = re.compile(r"^(\s*)(#|```|~~~)")


def _escape_block_syntax(text: str) -> str:
    """Backslash-escape a leading ``#`` or fence so converted body text is not read as a heading or code."""
    return _BLOCK_SYNTAX_RE.sub(r"\1\\\2", text, count=1)


def _html_lines(text: str) -> tuple[list[SourceLine], str | None]:
    from bs4 import BeautifulSoup, Comment, MarkupResemblesLocatorWarning, XMLParsedAsHTMLWarning

    with warnings.catch_warnings():
        # A tiny file whose text looks like a path or an XHTML document is still a
        # document to index; bs4's hints are for programmers, not for users.
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        soup: BeautifulSoup = BeautifulSoup(text, "html.parser")

    title = _collapse(soup.title.get_text()) if soup.title is not None else ""
    for comment in soup.find_all(string=lambda s: isinstance(s, Comment)):
        comment.extract()
    for tag in soup.find_all(["title", *_HTML_DROP]):
        if tag.decomposed:  # inside an element removed earlier
            continue
        # An <article>'s own header holds its title and byline, unlike the site-wide one.
        if tag.name in ("header", "footer") and tag.find_parent(["article", "main"]) is not None:
            continue
        tag.decompose()

    emitter = _HtmlEmitter()
    try:
        emitter.walk(soup)
    except RecursionError:
        raise SkipFile("cannot parse HTML: elements nested too deeply") from None
    emitter.flush()
    return emitter.lines, title or None


@dataclass
class _HtmlBlock:
    sourceline: int | None
    item: bool = False  # a list item
    marker: str = ""  # "- " for a list item until its first line is out
    quote: bool = False
    emitted: bool = False  # whether this block already produced a line or a nested block


@dataclass
class _HtmlEmitter:
    """Walks the parsed tree in document order and emits one line per block of inline text."""

    lines: list[SourceLine] = field(default_factory=list)
    stack: list[_HtmlBlock] = field(default_factory=lambda: [_HtmlBlock(None)])
    buffer: list[str] = field(default_factory=list)
    first_string: NavigableString | None = None

    def walk(self, node: Tag | BeautifulSoup) -> None:
        from bs4.element import NavigableString, PreformattedString, Tag

        for child in node.children:
            if isinstance(child, Tag):
                name = child.name
                if name in _HTML_HEADINGS:
                    self._emit_tag(child, "#" * _HTML_HEADINGS[name] + " " + _inline_text(child), prefixed=False)
                elif name == "pre":
                    self.flush()
                    self._pre(child)
                elif name == "tr":
                    cells = [_inline_text(cell) for cell in child.find_all(["td", "th"], recursive=False)]
                    self._emit_tag(child, " | ".join(cells) if any(cells) else "", prefixed=True)
                elif name == "code" and child.find(_is_block_tag) is None:
                    self._add_inline(child, _inline_code(child))
                elif name == "br":
                    self.buffer.append(" ")
                elif name in _HTML_BLOCKS:
                    self.flush()
                    self.stack[-1].emitted = True
                    item = name == "li"
                    self.stack.append(_HtmlBlock(child.sourceline, item, "- " if item else "", name == "blockquote"))
                    self.walk(child)
                    self.flush()
                    self.stack.pop()
                else:  # inline element: its text joins the enclosing block's line
                    self.walk(child)
            elif isinstance(child, NavigableString) and not isinstance(child, PreformattedString):
                self._add_inline(child, str(child))

    def _add_inline(self, element: PageElement, text: str) -> None:
        from bs4.element import NavigableString, Tag

        if self.first_string is None and text.strip():
            if isinstance(element, NavigableString):
                self.first_string = element
            elif isinstance(element, Tag):
                found = element.find(string=True)
                self.first_string = found if isinstance(found, NavigableString) else None
        self.buffer.append(text)

    def flush(self) -> None:
        text = _collapse("".join(self.buffer))
        if text:
            block = self.stack[-1]
            # Text after a nested block is not on the block's opening line, so estimate
            # its own line from the nearest preceding tag instead.
            number = block.sourceline if not block.emitted else None
            number = number or _string_line(self.first_string) or self._last_number()
            self._append(number, _escape_block_syntax(text), prefixed=True)
        self.buffer = []
        self.first_string = None

    def _emit_tag(self, tag: Tag, text: str, *, prefixed: bool) -> None:
        self.flush()
        self.stack[-1].emitted = True
        if text.strip("# "):
            text = _escape_block_syntax(text) if prefixed else text
            self._append(tag.sourceline or self._last_number(), text, prefixed=prefixed)

    def _append(self, number: int, text: str, *, prefixed: bool) -> None:
        # Headings and fences stay at column 0, where the chunker looks for them.
        if prefixed:
            marker = ""
            for block in self.stack:
                if block.marker:
                    # One "- " per line even when nested items open together: <li><ul><li>.
                    marker, block.marker = block.marker, ""
            quote = "".join("> " for block in self.stack if block.quote)
            depth = sum(block.item for block in self.stack)
            if marker and depth > 1:
                marker = "  " * (depth - 1) + marker
            text = quote + marker + text
        self.lines.append(SourceLine(number, text))
        self.stack[-1].emitted = True

    def _pre(self, pre: Tag) -> None:
        body = pre.get_text()
        start = pre.sourceline or self._last_number()
        # HTML ignores a newline straight after <pre>; html.parser keeps it.
        if body.startswith("\n"):
            body = body[1:]
            start += 1
        if not body.strip():
            return
        code = pre.find("code")
        language = ""
        if code is not None:
            for cls in code.get_attribute_list("class"):
                match = _LANGUAGE_CLASS_RE.match(cls or "")
                if match:
                    language = match.group(1)
                    break
        self.stack[-1].emitted = True
        rows = [SourceLine(start + offset, row.rstrip()) for offset, row in enumerate(_split_lines(body))]
        self.lines.extend(_fenced(pre.sourceline or start, language, rows))

    def _last_number(self) -> int:
        return self.lines[-1].number if self.lines else 1


def _is_block_tag(tag: Tag) -> bool:
    return tag.name in _HTML_BLOCKS or tag.name in _HTML_HEADINGS or tag.name == "pre"


def _inline_code(code: Tag) -> str:
    text = code.get_text()
    if text.strip() and "`" not in text and "\n" not in text.strip():
        return f"`{text.strip()}`"
    return text


def _inline_text(tag: Tag) -> str:
    from bs4.element import NavigableString, PreformattedString, Tag

    parts: list[str] = []
    for child in tag.children:
        if isinstance(child, Tag):
            if child.name == "code":
                parts.append(_inline_code(child))
            elif child.name == "br":
                parts.append(" ")
            else:
                parts.append(" " + _inline_text(child) + " " if _is_block_tag(child) else _inline_text(child))
        elif isinstance(child, NavigableString) and not isinstance(child, PreformattedString):
            parts.append(str(child))
    return _collapse("".join(parts))


def _string_line(string: NavigableString | None) -> int | None:
    """Line where ``string``'s text starts: the preceding tag's line plus the newlines in between."""
    from bs4.element import NavigableString, Tag

    if string is None:
        return None
    text = str(string)
    newlines = text[: len(text) - len(text.lstrip())].count("\n")
    for element in string.previous_elements:
        if isinstance(element, Tag) and element.sourceline is not None:
            return int(element.sourceline) + newlines
        if isinstance(element, NavigableString):
            newlines += str(element).count("\n")
    return None


# --------------------------------------------------------------------------- PDF

_HEADING_RATIO = 1.15
_MAX_HEADING_CHARS = 150
# Font names of monospaced faces seen in real PDFs: Courier, NimbusMonL, DejaVuSansMono, CMTT10 (TeX), ...
_MONOSPACE_RE = re.compile(r"courier|mono|monl|consol|menlo|code|cmtt|cmsltt|sftt|typewriter", re.IGNORECASE)


@dataclass
class _Run:
    text: str
    size: float
    monospace: bool


@dataclass
class _PdfPage:
    text: str
    runs: list[_Run] | None  # None when the visitor's runs do not reproduce the page text


def _load_pdf(raw: bytes) -> tuple[list[SourceLine], str | None, list[str]]:
    from pypdf import PasswordType, PdfReader

    notes: list[str] = []
    with warnings.catch_warnings():
        # pypdf reports recoverable damage as warnings; a damaged-but-readable PDF is still worth indexing.
        warnings.simplefilter("ignore")
        try:
            reader = PdfReader(io.BytesIO(raw))
            if reader.is_encrypted:
                # Many PDFs carry only an owner password (printing/copy restrictions) and open with "".
                try:
                    opened = reader.decrypt("") != PasswordType.NOT_DECRYPTED
                except Exception:  # e.g. AES without the cryptography package
                    opened = False
                if not opened:
                    raise SkipFile("encrypted PDF — remove the password to index it")
            pages = list(reader.pages)
            title = _pdf_title(reader)
        except SkipFile:
            raise
        except Exception as err:  # pypdf raises many exception types on malformed input
            raise SkipFile(f"no extractable text (cannot parse PDF: {type(err).__name__})") from None

        extracted: list[_PdfPage] = []
        for number, page in enumerate(pages, start=1):
            try:
                extracted.append(_extract_page(page))
            except Exception as err:  # one broken page should not lose the rest
                notes.append(f"page {number}: text extraction failed ({type(err).__name__})")

    if not any(page.text.strip() for page in extracted):
        raise SkipFile("no extractable text (scanned PDF?)")
    lines = _pdf_lines(extracted)
    return lines, title or _first_h1(lines), notes


def _pdf_title(reader: Any) -> str | None:
    try:
        metadata = reader.metadata
        value = metadata.title if metadata is not None else None
    except Exception:  # a broken info dictionary just means no title
        return None
    return _collapse(str(value)) or None if value else None


def _extract_page(page: Any) -> _PdfPage:
    runs: list[_Run] = []
    reliable = True

    def visit(text: Any, cm: Any, tm: Any, font: Any, size: Any) -> None:
        nonlocal reliable
        if not text:
            return
        try:
            scale = _vertical_scale(tm, cm)
            name = str(font.get("/BaseFont", "")) if font is not None else ""
            runs.append(_Run(str(text), float(size) * scale, bool(_MONOSPACE_RE.search(name))))
        except Exception:  # odd matrices or fonts: fall back to plain lines
            reliable = False
            runs.append(_Run(str(text), 0.0, False))

    text = page.extract_text(visitor_text=visit)
    # The visitor is only trusted when its runs add up to exactly the extracted text;
    # otherwise font sizes could be attached to the wrong lines.
    trusted = reliable and "".join(run.text for run in runs) == text
    return _PdfPage(text, runs if trusted else None)


def _vertical_scale(tm: list[float], cm: list[float]) -> float:
    # Row-vector convention of PDF matrices [a b c d e f]: the text rendering matrix is tm × cm.
    c = tm[2] * cm[0] + tm[3] * cm[2]
    d = tm[2] * cm[1] + tm[3] * cm[3]
    scale = math.hypot(c, d)
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError("degenerate text matrix")
    return scale


@dataclass
class _PdfLine:
    text: str
    sizes: list[float]
    monospace: bool


def _page_lines(page: _PdfPage) -> list[_PdfLine]:
    if page.runs is None:
        return [_PdfLine(text, [], False) for text in _split_lines(page.text)]
    lines: list[_PdfLine] = []
    current: list[_Run] = []

    def close() -> None:
        visible = [run for run in current if run.text.strip()]
        lines.append(
            _PdfLine(
                "".join(run.text for run in current),
                [run.size for run in visible],
                bool(visible) and all(run.monospace for run in visible),
            )
        )

    for run in page.runs:
        pieces = run.text.split("\n")
        for k, piece in enumerate(pieces):
            if k:
                close()
                current = []
            if piece:
                current.append(_Run(piece, run.size, run.monospace))
    if current:
        close()
    return lines


def _size_key(size: float) -> float:
    # Half-point buckets absorb the float noise of sizes computed through matrices.
    return round(size * 2) / 2


def _pdf_lines(pages: list[_PdfPage]) -> list[SourceLine]:
    page_lines = [_page_lines(page) for page in pages]
    # The size that carries the most characters is body text.
    chars: Counter[float] = Counter()
    for page in pages:
        for run in page.runs or []:
            if run.size > 0:
                chars[_size_key(run.size)] += len(run.text.strip())
    body = chars.most_common(1)[0][0] if chars else 0.0

    def heading_size(line: _PdfLine) -> float | None:
        text = line.text.strip()
        # A long line in a large font is a lead paragraph or a cover page, not a heading.
        if not body or not line.sizes or not text or len(text) > _MAX_HEADING_CHARS or line.monospace:
            return None
        size = min(line.sizes)
        return _size_key(size) if size >= _HEADING_RATIO * body else None

    sizes = {size for lines in page_lines for line in lines if (size := heading_size(line)) is not None}
    levels = {size: min(rank, 6) for rank, size in enumerate(sorted(sizes, reverse=True), start=1)}

    out: list[SourceLine] = []
    code: list[SourceLine] = []

    def close_code() -> None:
        if code:
            out.extend(_fenced(code[0].number, "", code))
            code.clear()

    number = 0
    for lines in page_lines:
        for line in lines:
            number += 1
            if line.monospace:
                code.append(SourceLine(number, line.text.rstrip()))
                continue
            close_code()
            size = heading_size(line)
            if size is not None:
                out.append(SourceLine(number, f"{'#' * levels[size]} {_collapse(line.text)}"))
            else:
                out.append(SourceLine(number, _escape_block_syntax(line.text)))
        close_code()  # a fenced block never spans a page break
    return out
