"""``opsmith advise``: walk the decision tree and price each approach."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsmith.cli._output import out, print_json

if TYPE_CHECKING:
    from opsmith.advise import Answers, Recommendation, Tree


def register(app: typer.Typer) -> None:
    app.command("advise")(advise_command)


def advise_command(
    answers_file: Annotated[
        Path | None,
        typer.Option("--answers", metavar="FILE.yaml", help="Answers as YAML; missing keys take the defaults."),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the recommendation, path, costs and next commands as JSON.")
    ] = False,
) -> None:
    """Recommend prompt, RAG, long context, fine-tuning or neither, with the reasons and the costs.

    On a terminal, asks only the questions the decision tree needs; with --answers (or no
    terminal), unanswered keys take the defaults listed in docs/advise.md.
    """
    from opsmith.advise import Answers, load_answers, load_tree, recommend

    tree = load_tree()
    if answers_file is not None:
        answers = load_answers(answers_file)
    elif _is_terminal() and not json_output:
        answers = _ask(tree)
    else:
        answers = Answers()
    recommendation = recommend(answers, tree=tree)
    if json_output:
        print_json(recommendation.to_dict())
    else:
        _render(recommendation)


def _is_terminal() -> bool:
    return sys.stdin.isatty()


def _ask(tree: Tree) -> Answers:
    """Ask, one at a time, only the questions the tree reaches, then the cost model's numbers."""
    from rich.prompt import Confirm, IntPrompt, Prompt

    from opsmith.advise import COST_KEYS, DEFAULTS, Answers, next_question, questions

    answers = Answers()
    by_key = {q.key: q for q in questions(tree)}
    pending = [by_key[key] for key in COST_KEYS]
    while (question := next_question(tree, answers) or (pending.pop(0) if pending else None)) is not None:
        default: Any = DEFAULTS[question.key]
        value: Any
        if question.kind == "bool":
            value = Confirm.ask(question.text, default=bool(default), console=out)
        elif question.kind == "int":
            value = IntPrompt.ask(question.text, default=int(str(default)), console=out)
        else:
            value = Prompt.ask(question.text, default=str(default), console=out)
        setattr(answers, question.key, value)
    return answers


def _money(value: float | None) -> str:
    return "—" if value is None else f"${value:,.2f}"


def _render(rec: Recommendation) -> None:
    from rich.markup import escape
    from rich.table import Table

    also = f" + {', '.join(rec.also)}" if rec.also else ""
    out.print(f"[bold]Recommendation:[/] [bold green]{escape(rec.primary)}[/]{escape(also)}\n")
    for number, step in enumerate(rec.path, 1):
        answer = "" if step.answer is None else f" → {step.answer}"
        out.print(f"{number}. {escape(step.question)}{escape(answer)}\n   [dim]{escape(step.reason)}[/]")

    chosen = {rec.primary, *rec.also}
    table = Table(title="Approaches (★ recommended)", title_justify="left")
    table.add_column("")
    for row in rec.table:
        mark = "★ " if row["recommended"] else ""
        table.add_column(f"{mark}{row['approach']}", style="bold green" if row["approach"] in chosen else None)
    for field, label in [
        ("changes", "What it changes"),
        ("monthly_cost_usd", "Cost / month"),
        ("time_to_production", "Time to production"),
        ("maintenance", "Maintenance"),
        ("freshness", "Freshness"),
        ("data_required", "Data required"),
    ]:
        cells = [_money(row[field]) if field == "monthly_cost_usd" else str(row[field]) for row in rec.table]
        table.add_row(label, *cells)
    out.print()
    out.print(table)

    costs = rec.costs
    assumptions = costs["assumptions"]
    breakeven = costs["breakeven_queries"]
    out.print(
        f"\nCosts: {assumptions['queries_per_day']:,} queries/day × {assumptions['days_per_month']} days, "
        f"current model {assumptions['current_model']}, fine-tuned {assumptions['candidate_small_model']} "
        f"(price table {assumptions['price_table']}). Training: {_money(costs['training_usd'])}; "
        + (
            f"pays back after {breakeven:,} queries."
            if breakeven is not None
            else f"no breakeven: {costs['breakeven_note']}."
        ),
        markup=False,
    )
    out.print("\n[bold]Next:[/]")
    for command in rec.next_commands or ["(no opsmith command helps here — collect data or change approach)"]:
        out.print(f"  {escape(command)}")
