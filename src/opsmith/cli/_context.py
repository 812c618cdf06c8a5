"""Building the warm objects a command needs, from settings and flags."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsmith.config import Settings
    from opsmith.llm import ChatModel
    from opsmith.rag.embedder import Embedder
    from opsmith.rag.retrieve import Retriever
    from opsmith.rag.store import VectorStore


def settings_from(**flags: Any) -> Settings:
    """Settings with CLI flags (``None`` = not given) applied on top of env and file."""
    # Imported here: pydantic costs ~150 ms, which `opsmith --help` should not pay.
    from opsmith.config import load_settings

    return load_settings(**flags)


def embedder_and_store(settings: Settings) -> tuple[Embedder, VectorStore]:
    from opsmith.rag.embedder import load_embedder
    from opsmith.rag.store import open_store

    store = open_store(settings)
    try:
        return load_embedder(settings), store
    except BaseException:
        store.close()
        raise


def open_retriever(settings: Settings) -> Retriever:
    """A warm retriever for ``settings.collection``; the caller closes ``retriever.store``.

    Raises (and leaves no store open) when the collection is missing or was embedded
    with another model. Local-mode Qdrant allows one open client per index, so a leaked
    client would lock out the next command in the same process.
    """
    from opsmith.rag.retrieve import Retriever

    embedder, store = embedder_and_store(settings)
    try:
        return Retriever(embedder, store, settings.collection, settings.retrieval_mode, settings.hybrid_sparse_weight)
    except BaseException:
        store.close()
        raise


def close_quietly(chat_model: ChatModel | None) -> None:
    """Close ``chat_model``'s connections, when the command made one (offline runs make none)."""
    if chat_model is not None:
        chat_model.close()
