"""``opsmith finetune distill``: a teacher model answers prompts, producing training data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.markup import escape

from opsmith.cli._context import close_quietly, settings_from
from opsmith.cli._output import fail_line, out, print_json, progress_bar, warn
from opsmith.cli.rag import JsonOpt

if TYPE_CHECKING:
    from opsmith.finetune.distill import DistillProgress, DistillReport

DistillFormat = Literal["alpaca", "chat"]


def register(app: typer.Typer) -> None:
    app.command("distill")(distill)


def distill(
    teacher: Annotated[
        str,
        typer.Option(
            "--teacher",
            metavar="PROVIDER:MODEL",
            help="anthropic:claude-sonnet-4-6, openai:gpt-4o-mini (or a model on --base-url), local_hf:PATH.",
            show_default=False,
        ),
    ],
    prompts: Annotated[
        Path,
        typer.Option(
            "--prompts", help='JSON lines: {"prompt": ...} or {"instruction": ..., "input": ...}, optional "id".'
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Training data to write (JSON lines); resumed if it exists.")
    ],
    fmt: Annotated[DistillFormat, typer.Option("--format", help="Row format: alpaca or chat.")] = "alpaca",
    template: Annotated[
        str | None, typer.Option("--template", metavar="ID", help="Send this prompt template's system prompt.")
    ] = None,
    system: Annotated[str | None, typer.Option("--system", metavar="TEXT", help="Send this system prompt.")] = None,
    include_system: Annotated[
        bool, typer.Option("--include-system", help="Keep the system prompt in chat rows (default: leave it out).")
    ] = False,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=64, help="Teacher calls at once.")] = 4,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", min=1, help="Answer cap per prompt (OPSMITH_LLM_MAX_TOKENS).")
    ] = None,
    temperature: Annotated[
        float | None, typer.Option("--temperature", min=0, max=2, help="Sampling temperature (teacher default).")
    ] = None,
    price_in: Annotated[
        float | None,
        typer.Option(
            "--price-in",
            min=0,
            metavar="USD",
            help="USD per 1M input tokens (default: the price table's, if it lists the teacher).",
        ),
    ] = None,
    price_out: Annotated[
        float | None, typer.Option("--price-out", min=0, metavar="USD", help="USD per 1M output tokens.")
    ] = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="OpenAI-compatible server URL.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Have a teacher LLM answer each prompt and write alpaca or chat training data.

    Re-running the same command resumes: answered prompts are skipped, failed ones retried.
    """
    from opsmith.errors import PathNotFoundError
    from opsmith.finetune import distill as lib

    settings = settings_from(base_url=base_url, llm_max_tokens=max_tokens)
    # Everything that can be checked without the teacher is checked first: loading a local
    # teacher takes a while, and a hosted one should not be set up for a typo.
    lib.parse_teacher(teacher)
    if not prompts.is_file():
        raise PathNotFoundError(prompts)
    system_text = lib.system_prompt(system, template, settings)
    chat_model = lib.load_teacher(teacher, settings)
    try:
        with progress_bar("Distilling", enabled=not json_output) as bar:
            task = bar.add_task("Distilling", total=None) if bar else None

            def on_progress(state: DistillProgress) -> None:
                if bar is not None and task is not None:
                    bar.update(task, total=state.total, completed=state.done)

            report = lib.distill(
                prompts,
                output,
                teacher=chat_model,
                system=system_text,
                settings=settings,
                fmt=fmt,
                concurrency=concurrency,
                max_tokens=max_tokens,
                temperature=temperature,
                price_in=price_in,
                price_out=price_out,
                include_system=include_system,
                progress=on_progress,
            )
    finally:
        close_quietly(chat_model)
    if json_output:
        print_json(report.to_dict())
    else:
        _render(report)
    if report.failed:
        fail_line(
            f"{report.failed} of {report.prompts} prompts failed — see {report.failures_file};"
            " run the same command again to retry them"
        )
        raise typer.Exit(1)


def _render(report: DistillReport) -> None:
    if report.repaired_partial_line:
        warn(f"removed a half-written last line from {report.output} (left by an interrupted run)")
    for failure in report.failures[:10]:
        warn(f"line {failure.line}{f' ({failure.id})' if failure.id else ''}: {failure.error}")
    if len(report.failures) > 10:
        warn(f"… and {len(report.failures) - 10} more failures in {report.failures_file}")
    cost = ""
    if report.cost_usd is not None:
        cost = f" · ${report.cost_usd:.4f}" + (f" ({report.price_source})" if report.price_source != "given" else "")
    out.print(
        f"[bold]{escape(report.output)}[/]: {report.answered} answered, {report.skipped_existing} already there,"
        f" {report.failed} failed, of {report.prompts} prompts · teacher {escape(report.teacher)}"
    )
    out.print(
        f"{report.input_tokens:,} input + {report.output_tokens:,} output tokens{cost} in {report.seconds:.1f}s",
        markup=False,
        highlight=False,
    )
