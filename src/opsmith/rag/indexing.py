"""Incremental, resumable ingestion: files -> documents -> chunks -> vectors -> Qdrant.

:func:`ingest` is the entry point, also exported as ``opsmith.rag.ingest``: the module has another
name so that ``opsmith.rag.ingest`` is always the function.

Files are compared by content hash with what the collection holds:

* unchanged files are skipped without being parsed;
* a changed file's new chunks are written first, then its old ones deleted, so the
  index keeps answering during the update;
* files that are gone from the given paths have their chunks removed (``prune``), but only
  files that were ingested from under those paths: every chunk records the folder its source
  is relative to, so ingesting one file or one folder never empties a shared collection.

Every chunk carries its file's hash and chunk count, and point ids are derived from
(source, hash, index). A file counts as indexed only when all of its chunks are present,
so an ingest cut short by Ctrl-C or a kill is completed by the next run without
duplicates.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from opsmith.config import Settings
from opsmith.errors import InputError, PathNotFoundError
from opsmith.rag.chunking import CHUNKER_VERSION, Chunk, chunk_document
from opsmith.rag.documents import Document, SkipFile
from opsmith.rag.embedder import Embedder
from opsmith.rag.loaders import SUPPORTED_SUFFIXES, file_digest, load_document
from opsmith.rag.sparse import document_vector, term_ids
from opsmith.rag.store import FileState, StoredChunk, TermStats, VectorStore, VectorStoreReader

__all__ = [
    "FoundFile",
    "IngestProgress",
    "IngestReport",
    "ProgressHook",
    "SkippedFile",
    "collect_term_stats",
    "discover",
    "ingest",
    "ingest_recipe",
    "stored_chunks",
]


@dataclass
class SkippedFile:
    """A file left out of the index (or indexed with a warning), and why."""

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
    kept_outside: int = 0  # indexed files that are gone but were not ingested from the given paths: kept
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


@dataclass(frozen=True)
class FoundFile:
    """A file to ingest: the real path to read, its source name, and the folder that name is relative to."""

    path: Path
    source: str
    root: Path  # resolved: the given folder, or a given file's folder


def discover(
    paths: Sequence[Path], *, within: Sequence[Path] | None = None, follow_symlinks: bool = False
) -> tuple[list[FoundFile], list[SkippedFile]]:
    """The files under ``paths``, and what was left out there with the reason.

    A given folder is walked with an explicit stack (no depth limit), leaving out hidden
    entries (``.git``); a file's ``source`` is its path relative to that folder. A given file's
    source is its name. Broken links, link loops and links to folders are reported, not read.

    A symlink that leads out of its given folder (for a given file: out of the file's folder) is
    skipped and reported, never read, unless ``follow_symlinks``. With ``within`` (resolved
    folders: the HTTP service's ingest roots) the real path must lie in one of those instead.
    """
    found: dict[str, FoundFile] = {}
    skipped: list[SkippedFile] = []
    for given in paths:
        if not given.exists():  # a broken or looping link counts as missing too
            raise PathNotFoundError(given)
        if given.is_dir():
            root = given.resolve()
            entries = _walk(root, skipped)
            outside = f"links outside {given} — not read; pass --follow-symlinks to read it"
        else:
            root = given.parent.resolve()
            entries = iter([(root / given.name, given.name)])
            outside = "links outside its folder — not read; pass --follow-symlinks to read it"
        if within is not None:
            allowed: Sequence[Path] | None = within
            outside = "links outside the allowed ingest roots; not read"
        else:
            allowed = None if follow_symlinks else [root]
        for path, source in entries:
            try:
                real = _real_file(path, allowed, outside)
            except SkipFile as skip:
                skipped.append(SkippedFile(source, skip.reason))
                continue
            if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                skipped.append(SkippedFile(source, f"unsupported file type {path.suffix or '(none)'}"))
                continue
            if source in found and found[source].path != real:
                raise InputError(
                    f"Two files map to the source name {source!r} ({found[source].path} and {real})"
                    " — ingest the folders into separate collections"
                )
            found[source] = FoundFile(real, source, root)
    if not found:
        shown = ", ".join(str(p) for p in paths)
        kinds = " ".join(sorted(SUPPORTED_SUFFIXES))
        why = f"; skipped {skipped[0].path}: {skipped[0].reason}" if skipped else ""
        more = f" and {len(skipped) - 1} more" if len(skipped) > 1 else ""
        raise InputError(
            f"No files to ingest in {shown} (looked for {kinds}{why}{more}) — point at a folder of runbooks"
        )
    return [found[source] for source in sorted(found)], skipped


def _walk(folder: Path, skipped: list[SkippedFile]) -> Iterator[tuple[Path, str]]:
    """Everything but folders under ``folder``, as (path, source); folder links are not entered.

    Iterative on purpose: a recursive walk (pathlib's rglob on Python 3.11) raises RecursionError
    on a tree about 1,000 folders deep.
    """
    pending = [(folder, "")]
    while pending:
        directory, prefix = pending.pop()
        try:
            with os.scandir(directory) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as exc:
            reason = f"cannot list folder: {(exc.strerror or str(exc)).lower()}"
            skipped.append(SkippedFile(prefix.rstrip("/") or ".", reason))
            continue
        for entry in entries:
            # Hidden folders (.git, .obsidian) hold tooling, not runbooks.
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                pending.append((Path(entry.path), f"{prefix}{entry.name}/"))
            else:
                yield Path(entry.path), prefix + entry.name


def _real_file(path: Path, allowed: Sequence[Path] | None, outside: str) -> Path:
    """Where ``path`` really is, if it may be read; a link that must not be is a :class:`SkipFile`.

    Whether it is a regular file is checked when it is read (:func:`~opsmith.rag.loaders.open_file`).
    """
    real = path
    if path.is_symlink():
        try:
            target = os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SkipFile("symlink loop — not read; fix or remove the link") from None
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                raise SkipFile("broken symlink: its target does not exist — fix or remove the link") from None
            raise SkipFile(f"cannot read: {(exc.strerror or str(exc)).lower()}") from None
        real = Path(os.path.realpath(path))
        if allowed is not None and not _inside(real, allowed):
            raise SkipFile(outside)
        if stat.S_ISDIR(target.st_mode):
            raise SkipFile("link to a folder — not followed; ingest that folder itself")
    elif allowed is not None and not _inside(real, allowed):
        raise SkipFile(outside)
    return real


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
    follow_symlinks: bool = False,
) -> IngestReport:
    """Bring ``collection`` in line with the files under ``paths`` and report what changed.

    Args:
        prune: remove indexed files that are gone, but only those that were ingested from
            under ``paths`` (each file records the folder it came from); the rest of the
            collection is kept and counted in ``kept_outside``.
        within: if given, files whose real path is outside these folders are skipped (see
            :func:`discover`); the HTTP service passes its allowed ingest roots.
        follow_symlinks: read files that links lead to outside the given folders.
    """
    started = time.perf_counter()
    name = collection or settings.collection
    given = [Path(p) for p in paths]
    files, skipped = discover(given, within=within, follow_symlinks=follow_symlinks)
    report = IngestReport(collection=name, skipped=skipped)
    dropped_unreadable = False  # chunks deleted for a file that is now skipped: term stats must be redone
    info = store.ensure_collection(name, embedder=embedder.name, dimension=embedder.dimension)
    indexed = store.file_states(name)
    state = IngestProgress(files_total=len(files))
    recipe = ingest_recipe(settings, embedder)

    # Decide per file from its hash alone; only new or changed files are parsed.
    pending: list[tuple[Document, bool, str]] = []
    for found in files:
        source, root = found.source, str(found.root)
        versions = indexed.get(source, {})
        try:
            # Streamed, and only after stat said the file is regular and small enough.
            sha = file_digest(found.path, max_bytes=settings.max_file_bytes, prefix=recipe)
            current = versions.get(sha)
            if current is not None and current.complete and len(versions) == 1:
                if current.root != root:  # same file, found from another folder (or recorded by no folder)
                    store.set_source_root(name, source, root)
                report.unchanged += 1
                state.files_done += 1
                continue
            document = load_document(
                found.path, source, max_bytes=settings.max_file_bytes, suffix=PurePosixPath(source).suffix
            )
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
        pending.append((document, bool(versions), root))

    chunked: list[tuple[Document, bool, list[StoredChunk], list[str]]] = []
    for document, existed, root in pending:
        pieces = chunk_document(
            document,
            count_tokens=embedder.count_tokens,
            max_tokens=min(settings.chunk_tokens, embedder.max_tokens),
            overlap=settings.chunk_overlap,
        )
        stored = stored_chunks(document, pieces, root)
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
        seen = {found.source for found in files}
        folders, singles = _scope(given)
        for source in sorted(set(indexed) - seen):
            if _ingested_from(indexed[source].values(), source, folders, singles):
                store.delete_source(name, source)
                report.removed += 1
            else:
                report.kept_outside += 1

    if report.added or report.changed or report.removed or dropped_unreadable or info.term_stats is None:
        store.set_term_stats(name, collect_term_stats(store, name, known=fresh_terms))

    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def _scope(given: Sequence[Path]) -> tuple[list[Path], set[Path]]:
    """What a run may prune: everything under the given folders, and the given files themselves."""
    folders = [path.resolve() for path in given if path.is_dir()]
    singles = {path.parent.resolve() / path.name for path in given if not path.is_dir()}
    return folders, singles


def _ingested_from(versions: Iterable[FileState], source: str, folders: Sequence[Path], singles: set[Path]) -> bool:
    """Whether every stored version of ``source`` was ingested from under the given paths.

    A version that records no folder (indexed before folders were recorded) is never in scope:
    pruning must not remove a runbook the user did not point at.
    """
    for version in versions:
        if version.root is None:
            return False
        location = Path(version.root) / source
        if location not in singles and not _inside(location, folders):
            return False
    return True


def stored_chunks(document: Document, pieces: list[Chunk], root: str | None = None) -> list[StoredChunk]:
    """``document``'s chunks as the index stores them (``root``: the folder its source is relative to)."""
    return [
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
            root=root,
            line_numbers=piece.line_numbers,
        )
        for piece in pieces
    ]


def ingest_recipe(settings: Settings, embedder: Embedder) -> bytes:
    """What, besides a file's bytes, decides its chunks and vectors."""
    cap = min(settings.chunk_tokens, embedder.max_tokens)
    return f"chunker-{CHUNKER_VERSION}:{cap}:{settings.chunk_overlap}:{embedder.name}\x00".encode()


def collect_term_stats(
    store: VectorStoreReader, collection: str, known: dict[str, set[int]] | None = None
) -> TermStats:
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
