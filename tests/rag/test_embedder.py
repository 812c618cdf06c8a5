"""The bundled embedder on ONNX Runtime, checked against sentence-transformers, and its errors."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from opsmith.config import BUNDLED_EMBEDDER, load_settings
from opsmith.errors import EmbedderError
from opsmith.rag.embedder import (
    Embedder,
    OnnxEmbedder,
    bundled_model_dir,
    cached_embedders,
    load_embedder,
    resolve_embedder,
)

TEXTS = [
    "disk full on the database host",
    "How do I restart the checkout deployment?",
    "```bash\nkubectl -n shop scale deploy/checkout --replicas=6\n```",
    "Alert AlertmanagerFailedReload fires when the configuration reload fails. " * 40,  # over 256 tokens
]


@pytest.mark.slow  # imports torch (about 5 s); still part of the default run
def test_onnx_matches_sentence_transformers(embedder: Embedder) -> None:
    # This is the check the fast ONNX path stands on.
    reference = load_embedder(load_settings(embedder_backend="torch"))

    assert isinstance(embedder, OnnxEmbedder)
    assert reference.name == embedder.name == BUNDLED_EMBEDDER
    assert reference.dimension == embedder.dimension == 384
    assert reference.max_tokens == embedder.max_tokens == 256
    ours = embedder.embed_documents(TEXTS)
    theirs = reference.embed_documents(TEXTS)
    cosines = (ours * theirs).sum(axis=1)
    assert cosines.min() >= 0.999, cosines
    assert float(embedder.embed_query(TEXTS[1]) @ reference.embed_query(TEXTS[1])) >= 0.999
    # Both count the same word pieces, without [CLS]/[SEP], and without truncating.
    assert [embedder.count_tokens(t) for t in TEXTS] == [reference.count_tokens(t) for t in TEXTS]


def test_embed_query_is_normalised_float32(embedder: Embedder) -> None:
    vector = embedder.embed_query("why is etcd slow?")
    assert vector.shape == (384,)
    assert vector.dtype == np.float32
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_embed_documents_keeps_input_order_across_length_sorted_batches(embedder: Embedder) -> None:
    texts = ["a much longer text about postgres replication lag and WAL", "short", "medium length text here"]
    seen: list[int] = []
    matrix = embedder.embed_documents(texts, batch_size=2, progress=seen.append)

    assert matrix.shape == (3, 384)
    assert matrix.dtype == np.float32
    for row, text in enumerate(texts):
        assert float(matrix[row] @ embedder.embed_query(text)) == pytest.approx(1.0, abs=1e-4)
    assert np.linalg.norm(matrix, axis=1) == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    assert sum(seen) == 3
    assert len(seen) == 2  # one report per batch


def test_similar_texts_are_closer_than_unrelated_ones(embedder: Embedder) -> None:
    disk, volume, pizza = embedder.embed_documents(
        ["the disk is full", "the storage volume has no free space", "a recipe for pizza dough"]
    )
    assert float(disk @ volume) > float(disk @ pizza) + 0.2


def test_count_tokens(embedder: Embedder) -> None:
    assert embedder.count_tokens("") == 0
    assert embedder.count_tokens("disk") == 1
    assert embedder.count_tokens("disk full") == 2
    # No truncation: counting must see all of a long text.
    assert embedder.count_tokens("disk " * 1000) == 1000


@pytest.fixture
def network_attempts(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every DNS lookup or connect, recorded (and refused) with HF_HUB_OFFLINE unset, as for a user."""
    import huggingface_hub.constants

    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise RuntimeError(f"network use in an embedder lookup: {args!r}")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache folder of this test's own."""
    import huggingface_hub.constants

    cache = tmp_path / "hf-hub"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def _cache_model(cache: Path, repo_id: str) -> Path:
    """Put the bundled model in ``cache`` as the hub client lays out a downloaded ``repo_id``."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    for item in bundled_model_dir().iterdir():
        (snapshot / item.name).symlink_to(item)
    return snapshot


def test_an_unknown_model_name_fails_at_once_without_the_network(network_attempts: list[Any], hub_cache: Path) -> None:
    _cache_model(hub_cache, "acme/ops-minilm")
    with pytest.raises(EmbedderError) as caught:
        load_embedder(load_settings(embedder="does-not-exist/model"))

    assert network_attempts == []
    message = str(caught.value)
    assert message.startswith("Unknown embedder 'does-not-exist/model': not a model folder, and not in the local")
    assert str(hub_cache) in message
    assert "one of: all-MiniLM-L6-v2 (bundled), acme/ops-minilm;" in message  # what is there to choose
    assert message.endswith("download it first where a model hub is reachable (hf download does-not-exist/model)")
    assert "\n" not in message


def test_a_missing_model_folder_is_a_clear_error(tmp_path: Path, network_attempts: list[Any], hub_cache: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(EmbedderError) as caught:
        load_embedder(load_settings(embedder=str(missing)))
    message = str(caught.value)
    assert str(missing) in message
    assert "pass a local model folder" in message
    assert "one of: all-MiniLM-L6-v2 (bundled);" in message
    assert "\n" not in message
    assert network_attempts == []


@pytest.mark.slow  # sentence-transformers imports torch (about 5 s)
def test_a_model_folder_or_a_cached_model_loads_offline(
    network_attempts: list[Any], hub_cache: Path, embedder: Embedder
) -> None:
    snapshot = _cache_model(hub_cache, "acme/ops-minilm")
    assert cached_embedders() == ["acme/ops-minilm"]
    assert resolve_embedder("acme/ops-minilm") == snapshot

    cached = load_embedder(load_settings(embedder="acme/ops-minilm"))
    assert cached.name == "acme/ops-minilm"  # the name collections record, not the snapshot folder
    folder = load_embedder(load_settings(embedder=str(bundled_model_dir())))
    assert folder.name == str(bundled_model_dir())
    for loaded in (cached, folder):
        assert loaded.dimension == 384
        assert float(loaded.embed_query("disk full") @ embedder.embed_query("disk full")) >= 0.999
    assert network_attempts == []


def test_onnx_backend_serves_only_the_bundled_model() -> None:
    with pytest.raises(EmbedderError) as caught:
        load_embedder(load_settings(embedder="BAAI/bge-large-en-v1.5", embedder_backend="onnx"))
    message = str(caught.value)
    assert "BAAI/bge-large-en-v1.5" in message
    assert "OPSMITH_EMBEDDER_BACKEND" in message
