"""Background ingest jobs: one at a time, in a worker thread, with progress to poll.

Jobs run one after another because each rewrites a collection's term statistics at its end;
two at once on one collection would race. Questions keep being answered meanwhile (see
:mod:`opsmith.backend`). Job records live in memory and the newest ``keep`` are kept.

On shutdown, queued jobs are cancelled and a running one stops at its next batch. Nothing
indexed is lost: ingest is incremental and resumable, so posting the same files or folder
again finishes the work without redoing what was written.
"""

from __future__ import annotations

import logging
import shutil
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

from opsmith.backend import Backend
from opsmith.errors import JobNotFoundError, OpsmithError, StoreError
from opsmith.rag.indexing import IngestProgress, SkippedFile
from opsmith.schemas import JobModel
from opsmith.serve.metrics import ServiceMetrics

__all__ = ["Job", "JobManager", "JobStatus"]

JobStatus = Literal["queued", "running", "succeeded", "failed"]

_log_name = "opsmith.serve"


_STOPPED = (
    "Stopped by a server shutdown — post the same ingest again: what was written is kept, and the rest is"
    " finished without re-embedding it"
)


class _Stopped(Exception):
    """Raised from the progress callback to end a running ingest at a batch boundary."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Job:
    """One ingest, as ``GET /v1/jobs/{id}`` shows it."""

    id: str
    collection: str
    kind: Literal["ingest"] = "ingest"
    status: JobStatus = "queued"
    created_at: str = field(default_factory=_now)
    started_at: str | None = None
    finished_at: str | None = None
    progress: dict[str, int] = field(
        default_factory=lambda: {"files_done": 0, "files_total": 0, "chunks_done": 0, "chunks_total": 0}
    )
    report: dict[str, Any] | None = None
    error: str | None = None

    def to_dict(self) -> JobModel:
        return cast("JobModel", asdict(self))


class JobManager:
    """Runs ingest jobs on one worker thread and remembers the newest ``keep`` of them."""

    def __init__(self, backend: Backend, metrics: ServiceMetrics, *, keep: int = 100) -> None:
        self.backend = backend
        self.metrics = metrics
        self.keep = keep
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opsmith-ingest")
        self._stopping = threading.Event()

    def submit_ingest(
        self,
        paths: Sequence[Path],
        *,
        collection: str,
        prune: bool,
        within: Sequence[Path] | None = None,
        cleanup: Path | None = None,
        skipped: Sequence[SkippedFile] = (),
    ) -> Job:
        """Queue an ingest of ``paths``; ``cleanup`` (an upload folder) is deleted when it ends.

        ``skipped`` lists files the caller left out (hidden upload names), reported with those
        ingest skips. With ``cleanup``, messages name files relative to it: a client never
        sees the server's upload folder.
        """
        job = Job(id=uuid.uuid4().hex[:16], collection=collection)
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > self.keep:
                oldest = next(iter(self._jobs.values()))
                if oldest.status in ("queued", "running"):
                    break  # never forget a job that has not finished
                self._jobs.popitem(last=False)
        self._executor.submit(self._run, job, list(paths), prune, within, cleanup, list(skipped))
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFoundError(job_id)
        return job

    def recent(self) -> list[Job]:
        """Newest first."""
        with self._lock:
            return list(reversed(self._jobs.values()))

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every job submitted so far has finished (tests and shutdown use it)."""
        done = threading.Event()
        self._executor.submit(done.set)
        return done.wait(timeout)

    def shutdown(self) -> None:
        """Cancel queued jobs, stop a running one at its next batch, and wait for it."""
        self._stopping.set()
        self._executor.shutdown(wait=True, cancel_futures=True)
        for job in self.recent():
            if job.status == "queued":
                job.status, job.finished_at = "failed", _now()
                job.error = _STOPPED

    def _run(
        self,
        job: Job,
        paths: list[Path],
        prune: bool,
        within: Sequence[Path] | None,
        cleanup: Path | None,
        skipped: list[SkippedFile],
    ) -> None:
        log = logging.getLogger(_log_name)
        job.status, job.started_at = "running", _now()

        def progress(state: IngestProgress) -> None:
            if self._stopping.is_set():
                raise _Stopped()
            job.progress = {
                "files_done": state.files_done,
                "files_total": state.files_total,
                "chunks_done": state.chunks_done,
                "chunks_total": state.chunks_total,
            }

        try:
            report = self.backend.ingest(
                paths, collection=job.collection, prune=prune, progress=progress, within=within
            )
        except _Stopped:
            job.error, job.status = _STOPPED, "failed"
        except OpsmithError as exc:
            job.error, job.status = str(exc), "failed"
        except Exception as exc:  # a bug, not bad input: keep the server up and say where to look
            log.exception("ingest job %s failed", job.id)
            # Often it is the store that cannot serve (the index folder deleted under the server):
            # its own account of that beats "internal error".
            cause = self._store_problem()
            job.error = (
                str(cause) if cause else f"Internal error ({type(exc).__name__}) — see the server log for job {job.id}"
            )
            job.status = "failed"
        else:
            report.skipped[:0] = skipped
            job.report, job.status = report.to_dict(), "succeeded"
            for result in ("added", "changed", "unchanged", "removed"):
                self.metrics.ingest_files.labels(result=result).inc(getattr(report, result))
            self.metrics.ingest_files.labels(result="skipped").inc(len(report.skipped))
            self.metrics.ingest_chunks.inc(report.chunks)
        finally:
            job.finished_at = _now()
            if cleanup is not None:
                shutil.rmtree(cleanup, ignore_errors=True)
                if job.error:
                    job.error = job.error.replace(str(cleanup), "the upload")
        self.metrics.ingest_jobs.labels(status=job.status).inc()

    def _store_problem(self) -> StoreError | None:
        try:
            self.backend.store().check()
        except StoreError as exc:
            return exc
        except Exception:  # the check itself failed: nothing better to say than the original error
            return None
        return None
