"""Incremental, resumable ingestion: files -> documents -> chunks -> vectors -> Qdrant.

Files are compared by content hash with what the collection holds:

* unchanged files are skipped without being parsed;
* a changed file's new chunks are written first, then its old ones deleted, so the
  index keeps answering during the update;
* files that are gone from the given paths have their chunks removed (``prune``).

Every chunk carries its file's hash and chunk count, and point ids are derived from
(source, hash, index). A file counts as indexed only when all of its chunks are present,
so an ingest cut short by Ctrl-C or a kill is completed by the next run without
duplicates.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from opsmith.config import Settings
from opsmith.errors import InputError, PathNotFoundError
from opsmith.rag.chunking import CHUNKER_VERSION, chunk_document
from opsmith.rag.documents import Document, SkipFile
from opsmith.rag.embedder import Embedder
from opsmith.rag.loaders import SUPPORTED_SUFFIXES, load_document
from opsmith.rag.sparse import document_vector, term_ids
from opsmith.rag.store import StoredChunk, TermStats, VectorStore


@dataclass
class SkippedFile:
    path: str
    reason: str


@dataclass
class IngestReport:
    """Counts are in files, except ``chunks`` (chunks written by this run)."""

    collection: str
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks: int = 0
    seconds: float = 0.0
    skipped: list[SkippedFile] = field(default_factory=list)
    warnings: list[SkippedFile] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class IngestProgress:
    """Passed to the progress callback: files scanned, chunks embedded so far and in total."""

    files_done: int = 0
    files_total: int = 0
    chunks_done: int = 0
    chunks_total: int = 0


ProgressHook = Callable[[IngestProgress], None]


def discover(
    paths: Sequence[Path], *, within: Sequence[Path] | None = None
) -> tuple[list[tuple[Path, str]], list[SkippedFile]]:
    """Files under ``paths`` as (path, source) pairs; ``source`` is relative to the given PATH.

    With ``within`` (resolved folders), a file whose real path lies outside all of them (a
    symlink out of an allowed root) is skipped and reported, never read.
    """
    found: dict[str, Path] = {}
    skipped: list[SkippedFile] = []
    for given in paths:
        if not given.exists():
            raise PathNotFoundError(given)
        if given.is_file():
            candidates = [(given, given.name)]
        else:
            candidates = []
            for path in sorted(given.rglob("*")):
                relative = path.relative_to(given)
                # Hidden folders (.git, .obsidian) hold tooling, not runbooks.
                if any(part.startswith(".") for part in relative.parts) or not path.is_file():
                    continue
                candidates.append((path, relative.as_posix()))
        for path, source in candidates:
            if within is not None and not _inside(path.resolve(), within):
                skipped.append(SkippedFile(source, "links outside the allowed ingest roots; not read"))
                continue
            if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                skipped.append(SkippedFile(source, f"unsupported file type {path.suffix or '(none)'}"))
                continue
            if source in found and found[source] != path:
                raise InputError(
                    f"Two files map to the source name {source!r} ({found[source]} and {path})"
                    " — ingest the folders into separate collections"
                )
            found[source] = path
    if not found:
        shown = ", ".join(str(p) for p in paths)
        kinds = " ".join(sorted(SUPPORTED_SUFFIXES))
        raise InputError(f"No files to ingest in {shown} (looked for {kinds}) — point at a folder of runbooks")
    return [(path, source) for source, path in sorted(found.items())], skipped


def ingest(
    paths: Sequence[Path],
    *,
    settings: Settings,
    embedder: Embedder,
    store: VectorStore,
    collection: str | None = None,
    prune: bool = True,
    progress: ProgressHook | None = None,
    within: Sequence[Path] | None = None,
) -> IngestReport:
    """Bring ``collection`` in line with the files under ``paths`` and report what changed.

    ``within``: if given, files whose real path is outside these folders are skipped (see
    :func:`discover`); the HTTP service passes its allowed ingest roots.
    """
    started = time.perf_counter()
    name = collection or settings.collection
    files, skipped = discover([Path(p) for p in paths], within=within)
    report = IngestReport(collection=name, skipped=skipped)
    dropped_unreadable = False  # chunks deleted for a file that is now skipped: term stats must be redone
    info = store.ensure_collection(name, embedder=embedder.name, dimension=embedder.dimension)
    indexed = store.file_states(name)
    state = IngestProgress(files_total=len(files))
    recipe = ingest_recipe(settings, embedder)

    # Decide per file from its hash alone; only new or changed files are parsed.
    pending: list[tuple[Document, bool]] = []
    for path, source in files:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            report.skipped.append(SkippedFile(source, f"cannot read: {exc.strerror or exc}"))
            continue
        sha = hashlib.sha256(recipe + raw).hexdigest()
        versions = indexed.get(source, {})
        current = versions.get(sha)
        if current is not None and current.complete and len(versions) == 1:
            report.unchanged += 1
            state.files_done += 1
            continue
        try:
            document = load_document(path, source, max_bytes=settings.max_file_bytes)
        except SkipFile as skip:
            report.skipped.append(SkippedFile(source, skip.reason))
            if versions:  # it was indexed before but cannot be read now: don't serve stale text
                store.delete_source(name, source)
                dropped_unreadable = True
            continue
        report.warnings.extend(SkippedFile(source, warning) for warning in document.warnings)
        # The stored version is the file *and* how it was chunked, so a new chunker or new chunk
        # settings re-chunk every file instead of leaving old chunks next to new ones.
        document.sha256 = sha
        pending.append((document, bool(versions)))

    chunked: list[tuple[Document, bool, list[StoredChunk], list[str]]] = []
    for document, existed in pending:
        pieces = chunk_document(
            document,
            count_tokens=embedder.count_tokens,
            max_tokens=min(settings.chunk_tokens, embedder.max_tokens),
            overlap=settings.chunk_overlap,
        )
        stored = [
            StoredChunk(
                source=document.source,
                heading=piece.heading,
                start_line=piece.start_line,
                end_line=piece.end_line,
                text=piece.text,
                chunk_index=piece.index,
                chunk_count=len(pieces),
                file_sha256=document.sha256,
                kind=document.kind,
                title=document.title,
            )
            for piece in pieces
        ]
        if not pieces:
            report.skipped.append(SkippedFile(document.source, "no text left after parsing"))
            continue
        texts = [piece.embedding_text(document.title) for piece in pieces]
        chunked.append((document, existed, stored, texts))
    state.chunks_total = sum(len(stored) for _, _, stored, _ in chunked)
    if progress:
        progress(state)

    avgdl = info.avgdl
    batch_chunks: list[StoredChunk] = []
    batch_texts: list[str] = []
    fresh_terms: dict[str, set[int]] = {}
    waiting: list[tuple[Document, bool]] = []  # documents whose chunks are not all written yet

    def write_batch() -> None:
        if batch_chunks:
            dense = embedder.embed_documents(batch_texts, progress=_advance(state, progress))
            sparse = [document_vector(text, avgdl=avgdl) for text in batch_texts]
            # A sparse vector's indices are its chunk's distinct terms: keep them for the stats.
            fresh_terms.update((c.point_id, set(v.indices)) for c, v in zip(batch_chunks, sparse, strict=True))
            store.upsert(name, batch_chunks, np.asarray(dense, dtype=np.float32), sparse)
            report.chunks += len(batch_chunks)
            batch_chunks.clear()
            batch_texts.clear()
        for document, existed in waiting:
            if existed:
                # Only now is the new version complete; drop any other version of the file.
                store.delete_source(name, document.source, keep_sha256=document.sha256)
                report.changed += 1
            else:
                report.added += 1
            state.files_done += 1
        waiting.clear()
        if progress:
            progress(state)

    for document, existed, stored, texts in chunked:
        batch_chunks.extend(stored)
        batch_texts.extend(texts)
        waiting.append((document, existed))
        if len(batch_chunks) >= settings.ingest_batch:
            write_batch()
    write_batch()

    if prune:
        seen = {source for _, source in files}
        for source in sorted(set(indexed) - seen):
            store.delete_source(name, source)
            report.removed += 1

    if report.added or report.changed or report.removed or dropped_unreadable or info.term_stats is None:
        store.set_term_stats(name, collect_term_stats(store, name, known=fresh_terms))

    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def ingest_recipe(settings: Settings, embedder: Embedder) -> bytes:
    """What, besides a file's bytes, decides its chunks and vectors."""
    cap = min(settings.chunk_tokens, embedder.max_tokens)
    return f"chunker-{CHUNKER_VERSION}:{cap}:{settings.chunk_overlap}:{embedder.name}\x00".encode()


def collect_term_stats(store: VectorStore, collection: str, known: dict[str, set[int]] | None = None) -> TermStats:
    """Recount document frequencies over every stored chunk; ``known`` maps point ids to
    term sets already computed in this run, so only older chunks are tokenized again."""
    known = known or {}
    df: Counter[int] = Counter()
    chunks = 0
    for chunk in store.all_chunks(collection):
        chunks += 1
        terms = known.get(chunk.point_id)
        df.update(terms if terms is not None else term_ids(chunk.indexed_text))
    return TermStats(chunks, dict(df))


def _advance(state: IngestProgress, progress: ProgressHook | None) -> Callable[[int], None] | None:
    if progress is None:
        return None

    def advance(count: int) -> None:
        state.chunks_done += count
        progress(state)

    return advance
