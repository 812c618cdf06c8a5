"""``POST /v1/ingest`` with ``prune``: a folder prunes only what was ingested from under it, so
ingesting one team's folder into a shared collection never empties it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from servetools import AppFactory, api_client, wait_for_job

pytestmark = pytest.mark.anyio


async def _ingest(make_app: AppFactory, root: Path, folder: Path, collection: str = "shared") -> dict[str, Any]:
    app = make_app(ingest_roots=str(root))
    async with api_client(app) as client:
        response = await client.post("/v1/ingest", json={"path": str(folder), "collection": collection, "prune": True})
        assert response.status_code == 202, response.text
        job = await wait_for_job(client, response.json()["job"]["id"])
    assert job["status"] == "succeeded", job
    report: dict[str, Any] = job["report"]
    return report


async def _sources(make_app: AppFactory, collection: str = "shared") -> set[str]:
    async with api_client(make_app()) as client:
        response = await client.get(f"/v1/collections/{collection}/sources")
    assert response.status_code == 200, response.text
    return {row["source"] for row in response.json()["sources"]}


async def test_pruning_one_folder_keeps_the_other_folders_runbooks(make_app: AppFactory, tmp_path: Path) -> None:
    root = tmp_path / "root"
    for team, name, text in [
        ("team-a", "zookeeper.md", "# Zookeeper quorum lost\n\nRestart the follower with systemctl.\n"),
        ("team-b", "sftp.md", "# SFTP gateway down\n\nRestart sshd on the gateway host.\n"),
    ]:
        (root / team).mkdir(parents=True)
        (root / team / name).write_text(text, encoding="utf-8")
    await _ingest(make_app, root, root / "team-a")

    report = await _ingest(make_app, root, root / "team-b")

    assert await _sources(make_app) == {"zookeeper.md", "sftp.md"}
    assert (report["added"], report["removed"], report["kept_outside"]) == (1, 0, 1)

    # A runbook deleted from team-b's folder is still pruned when that folder is ingested again.
    (root / "team-b" / "sftp.md").unlink()
    (root / "team-b" / "ftp.md").write_text("# FTP down\n\nRestart vsftpd.\n", encoding="utf-8")
    report = await _ingest(make_app, root, root / "team-b")

    assert await _sources(make_app) == {"zookeeper.md", "ftp.md"}
    assert (report["added"], report["removed"], report["kept_outside"]) == (1, 1, 1)
