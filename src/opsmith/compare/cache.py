"""Results cached per (variant, item id, config hash) in SQLite under ``$OPSMITH_HOME/compare/``.

Each result is committed as soon as it exists, so a crash or Ctrl-C loses nothing and the
next run with the same configuration makes no model call for what is already there.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any


def config_hash(**config: Any) -> str:
    """A stable hash of everything that changes a variant's answer to an item."""
    blob = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class ResultCache:
    """A small key-value store of raw item results; use as a context manager."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS results (variant TEXT, item TEXT, config TEXT, result TEXT,"
            " PRIMARY KEY (variant, item, config))"
        )

    def get(self, variant: str, item: str, config: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT result FROM results WHERE variant = ? AND item = ? AND config = ?", (variant, item, config)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, variant: str, item: str, config: str, result: dict[str, Any]) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)", (variant, item, config, json.dumps(result))
            )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
