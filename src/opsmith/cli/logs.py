"""``opsmith logs list|show``: read back the LLM call log ($OPSMITH_HOME/calls.sqlite)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from opsmith.cli._context import settings_from
from opsmith.cli._output import out, print_json
from opsmith.cli.rag import JsonOpt

app = typer.Typer(help="Read back logged LLM calls: attempts, raw outputs, errors, tokens.", no_args_is_help=True)


def _status(ok: bool | None) -> str:
    return "[green]ok[/]" if ok else "[yellow]running[/]" if ok is None else "[red]failed[/]"


@app.command("list")
def list_command(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many calls, newest first.")] = 20,
    json_output: JsonOpt = False,
) -> None:
    """The most recent LLM calls, newest first."""
    from opsmith.llm.calllog import CallLog

    calls = CallLog.for_settings(settings_from()).list(limit)
    if json_output:
        print_json({"calls": calls})
        return
    if not calls:
        out.print("No calls logged yet.")
        return
    # Plain aligned lines rather than a table: a narrow terminal wraps them but never
    # truncates an id, and ids are what users copy into `opsmith logs show`.
    rows = [("id", "when (UTC)", "status", "attempts", "tokens in/out", "ms", "template", "provider/model")]
    for call in calls:
        rows.append(
            (
                call["id"],
                call["created_at"][:19].replace("T", " "),
                "ok" if call["ok"] else "running" if call["ok"] is None else "failed",
                str(call["attempts"]),
                f"{call['input_tokens']}/{call['output_tokens']}",
                f"{call['latency_ms']:.0f}",
                f"{call['template_id']} v{call['template_version']}" if call["template_id"] else "-",
                f"{call['provider']}/{call['model']}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for index, row in enumerate(rows):
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        out.print(f"[bold]{escape(line)}[/]" if index == 0 else escape(line))


@app.command("show")
def show(
    call_id: Annotated[str, typer.Argument(metavar="ID", help="Call id, from `opsmith logs list`.")],
    json_output: JsonOpt = False,
) -> None:
    """One call with every attempt's raw output and validation errors."""
    from opsmith.errors import InputError
    from opsmith.llm.calllog import CallLog

    call = CallLog.for_settings(settings_from()).get(call_id)
    if call is None:
        raise InputError(f"No logged call with id {call_id!r} — run `opsmith logs list` to see the ids")
    if json_output:
        print_json(call)
        return
    template = f"{call['template_id']} v{call['template_version']}" if call["template_id"] else "(no template)"
    out.print(
        f"[bold]{call['id']}[/] {escape(template)} · {escape(call['provider'])}/{escape(call['model'])}"
        f" · {_status(call['ok'])} · {call['created_at']}"
    )
    if call["schema_hash"]:
        out.print(f"schema {call['schema_hash']}")
    if call["error"]:
        out.print(f"[red]error:[/] {escape(call['error'])}")
    for attempt in call["attempt_log"]:
        out.print(
            f"\n[bold cyan]attempt {attempt['number']}[/] · stop {escape(attempt['stop_reason'])} · "
            f"{attempt['input_tokens']} in / {attempt['output_tokens']} out tokens · {attempt['latency_ms']:.0f} ms"
        )
        out.print(attempt["raw_output"], markup=False, highlight=False)
        for problem in attempt["errors"]:
            out.print(f"[red]✗[/] {escape(problem)}")
