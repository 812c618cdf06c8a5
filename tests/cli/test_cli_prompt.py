"""``opsmith prompt list|show|run`` and ``opsmith logs list|show``, with a FakeChatModel at the seam."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from clitools import Run, assert_one_error_line

from opsmith.config import Settings, load_settings
from opsmith.llm.structured import strict_schema
from opsmith.prompts import load_template
from opsmith.testing import FakeChatModel

SUMMARY = {
    "title": "orders-db replica lagging 340s",
    "severity": "sev3",
    "impact": "Reads from the replica are stale.",
    "suspected_cause": "Possibly a long query blocking WAL replay.",
    "next_steps": ["Check grafana/d/pg-replication.", "Look for long queries on the replica."],
}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeChatModel]:
    """Make the CLI's provider a FakeChatModel; returns a function that sets its replies."""

    def install(*replies: str) -> FakeChatModel:
        model = FakeChatModel(list(replies))
        seen: list[Settings] = []

        def get_chat_model(settings: Settings) -> FakeChatModel:
            seen.append(settings)
            return model

        monkeypatch.setattr("opsmith.llm.registry.get_chat_model", get_chat_model)
        model.seen_settings = seen  # type: ignore[attr-defined]
        return model

    return install


# --- prompt list / show -----------------------------------------------------------------------------


def test_prompt_list_json(cli_ok: Callable[..., Run], home: Path) -> None:
    (home / "prompts").mkdir(parents=True)
    custom = home / "prompts" / "greet.yaml"
    custom.write_text("id: greet\nversion: 3\ndescription: Say hello.\nsystem: s\nuser: Hi {name}\n")

    data = cli_ok("prompt", "list", "--json").json()

    assert set(data) == {"templates"}
    rows = {row["id"]: row for row in data["templates"]}
    assert set(rows) == {"greet", "incident-summary", "rag-answer", "terraform-review"}
    assert [row["id"] for row in data["templates"]] == sorted(rows)
    assert rows["terraform-review"] == {
        "id": "terraform-review",
        "version": 1,
        "description": load_template("terraform-review", load_settings()).description,
        "source": "builtin",
    }
    assert rows["greet"]["source"] == str(custom)
    assert rows["greet"]["version"] == 3


def test_prompt_list_table(cli_ok: Callable[..., Run]) -> None:
    stdout = cli_ok("prompt", "list").stdout
    assert "terraform-review" in stdout
    assert "incident-summary" in stdout
    assert "rag-answer" in stdout


# --- rag-answer: the prompt `opsmith ask` builds in code ---------------------------------------------


def test_every_template_id_in_the_call_log_is_in_prompt_list(
    cli_ok: Callable[..., Run], fake: Callable[..., FakeChatModel]
) -> None:
    """`logs list` shows rag-answer for every `opsmith ask` with an LLM; `prompt list` must know it."""
    from opsmith.rag.answer import PROMPT_ID, PROMPT_VERSION

    listed = {row["id"]: row for row in cli_ok("prompt", "list", "--json").json()["templates"]}
    assert listed[PROMPT_ID]["version"] == PROMPT_VERSION
    assert listed[PROMPT_ID]["source"] == "code"
    assert "opsmith ask" in listed[PROMPT_ID]["description"]


def test_prompt_show_rag_answer_is_the_prompt_ask_sends() -> None:
    """The shown template renders exactly the messages `opsmith ask` builds."""
    from opsmith.cli.prompt import _template
    from opsmith.rag.answer import build_messages
    from opsmith.rag.store import Hit, StoredChunk

    def hit(source: str, text: str) -> Hit:
        chunk = StoredChunk(source, "Diagnosis", 3, 9, text, chunk_index=0, chunk_count=1, file_sha256="0" * 64)
        return Hit(chunk=chunk, score=0.9, relevance=0.9)

    question = "Postgres disk is full, what now?"
    context = [hit("db/disk.md", "Run `df -h`."), hit("db/wal.md", "Check the WAL volume.")]
    built = build_messages(question, context)
    excerpts = built[1].content.split("\n\n", 1)[1].rsplit("\n\nQuestion:", 1)[0]

    shown = _template("rag-answer", load_settings())

    assert shown.source == "code"
    assert shown.render({"excerpts": excerpts, "question": question}) == built


