"""Ingest over HTTP: uploads and server folders become background jobs that are polled to the end;
server folders are confined to the allowed ingest roots (symlinks included); and questions keep
being answered while a job runs.
"""

from __future__ import annotations

import asyncio
import gc
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from servetools import (
    RUNBOOKS_DIR,
    AppFactory,
    api_client,
    assert_problem,
    copy_home,
    metric_value,
    serve_settings,
    wait_for_job,
)

from opsmith.backend import Backend
from opsmith.errors import IndexMissingError, JobNotFoundError
from opsmith.serve.app import create_app
from opsmith.serve.jobs import JobManager
from opsmith.serve.metrics import ServiceMetrics

pytestmark = pytest.mark.anyio

JOB_KEYS = {
    "id",
    "kind",
    "status",
    "collection",
    "created_at",
    "started_at",
    "finished_at",
    "progress",
    "report",
    "error",
}
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")

ZOOKEEPER = b"""\
# ZookeeperQuorumLost

The Zookeeper ensemble behind the legacy billing queue lost quorum: fewer than three of five
nodes answer `ruok`.

## Mitigation

Restart the follower with `systemctl restart zookeeper` on the node whose `srvr` output shows
`Mode: standalone`, then check `echo mntr | nc localhost 2181` on each node.
"""

SFTP = b"""\
# SftpGatewayDiskQuota

The partner SFTP gateway refuses uploads because a tenant reached its disk quota.

## Mitigation

Raise the tenant's quota with `sftpgw quota set TENANT 50G` after the account owner approves.
"""


async def _search(client: httpx.AsyncClient, query: str, collection: str) -> list[dict[str, Any]]:
    response = await client.post("/v1/search", json={"query": query, "collection": collection, "k": 5})
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


# Uploads ------------------------------------------------------------------------------------------------


async def test_uploaded_runbooks_are_ingested_by_a_job_and_then_searchable(app: FastAPI, backend: Backend) -> None:
    files = [("files", ("team/zookeeper-quorum.md", ZOOKEEPER)), ("files", ("sftp-quota.md", SFTP))]
    async with api_client(app) as client:
        response = await client.post("/v1/ingest", files=files, data={"collection": "uploaded"})

        assert response.status_code == 202, response.text
        job = response.json()["job"]
        assert set(job) == JOB_KEYS
        assert response.headers["location"] == f"/v1/jobs/{job['id']}"
        assert (job["kind"], job["collection"], job["report"], job["error"]) == ("ingest", "uploaded", None, None)
        assert job["status"] in ("queued", "running")
        assert TIMESTAMP.fullmatch(job["created_at"])

        done = await wait_for_job(client, job["id"])
        listed = (await client.get("/v1/jobs")).json()["jobs"]
        hits = await _search(client, "zookeeper ensemble lost quorum", "uploaded")
        sources = (await client.get("/v1/collections/uploaded/sources")).json()["sources"]
        metrics = (await client.get("/metrics")).text

    assert done["status"] == "succeeded", done
    assert done["error"] is None
    assert TIMESTAMP.fullmatch(done["started_at"])
    assert TIMESTAMP.fullmatch(done["finished_at"])
    report = done["report"]
    assert (report["collection"], report["added"], report["skipped"]) == ("uploaded", 2, [])
    assert report["chunks"] >= 2
    assert done["progress"] == {
        "files_done": 2,
        "files_total": 2,
        "chunks_done": report["chunks"],
        "chunks_total": report["chunks"],
    }
    assert listed[0]["id"] == job["id"]

    # Found by what the uploaded text says; the relative path in the filename is the source.
    assert hits[0]["source"] == "team/zookeeper-quorum.md"
    assert "systemctl restart zookeeper" in " ".join(hit["text"] for hit in hits)
    assert {row["source"] for row in sources} == {"team/zookeeper-quorum.md", "sftp-quota.md"}

    # The upload folder is removed once the job ends.
    uploads = backend.settings.home / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())

    assert metric_value(metrics, "opsmith_ingest_jobs_total", status="succeeded") == 1
    assert metric_value(metrics, "opsmith_ingest_files_total", result="added") == 2
    assert metric_value(metrics, "opsmith_ingest_chunks_total") == report["chunks"]
    assert metric_value(metrics, "opsmith_http_requests_total", method="GET", route="/v1/jobs/{job_id}", status="200")


