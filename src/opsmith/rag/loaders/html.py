"""HTML (``.html``, ``.htm``): the page's text as markdown-like lines, at their source lines.

Headings become ``#`` lines, ``<pre>`` blocks fenced code (with the language from a
``language-*`` class), table rows ``a | b`` lines and list items ``- `` lines; navigation,
headers, footers, scripts and styles are dropped. The ``<title>``, else the first ``<h1>``,
names the document. bs4 is imported only when an HTML file is loaded.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opsmith.rag.documents import SkipFile, SourceLine
from opsmith.rag.loaders._common import (
    Format,
    collapse,
    decode_text,
    escape_block_syntax,
    fenced,
    first_h1,
    split_lines,
)

if TYPE_CHECKING:
    from bs4 import BeautifulSoup
    from bs4.element import NavigableString, PageElement, Tag

__all__ = ["FORMAT", "load"]


def load(raw: bytes, notes: list[str]) -> tuple[list[SourceLine], str | None]:
    """The page's text lines; its ``<title>``, else its first ``<h1>``, the title."""
    lines, title = _html_lines(decode_text(raw, notes))
    return lines, title or first_h1(lines)


FORMAT = Format("html", (".html", ".htm"), load)

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


def _html_lines(text: str) -> tuple[list[SourceLine], str | None]:
    from bs4 import BeautifulSoup, Comment, MarkupResemblesLocatorWarning, XMLParsedAsHTMLWarning

    with warnings.catch_warnings():
        # A tiny file whose text looks like a path or an XHTML document is still a
        # document to index; bs4's hints are for programmers, not for users.
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        soup: BeautifulSoup = BeautifulSoup(text, "html.parser")

    title = collapse(soup.title.get_text()) if soup.title is not None else ""
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
        text = collapse("".join(self.buffer))
        if text:
            block = self.stack[-1]
            # Text after a nested block is not on the block's opening line, so estimate
            # its own line from the nearest preceding tag instead.
            number = block.sourceline if not block.emitted else None
            number = number or _string_line(self.first_string) or self._last_number()
            self._append(number, escape_block_syntax(text), prefixed=True)
        self.buffer = []
        self.first_string = None

    def _emit_tag(self, tag: Tag, text: str, *, prefixed: bool) -> None:
        self.flush()
        self.stack[-1].emitted = True
        if text.strip("# "):
            text = escape_block_syntax(text) if prefixed else text
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
        rows = [SourceLine(start + offset, row.rstrip()) for offset, row in enumerate(split_lines(body))]
        self.lines.extend(fenced(pre.sourceline or start, language, rows))

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
    return collapse("".join(parts))


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
