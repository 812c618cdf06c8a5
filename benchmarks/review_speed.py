"""Offline review time of `opsmith review` for 100 .tf files, after start-up.

    python benchmarks/review_speed.py [--files 100] [--rounds 5]

Copies the example modules (examples/terraform/vulnerable, clean and each labelled module)
into a scratch folder, one folder per copy so each copy stays its own Terraform module,
until there are ``--files`` .tf files. Start-up (imports, python-hcl2's grammar) is paid
once by a warm-up review of one copy; then ``review(paths, use_llm=False)`` is timed
``--rounds`` times over the whole tree. Target: under 2 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from _common import REPO, save, scratch_home

EXAMPLES = REPO / "examples" / "terraform"


def modules() -> list[Path]:
    found = [EXAMPLES / "vulnerable", EXAMPLES / "clean"]
    found += sorted(p for p in (EXAMPLES / "labelled").iterdir() if p.is_dir())
    return found


def replicate(target: Path, files: int) -> tuple[int, int]:
    """Copy modules round-robin until ``files`` .tf files exist; returns (files, lines)."""
    count = lines = copy = 0
    while count < files:
        for module in modules():
            if count >= files:
                break
            destination = target / f"copy{copy:03d}" / module.name
            destination.mkdir(parents=True)
            for tf in sorted(module.glob("*.tf")):
                if count >= files:
                    break
                shutil.copy2(tf, destination / tf.name)
                count += 1
                lines += len(tf.read_text().splitlines())
        copy += 1
    return count, lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    scratch_home("review-speed")
    import_start = time.perf_counter()
    from opsmith.config import load_settings
    from opsmith.review import review

    settings = load_settings()
    work = Path(tempfile.mkdtemp(prefix="opsmith-bench-review-"))
    try:
        files, lines = replicate(work / "tree", args.files)
        warm_start = time.perf_counter()
        review([EXAMPLES / "clean"], settings=settings, use_llm=False)
        startup_s = time.perf_counter() - import_start
        warmup_s = time.perf_counter() - warm_start

        runs = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            result = review([work / "tree"], settings=settings, use_llm=False)
            runs.append({"seconds": time.perf_counter() - start, **result.timings_ms})
        seconds = [r["seconds"] for r in runs]
        save(
            "review_speed",
            {
                "files": files,
                "lines": lines,
                "findings": len(result.findings),
                "rounds": args.rounds,
                "startup_s": round(startup_s, 3),
                "warmup_review_s": round(warmup_s, 3),
                "review_s_median": round(statistics.median(seconds), 3),
                "review_s_min": round(min(seconds), 3),
                "review_s_max": round(max(seconds), 3),
                "parse_ms_median": statistics.median(r["parse"] for r in runs),
                "rules_ms_median": statistics.median(r["rules"] for r in runs),
                "target_s": 2.0,
                "met": statistics.median(seconds) < 2.0,
            },
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
