"""Shared RAG fixtures: the real bundled embedder (loaded once), a real local Qdrant per test,
and a few tiny runbooks written into the test's own folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsmith.config import Settings, load_settings
from opsmith.rag.embedder import Embedder, load_embedder
from opsmith.rag.indexing import IngestReport, ingest
from opsmith.rag.retrieve import Retriever
from opsmith.rag.store import QdrantStore, VectorStore, open_store

DISK_FULL = """\
# Disk full on the database host

Alert `NodeFilesystemAlmostFull` fires when the Postgres data volume passes 90% usage.

## Diagnosis

Find what fills the volume:

```bash
df -h /var/lib/postgresql
du -sh /var/lib/postgresql/16/main/pg_wal
```

## Mitigation

Remove archived WAL segments older than the last base backup with `pg_archivecleanup`,
then grow the EBS volume if usage stays above 80%.
"""

CHECKOUT_LATENCY = """\
# Checkout latency high

Alert `CheckoutHighLatency`: p99 latency of the checkout API is above two seconds.

## Diagnosis

Look at the pods of the checkout deployment:

```bash
kubectl -n shop top pods -l app=checkout
```

## Mitigation

Scale the deployment out: `kubectl -n shop scale deploy/checkout --replicas=6`.
"""

REDIS_MEMORY = """\
# Redis memory pressure

Alert `RedisMemoryHigh`: the session cache uses more than 90% of maxmemory and evicts keys.

## Diagnosis

Run `redis-cli info memory` and compare used_memory with maxmemory.

## Mitigation

Flush expired session keys and raise maxmemory on the cache cluster.
"""

#: source -> text of the default corpus; sources are relative to the folder given to ingest.
RUNBOOKS: dict[str, str] = {
    "db/disk-full.md": DISK_FULL,
    "shop/checkout-latency.md": CHECKOUT_LATENCY,
    "cache/redis-memory.md": REDIS_MEMORY,
}


def write_runbooks(root: Path, files: dict[str, str | bytes]) -> Path:
    """Write ``files`` (relative path -> content) under ``root`` and return ``root``."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    """The bundled all-MiniLM-L6-v2 on ONNX Runtime, as `opsmith` loads it by default.

    Built with a throwaway OPSMITH_HOME so a developer's own config cannot change it; the
    exported ONNX graph is cached in ~/.cache/opsmith (made on first use).
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPSMITH_HOME", str(tmp_path_factory.mktemp("embedder-home")))
        for name in ("OPSMITH_CONFIG", "OPSMITH_EMBEDDER", "OPSMITH_EMBEDDER_BACKEND"):
            mp.delenv(name, raising=False)
        return load_embedder(load_settings())


@pytest.fixture
def runbooks() -> dict[str, str]:
    """The default corpus as source -> text (a copy: tests may change it)."""
    return dict(RUNBOOKS)


@pytest.fixture(params=["local", pytest.param("server", marks=pytest.mark.integration)])
def settings(request: pytest.FixtureRequest) -> Iterator[Settings]:
    """Embedded Qdrant under this test's OPSMITH_HOME, and, when OPSMITH_TEST_QDRANT_URL names a
    throwaway Qdrant server, the same tests against it: one code path, two deployments."""
    if request.param == "local":
        yield load_settings()
        return
    url = os.environ.get("OPSMITH_TEST_QDRANT_URL")
    if not url:
        pytest.skip("set OPSMITH_TEST_QDRANT_URL to a throwaway Qdrant server to run the store contract against it")
    server = load_settings(qdrant_url=url)
    yield server
    with QdrantStore(server) as cleanup:  # the server outlives the test: leave it empty
        for info in cleanup.collections():
            cleanup.delete_collection(info.name)


@pytest.fixture
def store(settings: Settings) -> Iterator[VectorStore]:
    with open_store(settings) as opened:
        yield opened


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_runbooks(tmp_path / "runbooks", dict(RUNBOOKS))


@pytest.fixture
def ingested(corpus: Path, settings: Settings, embedder: Embedder, store: VectorStore) -> IngestReport:
    return ingest([corpus], settings=settings, embedder=embedder, store=store)


@pytest.fixture
def retriever(ingested: IngestReport, embedder: Embedder, store: QdrantStore, settings: Settings) -> Retriever:
    return Retriever(embedder=embedder, store=store, collection=settings.collection)


@pytest.fixture(scope="module")
def extra_runbooks() -> dict[str, str]:
    """Runbooks a test module adds to the default corpus of :func:`shared_retriever`."""
    return {}


@pytest.fixture(scope="module")
def shared_retriever(
    embedder: Embedder, extra_runbooks: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Retriever]:
    """One ingested corpus for a whole module, for tests that only read the index."""
    root = tmp_path_factory.mktemp("shared-index")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPSMITH_HOME", str(root / "opsmith-home"))
        mp.delenv("OPSMITH_CONFIG", raising=False)
        settings = load_settings()
    corpus = write_runbooks(root / "runbooks", {**RUNBOOKS, **extra_runbooks})
    with QdrantStore(settings) as opened:
        ingest([corpus], settings=settings, embedder=embedder, store=opened)
        yield Retriever(embedder=embedder, store=opened, collection=settings.collection)
