"""Prompt templates: YAML files with an id, a version, messages, few-shot examples and an output schema.

A template file looks like this (all keys but ``examples``, ``output_schema`` and
``params`` are required; unknown keys are an error)::

    id: incident-summary
    version: 1
    description: One line for `opsmith prompt list`.
    system: |
      Sent as written (no placeholders).
    user: |
      The final user message. {alert} is filled from the variables;
      write a literal brace as {{ or }}.
    examples:                      # few-shot pairs, sent before the final user message
      - input: {alert: "..."}      # exactly the user message's variables
        output: {title: "..."}     # sent as JSON (or as written, for a string)
    output_schema: {...}           # JSON Schema; leave out for free text
    params: {temperature: 0.0, max_tokens: 1024}

Built-in templates ship in ``opsmith/prompts/templates/``. Files in
``$OPSMITH_HOME/prompts/`` override them by id, so a team can tune a prompt without
forking opsmith; bump ``version`` when you do, since the call log records it.
"""

from __future__ import annotations

import functools
import json
import string
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from opsmith.errors import TemplateError
from opsmith.llm._base import Message

if TYPE_CHECKING:
    from opsmith.config import Settings
    from opsmith.llm._base import ChatModel
    from opsmith.llm.calllog import CallLog

#: Folder under ``$OPSMITH_HOME`` for the user's own templates.
USER_DIR = "prompts"
_KEYS = "id, version, description, system, user, examples, output_schema, params"


class Example(BaseModel):
    """One few-shot pair: the variables for the user message, and the reply to show."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: dict[str, str]
    output: Any


class Params(BaseModel):
    """Call parameters. ``max_tokens`` None means ``OPSMITH_LLM_MAX_TOKENS``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float | None = Field(default=0.0, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)


class PromptTemplate(BaseModel):
    """A versioned prompt: system text, a user message with ``{name}`` placeholders,
    few-shot examples and an optional output schema (None means free text).

    Validation checks that placeholders are plain names, that each example gives exactly
    the template's variables, that ``output_schema`` is valid JSON Schema that can be
    reduced for the providers, and that each example's output matches it. ``source`` is
    ``builtin`` or the file the template came from; it is not a YAML key.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    version: int = Field(strict=True, ge=1)
    description: str
    system: str
    user: str
    examples: list[Example] = Field(default_factory=list)
    output_schema: dict[str, Any] | None = None
    params: Params = Params()
    source: str = "builtin"

    @model_validator(mode="after")
    def _consistent(self) -> PromptTemplate:
        names = _placeholders(self.user)
        for index, example in enumerate(self.examples):
            missing = [name for name in names if name not in example.input]
            extra = sorted(set(example.input) - set(names))
            if missing or extra:
                raise ValueError(
                    f"examples[{index}].input must give exactly the variables {names}"
                    + (f"; missing {missing}" if missing else "")
                    + (f"; unexpected {extra}" if extra else "")
                )
        if self.output_schema is None:
            for index, example in enumerate(self.examples):
                if not isinstance(example.output, str):
                    raise ValueError(f"examples[{index}].output must be text when there is no output_schema")
            return self
        from opsmith.llm.structured import strict_schema, validate_json_schema

        try:
            check = validate_json_schema(self.output_schema)
            strict_schema(self.output_schema)
        except TemplateError as exc:
            raise ValueError(f"output_schema: {exc}") from exc
        for index, example in enumerate(self.examples):
            problems = check(example.output)
            if problems:
                raise ValueError(f"examples[{index}].output does not match output_schema: {'; '.join(problems)}")
        return self

    def variables(self) -> list[str]:
        """The placeholder names in ``user``, in order of first appearance."""
        return _placeholders(self.user)

    def render(self, variables: Mapping[str, str]) -> list[Message]:
        """The messages to send: system, each example as a user/assistant pair, then the user message.

        Raises:
            TemplateError: a variable is missing, unknown, or not a string.
        """
        names = self.variables()
        missing = [name for name in names if name not in variables]
        if missing:
            flags = " ".join(f"--var {name}=..." for name in missing)
            raise TemplateError(
                f"Template '{self.id}' needs variable{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
                f" — pass {flags} (a value of @FILE reads the file)"
            )
        unknown = sorted(set(variables) - set(names))
        if unknown:
            raise TemplateError(
                f"Template '{self.id}' has no variable {', '.join(unknown)}"
                f" — it takes {', '.join(names) or 'no variables'}"
            )
        for name in names:
            if not isinstance(variables[name], str):
                raise TemplateError(
                    f"Variable '{name}' of template '{self.id}' is a {type(variables[name]).__name__}, not text"
                    " — pass a string (json.dumps structured values)"
                )
        messages = [Message("system", self.system)]
        for example in self.examples:
            messages.append(Message("user", self.user.format(**example.input)))
            reply = example.output
            messages.append(Message("assistant", reply if isinstance(reply, str) else json.dumps(reply, indent=2)))
        messages.append(Message("user", self.user.format(**{name: variables[name] for name in names})))
        return messages


def _placeholders(text: str) -> list[str]:
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"user: {exc} (write a literal brace as {{{{ or }}}})") from exc
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(
                f"user: placeholder {shown} is not a plain {{name}} (write a literal brace as {{{{ or }}}})"
            )
        if name not in names:
            names.append(name)
    return names


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _parse(text: str, where: str, source: str) -> PromptTemplate:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None)
        mark = getattr(exc, "problem_mark", None)
        if problem and mark is not None:
            detail = f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
        else:
            detail = " ".join(str(exc).split())
        raise TemplateError(f"Cannot parse prompt template {where}: {detail} — fix the YAML syntax") from exc
    if not isinstance(data, dict):
        raise TemplateError(f"Prompt template {where} is not a YAML mapping — give it the keys {_KEYS}")
    if "source" in data:
        raise TemplateError(f"Invalid prompt template {where}: source: unknown key — remove it (keys: {_KEYS})")
    try:
        return PromptTemplate.model_validate({**data, "source": source})
    except ValidationError as exc:
        problems = "; ".join(_problem(error) for error in exc.errors(include_url=False))
        raise TemplateError(f"Invalid prompt template {where}: {problems} — fix the file (keys: {_KEYS})") from exc


def _problem(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    where = ".".join(str(part) for part in error["loc"])
    # Errors from the whole-template check already start with the key they concern.
    return f"{where}: {message}" if where else message


def read_template(path: Path) -> PromptTemplate:
    """Load and validate one template file.

    Raises:
        TemplateError: the file cannot be read, is not YAML, has unknown keys or invalid values.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"Cannot read prompt template {path}: {exc} — check the file") from exc
    return _parse(text, str(path), str(path))


