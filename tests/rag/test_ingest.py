"""Incremental, resumable ingest into the real local Qdrant with the real embedder."""

from __future__ import annotations

import io
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from opsmith.config import Settings, load_settings
from opsmith.errors import InputError, PathNotFoundError
from opsmith.rag import indexing
from opsmith.rag.embedder import Embedder, ProgressCallback
from opsmith.rag.indexing import IngestProgress, IngestReport, ingest
from opsmith.rag.sparse import document_vector, term_id, term_ids
from opsmith.rag.store import QdrantStore

LONG_RUNBOOK = "# Replica lag\n\n" + "\n\n".join(
    f"## Step {n}\n\n" + " ".join(f"Check replica {n}-{i} lag and the WAL sender before promoting." for i in range(5))
    for n in range(6)
)


def _write(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def _run(paths: Sequence[Path], settings: Settings, embedder: Any, store: Any, **kwargs: Any) -> IngestReport:
    return ingest(list(paths), settings=settings, embedder=embedder, store=store, **kwargs)


def _assert_consistent(store: QdrantStore, collection: str = "runbooks") -> dict[str, int]:
    """One complete version per source and no duplicate chunks; returns chunks per source."""
    states = store.file_states(collection)
    for source, versions in states.items():
        assert len(versions) == 1, (source, versions)
        (state,) = versions.values()
        assert state.complete, (source, state)
    chunks = list(store.all_chunks(collection))
    keys = Counter((c.source, c.chunk_index) for c in chunks)
    assert max(keys.values(), default=1) == 1
    per_source = {source: next(iter(v.values())).chunk_count for source, v in states.items()}
    assert store.info(collection).points == sum(per_source.values())  # type: ignore[union-attr]
    return per_source


class _InterruptingEmbedder:
    """The real embedder, but the ``fail_on``-th call to embed_documents is a Ctrl-C."""

    def __init__(self, inner: Embedder, fail_on: int) -> None:
        self._inner = inner
        self.name, self.dimension, self.max_tokens = inner.name, inner.dimension, inner.max_tokens
        self.fail_on = fail_on
        self.calls = 0

    def embed_documents(
        self, texts: Sequence[str], *, batch_size: int = 32, progress: ProgressCallback | None = None
    ) -> Any:
        self.calls += 1
        if self.calls == self.fail_on:
            raise KeyboardInterrupt
        return self._inner.embed_documents(texts, batch_size=batch_size, progress=progress)

    def embed_query(self, text: str) -> Any:
        return self._inner.embed_query(text)

    def count_tokens(self, text: str) -> int:
        return self._inner.count_tokens(text)


class _DyingStore:
    """The real store, killed mid-write: the ``die_on``-th upsert writes one point, then Ctrl-C.
    ``die_on_delete`` does the same to the first delete_source call that keeps a version."""

    def __init__(self, inner: QdrantStore, die_on: int = 0, die_on_delete: bool = False) -> None:
        self._inner = inner
        self.die_on = die_on
        self.die_on_delete = die_on_delete
        self.upserts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def upsert(self, collection: str, chunks: Sequence[Any], dense: np.ndarray, sparse: Sequence[Any]) -> None:
        self.upserts += 1
        if self.upserts == self.die_on:
            self._inner.upsert(collection, chunks[:1], dense[:1], sparse[:1])
            raise KeyboardInterrupt
        self._inner.upsert(collection, chunks, dense, sparse)

    def delete_source(self, collection: str, source: str, *, keep_sha256: str | None = None) -> None:
        if self.die_on_delete and keep_sha256:
            raise KeyboardInterrupt
        self._inner.delete_source(collection, source, keep_sha256=keep_sha256)


def test_first_ingest_adds_every_file_with_relative_sources(
    runbooks: dict[str, str], corpus: Path, settings: Settings, embedder: Embedder, store: QdrantStore
) -> None:
    seen: list[IngestProgress] = []
    report = _run([corpus], settings, embedder, store, progress=lambda p: seen.append(IngestProgress(**vars(p))))

    assert (report.added, report.changed, report.unchanged, report.removed) == (3, 0, 0, 0)
    assert report.skipped == []
    assert report.seconds > 0
    per_source = _assert_consistent(store)
    assert set(per_source) == set(runbooks)
    assert report.chunks == sum(per_source.values()) == store.info("runbooks").points  # type: ignore[union-attr]
    assert {"added", "changed", "unchanged", "removed", "chunks", "seconds", "skipped"} <= set(report.to_dict())
    assert seen[-1].files_done == seen[-1].files_total == 3
    assert seen[-1].chunks_done == seen[-1].chunks_total == report.chunks
    (chunk,) = store.chunks("runbooks", "db/disk-full.md")
    assert chunk.heading.startswith("Disk full on the database host")
    assert "pg_archivecleanup" in chunk.text
    assert (chunk.start_line, chunk.end_line) == (1, runbooks["db/disk-full.md"].count("\n"))


def test_unchanged_files_are_not_parsed_or_embedded_again(
    corpus: Path, settings: Settings, embedder: Embedder, store: QdrantStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _run([corpus], settings, embedder, store)

    def no_parsing(*args: object, **kwargs: object) -> None:
        raise AssertionError("an unchanged file was parsed")

    monkeypatch.setattr(indexing, "load_document", no_parsing)
    spy = _InterruptingEmbedder(embedder, fail_on=1)  # any embedding call would be a Ctrl-C
    again = _run([corpus], settings, spy, store)

    assert (again.added, again.changed, again.unchanged, again.removed, again.chunks) == (0, 0, 3, 0, 0)
    assert spy.calls == 0
    assert store.info("runbooks").points == first.chunks  # type: ignore[union-attr]


def test_edit_delete_and_add_files(
    runbooks: dict[str, str], corpus: Path, settings: Settings, embedder: Embedder, store: QdrantStore
) -> None:
    _run([corpus], settings, embedder, store)
    (corpus / "db/disk-full.md").write_text(
        runbooks["db/disk-full.md"].replace("pg_archivecleanup", "the wal-reaper job"), encoding="utf-8"
    )
    (corpus / "cache/redis-memory.md").unlink()
    _write(corpus, {"net/dns.md": "# DNS failures\n\nCoreDNS returns SERVFAIL; restart the coredns pods.\n"})

    report = _run([corpus], settings, embedder, store)

    assert (report.added, report.changed, report.unchanged, report.removed) == (1, 1, 1, 1)
    per_source = _assert_consistent(store)
    assert set(per_source) == {"db/disk-full.md", "shop/checkout-latency.md", "net/dns.md"}
    assert report.chunks == per_source["db/disk-full.md"] + per_source["net/dns.md"]
    texts = " ".join(c.text for c in store.all_chunks("runbooks"))
    assert "wal-reaper" in texts
    assert "pg_archivecleanup" not in texts  # the old version's chunks are gone
    assert "maxmemory" not in texts  # the deleted file's chunks are gone


def test_prune_false_keeps_files_that_are_gone(
    corpus: Path, settings: Settings, embedder: Embedder, store: QdrantStore
) -> None:
    _run([corpus], settings, embedder, store)
    (corpus / "cache/redis-memory.md").unlink()
    report = _run([corpus], settings, embedder, store, prune=False)
    assert report.removed == 0
    assert "cache/redis-memory.md" in _assert_consistent(store)


def test_interrupted_ingest_is_completed_by_the_next_run(corpus: Path, settings: Settings, embedder: Embedder) -> None:
    settings = settings.model_copy(update={"ingest_batch": 1})  # one file per write
    with QdrantStore(settings) as store:
        expected = _run([corpus], settings, embedder, store, collection="reference").chunks
        with pytest.raises(KeyboardInterrupt):
            _run([corpus], settings, _InterruptingEmbedder(embedder, fail_on=2), store)
        assert len(store.file_states("runbooks")) == 1  # the first file made it, the rest did not

    # A new process picks up where the interrupted one stopped.
    with QdrantStore(settings) as store:
        report = _run([corpus], settings, embedder, store)
        assert (report.added, report.unchanged, report.changed) == (2, 1, 0)
        per_source = _assert_consistent(store)
        assert sum(per_source.values()) == expected
        assert store.info("runbooks").points == expected  # type: ignore[union-attr]


def test_file_cut_off_mid_write_is_redone(runbooks: dict[str, str], tmp_path: Path, embedder: Embedder) -> None:
    settings = load_settings(chunk_tokens=96, ingest_batch=1)
    corpus = _write(tmp_path / "runbooks", {"a-first.md": runbooks["db/disk-full.md"], "b-long.md": LONG_RUNBOOK})
    with QdrantStore(settings) as store:
        expected = _run([corpus], settings, embedder, store, collection="reference").chunks
        with pytest.raises(KeyboardInterrupt):
            _run([corpus], settings, embedder, _DyingStore(store, die_on=2))
        state = store.file_states("runbooks")["b-long.md"]
        (partial,) = state.values()
        assert partial.chunk_count > 1
        assert partial.present == 1  # killed after one of its chunks

        report = _run([corpus], settings, embedder, store)

        assert report.unchanged == 1
        assert report.added + report.changed == 1
        assert report.chunks == partial.chunk_count
        per_source = _assert_consistent(store)
        assert sum(per_source.values()) == expected


def test_change_interrupted_before_old_chunks_were_deleted(
    runbooks: dict[str, str], corpus: Path, settings: Settings, embedder: Embedder, store: QdrantStore
) -> None:
    _run([corpus], settings, embedder, store)
    path = corpus / "db/disk-full.md"
    path.write_text(runbooks["db/disk-full.md"].replace("pg_archivecleanup", "the wal-reaper job"), encoding="utf-8")
    with pytest.raises(KeyboardInterrupt):
        _run([corpus], settings, embedder, _DyingStore(store, die_on_delete=True))
    assert len(store.file_states("runbooks")["db/disk-full.md"]) == 2  # old and new side by side

    report = _run([corpus], settings, embedder, store)

    assert (report.changed, report.unchanged) == (1, 2)
    _assert_consistent(store)
    texts = " ".join(c.text for c in store.chunks("runbooks", "db/disk-full.md"))
    assert "wal-reaper" in texts
    assert "pg_archivecleanup" not in texts


def test_missing_path(tmp_path: Path, settings: Settings, embedder: Embedder, store: QdrantStore) -> None:
    with pytest.raises(PathNotFoundError) as caught:
        _run([tmp_path / "nope"], settings, embedder, store)
    assert caught.value.path == tmp_path / "nope"
    assert store.collections() == []  # nothing created


def test_empty_folder(tmp_path: Path, settings: Settings, embedder: Embedder, store: QdrantStore) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError) as caught:
        _run([tmp_path / "empty"], settings, embedder, store)
    assert "No files to ingest" in str(caught.value)
    # Only unsupported files is the same as empty.
    _write(tmp_path / "images", {"diagram.png": b"\x89PNG\r\n"})
    with pytest.raises(InputError):
        _run([tmp_path / "images"], settings, embedder, store)


def test_binary_and_unsupported_files_are_skipped_with_a_reason(
    runbooks: dict[str, str], corpus: Path, settings: Settings, embedder: Embedder, store: QdrantStore
) -> None:
    _write(
        corpus,
        {
            "bin/core.md": bytes(range(256)) * 4,
            "img/diagram.png": b"\x89PNG\r\n\x1a\n",
            ".git/HEAD.md": "# hidden tooling\n",
        },
    )
    report = _run([corpus], settings, embedder, store)

    assert report.added == 3
    skipped = {s.path: s.reason for s in report.skipped}
    assert skipped == {"bin/core.md": "binary content", "img/diagram.png": "unsupported file type .png"}
    assert set(_assert_consistent(store)) == set(runbooks)


def test_non_utf8_text_is_ingested_with_a_warning(
    corpus: Path, settings: Settings, embedder: Embedder, store: QdrantStore
) -> None:
    _write(corpus, {"legacy.md": "# Café runbook\n\nRestart the café kiosk service.\n".encode("latin-1")})
    report = _run([corpus], settings, embedder, store)

    assert report.added == 4
    assert [w.path for w in report.warnings] == ["legacy.md"]
    assert report.skipped == []
    (chunk,) = store.chunks("runbooks", "legacy.md")
    assert "Restart the caf\ufffd kiosk service." in chunk.text


def test_file_over_the_size_limit_is_skipped(tmp_path: Path, embedder: Embedder) -> None:
    settings = load_settings(max_file_bytes=600)
    corpus = _write(
        tmp_path / "runbooks", {"small.md": "# Small\n\nRestart it.\n", "huge.md": "# Huge\n\n" + "x " * 2000}
    )
    with QdrantStore(settings) as store:
        report = _run([corpus], settings, embedder, store)
        assert report.added == 1
        (skip,) = report.skipped
        assert skip.path == "huge.md"
        assert "OPSMITH_MAX_FILE_BYTES" in skip.reason
        assert set(_assert_consistent(store)) == {"small.md"}


def test_file_that_becomes_unreadable_loses_its_stale_chunks(
    corpus: Path, settings: Settings, embedder: Embedder, store: QdrantStore
) -> None:
    _run([corpus], settings, embedder, store)
    (corpus / "cache/redis-memory.md").write_bytes(b"\x00" * 64)

    report = _run([corpus], settings, embedder, store)

    assert [s.path for s in report.skipped] == ["cache/redis-memory.md"]
    assert store.chunks("runbooks", "cache/redis-memory.md") == []
    stats = store.info("runbooks").term_stats  # type: ignore[union-attr]
    assert stats is not None
    assert stats.chunks == store.info("runbooks").points  # type: ignore[union-attr]


def test_term_stats_count_document_frequencies(
    corpus: Path, settings: Settings, embedder: Embedder, store: QdrantStore
) -> None:
    _run([corpus], settings, embedder, store)
    stats = store.info("runbooks").term_stats  # type: ignore[union-attr]
    chunks = list(store.all_chunks("runbooks"))

    assert stats is not None
    assert stats.chunks == len(chunks) == 3
    assert stats.df[term_id("pg_archivecleanup")] == 1
    assert stats.df[term_id("alert")] == 3
    for term, df in stats.df.items():
        assert df == sum(term in term_ids(c.indexed_text) for c in chunks)

    (corpus / "cache/redis-memory.md").unlink()
    _run([corpus], settings, embedder, store)
    after = store.info("runbooks").term_stats  # type: ignore[union-attr]
    assert after is not None
    assert after.chunks == 2
    assert term_id("maxmemory") not in after.df


def test_single_file_source_is_its_name(
    corpus: Path, settings: Settings, embedder: Embedder, store: QdrantStore
) -> None:
    report = _run([corpus / "db/disk-full.md"], settings, embedder, store, collection="one")
    assert report.added == 1
    assert set(_assert_consistent(store, "one")) == {"disk-full.md"}


def test_two_files_with_one_source_name_are_refused(
    tmp_path: Path, settings: Settings, embedder: Embedder, store: QdrantStore
) -> None:
    first = _write(tmp_path / "team-a", {"disk.md": "# A\n\ntext a\n"})
    second = _write(tmp_path / "team-b", {"disk.md": "# B\n\ntext b\n"})
    with pytest.raises(InputError) as caught:
        _run([first, second], settings, embedder, store)
    assert "'disk.md'" in str(caught.value)
    assert "separate collections" in str(caught.value)


def test_new_chunk_settings_rechunk_every_file(corpus: Path, settings: Settings, embedder: Embedder) -> None:
    with QdrantStore(settings) as store:
        first = _run([corpus], settings, embedder, store)
        smaller = settings.model_copy(update={"chunk_tokens": 64})
        report = _run([corpus], smaller, embedder, store)
        assert (report.changed, report.unchanged, report.added) == (first.added, 0, 0)
        assert report.chunks > first.chunks  # smaller chunks, more of them
        per_source = _assert_consistent(store)
        assert sum(per_source.values()) == report.chunks  # no chunk of the old recipe is left
        assert _run([corpus], smaller, embedder, store).unchanged == first.added


# Links and special files: reported, never read ------------------------------------------------

SECRET = "# Payroll\n\nThe payroll export password is zanzibar-quokka-42.\n"


def _texts(store: QdrantStore, collection: str = "runbooks") -> str:
    return " ".join(chunk.text for chunk in store.all_chunks(collection))


def test_a_link_out_of_the_folder_is_skipped_and_never_read(
    tmp_path: Path, corpus: Path, settings: Settings, embedder: Embedder, store: QdrantStore
) -> None:
    outside = _write(tmp_path / "elsewhere", {"shadow.md": SECRET})
    (corpus / "x.md").symlink_to(outside / "shadow.md")
    (corpus / "db" / "y.md").symlink_to("../../elsewhere/shadow.md")  # relative, through ..
    (corpus / "latest.md").symlink_to(corpus / "db" / "disk-full.md")  # inside: followed

    report = _run([corpus], settings, embedder, store)

    skipped = {s.path: s.reason for s in report.skipped}
    assert set(skipped) == {"x.md", "db/y.md"}
    assert skipped["x.md"] == f"links outside {corpus} — not read; pass --follow-symlinks to read it"
    assert report.added == 4  # the three runbooks and the link inside the folder
    assert "zanzibar" not in _texts(store)

    # A given file is held to its own folder: a shell glob (runbooks/*) cannot leak either.
    with pytest.raises(InputError) as caught:
        _run([corpus / "x.md"], settings, embedder, store, collection="glob")
    assert "links outside its folder" in str(caught.value)

    # --follow-symlinks opts in.
    followed = _run([corpus], settings, embedder, store, follow_symlinks=True)
    assert (followed.added, followed.skipped) == (2, [])
    assert "zanzibar" in _texts(store)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and /dev/zero are POSIX")
def test_loops_broken_links_devices_and_fifos_are_reported_not_read(
    corpus: Path, settings: Settings, embedder: Embedder, store: QdrantStore
) -> None:
    (corpus / "loop-a.md").symlink_to(corpus / "loop-b.md")
    (corpus / "loop-b.md").symlink_to(corpus / "loop-a.md")
    (corpus / "gone.md").symlink_to(corpus / "deleted.md")
    (corpus / "zero.md").symlink_to("/dev/zero")  # would read forever
    os.mkfifo(corpus / "pipe.md")  # opening it would block forever
    (corpus / "shop-link").symlink_to(corpus / "shop", target_is_directory=True)

    report = _run([corpus], settings, embedder, store)

    assert report.added == 3
    assert {s.path: s.reason for s in report.skipped} == {
        "loop-a.md": "symlink loop — not read; fix or remove the link",
        "loop-b.md": "symlink loop — not read; fix or remove the link",
        "gone.md": "broken symlink: its target does not exist — fix or remove the link",
        "zero.md": f"links outside {corpus} — not read; pass --follow-symlinks to read it",
        "pipe.md": "not a regular file (a FIFO) — not read",
        "shop-link": "link to a folder — not followed; ingest that folder itself",
    }
    # Followed, the link to the device is still not read: it is not a regular file.
    followed = _run([corpus], settings, embedder, store, follow_symlinks=True)
    reasons = {s.path: s.reason for s in followed.skipped}
    assert reasons["zero.md"] == "not a regular file (a character device) — not read"


def test_an_oversized_file_is_skipped_without_being_read(
    corpus: Path, settings: Settings, embedder: Embedder, store: QdrantStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    huge = corpus / "huge.md"
    with huge.open("wb") as handle:
        handle.truncate(2 * 1024**3)  # sparse: 2 GB of zeros that cost no disk
    real_io_open, real_os_open = io.open, os.open

    def guard(opener: Any) -> Any:
        def opened(name: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(name, (str, Path)) and Path(name).name == "huge.md":
                raise AssertionError("the oversized file was opened")
            return opener(name, *args, **kwargs)

        return opened

    monkeypatch.setattr(io, "open", guard(real_io_open))
    monkeypatch.setattr(os, "open", guard(real_os_open))

    report = _run([corpus], settings, embedder, store)

    assert report.added == 3
    (skip,) = report.skipped
    assert skip.path == "huge.md"
    assert skip.reason == "larger than 20.0 MB (OPSMITH_MAX_FILE_BYTES) — split it or raise the limit"


# Pruning touches only what was ingested from the given paths ------------------------------------


def test_ingesting_one_file_keeps_the_rest_of_the_collection(
    tmp_path: Path, runbooks: dict[str, str], corpus: Path, settings: Settings, embedder: Embedder, store: QdrantStore
) -> None:
    _run([corpus], settings, embedder, store)
    new = _write(tmp_path / "drafts", {"new-runbook.md": "# DNS failures\n\nRestart the coredns pods.\n"})

    report = _run([new / "new-runbook.md"], settings, embedder, store)

    assert set(_assert_consistent(store)) == {*runbooks, "new-runbook.md"}
    assert (report.added, report.removed, report.kept_outside) == (1, 0, 3)
    # Re-ingesting the folder prunes nothing of the single file either, and still prunes its own.
    (corpus / "cache/redis-memory.md").unlink()
    again = _run([corpus], settings, embedder, store)
    assert (again.removed, again.kept_outside, again.unchanged) == (1, 1, 2)
    assert set(_assert_consistent(store)) == {"db/disk-full.md", "shop/checkout-latency.md", "new-runbook.md"}


def test_two_folders_share_a_collection(
    tmp_path: Path, settings: Settings, embedder: Embedder, store: QdrantStore
) -> None:
    team_a = _write(tmp_path / "team-a", {"kafka.md": "# Kafka lag\n\nScale the consumers.\n"})
    team_b = _write(tmp_path / "team-b", {"sftp.md": "# SFTP down\n\nRestart sshd on the gateway.\n"})
    _run([team_a], settings, embedder, store)

    report = _run([team_b], settings, embedder, store)
    assert set(_assert_consistent(store)) == {"kafka.md", "sftp.md"}
    assert (report.added, report.removed, report.kept_outside) == (1, 0, 1)

    (team_b / "sftp.md").unlink()
    _write(team_b, {"ftp.md": "# FTP down\n\nRestart vsftpd.\n"})
    report = _run([team_b], settings, embedder, store)
    assert (report.added, report.removed, report.kept_outside) == (1, 1, 1)
    assert set(_assert_consistent(store)) == {"kafka.md", "ftp.md"}


def test_a_subfolder_prunes_only_under_itself(
    corpus: Path, settings: Settings, embedder: Embedder, store: QdrantStore
) -> None:
    _run([corpus], settings, embedder, store)

    # Sources are relative to the PATH given: db/disk-full.md is now disk-full.md, and its old
    # name (a file under the given folder) goes; the other folders' runbooks stay.
    report = _run([corpus / "db"], settings, embedder, store)

    assert set(_assert_consistent(store)) == {"disk-full.md", "shop/checkout-latency.md", "cache/redis-memory.md"}
    assert (report.added, report.removed, report.kept_outside) == (1, 1, 2)


def test_a_moved_folder_is_recorded_without_re_embedding(
    tmp_path: Path, corpus: Path, settings: Settings, embedder: Embedder, store: QdrantStore
) -> None:
    _run([corpus], settings, embedder, store)
    moved = corpus.rename(tmp_path / "moved")

    report = _run([moved], settings, _InterruptingEmbedder(embedder, fail_on=1), store)  # no embedding
    assert (report.unchanged, report.chunks) == (3, 0)
    assert {state.root for versions in store.file_states("runbooks").values() for state in versions.values()} == {
        str(moved.resolve())
    }
    (moved / "cache/redis-memory.md").unlink()
    assert _run([moved], settings, embedder, store).removed == 1


def test_files_indexed_without_a_folder_are_never_pruned(
    corpus: Path, settings: Settings, embedder: Embedder, store: QdrantStore
) -> None:
    """Chunks that record no folder (an index built before folders were recorded) are kept when
    gone, and get their folder recorded when seen again."""
    _run([corpus], settings, embedder, store)
    legacy = [replace(chunk, root=None) for chunk in store.all_chunks("runbooks")]
    texts = [chunk.indexed_text for chunk in legacy]
    store.upsert("runbooks", legacy, embedder.embed_documents(texts), [document_vector(t) for t in texts])
    (corpus / "cache/redis-memory.md").unlink()

    report = _run([corpus], settings, embedder, store)

    assert (report.unchanged, report.removed, report.kept_outside) == (2, 0, 1)
    roots = {source: {s.root for s in v.values()} for source, v in store.file_states("runbooks").items()}
    assert roots == {
        "db/disk-full.md": {str(corpus.resolve())},
        "shop/checkout-latency.md": {str(corpus.resolve())},
        "cache/redis-memory.md": {None},
    }
