"""``opsmith compare``: prompt vs RAG vs fine-tuned, measured on an eval set."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.markup import escape

from opsmith.cli._context import close_quietly, open_retriever, settings_from
from opsmith.cli._output import err, out, print_json, progress_bar

if TYPE_CHECKING:
    from opsmith.compare import CompareResult
    from opsmith.finetune.estimate import PriceTable

Provider = Literal["none", "anthropic", "openai", "local_hf", "fake"]


def register(app: typer.Typer) -> None:
    app.command()(compare)


def compare(
    eval_set: Annotated[Path, typer.Argument(help="Eval set (JSON Lines; see docs/compare.md).")],
    variants: Annotated[
        str, typer.Option("--variants", help="Comma-separated: prompt, rag, finetuned, rag+finetuned.")
    ] = "prompt,rag",
    collection: Annotated[str | None, typer.Option("--collection", "-c", help="Collection for RAG variants.")] = None,
    adapter: Annotated[Path | None, typer.Option("--adapter", help="LoRA adapter folder (local_hf).")] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="local_hf: the base model folder; hosted providers: the fine-tuned model id."),
    ] = None,
    provider: Annotated[
        Provider | None, typer.Option("--provider", help="anthropic, openai, local_hf, or fake (offline demo).")
    ] = None,
    general: Annotated[
        Path | None, typer.Option("--general", help="General-purpose eval set for the forgetting check.")
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write report.md/json/html and scores.png here.")
    ] = None,
    k: Annotated[
        int | None, typer.Option("-k", "--top-k", help="Chunks retrieved per question.", min=1, max=100)
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts.")] = False,
) -> None:
    """Measure prompt-only, RAG and fine-tuned variants side by side, with CIs and a recommendation."""
    from opsmith.compare import ResultCache, load_evalset, write_report
    from opsmith.compare import compare as run_compare
    from opsmith.errors import InputError

    names = [n.strip() for n in variants.split(",") if n.strip()]
    from opsmith.compare.variants import VARIANTS, build_variants

    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise InputError(f"Unknown variants {unknown} — choose from {', '.join(VARIANTS)}")
    if any("finetuned" in n for n in names) and adapter is None and model is None:
        raise InputError("The finetuned variants need a model — pass --adapter DIR (with --model BASE) or --model ID")
    items = load_evalset(eval_set)
    general_items = load_evalset(general) if general else []
    settings = settings_from(collection=collection, provider=None if provider == "fake" else provider)
    built = build_variants(names, settings, provider=provider or settings.provider, model=model, adapter=adapter)
    retriever = None
    try:
        if any("rag" in n for n in names):
            retriever = open_retriever(settings)
        total = len(items) * len(names) + (len(general_items) * 2 if general_items else 0)
        config = {"collection": settings.collection, "adapter": str(adapter) if adapter else None}
        with (
            ResultCache(settings.home / "compare" / "cache.sqlite") as cache,
            progress_bar("Comparing", enabled=not json_output) as bar,
        ):
            task = bar.add_task("items × variants", total=total) if bar else None
            result = run_compare(
                items,
                built,
                retriever=retriever,
                cache=cache,
                k=k or settings.top_k,
                config=config,
                prices=_prices(),
                general=general_items,
                refusal_threshold=settings.refusal_threshold,
                on_result=(lambda: bar.advance(task)) if bar else None,
            )
    finally:
        if retriever is not None:
            retriever.store.close()
        for variant in built:
            close_quietly(variant.model)
    if report is not None:
        paths = write_report(result, report)
        err.print(f"[dim]report written: {escape(', '.join(str(p) for p in paths.values()))}[/]")
    if json_output:
        print_json(result.to_dict())
        return
    _render(result)


def _prices() -> PriceTable:
    from opsmith.finetune.estimate import load_price_table

    return load_price_table()


def _render(result: CompareResult) -> None:
    from rich.table import Table

    from opsmith.compare.report import COLUMNS, recommendation_lines, table_rows

    if result.demo:
        out.print("[bold yellow]DEMONSTRATION — demo (fake provider): not a real model.[/]")
    table = Table(title="opsmith compare")
    table.add_column("variant")
    for _, label in COLUMNS:
        table.add_column(label, justify="right")
    for row in table_rows(result):
        table.add_row(*row)
    out.print(table)
    for c in result.comparisons:
        verdict = "[green]significant[/]" if c["significant"] else "[dim]not significant[/]"
        out.print(
            f"{escape(c['b'])} − {escape(c['a'])}: {c['diff']:+.3f}"
            f" (95% CI {c['ci_low']:+.3f} … {c['ci_high']:+.3f}), {verdict}"
        )
    shares = result.diagnosis["shares"]
    out.print("Diagnosis: " + ", ".join(f"{kind} {share:.0%}" for kind, share in shares.items()))
    if result.forgetting:
        f = result.forgetting
        out.print(
            f"Forgetting check: general-set regression {f['regression']:+.3f}"
            f" (base {f['base_score']:.3f} → fine-tuned {f['finetuned_score']:.3f})"
        )
    lines = recommendation_lines(result)
    out.print(f"[bold]{escape(lines[0])}[/]")
    for line in lines[1:]:
        out.print(f"  {line}", markup=False)
    for note in result.notes:
        out.print(f"[dim]{escape(note)}[/]")