async def test_uploads_add_to_a_collection_and_jobs_are_listed_newest_first(app: FastAPI) -> None:
    async with api_client(app) as client:
        first = await client.post("/v1/ingest", files=[("files", ("a.md", ZOOKEEPER))], data={"collection": "adds"})
        second = await client.post("/v1/ingest", files=[("files", ("b.md", SFTP))], data={"collection": "adds"})
        ids = [first.json()["job"]["id"], second.json()["job"]["id"]]
        for job_id in ids:
            assert (await wait_for_job(client, job_id))["status"] == "succeeded"
        listed = [job["id"] for job in (await client.get("/v1/jobs")).json()["jobs"]]
        sources = (await client.get("/v1/collections/adds/sources")).json()["sources"]

    assert listed == ids[::-1]
    assert {row["source"] for row in sources} == {"a.md", "b.md"}  # the second upload pruned nothing


@pytest.mark.parametrize("name", ["../evil.md", "/tmp/evil.md", "notes/../../evil.md", "..\\evil.md"])
async def test_upload_names_that_leave_the_upload_folder_are_400(app: FastAPI, backend: Backend, name: str) -> None:
    home = backend.settings.home
    async with api_client(app) as client:
        response = await client.post("/v1/ingest", files=[("files", ("fine.md", SFTP)), ("files", (name, b"# Evil\n"))])
        jobs = (await client.get("/v1/jobs")).json()["jobs"]

    problem = assert_problem(response, 400)
    assert repr(name) in problem["detail"]
    assert jobs == []
    # Nothing was written: not the evil file, not the good one before it.
    assert not list(home.parent.rglob("evil.md"))
    uploads = home / "uploads"
    assert not uploads.exists() or not list(uploads.rglob("*.md"))


async def test_two_uploads_with_one_name_are_400(app: FastAPI) -> None:
    async with api_client(app) as client:
        response = await client.post("/v1/ingest", files=[("files", ("a.md", SFTP)), ("files", ("a.md", ZOOKEEPER))])

    assert "same name" in assert_problem(response, 400)["detail"]


async def test_an_upload_without_files_is_400(app: FastAPI) -> None:
    """The form's other parts are closed too: a spooled upload left open is a ResourceWarning,
    which fails the test (warnings are errors here)."""
    async with api_client(app) as client:
        response = await client.post("/v1/ingest", files=[("other", ("a.md", SFTP))], data={"collection": "x"})

    assert "multipart form field 'files'" in assert_problem(response, 400)["detail"]
    gc.collect()  # an unclosed part warns here, in this test, not in whichever test collects it later


@pytest.mark.parametrize(
    ("files", "said"),
    [
        ([("x" * 300 + ".md", SFTP)], "is too long (at most 255 bytes per file or folder name"),
        ([("notes/" + "é" * 130 + ".md", SFTP)], "is too long"),  # 260 bytes, though only 133 characters
        ([("a.md", SFTP), ("a.md/b.md", ZOOKEEPER)], "use 'a.md' as both a file and a folder"),
        ([("db/b.md", ZOOKEEPER), ("db", SFTP)], "use 'db' as both a file and a folder"),
    ],
    ids=["long-name", "long-utf8-name", "file-then-folder", "folder-then-file"],
)
async def test_upload_names_that_cannot_be_files_are_400_not_500(
    app: FastAPI, backend: Backend, files: list[tuple[str, bytes]], said: str
) -> None:
    async with api_client(app) as client:
        response = await client.post("/v1/ingest", files=[("files", item) for item in files])
        jobs = (await client.get("/v1/jobs")).json()["jobs"]

    problem = assert_problem(response, 400)
    assert said in problem["detail"]
    assert problem["detail"].endswith(("shorten it", "rename one of them"))
    assert str(backend.settings.home) not in problem["detail"]
    assert jobs == []
    uploads = backend.settings.home / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())


