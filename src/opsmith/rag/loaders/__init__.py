"""Turn files into :class:`~opsmith.rag.documents.Document` objects.

Every supported format is normalised to markdown-like :class:`~opsmith.rag.documents.SourceLine`
lists: ``#`` headings and fenced code blocks, each line keeping the 1-based line number it has in
the original file. A file that cannot be indexed raises :class:`~opsmith.rag.documents.SkipFile`
with a reason the user can act on.

One module per format (``markdown``, ``text``, ``rst``, ``html``, ``pdf``), each defining a
:class:`~opsmith.rag.loaders._common.Format`: the document kind, the suffixes it reads and a
``load(raw, notes)`` function. :data:`_FORMATS` below is the registry; a new format is a new
module and one entry there. What they share (decoding, fences, titles) is in ``_common.py``.
Parsers (bs4, pypdf) are imported only when a file of their format is loaded.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from opsmith.rag.documents import Document, SkipFile
from opsmith.rag.loaders import html, markdown, pdf, rst, text

if TYPE_CHECKING:
    from opsmith.rag.loaders._common import Format

__all__ = ["SUPPORTED_SUFFIXES", "file_digest", "load_document", "open_file"]

_FORMATS: tuple[Format, ...] = (markdown.FORMAT, text.FORMAT, rst.FORMAT, html.FORMAT, pdf.FORMAT)
_BY_SUFFIX: dict[str, Format] = {suffix: fmt for fmt in _FORMATS for suffix in fmt.suffixes}

#: File suffixes ingest reads (lower case; matched case-insensitively).
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(_BY_SUFFIX)


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
    fmt = _BY_SUFFIX.get(suffix)
    if fmt is None:
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

    doc = Document(source=source, path=path, kind=fmt.kind, sha256=hashlib.sha256(raw).hexdigest(), lines=[])
    doc.lines, doc.title = fmt.load(raw, doc.warnings)
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
