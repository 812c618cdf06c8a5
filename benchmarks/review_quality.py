"""Rule quality of `opsmith review`: recall on hand-labelled flaws, false positives on the clean module.

    python benchmarks/review_quality.py

The labelled set is ``examples/terraform/labelled/`` with ``labels.json`` (file, line, rule,
category for each flaw). A labelled flaw counts as **found** when the offline review
reports a finding with the same rule id in the same file within ``tolerance_lines`` (2) of
the labelled line; each finding may match one flaw only. Recall is found / labelled.
Findings in the labelled set that match no label are listed as ``unlabelled`` (each is
either a real problem the labels missed or a false positive; the script cannot tell).
False positives are counted on ``examples/terraform/clean/``, where every finding is one.
The vulnerable module must trip every rule; the rules it misses are listed.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from _common import REPO, save, scratch_home

EXAMPLES = REPO / "examples" / "terraform"


def match(flaws: list[dict[str, Any]], findings: list[Any], tolerance: int) -> tuple[list[dict[str, Any]], list[Any]]:
    """(missed flaws, unmatched findings): each finding matches at most one flaw, nearest first."""
    unused = list(findings)
    missed = []
    for flaw in flaws:
        candidates = [
            f
            for f in unused
            if f.rule == flaw["rule"] and f.file == flaw["file"] and abs(f.line - flaw["line"]) <= tolerance
        ]
        if not candidates:
            missed.append(flaw)
            continue
        unused.remove(min(candidates, key=lambda f: abs(f.line - flaw["line"])))
    return missed, unused


def main() -> None:
    scratch_home("review-quality")
    from opsmith.config import load_settings
    from opsmith.review import review
    from opsmith.review.rules import RULES

    settings = load_settings()
    labels = json.loads((EXAMPLES / "labelled" / "labels.json").read_text())
    flaws, tolerance = labels["flaws"], int(labels["tolerance_lines"])

    labelled = review([EXAMPLES / "labelled"], settings=settings, use_llm=False)
    missed, unlabelled = match(flaws, labelled.findings, tolerance)
    found = len(flaws) - len(missed)
    by_rule: dict[str, dict[str, int]] = {}
    for flaw in flaws:
        entry = by_rule.setdefault(flaw["rule"], {"labelled": 0, "found": 0})
        entry["labelled"] += 1
        entry["found"] += flaw not in missed

    clean = review([EXAMPLES / "clean"], settings=settings, use_llm=False)
    vulnerable = review([EXAMPLES / "vulnerable"], settings=settings, use_llm=False)
    fired = {f.rule for f in vulnerable.findings}

    save(
        "review_quality",
        {
            "definition": f"found = a finding with the same rule and file within ±{tolerance} lines of the label",
            "labelled_flaws": len(flaws),
            "found": found,
            "recall": round(found / len(flaws), 3),
            "target_recall": 0.9,
            "missed": [f"{m['file']}:{m['line']} {m['rule']} ({m['description']})" for m in missed],
            "recall_by_category": {
                category: round(
                    sum(1 for f in flaws if f["category"] == category and f not in missed)
                    / max(1, sum(1 for f in flaws if f["category"] == category)),
                    3,
                )
                for category in ("security", "cost", "correctness")
            },
            "by_rule": dict(sorted(by_rule.items())),
            "labelled_set_findings": len(labelled.findings),
            "unlabelled_findings": [f"{f.file}:{f.line} {f.rule} {f.issue}" for f in unlabelled],
            "clean_module_findings": len(clean.findings),
            "clean_module_false_positives": [f"{f.file}:{f.line} {f.rule} {f.issue}" for f in clean.findings],
            "vulnerable_module": {
                "findings": len(vulnerable.findings),
                "rules_total": len(RULES),
                "rules_fired": len(fired & set(RULES)),
                "rules_not_fired": sorted(set(RULES) - fired),
                "by_category": dict(Counter(f.category for f in vulnerable.findings)),
            },
        },
    )


if __name__ == "__main__":
    main()