async def test_hidden_upload_names_are_reported_as_skipped_not_dropped(app: FastAPI) -> None:
    files = [
        ("files", (".obsidian/workspace.md", SFTP)),
        ("files", ("ops/.draft.md", SFTP)),
        ("files", ("z.md", ZOOKEEPER)),
    ]
    async with api_client(app) as client:
        response = await client.post("/v1/ingest", files=files, data={"collection": "hidden-names"})
        assert response.status_code == 202, response.text
        done = await wait_for_job(client, response.json()["job"]["id"])
        sources = (await client.get("/v1/collections/hidden-names/sources")).json()["sources"]

    assert done["status"] == "succeeded", done
    skipped = {row["path"]: row["reason"] for row in done["report"]["skipped"]}
    assert set(skipped) == {".obsidian/workspace.md", "ops/.draft.md"}
    assert all(reason.startswith("hidden") for reason in skipped.values())
    assert [row["source"] for row in sources] == ["z.md"]


async def test_an_upload_with_nothing_to_ingest_is_400_and_never_names_the_upload_folder(
    app: FastAPI, backend: Backend
) -> None:
    """Today's main queued the job, which then failed with the server's upload folder in its error."""
    files = [("files", (".hidden/x.md", SFTP)), ("files", ("photo.jpg", b"\xff\xd8"))]
    async with api_client(app) as client:
        response = await client.post("/v1/ingest", files=files)
        jobs = (await client.get("/v1/jobs")).json()["jobs"]

    problem = assert_problem(response, 400)
    assert problem["detail"].startswith("None of the 2 uploaded files can be ingested (looked for ")
    assert "uploads" not in problem["detail"]
    assert str(backend.settings.home) not in problem["detail"]
    assert jobs == []


def test_a_job_error_names_files_relative_to_the_upload_not_the_server_folder(backend: Backend, tmp_path: Path) -> None:
    folder = tmp_path / "uploads" / "0123456789abcdef"
    folder.mkdir(parents=True)
    (folder / "notes.bin").write_bytes(b"\x00")  # nothing ingest reads
    jobs = JobManager(backend, ServiceMetrics())
    try:
        job = jobs.submit_ingest([folder], collection="job-errors", prune=False, cleanup=folder)
        assert jobs.wait_idle(60)
    finally:
        jobs.shutdown()

    assert job.status == "failed"
    assert job.error is not None
    assert "the upload" in job.error
    assert str(tmp_path) not in job.error
    assert "0123456789abcdef" not in job.error
    assert not folder.exists()


@pytest.mark.parametrize(
    "name",
    ["a/b", "/abs", "..", "-x", "x" * 256, "tab\there"],
    ids=["slash", "absolute", "dot-dot", "leading-dash", "256-characters", "tab"],
)
async def test_invalid_collection_names_are_refused_up_front(app: FastAPI, layout: Layout, name: str) -> None:
    """Today's main accepted them with a 202 and the job failed (or the store raised a 500)."""
    async with api_client(app) as client:
        upload = await client.post("/v1/ingest", files=[("files", ("a.md", SFTP))], data={"collection": name})
        path = await client.post("/v1/ingest", json={"path": str(layout.root), "collection": name})
        ask = await client.post("/v1/ask", json={"question": "disk full", "collection": name})
        search = await client.post("/v1/search", json={"query": "disk full", "collection": name})
        jobs = (await client.get("/v1/jobs")).json()["jobs"]

    assert "is not allowed" in assert_problem(upload, 400)["detail"]
    for response in (path, ask, search):
        detail = assert_problem(response, 422)["detail"]
        assert "collection" in detail
        assert "is not allowed" in detail
    assert jobs == []


