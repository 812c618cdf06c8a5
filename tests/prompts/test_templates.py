"""Prompt templates: built-ins, user overrides, validation of bad files, rendering and running."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import opsmith.prompts
from opsmith.config import Settings, load_settings
from opsmith.errors import TemplateError
from opsmith.llm import Message
from opsmith.llm.calllog import CallLog
from opsmith.llm.structured import strict_schema, validate_json_schema
from opsmith.prompts import PromptTemplate, list_templates, load_template, read_template, run_template
from opsmith.testing import FakeChatModel

SUMMARY = {
    "title": "orders-db replica lagging",
    "severity": "sev3",
    "impact": "Stale reads.",
    "suspected_cause": "unknown",
    "next_steps": ["Check replication lag."],
}


@pytest.fixture
def settings(opsmith_home: Path) -> Settings:
    return load_settings()


@pytest.fixture
def user_dir(opsmith_home: Path) -> Path:
    folder = opsmith_home / "prompts"
    folder.mkdir(parents=True)
    return folder


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


MINIMAL = """\
    id: greet
    version: 1
    description: Say hello.
    system: Be brief.
    user: "Hello {name}"
"""


# --- built-ins ---------------------------------------------------------------------------------------


def test_public_api_is_sorted_and_complete() -> None:
    assert opsmith.prompts.__all__ == sorted(opsmith.prompts.__all__)
    assert all(hasattr(opsmith.prompts, name) for name in opsmith.prompts.__all__)


def test_builtins_load_and_validate(settings: Settings) -> None:
    templates = {t.id: t for t in list_templates(settings)}

    assert {"terraform-review", "incident-summary"} <= set(templates)
    review = templates["terraform-review"]
    assert (review.version, review.source) == (1, "builtin")
    assert review.variables() == ["files", "rule_findings"]
    assert templates["incident-summary"].variables() == ["alert"]
    for template in templates.values():
        assert template.output_schema is not None
        assert template.examples, f"{template.id} has no few-shot examples"
        check = validate_json_schema(template.output_schema)
        for example in template.examples:
            assert check(example.output) == []


def test_terraform_review_schema_has_the_contracted_shape(settings: Settings) -> None:
    schema = load_template("terraform-review", settings).output_schema
    assert schema is not None
    check = validate_json_schema(schema)
    finding = {
        "severity": "critical",
        "line": 12,
        "file": "main.tf",
        "resource": None,
        "issue": "x",
        "fix": "y",
    }
    assert check({"security": [finding], "cost": [], "correctness": []}) == []
    assert check({"security": [], "cost": []})  # every category is required
    assert check({"security": [{**finding, "severity": "high"}], "cost": [], "correctness": []})
    assert check({"security": [{**finding, "line": 0}], "cost": [], "correctness": []})
    assert check({"security": [{**finding, "fix": ""}], "cost": [], "correctness": []})
    assert check({"security": [{**finding, "rule": "x"}], "cost": [], "correctness": []})
    reduced, dropped = strict_schema(schema)
    assert "/properties/security/items/properties/line/minimum" in dropped
    assert reduced["properties"]["cost"]["items"]["required"] == [
        "severity",
        "line",
        "file",
        "resource",
        "issue",
        "fix",
    ]


def test_terraform_review_system_prompt_covers_the_rules(settings: Settings) -> None:
    system = load_template("terraform-review", settings).system
    for phrase in ("line number", "<redacted>", "critical", "warning", "Already reported", "fix"):
        assert phrase in system


def test_render_puts_examples_between_system_and_the_final_user_message(settings: Settings) -> None:
    template = load_template("terraform-review", settings)
    files = '# file: main.tf\n   1 | resource "aws_s3_bucket" "logs" {\n   2 | }'

    messages = template.render({"files": files, "rule_findings": "[]"})

    assert [m.role for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[0] == Message("system", template.system)
    # Each example is the user message filled with its input, then its output as JSON.
    assert messages[1].content == template.user.format(**template.examples[0].input)
    assert json.loads(messages[2].content) == template.examples[0].output
    final = messages[-1].content
    assert files in final  # HCL braces in a value pass through untouched
    assert final.rstrip().endswith("[]")
    assert files not in messages[1].content


# --- user templates ---------------------------------------------------------------------------------


def test_user_template_overrides_a_builtin_by_id(settings: Settings, user_dir: Path) -> None:
    text = MINIMAL.replace("id: greet", "id: incident-summary").replace("version: 1", "version: 7")
    path = write(user_dir, "mine.yaml", text)

    template = load_template("incident-summary", settings)

    assert (template.version, template.source) == (7, str(path))
    ids = [t.id for t in list_templates(settings)]
    assert ids.count("incident-summary") == 1
    assert "terraform-review" in ids


def test_user_template_is_added(settings: Settings, user_dir: Path) -> None:
    write(user_dir, "greet.yml", MINIMAL)
    assert [t.id for t in list_templates(settings)] == ["greet", "incident-summary", "terraform-review"]
    assert load_template("greet", settings).render({"name": "Ada"})[-1] == Message("user", "Hello Ada")


def test_unknown_id_lists_what_there_is(settings: Settings) -> None:
    with pytest.raises(
        TemplateError, match=r"No prompt template 'nope' \(available: incident-summary, terraform-review"
    ):
        load_template("nope", settings)


def test_two_user_files_with_one_id_are_an_error(settings: Settings, user_dir: Path) -> None:
    write(user_dir, "a.yaml", MINIMAL)
    write(user_dir, "b.yaml", MINIMAL)
    with pytest.raises(TemplateError, match=r"'greet' is defined in both .*a\.yaml and .*b\.yaml"):
        list_templates(settings)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("id: x\nversion: [1\n", ["Cannot parse", "at line 3", "fix the YAML syntax"]),
        (MINIMAL + "    colour: blue\n", ["colour", "Extra inputs are not permitted"]),
        (MINIMAL.replace("version: 1", 'version: "1"'), ["version", "valid integer"]),
        (MINIMAL.replace("version: 1", "version: 1.5"), ["version", "valid integer"]),
        (MINIMAL.replace("version: 1", "version: true"), ["version", "valid integer"]),
        (MINIMAL.replace("    version: 1\n", ""), ["version", "Field required"]),
        (MINIMAL + "    source: elsewhere\n", ["source", "unknown key"]),
        (MINIMAL + "    params: {temprature: 0.2}\n", ["params.temprature"]),
        ("- just\n- a list\n", ["not a YAML mapping"]),
        (MINIMAL.replace("Hello {name}", "Hello {0}"), ["{0}", "literal brace"]),
        (MINIMAL.replace("Hello {name}", "Hello {name.first}"), ["{name.first}"]),
        (MINIMAL.replace("Hello {name}", "Hello {name!r}"), ["{name!r}"]),
        (MINIMAL.replace("Hello {name}", "Hello {name"), ["literal brace"]),
        (
            MINIMAL + "    output_schema: {type: objekt}\n",
            ["output_schema", "not valid JSON Schema"],
        ),
        (
            MINIMAL + "    examples:\n      - input: {nome: Ada}\n        output: Hi Ada\n",
            ["examples[0].input", "missing ['name']", "unexpected ['nome']"],
        ),
        (
            MINIMAL + "    examples:\n      - input: {name: Ada}\n        output: {greeting: hi}\n",
            ["must be text"],
        ),
        (
            MINIMAL
            + "    output_schema: {type: object, properties: {n: {type: integer, minimum: 1}}}\n"
            + "    examples:\n      - input: {name: Ada}\n        output: {n: 0}\n",
            ["examples[0].output does not match", "n: 0 is less than the minimum of 1"],
        ),
    ],
    ids=[
        "broken-yaml",
        "unknown-key",
        "version-string",
        "version-float",
        "version-bool",
        "version-missing",
        "source-key",
        "unknown-param",
        "not-a-mapping",
        "positional-placeholder",
        "attribute-placeholder",
        "conversion",
        "unclosed-brace",
        "bad-schema",
        "example-variables",
        "example-not-text",
        "example-breaks-schema",
    ],
)
def test_bad_template_files_name_the_file_and_the_problem(
    settings: Settings, user_dir: Path, text: str, fragments: list[str]
) -> None:
    path = write(user_dir, "broken.yaml", text)

    with pytest.raises(TemplateError) as caught:
        list_templates(settings)

    message = str(caught.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message
    assert "\n" not in message


def test_read_template_names_an_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(TemplateError, match=r"Cannot read prompt template .*binary\.yaml"):
        read_template(path)


# --- rendering ------------------------------------------------------------------------------------------


def test_missing_and_unknown_variables_are_named(settings: Settings) -> None:
    template = load_template("terraform-review", settings)
    with pytest.raises(TemplateError, match=r"needs variable rule_findings — pass --var rule_findings="):
        template.render({"files": "x"})
    with pytest.raises(TemplateError, match=r"needs variables files, rule_findings"):
        template.render({})
    with pytest.raises(TemplateError, match=r"has no variable extra — it takes files, rule_findings"):
        template.render({"files": "x", "rule_findings": "[]", "extra": "y"})
    with pytest.raises(TemplateError, match="not text"):
        template.render({"files": "x", "rule_findings": []})  # type: ignore[dict-item]


def test_literal_braces_are_written_doubled() -> None:
    template = PromptTemplate(
        id="braces",
        version=1,
        description="d",
        system='Reply like {"ok": true}; the system text is sent as written.',
        user='Answer as {{"answer": "..."}} about {topic}.',
    )

    assert template.variables() == ["topic"]
    messages = template.render({"topic": "the {weird} value"})
    assert messages[0].content == 'Reply like {"ok": true}; the system text is sent as written.'
    assert messages[-1].content == 'Answer as {"answer": "..."} about the {weird} value.'


def test_a_template_without_variables_renders() -> None:
    template = PromptTemplate(id="static", version=2, description="d", system="s", user="Say hi.")
    assert template.variables() == []
    assert template.render({}) == [Message("system", "s"), Message("user", "Say hi.")]


# --- running -------------------------------------------------------------------------------------------


def test_run_template_validates_logs_and_reports(settings: Settings, tmp_path: Path) -> None:
    template = load_template("incident-summary", settings)
    fake = FakeChatModel([json.dumps({**SUMMARY, "severity": "sev9"}), json.dumps(SUMMARY)])
    log = CallLog(tmp_path / "calls.sqlite")

    result = run_template(template, {"alert": "lag 340s"}, chat_model=fake, settings=settings, log=log)

    assert result == {
        "template": "incident-summary",
        "version": 1,
        "output": SUMMARY,
        "attempts": 2,
        "usage": {"input_tokens": 20, "output_tokens": 10},
        "latency_ms": 0.0,
        "call_id": result["call_id"],
    }
    first = fake.calls[0]
    assert first["json_schema"] == strict_schema(template.output_schema or {})[0]
    assert (first["temperature"], first["max_tokens"]) == (0.0, 1024)
    assert first["messages"][-1].content.rstrip().endswith("lag 340s")
    logged = log.get(result["call_id"])
    assert logged is not None
    assert (logged["template_id"], logged["template_version"], logged["attempts"]) == ("incident-summary", 1, 2)


def test_run_template_with_an_output_model_returns_its_instance(settings: Settings) -> None:
    class Summary(BaseModel):
        title: str
        severity: str
        impact: str
        suspected_cause: str
        next_steps: list[str]

    template = load_template("incident-summary", settings)
    fake = FakeChatModel([json.dumps(SUMMARY)])

    result = run_template(template, {"alert": "x"}, chat_model=fake, settings=settings, output=Summary)

    assert isinstance(result["output"], Summary)
    assert result["call_id"] is None
    assert fake.calls[0]["json_schema"] == strict_schema(Summary.model_json_schema())[0]


def test_run_template_free_text(settings: Settings, user_dir: Path, tmp_path: Path) -> None:
    write(user_dir, "greet.yaml", MINIMAL)
    template = load_template("greet", settings)
    fake = FakeChatModel(["Hello, Ada!"])
    log = CallLog(tmp_path / "calls.sqlite")

    result: dict[str, Any] = run_template(template, {"name": "Ada"}, chat_model=fake, settings=settings, log=log)

    assert result["output"] == "Hello, Ada!"
    assert result["attempts"] == 1
    assert fake.calls[0]["json_schema"] is None
    assert fake.calls[0]["max_tokens"] == settings.llm_max_tokens  # no params.max_tokens: the setting
    logged = log.get(result["call_id"])
    assert logged is not None
    assert (logged["template_id"], logged["schema_hash"], logged["ok"]) == ("greet", None, True)
