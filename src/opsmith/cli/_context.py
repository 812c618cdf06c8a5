"""Building the warm objects a command needs, from settings and flags."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsmith.config import Settings, load_settings

if TYPE_CHECKING:
    from opsmith.rag.embedder import Embedder
    from opsmith.rag.store import QdrantStore


def settings_from(**flags: Any) -> Settings:
    """Settings with CLI flags (``None`` = not given) applied on top of env and file."""
    return load_settings(**flags)


def embedder_and_store(settings: Settings) -> tuple[Embedder, QdrantStore]:
    from opsmith.rag.embedder import load_embedder
    from opsmith.rag.store import open_store

    store = open_store(settings)
    try:
        return load_embedder(settings), store
    except BaseException:
        store.close()
        raise