@pytest.mark.parametrize("name", ["-x", "x" * 256, "a b"], ids=["leading-dash", "256-characters", "space"])
async def test_invalid_collection_names_in_paths_are_400(app: FastAPI, name: str) -> None:
    async with api_client(app) as client:
        sources = await client.get(f"/v1/collections/{name}/sources")
        source = await client.get(f"/v1/collections/{name}/sources/db/disk.md")

    for response in (sources, source):
        assert "is not allowed" in assert_problem(response, 400)["detail"]


async def test_an_empty_collection_name_in_json_is_refused(app: FastAPI) -> None:
    async with api_client(app) as client:
        ask = await client.post("/v1/ask", json={"question": "disk full", "collection": ""})

    assert "it is empty" in assert_problem(ask, 422)["detail"]


async def test_a_deleted_index_folder_makes_the_server_unready_and_ingest_jobs_say_why(
    runbooks_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = copy_home(runbooks_home, tmp_path_factory, "serve-deleted-index")
    backend = Backend(serve_settings(home))
    backend.warm_up()
    app = create_app(backend.settings, backend=backend)
    try:
        async with api_client(app) as client:
            assert (await client.get("/readyz")).status_code == 200
            shutil.rmtree(backend.settings.index_path)  # an operator cleaning up under a running server
            ready = await client.get("/readyz")
            upload = await client.post("/v1/ingest", files=[("files", ("a.md", SFTP))])
            assert upload.status_code == 202, upload.text
            job = await wait_for_job(client, upload.json()["job"]["id"])
    finally:
        app.state.service.jobs.shutdown()
        backend.close()

    missing = str(IndexMissingError(backend.settings.index_path))
    assert ready.status_code == 503
    assert ready.json() == {"status": "failed", "detail": missing}
    assert job["status"] == "failed"
    assert job["error"] == missing  # not "Internal error (OperationalError)"


async def test_other_content_types_are_415(app: FastAPI) -> None:
    async with api_client(app) as client:
        response = await client.post("/v1/ingest", content=b"path=/srv", headers={"Content-Type": "text/plain"})

    assert "multipart/form-data" in assert_problem(response, 415)["detail"]


async def test_an_unknown_job_is_a_404_problem(app: FastAPI) -> None:
    async with api_client(app) as client:
        response = await client.get("/v1/jobs/feedfacecafebeef")

    assert assert_problem(response, 404)["detail"] == str(JobNotFoundError("feedfacecafebeef"))


# Server folders and the ingest roots ------------------------------------------------------------------------


@dataclass
class Layout:
    """root/ is the one allowed ingest root; outside/ is not."""

    root: Path
    outside: Path


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "team-a").mkdir(parents=True)
    (root / "team-a" / "zookeeper.md").write_bytes(ZOOKEEPER)
    (root / "team-b").mkdir()
    (root / "team-b" / "sftp.md").write_bytes(SFTP)
    outside.mkdir()
    (outside / "secret.md").write_text(
        "# Payroll export\n\nThe payroll export password is zanzibar-quokka-42; never share it.\n", encoding="utf-8"
    )
    (root / "link-out").symlink_to(outside, target_is_directory=True)  # a folder link leading out
    (root / "team-b" / "leak.md").symlink_to(outside / "secret.md")  # a file link leading out
    return Layout(root, outside)


async def _ingest_path(app: FastAPI, path: str, collection: str = "served") -> httpx.Response:
    async with api_client(app) as client:
        return await client.post("/v1/ingest", json={"path": path, "collection": collection})


