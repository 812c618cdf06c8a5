"""Run every benchmark in turn; each writes benchmarks/results/NAME.json and prints it.

    python benchmarks/run_all.py

The figures quoted in docs/benchmarks.md come from these scripts.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    "retrieval_quality.py",
    "answer_quality.py",
    "ingest_throughput.py",
    "query_latency.py",
    "cold_start.py",
    "review_speed.py",
    "review_quality.py",
    "service_load.py",
    "service_memory.py",
    "finetune_validate_speed.py",
    "finetune_throughput.py",
]


def main() -> int:
    failed = []
    for script in SCRIPTS:
        print(f"\n=== {script} ===", flush=True)
        if subprocess.run([sys.executable, str(HERE / script)], cwd=HERE, check=False).returncode:
            failed.append(script)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
