"""Robust trend fits: live-heap growth (MB/s) and request rate (QPS) over a pod's sample window.

The estimator is Theil–Sen (computed as scipy.stats.theilslopes does): the median of all pairwise
slopes, so a few outliers (a forced GC, a burst, a slow scrape) do not move it. Each fit reports
slope, intercept, r², the number of points and the time span; too few points or too short a span
gives InsufficientData with a reason, never a number.

`r2` is the coefficient of determination of the Theil–Sen line itself, 1 - SS_res / SS_tot, floored
at 0 (a robust line can fit the bulk and still leave a worse total residual than the mean). A
perfectly flat series scores 1.0: the line explains it exactly.

Counter resets (pod restarts) split a window into segments (model/window.py). Both window fits fit
each segment on its own and combine the slopes weighted by segment span: a rate never crosses a
restart, and a process that restarts often (an OOM crash loop is exactly when the heap slope
matters) still yields a slope from its short lives. A segment needs at least 2 points and a
positive span to count; n and span_s are the totals over the counted segments.

Theil–Sen costs O(n²) memory; above `max_points` the series is reduced to per-bin medians first
(documented thinning; n still reports the points given).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gc_tuner.input.sample import MiB
from gc_tuner.model.window import PodWindow

__all__ = [
    "DEFAULT_MIN_SAMPLES",
    "DEFAULT_MIN_SPAN_S",
    "InsufficientData",
    "TrendFit",
    "fit_heap_slope",
    "fit_qps",
    "fit_segments",
    "fit_trend",
]

DEFAULT_MIN_SAMPLES = 4
DEFAULT_MIN_SPAN_S = 30.0  # two scrapes at 15 s are not a trend
_MAX_POINTS = 1000


@dataclass(frozen=True, slots=True)
class TrendFit:
    slope: float  # y units per second
    intercept: float  # y at t = 0 (of the given time axis)
    r2: float
    n: int
    span_s: float
    slope_low: float | None = None  # 95% confidence bounds of the slope (Theil–Sen)
    slope_high: float | None = None
    estimated: bool = False  # some points were estimates (e.g. expvar live heap)


@dataclass(frozen=True, slots=True)
class InsufficientData:
    reason: str  # one human line, e.g. "3 samples, need 4"
    n: int
    span_s: float
    code: str = "InsufficientData"  # TooFewSamples | SpanTooShort | NoData


def _thin(t: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    if len(t) <= max_points:
        return t, y
    order = np.argsort(t, kind="stable")
    bins = np.array_split(np.arange(len(t)), max_points)
    tt = np.array([np.median(t[order[b]]) for b in bins])
    yy = np.array([np.median(y[order[b]]) for b in bins])
    return tt, yy


def _check(n: int, span: float, min_samples: int, min_span_s: float) -> InsufficientData | None:
    if n == 0:
        return InsufficientData("no samples", 0, 0.0, "NoData")
    if n < min_samples:
        return InsufficientData(f"{n} samples, need at least {min_samples}", n, span, "TooFewSamples")
    if span < min_span_s:
        return InsufficientData(
            f"samples span {span:.1f}s, need at least {min_span_s:g}s", n, span, "SpanTooShort"
        )
    return None


# norm.ppf(0.025): the 95% interval's z, a constant (tests/logic/test_fit_theilsen.py checks it).
_Z_95 = -1.9599639845400545


def _median_sorted(v: np.ndarray) -> float:
    n = len(v)
    mid = n // 2
    return float(v[mid]) if n % 2 else float((v[mid - 1] + v[mid]) / 2)


def _repeat_term(v: np.ndarray) -> float:
    """Sen's tie correction, sum of k(k-1)(2k+5) over groups of k equal values (`v` sorted)."""
    if len(v) < 2:
        return 0.0
    edges = np.flatnonzero(v[1:] != v[:-1]) + 1
    counts = np.diff(np.concatenate(([0], edges, [len(v)]))).astype(float)
    k = counts[counts > 1]
    return float(np.sum(k * (k - 1) * (2 * k + 5)))


def _theilslopes(y: np.ndarray, x: np.ndarray) -> tuple[float, float, float, float]:
    """scipy.stats.theilslopes(y, x) (alpha 0.95, method 'separate'), result for result.

    scipy's generic wrapper (argument inspection, nan policy, a distribution's ppf per call) costs
    about a millisecond per call, which is most of a policy's fit time at fleet scale; the
    arithmetic below is the same and costs tens of microseconds for a window of samples.
    """
    dx = x[:, np.newaxis] - x
    dy = y[:, np.newaxis] - y
    pos = dx > 0
    slopes = np.sort(dy[pos] / dx[pos])
    xs, ys = np.sort(x), np.sort(y)
    nt, ny = len(slopes), len(y)
    if nt == 0:
        return float("nan"), float("nan"), float("nan"), float("nan")
    slope = _median_sorted(slopes)
    intercept = float(_median_sorted(ys) - slope * _median_sorted(xs))
    sigsq = (ny * (ny - 1) * (2 * ny + 5) - _repeat_term(xs) - _repeat_term(ys)) / 18.0
    if not sigsq >= 0:
        return slope, intercept, float("nan"), float("nan")
    sigma = sigsq**0.5
    hi = min(round((nt - _Z_95 * sigma) / 2.0), nt - 1)
    lo = max(round((nt + _Z_95 * sigma) / 2.0) - 1, 0)
    return slope, intercept, float(slopes[lo]), float(slopes[hi])


