"""The bundled embedder on ONNX Runtime, checked against sentence-transformers, and its errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from opsmith.config import BUNDLED_EMBEDDER, load_settings
from opsmith.errors import EmbedderError
from opsmith.rag.embedder import Embedder, OnnxEmbedder, load_embedder

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


def test_unknown_model_path_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(EmbedderError) as caught:
        load_embedder(load_settings(embedder=str(missing)))
    message = str(caught.value)
    assert str(missing) in message
    assert "pass a local model folder" in message
    assert "\n" not in message


def test_unknown_hub_model_offline_is_a_one_line_error() -> None:
    # HF_HUB_OFFLINE=1 in tests: the hub is not asked, the cache misses.
    with pytest.raises(EmbedderError) as caught:
        load_embedder(load_settings(embedder="no-such-org/no-such-model"))
    message = str(caught.value)
    assert "'no-such-org/no-such-model'" in message
    assert "\n" not in message
    assert message.endswith("download it first where a model hub is reachable")


def test_onnx_backend_serves_only_the_bundled_model() -> None:
    with pytest.raises(EmbedderError) as caught:
        load_embedder(load_settings(embedder="BAAI/bge-large-en-v1.5", embedder_backend="onnx"))
    message = str(caught.value)
    assert "BAAI/bge-large-en-v1.5" in message
    assert "OPSMITH_EMBEDDER_BACKEND" in message
