"""``opsmith finetune validate`` and ``opsmith finetune estimate``: check the data, then price the run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.markup import escape

from opsmith.cli._output import out, print_json, warn

if TYPE_CHECKING:
    from opsmith.finetune.data import FixResult, ValidationReport
    from opsmith.finetune.estimate import Estimate

# Spelled out rather than imported, so `--help` does not import the library modules.
DataFormat = Literal["auto", "alpaca", "chat"]
Method = Literal["lora", "qlora", "full"]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts.")]
FormatOpt = Annotated[
    DataFormat, typer.Option("--format", help="Data format: alpaca, chat, or auto (from the first row).")
]
BaseModelOpt = Annotated[
    str | None,
    typer.Option("--base-model", help="Model id or folder: its tokenizer counts tokens when it is on disk."),
]
#: Problems listed in the human output; --json lists them all.
SHOWN_PROBLEMS = 50


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
    app.command("estimate")(estimate_command)


def validate(
    data: Annotated[Path, typer.Argument(help="JSONL training file (alpaca or chat).", show_default=False)],
    fmt: FormatOpt = "auto",
    base_model: BaseModelOpt = None,
    sequence_len: Annotated[
        int | None, typer.Option("--sequence-len", min=1, help="Flag rows with more prompt + completion tokens.")
    ] = None,
    fix: Annotated[
        Path | None,
        typer.Option("--fix", metavar="OUT.jsonl", help="Write the rows without errors to OUT (never the input)."),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Check training data before spending a GPU hour: every problem by line, token stats.

    Exit status: 0 no errors (warnings allowed), or with --fix, the written file has none;
    1 errors found (with --fix: the written file still has errors, or no rows); 2 bad input.
    """
    from opsmith.finetune.data import check_fix_target, fix_file, validate_file

    if fix is not None:
        check_fix_target(data, fix)  # before the work: --fix never edits the input
    report = validate_file(data, fmt=fmt, base_model=base_model, sequence_len=sequence_len)
    fixed = fix_file(report, fix) if fix is not None else None
    # What --fix is for is a file to train on, so its status is the written file's: checked
    # again with the same options rather than assumed (dropping rows cannot add a duplicate, but
    # an empty file is no training set).
    clean = not report.errors
    if fixed is not None and not clean:
        clean = (
            fixed.kept > 0 and validate_file(fixed.path, fmt=fmt, base_model=base_model, sequence_len=sequence_len).ok
        )
    if json_output:
        print_json({**report.to_dict(), "fix": {**fixed.to_dict(), "clean": clean} if fixed else None})
    else:
        _render_report(report, fixed, clean)
    if not clean:
        raise typer.Exit(1)