def _theil_sen(t: np.ndarray, y: np.ndarray, max_points: int) -> TrendFit:
    n = len(t)
    span = float(t.max() - t.min())
    tt, yy = _thin(t, y, max_points)
    slope, intercept, low, high = _theilslopes(yy, tt)
    resid = yy - (intercept + slope * tt)
    ss_res = float(np.dot(resid, resid))
    centered = yy - yy.mean()
    ss_tot = float(np.dot(centered, centered))
    r2 = (1.0 if ss_res == 0.0 else 0.0) if ss_tot == 0.0 else max(0.0, 1.0 - ss_res / ss_tot)
    return TrendFit(slope, intercept, r2, n, span, low, high)


def _arrays(ts: Sequence[float], ys: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    if len(ts) != len(ys):
        raise ValueError(f"fit_trend needs as many times as values, got {len(ts)} and {len(ys)}")
    t = np.asarray(ts, dtype=float)
    y = np.asarray(ys, dtype=float)
    keep = np.isfinite(t) & np.isfinite(y)  # a NaN from a broken scrape is a missing point, not data
    return t[keep], y[keep]


def fit_trend(
    ts: Sequence[float],
    ys: Sequence[float],
    *,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    min_span_s: float = DEFAULT_MIN_SPAN_S,
    max_points: int = _MAX_POINTS,
) -> TrendFit | InsufficientData:
    """Theil–Sen line through (ts, ys); non-finite points are dropped before counting."""
    if min_samples < 2:
        raise ValueError(f"min_samples must be >= 2, got {min_samples}")
    t, y = _arrays(ts, ys)
    n = len(t)
    span = float(t.max() - t.min()) if n else 0.0
    short = _check(n, span, min_samples, min_span_s)
    if short is not None:
        return short
    if span <= 0:
        return InsufficientData("all samples share one timestamp", n, span, "SpanTooShort")
    return _theil_sen(t, y, max_points)


def fit_segments(
    segments: Sequence[tuple[Sequence[float], Sequence[float]]],
    *,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    min_span_s: float = DEFAULT_MIN_SPAN_S,
    max_points: int = _MAX_POINTS,
) -> TrendFit | InsufficientData:
    """One trend over reset-split segments: per-segment Theil–Sen slopes weighted by segment span.

    The intercept is the newest counted segment's; r² is the span-weighted mean of the segments'.
    """
    fits: list[TrendFit] = []
    dropped = 0
    for ts, ys in segments:
        t, y = _arrays(ts, ys)
        if len(t) >= 2 and float(t.max() - t.min()) > 0:
            fits.append(_theil_sen(t, y, max_points))
        else:
            dropped += len(t)
    n = sum(f.n for f in fits)
    span = sum(f.span_s for f in fits)
    short = _check(n, span, min_samples, min_span_s)
    if short is not None:
        if dropped == 1 and n == 0:
            return InsufficientData(f"1 sample so far, need at least {min_samples}", 1, 0.0, "TooFewSamples")
        if dropped and n == 0:
            return InsufficientData(
                f"{dropped} samples but no segment between restarts has two of them", 0, 0.0, "TooFewSamples"
            )
        return short
    if len(fits) == 1:
        return fits[0]
    slope = sum(f.slope * f.span_s for f in fits) / span
    r2 = sum(f.r2 * f.span_s for f in fits) / span
    return TrendFit(slope, fits[-1].intercept, r2, n, span)


def fit_heap_slope(
    window: PodWindow,
    *,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    min_span_s: float = DEFAULT_MIN_SPAN_S,
) -> TrendFit | InsufficientData:
    """Live-heap growth in MB/s (MiB, 2^20) over the window, from `live_heap_bytes`.

    Sources without a live-heap figure (expvar) provide an estimate (NextGC / (1 + GOGC/100)); such
    points are used as they are and the fit is marked `estimated`.
    """
    segs: list[tuple[list[float], list[float]]] = []
    estimated = False
    for seg in window.segments():
        points = [
            (s.t, s.live_heap_bytes / MiB, s.live_heap_estimated)
            for s in seg
            if s.live_heap_bytes is not None
        ]
        estimated = estimated or any(e for _, _, e in points)
        segs.append(([p[0] for p in points], [p[1] for p in points]))
    if not any(ts for ts, _ in segs):
        return InsufficientData("no live-heap figure in the window's samples", 0, window.span_s, "NoData")
    fit = fit_segments(segs, min_samples=min_samples, min_span_s=min_span_s)
    if isinstance(fit, TrendFit) and estimated:
        return dataclasses.replace(fit, estimated=True)
    return fit


def fit_qps(
    window: PodWindow,
    *,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    min_span_s: float = DEFAULT_MIN_SPAN_S,
) -> TrendFit | InsufficientData:
    """Requests per second: the fitted slope of `requests_total`, per segment, weighted by span."""
    segs: list[tuple[list[float], list[float]]] = []
    for seg in window.segments():
        points = [(s.t, s.requests_total) for s in seg if s.requests_total is not None]
        segs.append(([p[0] for p in points], [float(p[1]) for p in points]))
    if not any(ts for ts, _ in segs):
        return InsufficientData("no request counter in the window's samples", 0, window.span_s, "NoData")
    return fit_segments(segs, min_samples=min_samples, min_span_s=min_span_s)

