"""The ``opsmith`` command line: thin commands over the library, grouped by noun.

Every command parses its arguments, calls one library function and renders the result
as rich text or, with ``--json``, as one JSON document. User errors
(:class:`~opsmith.errors.OpsmithError`) become one red line and a non-zero exit status.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from opsmith.cli import advise, compare, doctor, evaluate, finetune, logs, mcp, prompt, rag, review, serve
from opsmith.cli._extras import missing_extra_message
from opsmith.cli._output import fail_line
from opsmith.errors import OpsmithError

app = typer.Typer(
    name="opsmith",
    help="Build DevOps/SRE LLM assistants (prompt, RAG, fine-tune) and measure which approach is right.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from opsmith import __version__

        typer.echo(f"opsmith {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_print_version),
    ] = False,
) -> None:
    # No docstring: the app's help text above is what `opsmith --help` shows.
    pass


rag.register(app)
app.add_typer(rag.collections_app, name="collections")
app.add_typer(evaluate.app, name="eval")
app.add_typer(prompt.app, name="prompt")
app.add_typer(logs.app, name="logs")
app.add_typer(finetune.app, name="finetune")
doctor.register(app)
review.register(app)
mcp.register(app)
serve.register(app)
compare.register(app)
advise.register(app)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except OpsmithError as exc:
        fail_line(str(exc))
        sys.exit(exc.exit_code)
    except ModuleNotFoundError as exc:
        message = missing_extra_message(exc)
        if message is None:
            raise
        fail_line(message)
        sys.exit(2)
