"""``opsmith review``: Terraform security, cost and correctness review with a CI exit code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from opsmith.cli._context import settings_from
from opsmith.cli._output import err, out, print_json, warn

if TYPE_CHECKING:
    from opsmith.config import Settings

# Spelled out rather than imported from opsmith.config, so `--help` does not pay for pydantic.
Provider = Literal["none", "anthropic", "openai", "local_hf"]
FailOn = Literal["critical", "warning", "none"]


def register(app: typer.Typer) -> None:
    app.command("review")(review_command)


def review_command(
    paths: Annotated[list[Path], typer.Argument(help="Folders or .tf files to review.", show_default=False)],
    json_output: Annotated[
        bool, typer.Option("--json", help='Print {"security": [...], "cost": [...], "correctness": [...]}.')
    ] = False,
    sarif: Annotated[
        Path | None, typer.Option("--sarif", metavar="FILE", help="Also write SARIF 2.1.0 to FILE (for code scanning).")
    ] = None,
    fail_on: Annotated[
        FailOn,
        typer.Option("--fail-on", help="Exit 1 when a finding is at or above this severity (none: never)."),
    ] = "critical",
    no_llm: Annotated[bool, typer.Option("--no-llm", help="Rules only, even when a provider is configured.")] = False,
    provider: Annotated[
        Provider | None, typer.Option("--provider", help="LLM provider for the extra review (default: none).")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model name for the provider.")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="OpenAI-compatible server URL.")] = None,
    show_redacted: Annotated[
        bool,
        typer.Option(
            "--show-redacted", help="Print the source exactly as the LLM would get it (secrets redacted); send nothing."
        ),
    ] = False,
) -> None:
    """Review Terraform for security, cost and correctness problems.

    Deterministic rules run offline; with a provider configured an LLM adds what only
    judgement finds. Exit status: 0 clean, 1 findings at or above --fail-on, 2 bad input
    or a review that could not finish.
    """
    from opsmith import __version__
    from opsmith.backend import Backend
    from opsmith.review.render import render_table
    from opsmith.review.sarif import to_sarif

    settings = settings_from(provider=provider, model=model, base_url=base_url)
    if show_redacted:
        with _failures_exit_2():
            _show_redacted(paths, settings)
        return
    with Backend(settings) as backend:
        if not no_llm:
            # A provider that cannot be used fails here, with its own line and exit status.
            backend.chat_model()
        with _failures_exit_2():
            result = backend.review_paths(paths, use_llm=not no_llm)

    # Notes go to stderr in every mode, so `--json` stdout stays one JSON document.
    for skipped in result.skipped:
        warn(f"skipped {skipped.path}: {skipped.reason}")
    for note in result.warnings:
        warn(note)
    if result.dropped_llm_findings:
        warn(f"dropped {result.dropped_llm_findings} LLM finding(s) whose file or line is not in the reviewed code")
    if sarif is not None:
        _write_sarif(sarif, json.dumps(to_sarif(result, version=__version__), indent=2) + "\n")
    if json_output:
        print_json(result.to_dict())
    else:
        out.print(render_table(result))
        if result.llm is not None:
            llm = result.llm
            err.print(
                f"LLM {llm.provider}/{llm.model} ({llm.template}): {llm.findings} finding(s), "
                f"{llm.duplicates} duplicate(s) of rule findings, {llm.attempts} attempt(s), "
                f"{llm.input_tokens}+{llm.output_tokens} tokens",
                style="dim",
                markup=False,
                highlight=False,
            )
    code = result.exit_code(fail_on)
    if code:
        raise typer.Exit(code)


@contextmanager
def _failures_exit_2() -> Iterator[None]:
    """Any failure leaves as an error with exit status 2: to CI, exit 1 means "the Terraform has findings"."""
    from opsmith.errors import OpsmithError, ReviewFailedError

    try:
        yield
    except OpsmithError as exc:
        if exc.exit_code != 1:
            raise
        raise ReviewFailedError(str(exc)) from exc
    except Exception as exc:  # a bug: one line, not a traceback and never exit 1
        raise ReviewFailedError(
            f"Review failed with an internal error ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
            " — please report it with the file that caused it"
        ) from exc


def _show_redacted(paths: list[Path], settings: Settings) -> None:
    from opsmith.review.runner import preview_redacted

    shown, skipped = preview_redacted(paths, settings=settings)
    for item in skipped:
        warn(f"skipped {item.path}: {item.reason}")
    # markup off: Terraform is full of [brackets]; control characters are still stripped.
    out.print("\n\n".join(shown), markup=False, highlight=False)


def _write_sarif(path: Path, text: str) -> None:
    from opsmith.errors import InputError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(
            f"Cannot write SARIF to {path} ({exc.strerror or exc}) — pass a writable path to --sarif"
        ) from exc