def test_prompt_show_rag_answer_json(cli_ok: Callable[..., Run]) -> None:
    from opsmith.rag.answer import SYSTEM_PROMPT

    data = cli_ok("prompt", "show", "rag-answer", "--json").json()
    assert (data["id"], data["source"], data["system"]) == ("rag-answer", "code", SYSTEM_PROMPT)
    assert data["variables"] == ["excerpts", "question"]


def test_prompt_run_rag_answer_points_to_ask(cli_main: Callable[..., Run], fake: Callable[..., FakeChatModel]) -> None:
    model = fake("unused")
    run = cli_main("prompt", "run", "rag-answer", "--var", "question=x")
    assert_one_error_line(run, "'rag-answer' is built in code", 'opsmith ask "QUESTION"')
    assert run.exit_code == 2
    assert model.calls == []


def test_a_user_template_named_rag_answer_replaces_the_code_row(cli_ok: Callable[..., Run], home: Path) -> None:
    (home / "prompts").mkdir(parents=True)
    (home / "prompts" / "mine.yaml").write_text("id: rag-answer\nversion: 7\ndescription: d\nsystem: s\nuser: Q\n")
    rows = [row for row in cli_ok("prompt", "list", "--json").json()["templates"] if row["id"] == "rag-answer"]
    assert [row["version"] for row in rows] == [7]


def test_prompt_show_json_includes_the_schema_it_will_send(cli_ok: Callable[..., Run]) -> None:
    data = cli_ok("prompt", "show", "terraform-review", "--json").json()

    template = load_template("terraform-review", load_settings())
    assert data["id"] == "terraform-review"
    assert data["version"] == 1
    assert data["system"] == template.system
    assert data["user"] == template.user
    assert data["variables"] == ["files", "rule_findings"]
    assert data["params"] == {"temperature": 0.0, "max_tokens": 4096}
    assert len(data["examples"]) == len(template.examples)
    assert data["output_schema"] == template.output_schema
    reduced, dropped = strict_schema(template.output_schema or {})
    assert data["strict_schema"] == reduced
    assert data["dropped"] == dropped
    assert len(data["schema_hash"]) == 16
    assert data["source"] == "builtin"


def test_prompt_show_text(cli_ok: Callable[..., Run]) -> None:
    stdout = cli_ok("prompt", "show", "incident-summary").stdout
    assert "incident-summary v1" in stdout
    assert "{alert}" in stdout
    assert '"additionalProperties": false' in stdout


def test_prompt_show_unknown_id(cli_main: Callable[..., Run]) -> None:
    run = cli_main("prompt", "show", "nope")
    assert_one_error_line(run, "No prompt template 'nope'", "terraform-review")
    assert run.exit_code == 2


# --- prompt run ------------------------------------------------------------------------------------------


def test_prompt_run_json_validates_and_logs(
    cli_ok: Callable[..., Run], fake: Callable[..., FakeChatModel], tmp_path: Path
) -> None:
    model = fake('{"title": "oops"}', json.dumps(SUMMARY))
    alert = tmp_path / "alert.txt"
    alert.write_text("PostgresReplicationLagHigh: pg-replica-2 is 340s behind", encoding="utf-8")

    data = cli_ok("prompt", "run", "incident-summary", "--var", f"alert=@{alert}", "--json").json()

    assert data["output"] == SUMMARY
    assert (data["template"], data["version"], data["attempts"]) == ("incident-summary", 1, 2)
    assert data["usage"] == {"input_tokens": 20, "output_tokens": 10}
    assert model.calls[0]["messages"][-1].content.rstrip().endswith("is 340s behind")  # @file was read
    assert "next_steps: Field required" not in model.calls[1]["messages"][-1].content  # jsonschema wording
    assert "'next_steps' is a required property" in model.calls[1]["messages"][-1].content

    calls = cli_ok("logs", "list", "--json").json()["calls"]
    assert [c["id"] for c in calls] == [data["call_id"]]
    assert (calls[0]["template_id"], calls[0]["template_version"], calls[0]["attempts"]) == ("incident-summary", 1, 2)
    assert calls[0]["ok"] is True

    shown = cli_ok("logs", "show", data["call_id"], "--json").json()
    assert shown["id"] == data["call_id"]
    assert [a["raw_output"] for a in shown["attempt_log"]] == ['{"title": "oops"}', json.dumps(SUMMARY)]
    assert shown["attempt_log"][0]["errors"]
    assert shown["attempt_log"][1]["errors"] == []