def _render_report(report: ValidationReport, fixed: FixResult | None, clean: bool) -> None:
    from rich.table import Table

    stats = report.stats
    out.print(
        f"[bold]{escape(str(report.path))}[/]: {report.format or 'unknown format'} · {report.records:,} rows"
        f" ({report.valid:,} valid, {report.clean:,} clean) · tokens counted with {escape(report.token_counter)}"
    )
    table = Table(box=None, pad_edge=False)
    table.add_column("tokens")
    for column in ("min", "p50", "p95", "max"):
        table.add_column(column, justify="right")
    for name, lengths in (("prompt", stats.prompt_tokens), ("completion", stats.completion_tokens)):
        table.add_row(name, *(f"{value:,}" for value in (lengths.min, lengths.p50, lengths.p95, lengths.max)))
    out.print(table)
    out.print(f"Total training tokens (one epoch): [bold]{stats.total_tokens:,}[/]")
    if report.errors:
        counts = ", ".join(f"{kind} {n}" for kind, n in sorted(report.error_counts().items()))
        out.print(f"\n[bold red]{len(report.errors):,} errors[/] ({counts})")
        for problem in report.errors[:SHOWN_PROBLEMS]:
            out.print(f"  line {problem.line}  [red]{problem.kind}[/]  {escape(problem.message)}")
        if len(report.errors) > SHOWN_PROBLEMS:
            out.print(f"  … and {len(report.errors) - SHOWN_PROBLEMS:,} more (--json lists them all)")
    else:
        out.print("[bold green]No errors.[/]")
    for problem in report.warnings:
        where = f"line {problem.line}: " if problem.line else ""
        warn(f"{where}{problem.message}")
    if fixed is not None:
        dropped = ", ".join(f"{kind} {n}" for kind, n in sorted(fixed.dropped.items())) or "none"
        repaired = ", ".join(f"{kind} {n}" for kind, n in sorted(fixed.repaired.items()))
        also = f"; repaired {sum(fixed.repaired.values()):,} ({repaired}, lone surrogates removed)" if repaired else ""
        out.print(
            f"Wrote {fixed.kept:,} rows to [bold]{escape(str(fixed.path))}[/];"
            f" dropped {sum(fixed.dropped.values()):,} ({dropped}){also}."
            + (
                " It validates with no errors."
                if clean
                else " [bold red]No rows were left to train on.[/]"
                if fixed.kept == 0
                else " [bold red]It still has errors[/] (validate it to see them)."
            )
        )


def estimate_command(
    data: Annotated[
        Path | None,
        typer.Argument(help="JSONL training file whose tokens to count (or --tokens).", show_default=False),
    ] = None,
    tokens: Annotated[
        int | None, typer.Option("--tokens", min=1, help="Tokens in the data, instead of a file.")
    ] = None,
    epochs: Annotated[float, typer.Option("--epochs", min=0.01, help="Passes over the data.")] = 1.0,
    base_model: Annotated[
        str | None,
        typer.Option("--base-model", help="Model id or folder: prices, parameter count and shape when known."),
    ] = None,
    params: Annotated[
        str | None, typer.Option("--params", help="Parameter count, e.g. 8B, 1.5B, 350M (overrides --base-model).")
    ] = None,
    method: Annotated[Method, typer.Option("--method", help="Headline method: lora, qlora or full.")] = "lora",
    gpu: Annotated[str, typer.Option("--gpu", help="GPU type, e.g. A100-80GB, H100-80GB, L4, T4.")] = "A100-80GB",
    sequence_len: Annotated[int, typer.Option("--sequence-len", min=1, help="For activation memory.")] = 2048,
    micro_batch_size: Annotated[int, typer.Option("--micro-batch-size", min=1, help="For activation memory.")] = 1,
    price_table: Annotated[
        Path | None, typer.Option("--price-table", metavar="FILE", help="A price table YAML replacing the shipped one.")
    ] = None,
    price_per_mtok: Annotated[
        float | None, typer.Option("--price-per-mtok", min=0, metavar="USD", help="Training $/1M tokens for this run.")
    ] = None,
    query_prompt_tokens: Annotated[
        int, typer.Option("--query-prompt-tokens", min=0, help="Prompt tokens per query, for inference cost.")
    ] = 500,
    query_output_tokens: Annotated[
        int, typer.Option("--query-output-tokens", min=0, help="Output tokens per query, for inference cost.")
    ] = 200,
    fine_tuned_prompt_tokens: Annotated[
        int | None,
        typer.Option("--fine-tuned-prompt-tokens", min=0, help="Prompt tokens per query for the tuned model."),
    ] = None,
    fmt: FormatOpt = "auto",
    json_output: JsonOpt = False,
) -> None:
    """Estimate a run: training tokens, dollars, GPU-hours and memory per method, inference cost.

    Prices come from a dated, sourced table shipped with opsmith; throughput and memory from
    documented rules of thumb. Measure before committing a budget.
    """
    from opsmith.finetune.estimate import estimate

    result = estimate(
        tokens=tokens,
        data=data,
        fmt=fmt,
        epochs=epochs,
        base_model=base_model,
        params=params,
        method=method,
        gpu=gpu,
        sequence_len=sequence_len,
        micro_batch_size=micro_batch_size,
        price_table=price_table,
        price_per_mtok=price_per_mtok,
        query_prompt_tokens=query_prompt_tokens,
        query_output_tokens=query_output_tokens,
        fine_tuned_prompt_tokens=fine_tuned_prompt_tokens,
    )
    if json_output:
        print_json(result.to_dict())
    else:
        _render_estimate(result)


