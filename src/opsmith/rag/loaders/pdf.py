"""PDF (``.pdf``): the extracted text, with headings and code told apart by font.

A line set in a font markedly larger than the body text (the size that carries the most
characters) becomes a heading, larger sizes higher levels; a line set wholly in a monospaced
font becomes code. A line number is the 1-based line in the text extracted from all pages in
order, since a PDF has no source lines of its own. pypdf is imported only when a PDF is loaded.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any

from opsmith.rag.documents import SkipFile, SourceLine
from opsmith.rag.loaders._common import Format, collapse, escape_block_syntax, fenced, first_h1, split_lines

__all__ = ["FORMAT", "load"]


def load(raw: bytes, notes: list[str]) -> tuple[list[SourceLine], str | None]:
    """The extracted lines; the document info's title, else the first heading, the title.

    Raises :class:`SkipFile` for an encrypted PDF, one pypdf cannot parse, or one without text
    (scanned); a page whose extraction fails is noted in ``notes`` and left out.
    """
    from pypdf import PasswordType, PdfReader

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
    return lines, title or first_h1(lines)


FORMAT = Format("pdf", (".pdf",), load)

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


def _pdf_title(reader: Any) -> str | None:
    try:
        metadata = reader.metadata
        value = metadata.title if metadata is not None else None
    except Exception:  # a broken info dictionary just means no title
        return None
    return collapse(str(value)) or None if value else None


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
        return [_PdfLine(text, [], False) for text in split_lines(page.text)]
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
            out.extend(fenced(code[0].number, "", code))
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
                out.append(SourceLine(number, f"{'#' * levels[size]} {collapse(line.text)}"))
            else:
                out.append(SourceLine(number, escape_block_syntax(line.text)))
        close_code()  # a fenced block never spans a page break
    return out
