"""``opsmith prompt list|show|run``: versioned prompt templates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.markup import escape

from opsmith.cli._context import close_quietly, settings_from
from opsmith.cli._output import err, out, print_json
from opsmith.cli.rag import JsonOpt

if TYPE_CHECKING:
    from opsmith.config import Settings
    from opsmith.llm._base import ChatModel
    from opsmith.prompts import PromptTemplate

app = typer.Typer(help="Versioned prompt templates: list, show and run them.", no_args_is_help=True)

# As for `opsmith compare`: fake is an offline demonstration, not a configurable provider.
RunProvider = Literal["none", "anthropic", "openai", "local_hf", "fake"]
#: How a demonstration run is labelled (the name `opsmith compare` gives its fake provider).
DEMO_LABEL = "demo (fake provider)"

#: Prompts built in code rather than from a template, listed so that every template id in
#: `opsmith logs list` has a row in `opsmith prompt list`. The grounded answer is assembled
#: from retrieved excerpts, so `opsmith ask` runs it; the version is rag.answer.PROMPT_VERSION.
CODE_PROMPTS: dict[str, tuple[int, str]] = {
    "rag-answer": (
        2,
        "Answer from retrieved runbook excerpts, citing [n] (opsmith ask, serve, mcp). Built in code from"
        " the excerpts: run it with `opsmith ask`.",
    ),
}
#: The grounded answer's user message, as `opsmith.rag.answer.build_messages` writes it.
RAG_ANSWER_USER = (
    "Runbook excerpts:\n\n{excerpts}\n\nQuestion: {question}\n\nAnswer from the excerpts only, citing [n]."
)


@app.command("list")
def list_command(json_output: JsonOpt = False) -> None:
    """List built-in templates and your own ($OPSMITH_HOME/prompts/*.yaml), and the prompts built in code."""
    from opsmith.prompts import list_templates

    templates = list_templates(settings_from())
    rows = [{"id": t.id, "version": t.version, "description": t.description, "source": t.source} for t in templates]
    taken = {t.id for t in templates}
    rows += [
        {"id": name, "version": version, "description": description, "source": "code"}
        for name, (version, description) in CODE_PROMPTS.items()
        if name not in taken
    ]
    rows.sort(key=lambda row: str(row["id"]))
    if json_output:
        print_json({"templates": rows})
        return
    from rich.table import Table

    table = Table("id", "version", "source", "description", box=None, header_style="bold")
    for row in rows:
        table.add_row(*(escape(str(row[key])) for key in ("id", "version", "source", "description")))
    out.print(table)


def _template(template_id: str, settings: Settings) -> PromptTemplate:
    """A template by id, or a prompt built in code shown as one (``source: code``)."""
    from opsmith.errors import TemplateError
    from opsmith.prompts import PromptTemplate, load_template

    try:
        return load_template(template_id, settings)
    except TemplateError:
        if template_id not in CODE_PROMPTS:
            raise
    from opsmith.rag.answer import SYSTEM_PROMPT

    version, description = CODE_PROMPTS[template_id]
    return PromptTemplate(
        id=template_id,
        version=version,
        description=description,
        system=SYSTEM_PROMPT,
        user=RAG_ANSWER_USER,
        source="code",
    )


@app.command("show")
def show(
    template_id: Annotated[str, typer.Argument(metavar="ID", help="Template id, from `opsmith prompt list`.")],
    json_output: JsonOpt = False,
) -> None:
    """Show a template: messages, examples, parameters and the reduced schema sent to the provider."""
    template = _template(template_id, settings_from())
    data = describe(template)
    if json_output:
        print_json(data)
        return
    out.print(f"[bold]{escape(template.id)}[/] v{template.version}  [dim]{escape(template.source)}[/]")
    out.print(escape(template.description))
    out.print(f"variables: {escape(', '.join(data['variables']) or '(none)')}")
    out.print(f"params: {escape(json.dumps(data['params']))}")
    for title, text in (("system", template.system), ("user", template.user)):
        out.print(f"\n[bold cyan]{title}[/]")
        out.print(text.rstrip(), markup=False)
    out.print(f"\n[bold cyan]examples[/]: {len(template.examples)}")
    if data["strict_schema"] is not None:
        out.print(f"\n[bold cyan]schema sent to the provider[/] [dim](hash {data['schema_hash']})[/]")
        out.print(json.dumps(data["strict_schema"], indent=2), markup=False)
        if data["dropped"]:
            out.print(f"[dim]checked after the call instead: {escape(', '.join(data['dropped']))}[/]")


def describe(template: PromptTemplate) -> dict[str, Any]:
    """The template as JSON, with its variables, the reduced schema, what was dropped and its hash."""
    from opsmith.llm.structured import schema_hash, strict_schema

    data = template.model_dump(mode="json")
    data["variables"] = template.variables()
    data["strict_schema"] = data["dropped"] = data["schema_hash"] = None
    if template.output_schema is not None:
        reduced, dropped = strict_schema(template.output_schema)
        data.update(strict_schema=reduced, dropped=dropped, schema_hash=schema_hash(reduced))
    return data


@app.command("run")
def run(
    template_id: Annotated[str, typer.Argument(metavar="ID", help="Template id, from `opsmith prompt list`.")],
    var: Annotated[
        list[str] | None,
        typer.Option("--var", help="name=value, or name=@FILE to read the value from a file (@@ for a literal @)."),
    ] = None,
    provider: Annotated[
        RunProvider | None,
        typer.Option("--provider", help="anthropic, openai, local_hf, or fake (an offline demonstration)."),
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model name for the provider.")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="OpenAI-compatible server URL.")] = None,
    max_attempts: Annotated[
        int | None,
        typer.Option(
            "--max-attempts", min=1, help="Calls allowed to get schema-valid output (OPSMITH_LLM_MAX_ATTEMPTS)."
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Render a template with --var values, call the configured LLM and print the validated output.

    --provider fake runs offline, as `opsmith compare` does: a demonstration, not a model, that
    replies with the template's first example (echoing the message when it has none).
    """
    from opsmith.errors import ConfigError, InputError, TemplateError
    from opsmith.llm.calllog import CallLog
    from opsmith.llm.registry import get_chat_model
    from opsmith.prompts import load_template, run_template

    settings = settings_from(
        provider=None if provider == "fake" else provider,
        model=model,
        base_url=base_url,
        llm_max_attempts=max_attempts,
    )
    try:
        template = load_template(template_id, settings)
    except TemplateError:
        if template_id not in CODE_PROMPTS:
            raise
        raise InputError(
            f"'{template_id}' is built in code from the runbook excerpts a question retrieves"
            ' — run it with `opsmith ask "QUESTION"`'
        ) from None
    variables = parse_vars(var or [])
    template.render(variables)  # a missing or unknown variable fails before any provider is set up
    chat_model = _demo_model(template) if provider == "fake" else get_chat_model(settings)
    if chat_model is None:
        raise ConfigError(
            "`opsmith prompt run` needs an LLM but the provider is none"
            " — set OPSMITH_PROVIDER to anthropic or openai (or pass --provider)"
        )
    try:
        result = run_template(
            template,
            variables,
            chat_model=chat_model,
            settings=settings,
            log=CallLog.for_settings(settings),
            max_attempts=settings.llm_max_attempts,
        )
    finally:
        close_quietly(chat_model)
    if provider == "fake":
        err.print(f"[bold yellow]DEMONSTRATION — {DEMO_LABEL}: not a real model.[/]")
    if json_output:
        print_json(result)
        return
    if isinstance(result["output"], str):
        out.print(result["output"], markup=False, highlight=False)
    else:
        print_json(result["output"])
    usage = result["usage"]
    err.print(
        f"[dim]{escape(template.id)} v{template.version} · {result['attempts']} attempt(s) · "
        f"{usage['input_tokens']} in / {usage['output_tokens']} out tokens · {result['latency_ms']:.0f} ms · "
        f"call {result['call_id']}[/]"
    )


def _demo_model(template: PromptTemplate) -> ChatModel:
    """The offline stand-in for ``--provider fake``: replays the template's first example.

    A template's examples are checked against its output schema when it loads, so the reply
    validates, and the run shows rendering, validation and the call log working with no model.
    """
    from opsmith.errors import ConfigError
    from opsmith.llm._base import Message
    from opsmith.testing import FakeChatModel

    if template.output_schema is not None and not template.examples:
        raise ConfigError(
            f"--provider fake replies with a template's first example, and '{template.id}' has an output"
            " schema but no examples — add one to the template, or pick a real provider"
        )

    def reply(messages: list[Message]) -> str:
        # The first assistant message is the first example's output; with none, echo the question.
        return next((m.content for m in messages if m.role == "assistant"), messages[-1].content)

    return FakeChatModel(reply=reply, model="demo")


def parse_vars(items: list[str]) -> dict[str, str]:
    """``--var`` values as a dict: ``name=value``, ``name=@FILE`` (file contents), ``name=@@x`` (``@x``)."""
    from opsmith.errors import InputError, PathNotFoundError

    variables: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise InputError(f"Bad --var {item!r} — use --var name=value or --var name=@FILE")
        if name in variables:
            raise InputError(f"--var {name} is given twice — pass each variable once")
        if value.startswith("@@"):
            value = value[1:]
        elif value.startswith("@"):
            path = Path(value[1:]).expanduser()
            if not path.is_file():
                raise PathNotFoundError(path)
            try:
                value = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise InputError(f"Cannot read {path} for --var {name} ({exc}) — pass a UTF-8 text file") from exc
        variables[name] = value
    return variables
