"""The SQLite call log: what a structured call records, reading it back, and what it never stores."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsmith.config import load_settings
from opsmith.errors import ConfigError, ProviderAuthError, StructuredOutputError
from opsmith.llm import Message, Usage
from opsmith.llm.anthropic import AnthropicChatModel
from opsmith.llm.calllog import CallLog
from opsmith.llm.structured import complete_structured, complete_text, schema_hash, strict_schema
from opsmith.testing import FakeChatModel

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 1},
        "severity": {"type": "string", "enum": ["sev1", "sev2", "sev3", "sev4"]},
    },
    "required": ["title", "severity"],
}
GOOD = '{"title": "Disk full on node-3", "severity": "sev3"}'
BAD = '{"title": "Disk full on node-3", "severity": "high"}'
ASK = [Message("user", "Summarise: disk full on node-3")]
CONTEXT = {"template_id": "incident-summary", "template_version": 4}


def rows(path: Path, table: str) -> list[sqlite3.Row]:
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        found = conn.execute(f"SELECT * FROM {table}").fetchall()
    conn.close()
    return found


@pytest.fixture
def log(tmp_path: Path) -> CallLog:
    return CallLog(tmp_path / "logs" / "calls.sqlite")


def test_a_structured_call_with_one_reask_writes_one_call_and_two_attempts(log: CallLog) -> None:
    fake = FakeChatModel([BAD, GOOD], model="fake-large")

    result = complete_structured(fake, ASK, SCHEMA, log=log, log_context=CONTEXT)

    assert result.call_id is not None
    calls = rows(log.path, "calls")
    attempts = rows(log.path, "attempts")
    assert len(calls) == 1
    assert len(attempts) == 2
    call = calls[0]
    assert call["id"] == result.call_id
    assert (call["provider"], call["model"]) == ("fake", "fake-large")
    assert (call["template_id"], call["template_version"]) == ("incident-summary", 4)
    assert call["schema_hash"] == schema_hash(strict_schema(SCHEMA)[0])
    assert call["ok"] == 1
    assert call["error"] is None
    first, second = sorted(attempts, key=lambda row: row["number"])
    assert first["raw_output"] == BAD
    assert "severity" in json.loads(first["errors"])[0]
    assert second["raw_output"] == GOOD
    assert json.loads(second["errors"]) == []
    assert (second["input_tokens"], second["output_tokens"], second["stop_reason"]) == (10, 5, "end")


def test_list_and_get_round_trip(log: CallLog) -> None:
    ok = complete_structured(FakeChatModel([BAD, GOOD]), ASK, SCHEMA, log=log, log_context=CONTEXT)
    with pytest.raises(StructuredOutputError) as caught:
        complete_structured(FakeChatModel([BAD]), ASK, SCHEMA, log=log, max_attempts=2)
    text = complete_text(FakeChatModel(["Free text."]), ASK, log=log, log_context={"purpose": "smoke"})

    listed = log.list()
    assert [c["id"] for c in listed] == [text.call_id, listed[1]["id"], ok.call_id]  # newest first
    assert set(listed[0]) == {
        "id",
        "created_at",
        "template_id",
        "template_version",
        "provider",
        "model",
        "ok",
        "attempts",
        "input_tokens",
        "output_tokens",
        "latency_ms",
    }
    newest, failed, oldest = listed
    assert (oldest["ok"], oldest["attempts"], oldest["input_tokens"], oldest["output_tokens"]) == (True, 2, 20, 10)
    assert (oldest["template_id"], oldest["template_version"]) == ("incident-summary", 4)
    assert (failed["ok"], failed["attempts"], failed["template_id"]) == (False, 2, None)
    assert (newest["ok"], newest["attempts"]) == (True, 1)
    assert [c["id"] for c in log.list(limit=1)] == [text.call_id]

    shown = log.get(failed["id"])
    assert shown is not None
    assert shown["error"] == str(caught.value)
    assert shown["schema_hash"] == schema_hash(strict_schema(SCHEMA)[0])
    assert [a["number"] for a in shown["attempt_log"]] == [1, 2]
    assert all(a["raw_output"] == BAD for a in shown["attempt_log"])
    assert all(a["errors"] and isinstance(a["errors"], list) for a in shown["attempt_log"])
    assert shown["attempt_log"][0]["stop_reason"] == "end"
    free = log.get(newest["id"])
    assert free is not None
    assert free["schema_hash"] is None
    assert free["context"] == {"purpose": "smoke"}
    assert free["attempt_log"][0]["raw_output"] == "Free text."
    assert log.get("0123456789ab") is None


def test_a_call_cut_short_by_an_error_is_finished_as_failed(log: CallLog) -> None:
    fake = FakeChatModel([GOOD], errors=[ProviderAuthError("anthropic rejected the API key — check X")])
    with pytest.raises(ProviderAuthError):
        complete_structured(fake, ASK, SCHEMA, log=log)
    (call,) = log.list()
    assert call["ok"] is False
    assert call["attempts"] == 0
    shown = log.get(call["id"])
    assert shown is not None
    assert "rejected the API key" in shown["error"]


def test_manual_use_of_the_log(log: CallLog) -> None:
    call_id = log.start(provider="p", model="m", template_id=None, template_version=None, schema_hash=None)
    assert log.list()[0]["ok"] is None  # started, not finished
    log.attempt(
        call_id, number=1, raw_output="x", errors=["bad"], usage=Usage(3, 4), latency_ms=12.5, stop_reason="end"
    )
    log.finish(call_id, ok=False, error="gave up")
    shown = log.get(call_id)
    assert shown is not None
    assert (shown["ok"], shown["error"], shown["latency_ms"], shown["input_tokens"]) == (False, "gave up", 12.5, 3)


def test_for_settings_uses_the_home_folder(opsmith_home: Path) -> None:
    log = CallLog.for_settings(load_settings())
    assert log.path == opsmith_home / "calls.sqlite"
    assert log.path.is_file()
    if sys.platform != "win32":
        assert stat.S_IMODE(os.stat(log.path).st_mode) == 0o600


def test_an_unwritable_location_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="OPSMITH_HOME"):
        CallLog(blocker / "calls.sqlite")


def test_the_api_key_never_lands_in_the_log(log: CallLog) -> None:
    key = "sk-ant-api03-SECRET-never-store-me-0123456789"
    replies = iter(
        [
            httpx.Response(200, json=_message('{"title": "", "severity": "sev3"}')),
            httpx.Response(200, json=_message(GOOD)),
            # Some servers echo the key in errors; the message stored for the call must not carry it.
            httpx.Response(
                401, json={"error": {"type": "authentication_error", "message": f"invalid x-api-key {key}"}}
            ),
        ]
    )
    seen_keys: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen_keys.append(request.headers.get("x-api-key"))
        return next(replies)

    model = AnthropicChatModel("claude-test", key, transport=httpx.MockTransport(handler), max_retries=0)
    result = complete_structured(model, ASK, SCHEMA, log=log, log_context=CONTEXT)
    assert result.attempts == 2
    with pytest.raises(ProviderAuthError):
        complete_structured(model, ASK, SCHEMA, log=log)

    assert seen_keys == [key, key, key]  # the key was in play on every request
    failed = log.get(log.list()[0]["id"])
    assert failed is not None
    assert "<redacted>" in failed["error"]
    files = [p for p in log.path.parent.iterdir() if p.name.startswith(log.path.name)]
    assert files
    for path in files:
        data = path.read_bytes()
        assert key.encode() not in data
        assert b"SECRET-never-store-me" not in data
        assert b"anthropic-version" not in data  # no request headers either


def _message(text: str) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 30, "output_tokens": 12},
    }
