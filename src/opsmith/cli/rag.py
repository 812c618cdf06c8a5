"""``opsmith ingest``, ``search``, ``ask`` and ``collections``: the runbook assistant."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.markup import escape

from opsmith.cli._context import settings_from
from opsmith.cli._output import err, fail_line, out, print_json, progress_bar, warn

if TYPE_CHECKING:
    from opsmith.rag.answer import Answer
    from opsmith.rag.indexing import IngestProgress

CollectionOpt = Annotated[
    str | None, typer.Option("--collection", "-c", help="Qdrant collection (default: settings, 'runbooks').")
]
QdrantUrlOpt = Annotated[
    str | None, typer.Option("--qdrant-url", help="Qdrant server URL (default: embedded local index).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts.")]
KOpt = Annotated[int | None, typer.Option("-k", "--top-k", help="How many chunks to retrieve.", min=1, max=100)]
# Spelled out here rather than imported from opsmith.config, which would make `--help` pay
# for pydantic; tests check they match config.RetrievalMode / ProviderName.
Mode = Literal["hybrid", "dense", "sparse"]
Provider = Literal["none", "anthropic", "openai", "local_hf"]
ModeOpt = Annotated[Mode | None, typer.Option("--mode", help="Retrieval mode: hybrid (default), dense or sparse.")]
ProviderOpt = Annotated[
    Provider | None,
    typer.Option(
        "--provider", help="none (extractive), anthropic, openai or local_hf (with --model PATH).", show_choices=True
    ),
]


def register(app: typer.Typer) -> None:
    app.command()(ingest)
    app.command()(search)
    app.command()(ask)


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders of runbooks.", show_default=False)],
    collection: CollectionOpt = None,
    qdrant_url: QdrantUrlOpt = None,
    keep_missing: Annotated[
        bool, typer.Option("--keep-missing", help="Keep indexed files that are gone from PATHs.")
    ] = False,
    follow_symlinks: Annotated[
        bool,
        typer.Option("--follow-symlinks", help="Read files that links lead to outside PATHs (skipped by default)."),
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Index runbooks (.md .markdown .txt .rst .html .pdf). Re-runs only redo what changed.

    Files gone from PATHs are removed from the index; files indexed from elsewhere are kept.
    """
    from opsmith.backend import Backend

    settings = settings_from(collection=collection, qdrant_url=qdrant_url)
    with Backend(settings) as backend:
        # Loaded before the progress bar shows: the index and the model, each failing with its own line.
        backend.store()
        backend.embedder()
        with progress_bar("Embedding", enabled=not json_output) as bar:
            task = bar.add_task("Embedding chunks", total=None) if bar else None

            def on_progress(state: IngestProgress) -> None:
                if bar is not None and task is not None:
                    bar.update(task, total=state.chunks_total or None, completed=state.chunks_done)

            report = backend.ingest(
                paths, prune=not keep_missing, progress=on_progress, follow_symlinks=follow_symlinks
            )
    # Warnings go to stderr in both modes, so `--json` stdout stays one JSON document.
    for item in report.skipped:
        warn(f"skipped {item.path}: {item.reason}")
    for item in report.warnings:
        warn(f"{item.path}: {item.reason}")
    if json_output:
        print_json(report.to_dict())
        return
    n = report.kept_outside
    kept = f"· kept {n} runbook{'s' * (n != 1)} outside the given paths " if n else ""
    out.print(
        f"[bold]{report.collection}[/]: {report.added} added, {report.changed} changed, "
        f"{report.unchanged} unchanged, {report.removed} removed, {len(report.skipped)} skipped "
        f"{kept}· {report.chunks} chunks embedded in {report.seconds:.1f}s"
    )


def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    collection: CollectionOpt = None,
    k: KOpt = None,
    mode: ModeOpt = None,
    qdrant_url: QdrantUrlOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Show the raw ranked chunks for a query, with scores."""
    from opsmith.backend import Backend

    settings = settings_from(collection=collection, qdrant_url=qdrant_url, retrieval_mode=mode)
    with Backend(settings) as backend:
        found = backend.search(query, k=k or settings.top_k)
    if json_output:
        print_json(found)
        return
    results = found["results"]
    if not results:
        out.print("No results.")
    for rank, row in enumerate(results, start=1):
        out.print(
            f"[bold cyan]{rank}.[/] [bold]{escape(str(row['source']))}[/]:{row['start_line']}-{row['end_line']} "
            f"[dim]{escape(str(row['heading']))}[/]  score={row['score']:.4f} cosine={row['relevance']:.3f}"
        )
        snippet = " ".join(str(row["text"]).split())
        out.print(f"   {snippet[:240]}{'…' if len(snippet) > 240 else ''}", markup=False)


def ask(
    question: Annotated[str, typer.Argument(help="Your question, in plain words.")],
    collection: CollectionOpt = None,
    k: KOpt = None,
    mode: ModeOpt = None,
    provider: ProviderOpt = None,
    model: Annotated[str | None, typer.Option("--model", help="Model name for the provider.")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="OpenAI-compatible server URL.")] = None,
    adapter: Annotated[
        Path | None, typer.Option("--adapter", help="LoRA adapter folder for --provider local_hf.")
    ] = None,
    qdrant_url: QdrantUrlOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Answer a question from the runbooks only, with citations; refuse when they don't cover it."""
    from opsmith.backend import Backend
    from opsmith.errors import EmptyQuestionError

    if not question.strip():
        raise EmptyQuestionError()
    settings = settings_from(
        collection=collection,
        qdrant_url=qdrant_url,
        retrieval_mode=mode,
        provider=provider,
        model=model,
        base_url=base_url,
        adapter=adapter,
    )
    on_delta = _StreamPrinter()
    with Backend(settings) as backend:
        # Provider settings are checked before the index is opened, so a missing key fails fast.
        streaming = backend.chat_model() is not None and not json_output and out.is_terminal
        result = backend.ask(question, k=k, on_delta=on_delta if streaming else None)
    if json_output:
        print_json(result.to_dict())
    else:
        if on_delta.released and (result.refused or result.error):
            out.print()  # streamed text cannot be unsent: what replaces it starts on a line of its own
        _render_answer(result, already_streamed=on_delta.released and not result.refused and result.error is None)
    if result.error:
        fail_line(result.error)
        raise typer.Exit(1)


