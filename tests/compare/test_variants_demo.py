"""The offline demonstration model reads every excerpt, whatever its heading holds."""

from __future__ import annotations

from opsmith.compare.variants import demo_reply
from opsmith.llm._base import Message
from opsmith.rag.answer import build_messages
from opsmith.rag.store import Hit, StoredChunk


def test_demo_quotes_excerpts_whose_heading_contains_a_path_separator() -> None:
    chunks = [
        StoredChunk("a.md", "Disk > Diagnosis / Mitigation", 1, 3, "run `df -h`", 0, 2, "sha"),
        StoredChunk("b.md", "Plain", 1, 2, "check the journal", 0, 1, "sha"),
    ]
    _, user = build_messages("disk?", [Hit(c, 1.0, 0.9) for c in chunks])
    reply = demo_reply([Message("user", user.content)])
    assert "run `df -h` [1]" in reply
    assert "check the journal [2]" in reply