def _render_estimate(result: Estimate) -> None:
    from rich.table import Table

    epochs = f"{result.epochs:g} epoch{'s' if result.epochs != 1 else ''}"
    counted = f", counted with {escape(result.data['token_counter'])}" if result.data else ""
    out.print(
        f"Training tokens: [bold]{result.training_tokens:,}[/] ({result.data_tokens:,} data tokens × {epochs}{counted})"
    )
    if result.params is not None:
        model = f"{escape(result.base_model)}, " if result.base_model else ""
        out.print(f"Model: {model}{result.params / 1e9:.3g}B parameters ({result.params_source})")
    if result.costs:
        out.print(f"\n[bold]Training cost[/] (price table {escape(result.price_table_version or '')})")
        costs = Table(box=None, pad_edge=False)
        for column in ("offering", "$/1M tokens", "cost", "as of"):
            costs.add_column(column, justify="right" if column in ("$/1M tokens", "cost") else "left")
        for cost in result.costs:
            costs.add_row(
                escape(cost.offering),
                f"{cost.training_per_mtok:,.2f}",
                f"[bold]${cost.training_cost_usd:,.2f}[/]",
                cost.as_of or "",
            )
        out.print(costs)
        sources = sorted({cost.source for cost in result.costs if cost.source != "--price-per-mtok"})
        if sources:
            out.print(f"[dim]prices from {escape(', '.join(sources))} — check them before relying on a figure[/]")
    if result.methods:
        out.print(
            f"\n[bold]GPU[/]: {result.gpu.name} ({result.gpu.memory_gb:g} GB) · sequence {result.sequence_len:,}"
            f" × micro-batch {result.micro_batch_size}"
        )
        methods = Table(box=None, pad_edge=False)
        for column in ("method", "memory", "GPUs", "tokens/s", "GPU-hours", "wall hours"):
            methods.add_column(column, justify="left" if column == "method" else "right")
        for name, item in result.methods.items():
            marker = " *" if name == result.method else ""
            methods.add_row(
                f"{name}{marker}",
                f"{item.memory_gb:,.1f} GB",
                str(item.gpus_needed) if item.gpus_needed else "—",
                f"{item.tokens_per_second:,.0f}",
                f"{item.gpu_hours:,.2f}",
                f"{item.wall_hours:,.2f}" if item.wall_hours is not None else "—",
            )
        out.print(methods)
        chosen = result.selected
        if chosen is not None:
            out.print(f"[dim]tokens/s: {escape(chosen.throughput_source)}[/]")
    if result.inference:
        query = result.query
        out.print(
            f"\n[bold]Inference per 1,000 queries[/] ({query['prompt_tokens']} prompt + {query['output_tokens']}"
            f" output tokens; tuned prompt {query['fine_tuned_prompt_tokens']})"
        )
        inference = Table(box=None, pad_edge=False)
        for column in ("offering", "base", "fine-tuned"):
            inference.add_column(column, justify="left" if column == "offering" else "right")
        for per_query in result.inference:
            inference.add_row(
                escape(per_query.offering),
                _usd(per_query.base_per_1k_queries_usd),
                _usd(per_query.fine_tuned_per_1k_queries_usd),
            )
        out.print(inference)
    for note in result.notes:
        warn(note)


def _usd(value: float | None) -> str:
    return "—" if value is None else f"${value:,.4g}"
