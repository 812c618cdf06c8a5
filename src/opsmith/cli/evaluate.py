"""``opsmith eval retrieval``: retrieval, refusal and answer metrics on a question set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from opsmith.cli._context import close_quietly, open_retriever, settings_from
from opsmith.cli._output import out, print_json, progress_bar, warn
from opsmith.cli.rag import CollectionOpt, JsonOpt, KOpt, ModeOpt, ProviderOpt, QdrantUrlOpt


class EvalGroup(TyperGroup):
    """``opsmith eval``: a file where the kind of eval belongs gets the command it was meant for."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name = args[0] if args else ""
        if name and name not in self.commands and not ctx.resilient_parsing and _looks_like_a_file(name):
            # `opsmith eval questions.jsonl`: the user forgot which eval to run.
            kinds = " or ".join(f"`{ctx.command_path} {kind} {name}`" for kind in self.commands)
            ctx.fail(f"No such command {name!r}. Did you mean {kinds}?")
        return super().resolve_command(ctx, args)


def _looks_like_a_file(arg: str) -> bool:
    return not arg.startswith("-") and (Path(arg).suffix != "" or "/" in arg or Path(arg).exists())


app = typer.Typer(help="Measure retrieval and answers on your own question set.", no_args_is_help=True, cls=EvalGroup)


@app.command("retrieval")
def retrieval(
    questions_file: Annotated[Path, typer.Argument(help="JSON Lines: id, question, gold, must_include, answerable.")],
    collection: CollectionOpt = None,
    k: KOpt = None,
    mode: ModeOpt = None,
    provider: ProviderOpt = None,
    qdrant_url: QdrantUrlOpt = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write a PNG of support scores against the refusal threshold.")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """recall@1/5, MRR@10, nDCG@10, refusals, and what reaches the engineer: must-include in the answer
    and in the LLM's context, their sizes, and near-misses flagged as not covered.

    Also suggests the refusal threshold that refuses the most unanswerable questions while
    refusing at most 10% of answerable ones, and with --plot draws where each question falls.
    """
    from opsmith.llm.registry import get_chat_model
    from opsmith.rag.answer import answer_question
    from opsmith.rag.evaluate import evaluate, gold_warning, llm_context, load_questions

    questions = load_questions(questions_file)
    settings = settings_from(collection=collection, qdrant_url=qdrant_url, retrieval_mode=mode, provider=provider)
    chat_model = get_chat_model(settings)
    try:
        retriever = open_retriever(settings)
    except BaseException:
        close_quietly(chat_model)
        raise
    top_k = k or settings.top_k
    warnings: list[str] = []
    try:
        with retriever.store:
            indexed = retriever.store.file_states(settings.collection)
            if (problem := gold_warning(questions, indexed, settings.collection)) is not None:
                warnings.append(problem)
                warn(problem)  # before the questions run: the numbers that follow will not explain it
            with progress_bar("Evaluating", enabled=not json_output) as bar:
                task = bar.add_task("Questions", total=len(questions)) if bar else None
                summary = evaluate(
                    questions,
                    rank=lambda q: [hit.chunk.source for hit in retriever.search(q, k=max(10, top_k))],
                    ask=lambda q: answer_question(
                        q,
                        retriever=retriever,
                        chat_model=chat_model,
                        k=top_k,
                        refusal_threshold=settings.refusal_threshold,
                        max_tokens=settings.llm_max_tokens,
                        context_tokens=settings.context_tokens,
                    ),
                    context=llm_context(retriever, k=top_k, context_tokens=settings.context_tokens),
                    progress=(lambda n: bar.advance(task, n)) if bar is not None and task is not None else None,
                )
    finally:
        close_quietly(chat_model)
    summary.update(
        collection=settings.collection,
        mode=settings.retrieval_mode,
        provider=chat_model.provider if chat_model else "none",
        refusal_threshold=settings.refusal_threshold,
        warnings=warnings,
    )
    if plot is not None:
        from opsmith.rag.evaluate import plot_support

        summary["plot"] = str(plot_support(summary["questions"], settings.refusal_threshold, plot))
    if json_output:
        print_json(summary)
        return
    from rich.table import Table

    table = Table(title=f"{questions_file.name} on '{settings.collection}' ({settings.retrieval_mode})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in (
        "recall@1",
        "recall@5",
        "mrr@10",
        "ndcg@10",
        "refusal_precision",
        "refusal_recall",
        "false_refusal_rate",
        "must_include_rate",
        "context_must_include_rate",
        "unanswerable_refused_or_flagged",
        "answerable_flagged",
    ):
        value = summary[key]
        table.add_row(key, "n/a" if value is None else f"{value:.3f}")
    for key in ("context_tokens_median", "context_tokens_p95", "answer_chars_median", "answer_chars_p95"):
        table.add_row(key, str(summary[key]))
    out.print(table)
    suggested = summary["suggested_refusal_threshold"]
    if suggested is not None and abs(suggested - settings.refusal_threshold) > 1e-6:
        out.print(
            f"Suggested refusal threshold for this set: {suggested:.3f} (now {settings.refusal_threshold:.3f});"
            f" set OPSMITH_REFUSAL_THRESHOLD={suggested:.3f} to use it."
        )
    if plot is not None:
        out.print(f"Plot written to {escape(str(plot))}")
    misses = [
        q
        for q in summary["questions"]
        if q["answerable"] and (not q["ranked_sources"] or q["ranked_sources"][0] not in q["gold"])
    ]
    for q in misses:
        ranked = escape(str(q["ranked_sources"][:3]))
        out.print(f"[yellow]{escape(str(q['id']))}[/] gold {escape(str(q['gold']))} ranked {ranked}")