class _StreamPrinter:
    """Prints streamed text, but holds back a reply that may turn out to be the refusal marker,
    so a refusal shows as the refusal line rather than as the raw marker."""

    def __init__(self) -> None:
        self.held = ""
        self.released = False

    def __call__(self, text: str) -> None:
        from opsmith.rag.answer import NOT_FOUND_MARKER

        if not self.released:
            self.held += text
            probe = self.held.lstrip()
            if NOT_FOUND_MARKER.startswith(probe) or probe.startswith(NOT_FOUND_MARKER):
                return
            self.released = True
            text = self.held
        out.print(text, end="", markup=False, highlight=False)


def _render_answer(result: Answer, *, already_streamed: bool) -> None:
    if result.refused:
        out.print(f"[bold yellow]{result.answer}[/]")
        return
    if already_streamed:
        out.print()
    else:
        out.print(result.answer, markup=False)
    if result.citations:
        out.print("\n[bold]Sources[/]")
        for c in result.citations:
            out.print(
                f"  [{c.number}] [bold]{escape(c.source)}[/]:{c.start_line}-{c.end_line}  [dim]{escape(c.heading)}[/]"
            )
    if result.dropped_citations:
        warn(f"the model cited excerpts that were never supplied: {result.dropped_citations} (removed)")
    if not result.grounded:
        warn(
            "this answer cites none of the runbook excerpts, so it is not grounded in them"
            " — check it against the runbooks before acting on it"
        )
    timings = result.timings_ms
    err.print(
        f"[dim]{result.provider} · retrieve {timings['retrieve']:.0f} ms · generate {timings['generate']:.0f} ms[/]"
    )


collections_app = typer.Typer(help="List or delete collections.", no_args_is_help=True)


@collections_app.command("list")
def collections_list(qdrant_url: QdrantUrlOpt = None, json_output: JsonOpt = False) -> None:
    """List collections with their point counts and embedders."""
    from opsmith.backend import Backend

    settings = settings_from(qdrant_url=qdrant_url)
    with Backend(settings) as backend:
        listed = backend.collections()
    if json_output:
        print_json(listed)
        return
    if not listed["collections"]:
        out.print(f"No collections in {listed['location']} — run `opsmith ingest PATH` first.", markup=False)
    for row in listed["collections"]:
        out.print(
            f"[bold]{escape(str(row['name']))}[/]  {row['points']} chunks  {escape(str(row['embedder']))}"
            f" ({row['dimension']}d)"
        )


@collections_app.command("delete")
def collections_delete(
    name: Annotated[str, typer.Argument(help="Collection to delete.")],
    qdrant_url: QdrantUrlOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking (for scripts).")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Delete a collection and everything in it (asks first; --yes in scripts)."""
    from opsmith.backend import Backend
    from opsmith.errors import CollectionNotFoundError

    settings = settings_from(qdrant_url=qdrant_url)
    with Backend(settings) as backend:
        store = backend.store()
        info = store.info(name)
        if info is None:
            raise CollectionNotFoundError(name)
        if not yes:
            _confirm_delete(name, info.points, store.location)
        backend.delete_collection(name)
    if json_output:
        print_json({"deleted": name})
    else:
        out.print(f"Deleted collection [bold]{escape(name)}[/].")


def _stdin_is_terminal() -> bool:
    import sys

    return sys.stdin.isatty()


def _confirm_delete(name: str, points: int, location: str) -> None:
    """Ask on a terminal; refuse without a terminal, where nobody can answer (pass --yes)."""
    from opsmith.errors import InputError

    what = f"collection '{name}' ({points} chunks) in {location}"
    if not _stdin_is_terminal():
        raise InputError(f"Not deleting {what} without confirmation — pass --yes to delete it from a script")
    from rich.prompt import Confirm

    # On stderr, so that --json output stays one JSON document.
    if not Confirm.ask(f"Delete {escape(what)}? This cannot be undone", default=False, console=err):
        err.print("Nothing deleted.")
        raise typer.Exit(1)