def test_prompt_run_prints_pretty_json_and_flags_reach_settings(
    cli_ok: Callable[..., Run], fake: Callable[..., FakeChatModel]
) -> None:
    model = fake(json.dumps(SUMMARY))

    run = cli_ok(
        "prompt", "run", "incident-summary", "--var", "alert=disk full", "--provider", "openai", "--model", "llama3"
    )

    assert json.loads(run.stdout) == SUMMARY
    assert run.stdout.startswith("{\n  ")
    assert "1 attempt(s)" in run.stderr
    settings = model.seen_settings[0]  # type: ignore[attr-defined]
    assert (settings.provider, settings.model) == ("openai", "llama3")


def test_prompt_run_free_text_template(
    cli_ok: Callable[..., Run], fake: Callable[..., FakeChatModel], home: Path
) -> None:
    (home / "prompts").mkdir(parents=True)
    (home / "prompts" / "greet.yaml").write_text("id: greet\nversion: 1\ndescription: d\nsystem: s\nuser: Hi {name}\n")
    model = fake("Hello there [not markup]")

    run = cli_ok("prompt", "run", "greet", "--var", "name=@@ada")

    assert run.stdout.strip() == "Hello there [not markup]"
    assert model.calls[0]["messages"][-1].content == "Hi @ada"  # @@ is a literal @
    assert model.calls[0]["json_schema"] is None


def test_prompt_run_takes_every_provider_and_fake() -> None:
    import typing

    from opsmith.cli.prompt import RunProvider
    from opsmith.config import ProviderName

    assert typing.get_args(RunProvider) == (*typing.get_args(ProviderName), "fake")


def test_prompt_run_with_the_fake_provider_is_an_offline_demonstration(cli_ok: Callable[..., Run]) -> None:
    """As `opsmith compare --provider fake`: no key, no server; a labelled run through the real path."""
    template = load_template("incident-summary", load_settings())

    data = cli_ok(
        "prompt", "run", "incident-summary", "--var", "alert=disk full", "--provider", "fake", "--json"
    ).json()

    assert data["output"] == template.examples[0].output  # valid against the schema by construction
    assert data["attempts"] == 1
    calls = cli_ok("logs", "list", "--json").json()["calls"]
    assert (calls[0]["id"], calls[0]["provider"], calls[0]["model"]) == (data["call_id"], "fake", "demo")
    text = cli_ok("prompt", "run", "incident-summary", "--var", "alert=disk full", "--provider", "fake")
    assert json.loads(text.stdout) == template.examples[0].output
    assert "DEMONSTRATION — demo (fake provider): not a real model." in text.stderr


def test_prompt_run_fake_echoes_a_free_text_template_without_examples(cli_ok: Callable[..., Run], home: Path) -> None:
    (home / "prompts").mkdir(parents=True)
    (home / "prompts" / "greet.yaml").write_text("id: greet\nversion: 1\ndescription: d\nsystem: s\nuser: Hi {name}\n")
    run = cli_ok("prompt", "run", "greet", "--var", "name=ada", "--provider", "fake")
    assert run.stdout.strip() == "Hi ada"


def test_prompt_run_fake_refuses_a_schema_without_examples(cli_main: Callable[..., Run], home: Path) -> None:
    (home / "prompts").mkdir(parents=True)
    (home / "prompts" / "bare.yaml").write_text(
        "id: bare\nversion: 1\ndescription: d\nsystem: s\nuser: '{x}'\noutput_schema: {type: object}\n"
    )
    run = cli_main("prompt", "run", "bare", "--var", "x=1", "--provider", "fake")
    assert_one_error_line(run, "'bare' has an output schema but no examples")


