"""Rendering helpers shared by the CLI commands: JSON, errors and progress.

Everything the CLI prints goes through :data:`out`, :data:`err` or :func:`print_json`, and
none of them lets data drive the terminal: runbooks, model replies and file names can hold
escape sequences (a clipboard write, a new window title, the cursor moved up over earlier
output). The consoles strip control characters from every piece of text they render; JSON
keeps them as escapes.

Tables are as wide as the terminal (or ``COLUMNS``); with no terminal at all (CI logs, a file)
they keep their natural width up to :data:`UNATTENDED_WIDTH` instead of rich's 80 columns, and a
cell too narrow for a word (a resource address, a command) folds it onto the next line rather
than cutting it with "…".
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console, ConsoleDimensions, ConsoleOptions, Group, RenderableType
from rich.markup import escape
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from opsmith._display import escape_json_controls, mask_urls, strip_controls


class SafeConsole(Console):
    """A rich :class:`Console` that strips control characters from the text it renders.

    Filtering the rendered segments catches every path (markup or not, tables, progress
    descriptions) while leaving rich's own styling and cursor control, which it adds
    after this point or marks as control segments, intact. Strings are also cleaned before
    rich parses them, which drops whole sequences: rich removes BEL itself, and an OSC
    without its BEL would leave ``]52;c;...`` behind.
    """

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(strip_controls(text), **kwargs)

    @property
    def size(self) -> ConsoleDimensions:
        found = super().size
        if self._width is None and "COLUMNS" not in os.environ and not _any_terminal():
            return ConsoleDimensions(UNATTENDED_WIDTH, found.height)
        return found

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size

    def render(self, renderable: RenderableType, options: ConsoleOptions | None = None) -> Iterable[Segment]:
        _fold_tables(renderable)
        for segment in super().render(renderable, options):
            if segment.control is None:
                text = strip_controls(segment.text)
                if text is not segment.text:
                    segment = Segment(text, segment.style)
            yield segment


#: Console width when no standard stream is a terminal and COLUMNS is unset (CI logs, files):
#: rich would assume 80 and squeeze every table; log viewers wrap or scroll long lines themselves.
UNATTENDED_WIDTH = 200


def _any_terminal() -> bool:
    for fd in (0, 1, 2):
        try:
            if os.get_terminal_size(fd).columns:
                return True
        except (OSError, ValueError):
            continue
    return False


def _fold_tables(renderable: object) -> None:
    """Fold, rather than cut with "…", the words too long for a table column (ours and nested)."""
    if isinstance(renderable, Table):
        for column in renderable.columns:
            if column.overflow == "ellipsis":  # rich's default; a column that chose otherwise keeps it
                column.overflow = "fold"
    elif isinstance(renderable, Group):
        for part in renderable.renderables:
            _fold_tables(part)


#: Human output goes to stdout; progress, warnings and errors to stderr.
out = SafeConsole(highlight=False, soft_wrap=True)
# soft_wrap: an error or warning stays one line however narrow the terminal (or pipe) is.
err = SafeConsole(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """Exactly one JSON document on stdout, for scripts (control characters escaped, not dropped)."""
    sys.stdout.write(escape_json_controls(json.dumps(data, indent=2, ensure_ascii=False, default=str)) + "\n")
    sys.stdout.flush()


def warn(message: str) -> None:
    # Escaped: messages carry paths, headings and server replies, and "[/x]" in one of
    # them would otherwise be read as rich markup (and raise). URLs in them lose passwords.
    err.print(f"[yellow]warning:[/] {escape(mask_urls(message))}", markup=True)


def fail_line(message: str) -> None:
    """The one red line a user error becomes (any password in a URL it quotes masked)."""
    err.print(f"[bold red]error:[/] {escape(mask_urls(message))}", markup=True, highlight=False)


@contextmanager
def progress_bar(description: str, *, enabled: bool) -> Iterator[Any]:
    """A rich progress bar on stderr when it is a terminal; a silent stand-in otherwise."""
    if not enabled or not err.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        yield progress
