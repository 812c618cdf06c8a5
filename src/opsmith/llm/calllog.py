"""The LLM call log: one SQLite file, ``$OPSMITH_HOME/calls.sqlite``.

Each call is one row in ``calls`` (provider, model, template id and version, schema hash,
outcome) and each attempt one row in ``attempts`` (raw output, validation errors, token
usage, latency, stop reason). Prompts are not stored, so redacted input never lands on
disk a second time, and neither are API keys or request headers: nothing here ever sees them.

Every method opens its own short-lived connection, so a log can be shared by threads and
by several processes (the CLI and the HTTP service) at once.
"""

from __future__ import annotations

import builtins
import json
import os
import sqlite3
import uuid
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsmith.errors import ConfigError, OpsmithError

if TYPE_CHECKING:
    from opsmith.config import Settings
    from opsmith.llm._base import Usage

__all__ = ["FILENAME", "CallLog"]

FILENAME = "calls.sqlite"
_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    template_id TEXT,
    template_version INTEGER,
    schema_hash TEXT,
    context TEXT,
    ok INTEGER,
    error TEXT
);
CREATE INDEX IF NOT EXISTS calls_created ON calls (created_at);
CREATE TABLE IF NOT EXISTS attempts (
    call_id TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    raw_output TEXT NOT NULL,
    errors TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    stop_reason TEXT NOT NULL,
    PRIMARY KEY (call_id, number)
);
"""

_SUMMARY = """
SELECT c.id, c.created_at, c.template_id, c.template_version, c.provider, c.model, c.ok,
       COUNT(a.number) AS attempts,
       COALESCE(SUM(a.input_tokens), 0) AS input_tokens,
       COALESCE(SUM(a.output_tokens), 0) AS output_tokens,
       COALESCE(SUM(a.latency_ms), 0.0) AS latency_ms
FROM calls AS c LEFT JOIN attempts AS a ON a.call_id = c.id
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class CallLog:
    """Records LLM calls and their attempts in the SQLite file at ``path``.

    Creates the file and its folder on first use (readable by the owner only, since raw
    outputs may quote infrastructure code). Raises :class:`ConfigError` when it cannot.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            with closing(sqlite3.connect(self.path, timeout=10.0)) as conn, conn:
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            if created:
                os.chmod(self.path, 0o600)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"Cannot open the call log at {self.path} ({exc}) — check that OPSMITH_HOME is writable"
            ) from exc

    def __repr__(self) -> str:
        return f"CallLog({str(self.path)!r})"

    @classmethod
    def for_settings(cls, settings: Settings) -> CallLog:
        """The log under ``settings.home``."""
        return cls(settings.home / FILENAME)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection inside one transaction; sqlite errors become one-line opsmith errors."""
        try:
            with closing(sqlite3.connect(self.path, timeout=10.0)) as conn:
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA foreign_keys = ON")
                with conn:
                    yield conn
        except sqlite3.Error as exc:
            raise OpsmithError(
                f"The call log {self.path} failed ({exc}) — check that OPSMITH_HOME is writable and has space"
            ) from exc

    def start(
        self,
        *,
        provider: str,
        model: str,
        template_id: str | None,
        template_version: int | None,
        schema_hash: str | None,
        context: Mapping[str, Any] | None = None,
    ) -> str:
        """Record the start of a call and return its id (12 hex digits)."""
        call_id = uuid.uuid4().hex[:12]
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO calls (id, created_at, provider, model, template_id, template_version, schema_hash,"
                " context) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    call_id,
                    _now(),
                    provider,
                    model,
                    template_id,
                    template_version,
                    schema_hash,
                    json.dumps(dict(context), default=str) if context else None,
                ),
            )
        return call_id

    def attempt(
        self,
        call_id: str,
        *,
        number: int,
        raw_output: str,
        errors: builtins.list[str],
        usage: Usage,
        latency_ms: float,
        stop_reason: str,
    ) -> None:
        """Record attempt ``number`` (from 1) of call ``call_id``."""
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO attempts (call_id, number, created_at, raw_output, errors, input_tokens, output_tokens,"
                " latency_ms, stop_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    call_id,
                    number,
                    _now(),
                    raw_output,
                    json.dumps(errors),
                    usage.input_tokens,
                    usage.output_tokens,
                    latency_ms,
                    stop_reason,
                ),
            )

    def finish(self, call_id: str, *, ok: bool, error: str | None) -> None:
        """Record the outcome of call ``call_id``."""
        with self._connect() as conn:
            conn.execute(
                "UPDATE calls SET finished_at = ?, ok = ?, error = ? WHERE id = ?", (_now(), int(ok), error, call_id)
            )

    def list(self, limit: int = 20) -> builtins.list[dict[str, Any]]:
        """The newest ``limit`` calls, newest first, with attempts, tokens and latency summed.

        Each has ``id``, ``created_at``, ``template_id``, ``template_version``, ``provider``,
        ``model``, ``ok`` (None while unfinished), ``attempts``, ``input_tokens``,
        ``output_tokens`` and ``latency_ms``.
        """
        with self._connect() as conn:
            rows = conn.execute(
                f"{_SUMMARY} GROUP BY c.id ORDER BY c.created_at DESC, c.rowid DESC LIMIT ?", (max(0, limit),)
            ).fetchall()
        return [_summary(row) for row in rows]

    def get(self, call_id: str) -> dict[str, Any] | None:
        """Call ``call_id`` as in :meth:`list`, plus ``finished_at``, ``schema_hash``, ``context``,
        ``error`` and ``attempt_log``: each attempt's ``number``, ``created_at``, ``raw_output``,
        ``errors``, ``input_tokens``, ``output_tokens``, ``latency_ms`` and ``stop_reason``.
        None when there is no such call."""
        with self._connect() as conn:
            row = conn.execute(f"{_SUMMARY} WHERE c.id = ? GROUP BY c.id", (call_id,)).fetchone()
            if row is None:
                return None
            extra = conn.execute(
                "SELECT finished_at, schema_hash, context, error FROM calls WHERE id = ?", (call_id,)
            ).fetchone()
            attempts = conn.execute(
                "SELECT number, created_at, raw_output, errors, input_tokens, output_tokens, latency_ms, stop_reason"
                " FROM attempts WHERE call_id = ? ORDER BY number",
                (call_id,),
            ).fetchall()
        call = _summary(row)
        call.update(
            finished_at=extra["finished_at"],
            schema_hash=extra["schema_hash"],
            context=json.loads(extra["context"]) if extra["context"] else None,
            error=extra["error"],
            attempt_log=[{**dict(a), "errors": json.loads(a["errors"])} for a in attempts],
        )
        return call


def _summary(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    data["ok"] = None if data["ok"] is None else bool(data["ok"])
    data["latency_ms"] = round(float(data["latency_ms"]), 1)
    return data