def test_prompt_run_without_a_provider_is_one_line(cli_main: Callable[..., Run]) -> None:
    run = cli_main("prompt", "run", "incident-summary", "--var", "alert=disk full")
    assert_one_error_line(run, "OPSMITH_PROVIDER")
    assert run.exit_code == 2
    assert run.stdout == ""


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--var", "alert"], ["Bad --var 'alert'", "name=value"]),
        (["--var", "=x"], ["Bad --var '=x'"]),
        (["--var", "alert=a", "--var", "alert=b"], ["given twice"]),
        (["--var", "alert=@/no/such/file.txt"], ["Path not found: /no/such/file.txt"]),
        ([], ["needs variable alert", "--var alert="]),
        (["--var", "alert=x", "--var", "extra=y"], ["has no variable extra"]),
    ],
    ids=["no-equals", "no-name", "twice", "missing-file", "missing-var", "unknown-var"],
)
def test_prompt_run_bad_vars_are_one_line(
    cli_main: Callable[..., Run], fake: Callable[..., FakeChatModel], args: list[str], fragments: list[str]
) -> None:
    model = fake(json.dumps(SUMMARY))
    run = cli_main("prompt", "run", "incident-summary", *args)
    assert_one_error_line(run, *fragments)
    assert model.calls == []


def test_prompt_run_that_never_validates_is_one_line_and_logged(
    cli_main: Callable[..., Run], cli_ok: Callable[..., Run], fake: Callable[..., FakeChatModel]
) -> None:
    model = fake("I cannot summarise this.")

    run = cli_main("prompt", "run", "incident-summary", "--var", "alert=x", "--max-attempts", "2")

    line = assert_one_error_line(run, "2 attempts", "opsmith logs show")
    assert len(model.calls) == 2
    (call,) = cli_ok("logs", "list", "--json").json()["calls"]
    assert call["id"] in line
    assert call["ok"] is False


def test_prompt_run_truncated_is_one_line(cli_main: Callable[..., Run], monkeypatch: pytest.MonkeyPatch) -> None:
    model = FakeChatModel(['{"title": "cut'], stop_reason="max_tokens")
    monkeypatch.setattr("opsmith.llm.registry.get_chat_model", lambda settings: model)
    run = cli_main("prompt", "run", "incident-summary", "--var", "alert=x")
    assert_one_error_line(run, "max_tokens=1024", "OPSMITH_LLM_MAX_TOKENS")


# --- logs -----------------------------------------------------------------------------------------------


def test_logs_on_a_fresh_home(cli_ok: Callable[..., Run]) -> None:
    assert cli_ok("logs", "list", "--json").json() == {"calls": []}
    assert "No calls logged yet." in cli_ok("logs", "list").stdout


def test_logs_text_views(cli_ok: Callable[..., Run], fake: Callable[..., FakeChatModel]) -> None:
    fake("[bad", json.dumps(SUMMARY))
    call_id = cli_ok("prompt", "run", "incident-summary", "--var", "alert=x", "--json").json()["call_id"]

    listing = cli_ok("logs", "list", "--limit", "5").stdout
    assert call_id in listing
    assert "incident-summary v1" in listing
    shown = cli_ok("logs", "show", call_id).stdout
    assert "attempt 1" in shown
    assert "attempt 2" in shown
    assert "[bad" in shown  # raw output printed as is, not read as markup


def test_logs_show_unknown_id_is_one_line(cli_main: Callable[..., Run]) -> None:
    run = cli_main("logs", "show", "feedbeef0000")
    assert_one_error_line(run, "No logged call with id 'feedbeef0000'", "opsmith logs list")


def test_logs_list_limit(cli_ok: Callable[..., Run], fake: Callable[..., FakeChatModel]) -> None:
    fake(json.dumps(SUMMARY))
    ids: list[Any] = [
        cli_ok("prompt", "run", "incident-summary", "--var", f"alert={n}", "--json").json()["call_id"] for n in range(3)
    ]
    listed = cli_ok("logs", "list", "--limit", "2", "--json").json()["calls"]
    assert [c["id"] for c in listed] == ids[::-1][:2]
