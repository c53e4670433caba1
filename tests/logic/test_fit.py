"""Theil–Sen trend fits: slope/intercept/r²/n/span, robustness, insufficient data, reset-split windows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gc_tuner.logic.fit import InsufficientData, TrendFit, fit_heap_slope, fit_qps, fit_segments, fit_trend
from gc_tuner.model.sample import MiB, RuntimeSample
from gc_tuner.model.window import PodWindow


def test_exact_line() -> None:
    ts = [0.0, 15.0, 30.0, 45.0, 60.0]
    fit = fit_trend(ts, [2.0 * t + 7.0 for t in ts])
    assert isinstance(fit, TrendFit)
    assert fit.slope == pytest.approx(2.0)
    assert fit.intercept == pytest.approx(7.0)
    assert fit.r2 == pytest.approx(1.0)
    assert (fit.n, fit.span_s) == (5, 60.0)
    assert fit.slope_low is not None and fit.slope_high is not None
    assert fit.slope_low <= 2.0 <= fit.slope_high


def test_robust_to_outliers_where_least_squares_is_not() -> None:
    ts = np.arange(0, 300, 15, dtype=float)
    ys = 100.0 + 0.5 * ts
    ys[5] += 10_000  # one absurd scrape
    ys[12] -= 5_000
    fit = fit_trend(ts, ys)
    assert isinstance(fit, TrendFit)
    assert fit.slope == pytest.approx(0.5, rel=1e-9)
    ols = np.polyfit(ts, ys, 1)[0]
    assert abs(ols - 0.5) > 1  # the check above means something


def test_r2_reflects_noise() -> None:
    rng = np.random.default_rng(7)
    ts = np.arange(0, 300, 15, dtype=float)
    clean = fit_trend(ts, 3 * ts + rng.normal(0, 1, len(ts)))
    noisy = fit_trend(ts, 0.01 * ts + rng.normal(0, 50, len(ts)))
    assert isinstance(clean, TrendFit) and isinstance(noisy, TrendFit)
    assert clean.r2 > 0.99
    assert noisy.r2 < 0.5


def test_flat_series_has_zero_slope_and_full_r2() -> None:
    fit = fit_trend([0, 10, 20, 30, 40], [5, 5, 5, 5, 5])
    assert isinstance(fit, TrendFit) and fit.slope == 0.0 and fit.r2 == 1.0


@pytest.mark.parametrize(
    ("ts", "code", "why"),
    [
        ([], "NoData", "no samples"),
        ([0.0, 15.0, 30.0], "TooFewSamples", "3 samples, need at least 4"),
        ([0.0, 5.0, 10.0, 15.0], "SpanTooShort", "span 15.0s, need at least 30s"),
    ],
)
def test_insufficient_data_is_explicit(ts: list[float], code: str, why: str) -> None:
    fit = fit_trend(ts, [1.0] * len(ts))
    assert isinstance(fit, InsufficientData)
    assert fit.code == code and why in fit.reason
    assert fit.n == len(ts)


def test_thresholds_are_parameters() -> None:
    assert isinstance(fit_trend([0, 1], [0, 1], min_samples=2, min_span_s=1), TrendFit)
    assert isinstance(
        fit_trend([0, 1, 2, 3, 4], [0, 1, 2, 3, 4], min_samples=6, min_span_s=0), InsufficientData
    )


def test_single_timestamp_is_insufficient() -> None:
    fit = fit_trend([5.0] * 6, [1, 2, 3, 4, 5, 6], min_span_s=0)
    assert isinstance(fit, InsufficientData) and fit.code == "SpanTooShort"


def test_non_finite_points_are_dropped_before_counting() -> None:
    fit = fit_trend([0, 15, 30, 45, 60], [0, math.nan, 30, math.inf, 60])
    assert isinstance(fit, InsufficientData) and fit.n == 3
    fit = fit_trend([0, 15, 30, 45, 60, 75], [0, math.nan, 30, 45, 60, 75])
    assert isinstance(fit, TrendFit) and fit.n == 5 and fit.slope == pytest.approx(1.0)


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(ValueError, match="as many"):
        fit_trend([0, 1, 2], [1, 2])


def test_long_series_is_thinned_not_quadratic() -> None:
    ts = np.arange(100_000, dtype=float)
    fit = fit_trend(ts, 4.0 * ts + 1.0)
    assert isinstance(fit, TrendFit)
    assert fit.n == 100_000 and fit.slope == pytest.approx(4.0)


def test_segments_are_weighted_by_span() -> None:
    a = ([0.0, 10.0, 20.0, 30.0], [0.0, 10.0, 20.0, 30.0])  # slope 1 over 30 s
    b = ([40.0, 50.0, 60.0, 70.0, 80.0, 100.0], [0.0, 30.0, 60.0, 90.0, 120.0, 180.0])  # slope 3 over 60 s
    fit = fit_segments([a, b])
    assert isinstance(fit, TrendFit)
    assert fit.slope == pytest.approx((1 * 30 + 3 * 60) / 90)
    assert (fit.n, fit.span_s) == (10, 90.0)


def test_one_sample_segments_do_not_count() -> None:
    fit = fit_segments([([0.0], [5.0]), ([10.0], [1.0]), ([20.0], [3.0]), ([30.0], [0.0])])
    assert isinstance(fit, InsufficientData) and "no segment between restarts has two" in fit.reason


def test_a_single_first_sample_reads_as_warming_up() -> None:
    fit = fit_segments([([0.0], [5.0])])
    assert isinstance(fit, InsufficientData)
    assert fit.reason == "1 sample so far, need at least 4" and fit.n == 1


def window(points: list[tuple[float, dict[str, object]]]) -> PodWindow:
    w = PodWindow(300)
    for t, kw in points:
        w.add(RuntimeSample(t=t, source="agent", **kw))  # type: ignore[arg-type]
    return w


def test_qps_across_a_restart_is_never_negative() -> None:
    # 100 req/s, a restart at t=150 (counter back near 0), then 100 req/s again.
    pts = [(float(t), {"requests_total": 50_000.0 + 100.0 * t}) for t in range(0, 150, 15)]
    pts += [(float(t), {"requests_total": 100.0 * (t - 150)}) for t in range(150, 300, 15)]
    fit = fit_qps(window(pts))
    assert isinstance(fit, TrendFit)
    assert fit.slope == pytest.approx(100.0)
    naive = fit_trend([p[0] for p in pts], [float(p[1]["requests_total"]) for p in pts])  # type: ignore[arg-type]
    assert isinstance(naive, TrendFit) and naive.slope < 0  # what the split prevents


def test_heap_slope_is_in_mib_per_second_and_marks_estimates() -> None:
    pts = [(float(t), {"live_heap_bytes": 50 * MiB + int(2 * MiB * t)}) for t in range(0, 300, 15)]
    fit = fit_heap_slope(window(pts))
    assert isinstance(fit, TrendFit) and fit.slope == pytest.approx(2.0) and not fit.estimated
    est = [(t, {**kw, "live_heap_estimated": i % 2 == 0}) for i, (t, kw) in enumerate(pts)]
    fit = fit_heap_slope(window(est))
    assert isinstance(fit, TrendFit) and fit.estimated


def test_window_fits_say_what_is_missing() -> None:
    w = window([(float(t), {"gc_cycles": t}) for t in range(0, 300, 15)])
    heap, qps = fit_heap_slope(w), fit_qps(w)
    assert isinstance(heap, InsufficientData) and "no live-heap figure" in heap.reason
    assert isinstance(qps, InsufficientData) and "no request counter" in qps.reason
    short = window([(float(t), {"requests_total": float(t)}) for t in (0, 15)])
    fit = fit_qps(short)
    assert isinstance(fit, InsufficientData) and fit.code == "TooFewSamples"