async def test_a_folder_under_an_ingest_root_is_ingested(make_app: AppFactory, layout: Layout) -> None:
    app = make_app(ingest_roots=str(layout.root))
    async with api_client(app) as client:
        response = await client.post("/v1/ingest", json={"path": str(layout.root / "team-a"), "collection": "team-a"})
        assert response.status_code == 202, response.text
        done = await wait_for_job(client, response.json()["job"]["id"])
        hits = await _search(client, "zookeeper quorum lost", "team-a")

    assert done["status"] == "succeeded", done
    assert (done["report"]["added"], done["report"]["skipped"]) == (1, [])
    assert hits[0]["source"] == "zookeeper.md"


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("{root}/team-a/../team-a", "'..' is not allowed"),
        ("{root}/../outside", "'..' is not allowed"),
        ("{outside}", "outside the allowed roots"),
        ("{outside}/does-not-exist", "outside the allowed roots"),  # no probing for files elsewhere
        ("{root}/link-out", "outside the allowed roots"),
        ("{root}/link-out/secret.md", "outside the allowed roots"),
        ("team-a", "relative"),
        ("", "empty"),
    ],
    ids=["dotdot", "dotdot-out", "outside", "outside-missing", "dir-symlink", "through-symlink", "relative", "empty"],
)
async def test_paths_outside_the_ingest_roots_are_403(
    make_app: AppFactory, layout: Layout, given: str, reason: str
) -> None:
    app = make_app(ingest_roots=str(layout.root))
    path = given.format(root=layout.root, outside=layout.outside)
    async with api_client(app) as client:
        response = await client.post("/v1/ingest", json={"path": path})
        jobs = (await client.get("/v1/jobs")).json()["jobs"]

    problem = assert_problem(response, 403)
    assert problem["type"] == "urn:opsmith:error:PathNotAllowedError"
    assert reason in problem["detail"]
    assert jobs == []


async def test_a_missing_folder_inside_a_root_is_404(make_app: AppFactory, layout: Layout) -> None:
    app = make_app(ingest_roots=str(layout.root))
    response = await _ingest_path(app, str(layout.root / "team-c"))

    assert_problem(response, 404)


async def test_without_ingest_roots_server_paths_are_refused(app: FastAPI, layout: Layout) -> None:
    response = await _ingest_path(app, str(layout.root / "team-a"))

    problem = assert_problem(response, 403)
    assert "OPSMITH_INGEST_ROOTS" in problem["detail"]
    assert "upload" in problem["detail"]


async def test_a_file_symlink_leading_out_of_the_root_is_skipped_not_read(make_app: AppFactory, layout: Layout) -> None:
    app = make_app(ingest_roots=str(layout.root))
    async with api_client(app) as client:
        response = await client.post("/v1/ingest", json={"path": str(layout.root / "team-b"), "collection": "team-b"})
        assert response.status_code == 202, response.text
        done = await wait_for_job(client, response.json()["job"]["id"])
        hits = await _search(client, "payroll export password zanzibar quokka", "team-b")
        sources = (await client.get("/v1/collections/team-b/sources")).json()["sources"]

    assert done["status"] == "succeeded", done
    report = done["report"]
    assert report["added"] == 1
    assert len(report["skipped"]) == 1
    skipped = report["skipped"][0]
    assert skipped["path"] == "leak.md"
    assert "outside the allowed ingest roots" in skipped["reason"]
    assert [row["source"] for row in sources] == ["sftp.md"]
    assert all("zanzibar" not in hit["text"] and hit["source"] != "leak.md" for hit in hits)


@pytest.mark.parametrize(
    "body", [{"path": 42}, {"path": "/srv", "prune": "sometimes"}, {"path": "/srv", "recursive": True}, {}]
)
async def test_invalid_path_bodies_are_422(make_app: AppFactory, layout: Layout, body: dict[str, Any]) -> None:
    app = make_app(ingest_roots=str(layout.root))
    async with api_client(app) as client:
        response = await client.post("/v1/ingest", json=body)

    assert_problem(response, 422)


# Questions during an ingest ----------------------------------------------------------------------------------

