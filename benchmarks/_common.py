"""Shared set-up for the benchmark scripts: corpus location, a scratch home, JSON results."""

from __future__ import annotations

import json
import os
import platform
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
