"""Paired bootstrap confidence intervals on the difference in mean task score."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

RESAMPLES = 2000
SEED = 0


@dataclass(frozen=True)
class Comparison:
    """``b`` minus ``a`` on the same items; ``significant`` when the CI excludes 0."""

    a: str
    b: str
    diff: float
    ci_low: float
    ci_high: float
    significant: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        verdict = "significant" if self.significant else "not significant"
        return f"{self.b} − {self.a}: {self.diff:+.3f} (95% CI {self.ci_low:+.3f} … {self.ci_high:+.3f}), {verdict}"


def paired_bootstrap(
    a_name: str,
    a: Sequence[float],
    b_name: str,
    b: Sequence[float],
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    confidence: float = 0.95,
) -> Comparison:
    """Resample items with replacement (the same items for both variants) ``resamples`` times
    and take the percentile interval of the mean difference ``b - a``. Seeded, so a report
    reproduces exactly."""
    if len(a) != len(b) or not a:
        raise ValueError("paired bootstrap needs two non-empty score lists of the same length")
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    n = len(diffs)
    rng = random.Random(seed)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    tail = (1 - confidence) / 2
    low = means[int(tail * resamples)]
    high = means[min(resamples - 1, int((1 - tail) * resamples))]
    # Rounded for display; significance is decided on the unrounded bounds.
    return Comparison(a_name, b_name, round(sum(diffs) / n, 4), round(low, 4), round(high, 4), not low <= 0 <= high)