@functools.cache
def _builtins() -> tuple[PromptTemplate, ...]:
    folder = resources.files("opsmith.prompts").joinpath("templates")
    found = [
        _parse(entry.read_text(encoding="utf-8"), f"builtin {entry.name}", "builtin")
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".yaml")
    ]
    return tuple(found)


def list_templates(settings: Settings) -> list[PromptTemplate]:
    """Built-in templates plus ``$OPSMITH_HOME/prompts/*.yaml`` (and ``.yml``), which override by id.

    Returns the templates sorted by id.

    Raises:
        TemplateError: a user file is invalid, or two user files share an id.
    """
    found = {template.id: template for template in _builtins()}
    folder = settings.home / USER_DIR
    if folder.is_dir():
        seen: dict[str, Path] = {}
        for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
            template = read_template(path)
            if template.id in seen:
                raise TemplateError(
                    f"Prompt template id '{template.id}' is defined in both {seen[template.id]} and {path}"
                    " — change one id or remove one file"
                )
            seen[template.id] = path
            found[template.id] = template
    return sorted(found.values(), key=lambda template: template.id)


def load_template(template_id: str, settings: Settings) -> PromptTemplate:
    """The template with ``template_id`` (a user file wins over a built-in).

    Raises:
        TemplateError: no template has that id (the message lists the ones there are).
    """
    templates = list_templates(settings)
    for template in templates:
        if template.id == template_id:
            return template
    available = ", ".join(template.id for template in templates)
    raise TemplateError(
        f"No prompt template '{template_id}' (available: {available})"
        f" — check `opsmith prompt list`, or add {settings.home / USER_DIR / (template_id + '.yaml')}"
    )


def run_template(
    template: PromptTemplate,
    variables: Mapping[str, str],
    *,
    chat_model: ChatModel,
    settings: Settings,
    output: type[BaseModel] | None = None,
    log: CallLog | None = None,
    max_attempts: int = 3,
) -> dict[str, Any]:
    """Render ``template`` with ``variables``, call ``chat_model`` and return the result as a dict.

    With an ``output_schema`` the call goes through
    :func:`~opsmith.llm.structured.complete_structured`, validating against ``output``
    when given (a pydantic model, whose instance becomes ``output`` in the result) and
    against the template's schema otherwise (plain JSON data). Without one it is a single
    free-text call. ``params.max_tokens`` falls back to ``settings.llm_max_tokens``.

    Returns:
        ``{"template", "version", "output", "attempts", "usage": {"input_tokens",
        "output_tokens"}, "latency_ms", "call_id"}``; ``call_id`` is None without a log.

    Raises:
        TemplateError, StructuredOutputError, TruncatedOutputError, ProviderError.
    """
    from opsmith.llm.structured import complete_structured, complete_text

    messages = template.render(variables)
    max_tokens = template.params.max_tokens or settings.llm_max_tokens
    context = {"template_id": template.id, "template_version": template.version}
    value: Any
    if template.output_schema is not None:
        result = complete_structured(
            chat_model,
            messages,
            output if output is not None else template.output_schema,
            max_attempts=max_attempts,
            max_tokens=max_tokens,
            temperature=template.params.temperature,
            log=log,
            log_context=context,
        )
        value, attempts, usage, latency_ms, call_id = (
            result.value,
            result.attempts,
            result.usage,
            result.latency_ms,
            result.call_id,
        )
    else:
        text = complete_text(
            chat_model,
            messages,
            max_tokens=max_tokens,
            temperature=template.params.temperature,
            log=log,
            log_context=context,
        )
        value, attempts, usage, latency_ms, call_id = (
            text.text,
            text.attempts,
            text.usage,
            text.latency_ms,
            text.call_id,
        )
    return {
        "template": template.id,
        "version": template.version,
        "output": value,
        "attempts": attempts,
        "usage": {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens},
        "latency_ms": round(latency_ms, 1),
        "call_id": call_id,
    }
