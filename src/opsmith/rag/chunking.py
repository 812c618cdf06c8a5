"""Heading-first chunking that keeps code fences whole and remembers source lines.

The document is read as markdown (loaders normalise every format to it):

1. It is cut into sections at headings; each section knows its heading path
   (``Title > Diagnosis > Logs``).
2. A section is cut into units: paragraphs, list runs and fenced code blocks. A code
   fence is never split, even when it alone exceeds the cap (it then forms its own,
   oversized chunk; the embedder sees its start, the answer gets all of it).
3. Units are packed up to ``max_tokens`` (the embedder's own tokens). A section that does
   not fit is split between units, and each piece starts with up to ``overlap`` tokens of
   the previous piece. A paragraph longer than the cap is split at line, then sentence,
   then word boundaries.
4. Consecutive small sections of one document are merged while they fit, so a three-line
   "Impact" section travels with its neighbours instead of becoming a weak chunk alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from opsmith.rag.documents import Document, SourceLine

__all__ = ["CHUNKER_VERSION", "Chunk", "TokenCounter", "chunk_document", "indexed_text"]

TokenCounter = Callable[[str], int]

#: Bump when chunk boundaries or texts change, so ingest re-chunks files it has already indexed.
CHUNKER_VERSION = 3

_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
# Any indentation: a fence inside a list item ("1. Run:" then an indented ```console) is code too.
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass
class Chunk:
    """A retrievable piece of one document."""

    source: str
    heading: str
    start_line: int
    end_line: int
    text: str
    index: int = 0
    tokens: int = 0
    #: The source line of each line of ``text`` (0 for the blank line between two units), so
    #: answers can cite a section or a command inside a chunk by its exact line.
    line_numbers: list[int] = field(default_factory=list)

    def embedding_text(self, title: str | None = None) -> str:
        return indexed_text(self.heading, self.text, title)


def indexed_text(heading: str, text: str, title: str | None = None) -> str:
    """What the embedder and BM25 see: the heading path gives short chunks their context."""
    prefix = heading
    if title and title not in prefix:
        prefix = f"{title} > {prefix}" if prefix else title
    return f"{prefix}\n\n{text}" if prefix else text


@dataclass
class _Unit:
    lines: list[SourceLine]
    kind: str  # "heading", "code" or "text"
    tokens: int = 0

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


@dataclass
class _Section:
    path: list[str]
    units: list[_Unit] = field(default_factory=list)


def _split_units(lines: Sequence[SourceLine]) -> list[_Section]:
    sections: list[_Section] = [_Section(path=[])]
    stack: list[tuple[int, str]] = []
    paragraph: list[SourceLine] = []

    def flush() -> None:
        if paragraph:
            sections[-1].units.append(_Unit(list(paragraph), "text"))
            paragraph.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line.text)
        if fence:
            flush()
            marker = fence.group(1)
            block = [line]
            i += 1
            while i < len(lines):
                block.append(lines[i])
                stripped = lines[i].text.strip()
                i += 1
                if stripped.startswith(marker[0] * len(marker)) and set(stripped) == {marker[0]}:
                    break
            sections[-1].units.append(_Unit(block, "code"))
            continue
        heading = _HEADING.match(line.text)
        if heading and (heading.group(2) or "").strip():
            flush()
            level, title = len(heading.group(1)), (heading.group(2) or "").strip()
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, title))
            sections.append(_Section(path=[t for _, t in stack], units=[_Unit([line], "heading")]))
        elif not line.text.strip():
            flush()
        else:
            paragraph.append(line)
        i += 1
    flush()
    return [s for s in sections if s.units]


def _split_long_text(unit: _Unit, cap: int, count: TokenCounter) -> list[_Unit]:
    """Cut an over-long paragraph at line, then sentence, then word boundaries."""
    pieces: list[_Unit] = []
    for line in unit.lines:
        tokens = count(line.text)
        if tokens <= cap:
            pieces.append(_Unit([line], "text", tokens))
            continue
        sentences = [s for s in _SENTENCE_END.split(line.text) if s]
        for sentence in sentences:
            sentence_tokens = count(sentence)
            if sentence_tokens <= cap:
                pieces.append(_Unit([SourceLine(line.number, sentence)], "text", sentence_tokens))
                continue
            for text, text_tokens in _word_windows(sentence.split(), cap, count):
                pieces.append(_Unit([SourceLine(line.number, text)], "text", text_tokens))
    # Re-join consecutive small pieces so a long paragraph does not become dozens of lines.
    merged: list[_Unit] = []
    for piece in pieces:
        if merged and merged[-1].tokens + piece.tokens <= cap:
            last = merged[-1]
            if last.lines[-1].number == piece.lines[0].number:
                joined = SourceLine(piece.lines[0].number, f"{last.lines[-1].text} {piece.lines[0].text}")
                last.lines[-1] = joined
                last.lines.extend(piece.lines[1:])
            else:
                last.lines.extend(piece.lines)
            last.tokens += piece.tokens
        else:
            merged.append(piece)
    return merged


def _word_windows(words: list[str], cap: int, count: TokenCounter) -> list[tuple[str, int]]:
    """Consecutive runs of ``words`` of at most ``cap`` tokens each (with their counts)."""
    windows: list[tuple[str, int]] = []
    step = max(cap // 2, 1)  # words per window; shrinks where words are long (identifiers, hashes)
    start = 0
    while start < len(words):
        text = " ".join(words[start : start + step])
        tokens = count(text)
        while tokens > cap and step > 1:
            step = max(min(step - 1, step * cap // tokens), 1)
            text = " ".join(words[start : start + step])
            tokens = count(text)
        if tokens > cap:
            # One word over the cap (a hash, a minified blob): cut it by characters, which a
            # word-piece tokenizer never turns into more tokens than characters.
            windows.extend((part, count(part)) for part in (text[i : i + cap] for i in range(0, len(text), cap)))
        else:
            windows.append((text, tokens))
        start += step
        if tokens * 2 < cap:  # let the window grow back after a run of long words
            step = min(step * 2, max(cap // 2, 1))
    return windows


@dataclass
class _Piece:
    path: list[str]
    units: list[_Unit]
    sections: list[str]

    @property
    def tokens(self) -> int:
        return sum(u.tokens for u in self.units)


def _tail(unit: _Unit, overlap: int, count: TokenCounter) -> _Unit | None:
    """The last lines of a text unit, or failing that the last words, up to ``overlap`` tokens."""
    lines: list[SourceLine] = []
    for line in reversed(unit.lines):
        if count("\n".join(item.text for item in [line, *lines])) > overlap:
            break
        lines.insert(0, line)
    if not lines:
        last = unit.lines[-1]
        words = last.text.split()
        # The most trailing words that fit; a word is at least one token, so at most `overlap`.
        low, high = 0, min(len(words), overlap)
        while low < high:
            middle = (low + high + 1) // 2
            if count(" ".join(words[-middle:])) <= overlap:
                low = middle
            else:
                high = middle - 1
        if not low:
            return None
        lines = [SourceLine(last.number, " ".join(words[-low:]))]
    return _Unit(lines, "text", count("\n".join(line.text for line in lines)))


def _pack_section(section: _Section, cap: int, overlap: int, count: TokenCounter) -> list[_Piece]:
    pieces: list[_Piece] = []
    current: list[_Unit] = []
    fresh = 0  # units in `current` that are not overlap from the previous piece
    for unit in section.units:
        size = sum(u.tokens for u in current)
        if current and fresh and size + unit.tokens > cap:
            pieces.append(_Piece(section.path, current, [section.path[-1]] if section.path else []))
            carried: list[_Unit] = []
            for previous in reversed(current):
                if previous.kind == "heading" or sum(u.tokens for u in carried) + previous.tokens > overlap:
                    break
                carried.insert(0, previous)
            if not carried and overlap and current[-1].kind == "text":
                # The last unit is longer than the overlap: carry its tail instead of nothing.
                tail = _tail(current[-1], overlap, count)
                carried = [tail] if tail else []
            if sum(u.tokens for u in carried) + unit.tokens > cap:
                carried = []
            current, fresh = carried, 0
        current.append(unit)
        fresh += 1
    if current and fresh:
        pieces.append(_Piece(section.path, current, [section.path[-1]] if section.path else []))
    return pieces


def _common_prefix(a: list[str], b: list[str]) -> list[str]:
    prefix: list[str] = []
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        prefix.append(x)
    return prefix


def chunk_document(
    document: Document,
    *,
    count_tokens: TokenCounter,
    max_tokens: int = 256,
    overlap: int = 32,
    merge_sections: bool = True,
) -> list[Chunk]:
    """Split ``document`` into chunks of at most ``max_tokens`` (code fences excepted)."""
    root = document.title or document.source.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    # The heading path is prepended when embedding; leave it room under the cap.
    budget = max(max_tokens - 16, 16)
    pieces: list[_Piece] = []
    for section in _split_units(document.lines):
        units: list[_Unit] = []
        for unit in section.units:
            unit.tokens = count_tokens(unit.text)
            if unit.kind == "text" and unit.tokens > budget:
                # Pieces leave room for the overlap the next piece starts with.
                units.extend(_split_long_text(unit, max(budget - overlap, budget // 2), count_tokens))
            else:
                units.append(unit)
        section.units = units
        pieces.extend(_pack_section(section, budget, overlap, count_tokens))

    if merge_sections:
        merged: list[_Piece] = []
        for piece in pieces:
            last = merged[-1] if merged else None
            if last is not None and last.tokens + piece.tokens <= budget:
                last.units.extend(piece.units)
                last.sections.extend(s for s in piece.sections if s not in last.sections)
                # A preamble (text before the first heading) has no path; it adopts its neighbour's.
                if not last.path or not piece.path:
                    last.path = last.path or list(piece.path)
                else:
                    last.path = _common_prefix(last.path, piece.path)
            else:
                merged.append(_Piece(list(piece.path), list(piece.units), list(piece.sections)))
        pieces = merged

    chunks: list[Chunk] = []
    for piece in pieces:
        path = list(piece.path)
        own = [s for s in piece.sections if s not in path and s != root]
        if own:
            path.append(" / ".join(own))
        if not path or path[0] != root:
            path.insert(0, root)
        text = "\n\n".join(u.text for u in piece.units)
        numbers: list[int] = []
        for unit in piece.units:
            numbers.extend([0] if numbers else [])
            numbers.extend(line.number for line in unit.lines)
        chunks.append(
            Chunk(
                source=document.source,
                heading=" > ".join(path),
                start_line=piece.units[0].lines[0].number,
                end_line=max(line.number for u in piece.units for line in u.lines),
                text=text,
                index=len(chunks),
                tokens=piece.tokens,
                line_numbers=numbers,
            )
        )
    return chunks
