"""Plain text (``.txt``): read as markdown, titled only by front matter.

Setext underlines, ``#`` lines and fences still mark sections and code, but a first ``# line``
does not name the document: in a text file it is as likely a comment as a title.
"""

from __future__ import annotations

from opsmith.rag.documents import SourceLine
from opsmith.rag.loaders._common import Format, decode_text, split_lines
from opsmith.rag.loaders.markdown import markdown_lines

__all__ = ["FORMAT", "load"]


def load(raw: bytes, notes: list[str]) -> tuple[list[SourceLine], str | None]:
    """The file's lines as markdown reads them; its title from front matter only."""
    return markdown_lines(split_lines(decode_text(raw, notes)))


FORMAT = Format("txt", (".txt",), load)
