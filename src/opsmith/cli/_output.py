"""Rendering helpers shared by the CLI commands: JSON, errors and progress."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape

#: Human output goes to stdout; progress, warnings and errors to stderr.
out = Console(highlight=False, soft_wrap=True)
# soft_wrap: an error or warning stays one line however narrow the terminal (or pipe) is.
err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """Exactly one JSON document on stdout, for scripts."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def warn(message: str) -> None:
    # Escaped: messages carry paths, headings and server replies, and "[/x]" in one of
    # them would otherwise be read as rich markup (and raise).
    err.print(f"[yellow]warning:[/] {escape(message)}", markup=True)


def fail_line(message: str) -> None:
    """The one red line a user error becomes."""
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)


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
