"""Medians with 95 % bootstrap confidence intervals, and the only "beats" the report uses: two
intervals that do not overlap."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Estimate", "beats", "estimate"]


@dataclass(frozen=True, slots=True)
class Estimate:
    median: float
    low: float
    high: float
    n: int

    def fmt(self, scale: float = 1.0, digits: int = 2) -> str:
        m, lo, hi = self.median * scale, self.low * scale, self.high * scale
        if self.n < 2 or lo == hi:
            return f"{m:.{digits}f} (n={self.n})"
        return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def estimate(values: Sequence[float | None], seed: int = 0) -> Estimate | None:
    """Median of the values that exist, with scipy's 95 % percentile bootstrap interval (the
    interval is the median itself with fewer than two values or when all are equal)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return None
    xs.sort()
    mid = len(xs) // 2
    median = xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2
    if len(xs) < 2 or xs[0] == xs[-1]:
        return Estimate(median, median, median, len(xs))
    import numpy as np
    from scipy.stats import bootstrap

    res = bootstrap(
        (np.asarray(xs),),
        np.median,
        confidence_level=0.95,
        n_resamples=2000,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    ci = res.confidence_interval
    return Estimate(median, float(ci.low), float(ci.high), len(xs))


def beats(a: Estimate | None, b: Estimate | None, *, lower_is_better: bool = True) -> bool:
    """a beats b only when their intervals do not overlap, a on the better side."""
    if a is None or b is None:
        return False
    return a.high < b.low if lower_is_better else a.low > b.high
