"""``opsmith prompt list|show|run``: versioned prompt templates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from opsmith.cli._context import close_quietly, settings_from
from opsmith.cli._output import err, out, print_json
from opsmith.cli.rag import JsonOpt, ProviderOpt

if TYPE_CHECKING:
    from opsmith.prompts import PromptTemplate

app = typer.Typer(help="Versioned prompt templates: list, show and run them.", no_args_is_help=True)


@app.command("list")
def list_command(json_output: JsonOpt = False) -> None:
    """List built-in templates and your own ($OPSMITH_HOME/prompts/*.yaml)."""
    from opsmith.prompts import list_templates

    templates = list_templates(settings_from())
    if json_output:
        rows = [{"id": t.id, "version": t.version, "description": t.description, "source": t.source} for t in templates]
        print_json({"templates": rows})
        return
    from rich.table import Table

    table = Table("id", "version", "source", "description", box=None, header_style="bold")
    for t in templates:
        table.add_row(escape(t.id), str(t.version), escape(t.source), escape(t.description))
    out.print(table)


@app.command("show")
def show(
    template_id: Annotated[str, typer.Argument(metavar="ID", help="Template id, from `opsmith prompt list`.")],
    json_output: JsonOpt = False,
) -> None:
    """Show a template: messages, examples, parameters and the reduced schema sent to the provider."""
    from opsmith.prompts import load_template

    template = load_template(template_id, settings_from())
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
    provider: ProviderOpt = None,
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
    """Render a template with --var values, call the configured LLM and print the validated output."""
    from opsmith.errors import ConfigError
    from opsmith.llm.calllog import CallLog
    from opsmith.llm.registry import get_chat_model
    from opsmith.prompts import load_template, run_template

    settings = settings_from(provider=provider, model=model, base_url=base_url, llm_max_attempts=max_attempts)
    template = load_template(template_id, settings)
    variables = parse_vars(var or [])
    template.render(variables)  # a missing or unknown variable fails before any provider is set up
    chat_model = get_chat_model(settings)
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
