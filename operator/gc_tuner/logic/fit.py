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

Series the float64 arithmetic cannot fit are refused as InsufficientData with code `OutOfRange`,
never a warning or an inf or NaN in a result: values whose spread or squares overflow (a counter
that reads near 1e308, as a Prometheus value may), times spread beyond the largest float, or so close
together that a pairwise slope overflows. Every numpy floating-point error in the fit raises
(`_strict`), and what plain Python floats compute (the intercept, the span-weighted combination) is
checked for finiteness. A refused series counts as unfitted: the callers' pod has no slope from it.

Theil–Sen costs O(n²) memory; above `max_points` the series is reduced to per-bin medians first
(documented thinning; n still reports the points given).

A policy fits two series per pod every cycle, so at fleet scale the per-call overhead of numpy
dominates the arithmetic. `fit_segments_many` (and the window fits built on it) fits every series
of equal length in one set of array operations; results are those of the one-series path.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gc_tuner.model.window import PodWindow

__all__ = [
    "DEFAULT_MIN_SAMPLES",
    "DEFAULT_MIN_SPAN_S",
    "InsufficientData",
    "TrendFit",
    "fit_heap_slope",
    "fit_heap_slopes",
    "fit_qps",
    "fit_qps_many",
    "fit_segments",
    "fit_segments_many",
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
    code: str = "InsufficientData"  # TooFewSamples | SpanTooShort | NoData | OutOfRange


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


def _strict() -> np.errstate:
    """numpy's floating-point errors raise instead of warning, so that an overflow refuses the series.
    Underflow stays silent: a subnormal slope is still the right slope."""
    return np.errstate(over="raise", divide="raise", invalid="raise")


_FLOAT_MAX = float(np.finfo(float).max)


def _span(t: np.ndarray) -> float:
    """max - min of the times; the largest float when that overflows (the fit then refuses them)."""
    with np.errstate(over="ignore"):
        return min(float(t.max() - t.min()), _FLOAT_MAX)


def _out_of_range(t: np.ndarray, y: np.ndarray) -> InsufficientData:
    return InsufficientData(
        f"values beyond what the fit's float64 arithmetic can hold (times {t.min():.3g}..{t.max():.3g}, "
        f"values {y.min():.3g}..{y.max():.3g})",
        len(t),
        _span(t),
        "OutOfRange",
    )


def _finite(fit: TrendFit) -> bool:
    # Plain Python floats (the intercept, the weighted slope) overflow to inf without an error.
    return all(math.isfinite(v) for v in (fit.slope, fit.intercept, fit.r2, fit.span_s))


def _require_finite(*sums: float | np.ndarray) -> None:
    # einsum sets no floating-point error flag when a sum of squares overflows, and `_r2` would read
    # inf / inf as a poor fit rather than no fit.
    if not all(np.isfinite(v).all() for v in sums):
        raise FloatingPointError("overflow in a sum of squares")


def _theil_sen(t: np.ndarray, y: np.ndarray, max_points: int) -> TrendFit | InsufficientData:
    """The fit of one segment, or OutOfRange when its arithmetic overflows."""
    try:
        with _strict():
            n = len(t)
            span = float(t.max() - t.min())
            tt, yy = _thin(t, y, max_points)
            slope, intercept, low, high = _theilslopes(yy, tt)
            resid = yy - (intercept + slope * tt)
            ss_res = float(np.dot(resid, resid))
            centered = yy - yy.mean()
            ss_tot = float(np.dot(centered, centered))
            _require_finite(ss_res, ss_tot)
            fit = TrendFit(slope, intercept, _r2(ss_res, ss_tot), n, span, low, high)
    except FloatingPointError:
        return _out_of_range(t, y)
    return fit if _finite(fit) else _out_of_range(t, y)


def _median_rows(v: np.ndarray) -> np.ndarray:
    """Row medians of a row-sorted matrix, as `_median_sorted` computes them."""
    n = v.shape[1]
    mid = n // 2
    return v[:, mid] if n % 2 else (v[:, mid - 1] + v[:, mid]) / 2


def _theil_sen_rows(t: np.ndarray, y: np.ndarray) -> list[TrendFit]:
    """`_theil_sen` for every row of (P, n) matrices whose rows have strictly increasing times."""
    p, n = t.shape
    i, j = np.triu_indices(n, k=1)
    slopes = np.sort((y[:, j] - y[:, i]) / (t[:, j] - t[:, i]), axis=1)
    nt = slopes.shape[1]
    slope = _median_rows(slopes)
    ys = np.sort(y, axis=1)
    intercept = _median_rows(ys) - slope * _median_rows(t)
    # Sen's tie correction: times are distinct here; equal values (a flat heap) need the per-row term.
    ties = np.zeros(p)
    for row in np.flatnonzero(np.any(ys[:, 1:] == ys[:, :-1], axis=1)):
        ties[row] = _repeat_term(ys[row])
    sigma = np.sqrt(np.maximum((n * (n - 1) * (2 * n + 5) - ties) / 18.0, 0.0))
    hi = np.minimum(np.round((nt - _Z_95 * sigma) / 2.0), nt - 1).astype(int)
    lo = np.maximum(np.round((nt + _Z_95 * sigma) / 2.0) - 1, 0).astype(int)
    rows = np.arange(p)
    low, high = slopes[rows, lo], slopes[rows, hi]
    resid = y - (intercept[:, np.newaxis] + slope[:, np.newaxis] * t)
    ss_res = np.einsum("ij,ij->i", resid, resid)
    centered = y - y.mean(axis=1, keepdims=True)
    ss_tot = np.einsum("ij,ij->i", centered, centered)
    _require_finite(ss_res, ss_tot)
    span = t[:, -1] - t[:, 0]
    flat = ss_tot == 0.0  # `_r2`, row by row
    r2 = np.where(flat, (ss_res == 0.0) * 1.0, np.maximum(0.0, 1.0 - ss_res / np.where(flat, 1.0, ss_tot)))
    # tolist() converts whole columns to Python floats at once: per-element float() cost more than the fit.
    values = (slope, intercept, r2, span, low, high)
    columns = zip(*(v.tolist() for v in values), strict=True)
    return [TrendFit(s, i, r, n, sp, lo_, hi_) for s, i, r, sp, lo_, hi_ in columns]


def _r2(ss_res: float, ss_tot: float) -> float:
    return (1.0 if ss_res == 0.0 else 0.0) if ss_tot == 0.0 else max(0.0, 1.0 - ss_res / ss_tot)


_Values = Sequence[float] | np.ndarray


def _check_lengths(ts: _Values, ys: _Values) -> None:
    if len(ts) != len(ys):
        raise ValueError(f"fit_trend needs as many times as values, got {len(ts)} and {len(ys)}")


def _arrays(ts: _Values, ys: _Values) -> tuple[np.ndarray, np.ndarray]:
    _check_lengths(ts, ys)
    t = np.asarray(ts, dtype=float)
    y = np.asarray(ys, dtype=float)
    keep = np.isfinite(t) & np.isfinite(y)  # a NaN from a broken scrape is a missing point, not data
    return (t, y) if keep.all() else (t[keep], y[keep])


_Segment = TrendFit | InsufficientData | int


def _one_segment(ts: _Values, ys: _Values, max_points: int) -> _Segment:
    t, y = _arrays(ts, ys)
    if len(t) >= 2 and t.max() > t.min():  # a span > 0, compared: the difference may overflow
        return _theil_sen(t, y, max_points)
    return len(t)


def _batch(t: np.ndarray, y: np.ndarray) -> list[TrendFit] | None:
    """`_theil_sen_rows`, or None when some row overflows: the rows then go one by one, so that
    one pod's absurd figures refuse its own fit, and the others fit as on their own."""
    try:
        with _strict():
            return _theil_sen_rows(t, y)
    except FloatingPointError:
        return None


def _segment_fits(series: Sequence[tuple[_Values, _Values]], max_points: int) -> list[_Segment]:
    """Theil–Sen of each (t, y) segment, or, when it cannot be fitted (fewer than two finite points
    or no time span), the number of its finite points, or OutOfRange (see the module's docstring).

    Segments of one length whose points are all finite and in increasing time go through
    `_theil_sen_rows` together; the rest (a NaN, gctrace's repeated 1 ms times) one by one.
    """
    out: list[_Segment] = [0] * len(series)
    by_len: dict[int, list[int]] = {}
    for k, (ts, ys) in enumerate(series):
        _check_lengths(ts, ys)
        by_len.setdefault(len(ts), []).append(k)
    for n, idx in by_len.items():
        slow = idx
        if 2 <= n <= max_points:
            t = np.array([series[k][0] for k in idx], dtype=float)
            y = np.array([series[k][1] for k in idx], dtype=float)
            fast = (
                np.isfinite(t).all(axis=1) & np.isfinite(y).all(axis=1) & (t[:, 1:] > t[:, :-1]).all(axis=1)
            )
            batched = _batch(t[fast], y[fast]) if fast.any() else None
            if batched is not None:
                rows = [k for k, ok in zip(idx, fast, strict=True) if ok]
                for k, fit in zip(rows, batched, strict=True):
                    out[k] = fit
                slow = [k for k, ok in zip(idx, fast, strict=True) if not ok]
        for k in slow:
            out[k] = _one_segment(*series[k], max_points)
    return out


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
    span = _span(t) if n else 0.0
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
    return fit_segments_many(
        [segments], min_samples=min_samples, min_span_s=min_span_s, max_points=max_points
    )[0]


def fit_segments_many(
    series: Sequence[Sequence[tuple[_Values, _Values]]],
    *,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    min_span_s: float = DEFAULT_MIN_SPAN_S,
    max_points: int = _MAX_POINTS,
) -> list[TrendFit | InsufficientData]:
    """`fit_segments` of each entry (one entry = one series' segments), fitted in one batch."""
    flat: list[tuple[_Values, _Values]] = []
    owner: list[int] = []
    for e, segments in enumerate(series):
        flat.extend(segments)
        owner.extend([e] * len(segments))
    fits: list[list[TrendFit]] = [[] for _ in series]
    dropped = [0] * len(series)
    refused: list[InsufficientData | None] = [None] * len(series)
    for e, got in zip(owner, _segment_fits(flat, max_points), strict=True):
        if isinstance(got, TrendFit):
            fits[e].append(got)
        elif isinstance(got, InsufficientData):
            refused[e] = got
        else:
            dropped[e] += got
    return [
        _combine(f, d, min_samples, min_span_s) if r is None else _refuse(r, f, d)
        for f, d, r in zip(fits, dropped, refused, strict=True)
    ]


def _refuse(refused: InsufficientData, fits: list[TrendFit], dropped: int) -> InsufficientData:
    # One segment out of range refuses the whole series: a pod that reports such figures is not to be
    # believed in its other segments either.
    n = refused.n + dropped + sum(f.n for f in fits)
    return dataclasses.replace(
        refused, n=n, span_s=min(refused.span_s + sum(f.span_s for f in fits), _FLOAT_MAX)
    )


def _combine(
    fits: list[TrendFit], dropped: int, min_samples: int, min_span_s: float
) -> TrendFit | InsufficientData:
    if len(fits) == 1 and fits[0].n >= min_samples and fits[0].span_s >= min_span_s:
        return fits[0]  # the common case: one segment, enough of it
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
    fit = TrendFit(slope, fits[-1].intercept, r2, n, span)
    if _finite(fit):
        return fit
    # Python floats overflow silently: spans adding up beyond the largest float, or a slope times
    # its span beyond it.
    why = (
        "values beyond what the fit's float64 arithmetic can hold "
        f"(the span-weighted slope of {len(fits)} segments)"
    )
    return InsufficientData(why, n, min(span, _FLOAT_MAX), "OutOfRange")


def _window_fits(
    windows: Sequence[PodWindow],
    segs: list[list[tuple[np.ndarray, np.ndarray]]],
    missing: str,
    min_samples: int,
    min_span_s: float,
) -> list[TrendFit | InsufficientData]:
    # No finite point at all comes back from _combine as NoData; say which figure was missing.
    return [
        InsufficientData(missing, 0, w.span_s, "NoData")
        if isinstance(f, InsufficientData) and f.code == "NoData"
        else f
        for w, f in zip(
            windows, fit_segments_many(segs, min_samples=min_samples, min_span_s=min_span_s), strict=True
        )
    ]


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
    return fit_heap_slopes([window], min_samples=min_samples, min_span_s=min_span_s)[0]


def fit_heap_slopes(
    windows: Sequence[PodWindow],
    *,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    min_span_s: float = DEFAULT_MIN_SPAN_S,
) -> list[TrendFit | InsufficientData]:
    """`fit_heap_slope` of each window, fitted in one batch."""
    segs = [w.series("live_mib") for w in windows]
    fits = _window_fits(windows, segs, "no live-heap figure in the window's samples", min_samples, min_span_s)
    return [
        dataclasses.replace(f, estimated=True) if isinstance(f, TrendFit) and w.live_heap_estimated else f
        for f, w in zip(fits, windows, strict=True)
    ]


def fit_qps(
    window: PodWindow,
    *,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    min_span_s: float = DEFAULT_MIN_SPAN_S,
) -> TrendFit | InsufficientData:
    """Requests per second: the fitted slope of `requests_total`, per segment, weighted by span."""
    return fit_qps_many([window], min_samples=min_samples, min_span_s=min_span_s)[0]


def fit_qps_many(
    windows: Sequence[PodWindow],
    *,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    min_span_s: float = DEFAULT_MIN_SPAN_S,
) -> list[TrendFit | InsufficientData]:
    """`fit_qps` of each window, fitted in one batch."""
    segs = [w.series("requests") for w in windows]
    return _window_fits(windows, segs, "no request counter in the window's samples", min_samples, min_span_s)
