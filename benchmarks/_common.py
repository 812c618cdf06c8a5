"""Shared set-up for the benchmark scripts: corpus location, a scratch home, JSON results."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: The evaluation corpus is read where it lies (it is not copied into this repository).
CORPUS = Path(os.environ.get("OPSMITH_BENCH_CORPUS", REPO.parent / "shared" / "corpora" / "prometheus-runbooks"))
RESULTS = REPO / "benchmarks" / "results"


def require_corpus() -> Path:
    if not (CORPUS / "runbooks").is_dir():
        raise SystemExit(f"Benchmark corpus not found at {CORPUS} — set OPSMITH_BENCH_CORPUS to its folder")
    return CORPUS


def scratch_home(name: str) -> Path:
    """A fresh OPSMITH_HOME so benchmarks never touch the user's index."""
    home = Path(tempfile.mkdtemp(prefix=f"opsmith-bench-{name}-"))
    os.environ["OPSMITH_HOME"] = str(home)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return home


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}


def save(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"benchmark": name, "when": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(), **data}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps(data, indent=2))
    return path


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def opsmith(*args: str) -> list[str]:
    """The command line of the opsmith installed beside this Python."""
    return [str(Path(sys.executable).with_name("opsmith")), *args]


def wait_ready(base_url: str, server: subprocess.Popen[bytes], log_path: Path, *, timeout: float = 120) -> None:
    """Wait until ``opsmith serve`` at ``base_url`` answers /readyz with 200; exit if it dies or never does."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"opsmith serve did not become ready; see {log_path}")
        time.sleep(0.2)