#: Questions the example runbooks answer, with the runbook that answers each.
QUESTIONS = {
    "Postgres replication lag is growing on the replica, what should I check?": "database/PostgresReplicationLag.md",
    "PgBouncer has no free server connections in the pool, clients wait": "database/PgbouncerPoolExhausted.md",
    "Redis memory usage is near maxmemory and keys are evicted": "database/RedisMemoryHigh.md",
    "Checkout p99 latency is above two seconds": "checkout/CheckoutHighLatency.md",
    "The TLS certificate expires in a few days, how do I renew it?": "networking/CertificateExpiringSoon.md",
    "Pods fail to resolve DNS names": "networking/DNSResolutionFailures.md",
    "Kafka reports under-replicated partitions": "platform/KafkaUnderReplicatedPartitions.md",
    "Argo CD application sync failed": "platform/ArgoCDSyncFailed.md",
}


@pytest.mark.slow  # ingests every example runbook in a job and asks while it runs
async def test_questions_are_answered_while_an_ingest_job_runs(make_app: AppFactory, backend: Backend) -> None:
    app = make_app(ingest_roots=str(RUNBOOKS_DIR))
    async with api_client(app) as client:
        response = await client.post("/v1/ingest", json={"path": str(RUNBOOKS_DIR), "collection": "concurrent"})
        assert response.status_code == 202, response.text
        job_id = response.json()["job"]["id"]

        # Wait for the worker to pick the job up, then ask while it embeds.
        deadline = time.monotonic() + 30
        while (status := (await client.get(f"/v1/jobs/{job_id}")).json()["job"]["status"]) == "queued":
            assert time.monotonic() < deadline, "the job never started"
            await anyio.sleep(0.01)
        assert status == "running", "the job ended before the questions were sent: nothing ran concurrently"

        answers = await asyncio.gather(*(client.post("/v1/ask", json={"question": q}) for q in QUESTIONS))
        done = await wait_for_job(client, job_id)

    for (question, source), answer in zip(QUESTIONS.items(), answers, strict=True):
        assert answer.status_code == 200, answer.text
        data = answer.json()
        assert data["refused"] is False, question
        assert data["citations"], question
        assert data["citations"][0]["source"] == source, question
        # Exactly the answer the idle server gives: the job changed nothing in this collection.
        assert data["answer"] == backend.ask(question).answer, question

    assert done["status"] == "succeeded", done
    indexed = sum(1 for path in RUNBOOKS_DIR.rglob("*") if path.is_file())
    assert done["report"]["added"] + len(done["report"]["skipped"]) == indexed
    assert done["report"]["added"] > 10


class _SlowIngest:
    """Stands in for Backend.ingest: reports progress every few milliseconds, never finishes alone."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.calls = 0

    def ingest(self, paths: Any, *, progress: Any, **_: Any) -> Any:
        from opsmith.rag.indexing import IngestProgress

        self.calls += 1
        self.started.set()
        state = IngestProgress(files_total=10)
        for _ in range(10_000):
            state.files_done = min(state.files_done + 1, 10)
            progress(state)
            time.sleep(0.005)
        raise AssertionError("the job was not stopped")


def test_shutdown_stops_a_running_job_at_a_batch_and_cancels_queued_ones() -> None:
    slow = _SlowIngest()
    metrics = ServiceMetrics()
    jobs = JobManager(slow, metrics)  # type: ignore[arg-type]
    running = jobs.submit_ingest([Path("a")], collection="runbooks", prune=True)
    queued = jobs.submit_ingest([Path("b")], collection="runbooks", prune=True)
    assert slow.started.wait(10)

    jobs.shutdown()

    assert running.status == "failed"
    assert running.error is not None
    assert running.error.startswith("Stopped by a server shutdown")
    assert running.progress["files_done"] > 0
    assert queued.status == "failed"
    assert queued.error == running.error
    assert slow.calls == 1  # the queued job never started
    assert metrics.ingest_jobs.labels(status="failed")._value.get() == 1
