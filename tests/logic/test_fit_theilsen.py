"""The fit's own Theil–Sen equals scipy.stats.theilslopes, estimate for estimate and bound for bound."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm, theilslopes

from gc_tuner.logic.fit import (
    _Z_95,
    TrendFit,
    _one_segment,
    _segment_fits,
    _theilslopes,
    fit_segments,
    fit_segments_many,
    fit_trend,
)


def test_z_is_the_95_percent_normal_quantile() -> None:
    assert norm.ppf(0.025) == _Z_95


def _same(y: np.ndarray, x: np.ndarray) -> None:
    ref = theilslopes(y, x)
    got = _theilslopes(y, x)
    np.testing.assert_allclose(
        got, (ref.slope, ref.intercept, ref.low_slope, ref.high_slope), rtol=1e-12, atol=1e-12, equal_nan=True
    )


@pytest.mark.filterwarnings("ignore:invalid value encountered in sqrt")  # scipy, on all-tied data
@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(-50, 50)), min_size=2, max_size=60))
def test_matches_scipy_with_ties_and_repeats(points: list[tuple[int, int]]) -> None:
    x = np.array([float(p[0]) for p in points])
    y = np.array([float(p[1]) for p in points])
    if np.ptp(x) == 0:
        return  # the fit refuses a zero span before it gets here
    _same(y, x)


@pytest.mark.parametrize("n", [3, 20, 300, 1000])
def test_matches_scipy_on_noisy_trends(n: int) -> None:
    rng = np.random.default_rng(n)
    x = np.sort(rng.uniform(0, 300, n)) + 1.7e9  # unix seconds, as the windows use them
    y = 150 + 0.8 * (x - x[0]) + rng.normal(0, 5, n)
    _same(y, x)


def test_fit_trend_reports_the_same_bounds_as_scipy() -> None:
    t = [0.0, 15.0, 30.0, 45.0, 60.0, 75.0]
    y = [100.0, 101.0, 99.5, 103.0, 104.0, 103.5]
    fit = fit_trend(t, y)
    ref = theilslopes(y, t)
    assert (fit.slope, fit.slope_low, fit.slope_high) == pytest.approx(
        (ref.slope, ref.low_slope, ref.high_slope)
    )


def _scalar(t: list[float], y: list[float]) -> TrendFit | int:
    return _one_segment(t, y, 1000)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(
                st.integers(0, 30),
                st.one_of(st.integers(-20, 20).map(float), st.just(float("nan"))),
            ),
            min_size=0,
            max_size=12,
        ),
        min_size=1,
        max_size=25,
    ),
    st.booleans(),
)
def test_batched_segments_equal_one_by_one(raw: list[list[tuple[int, float]]], increasing: bool) -> None:
    """Rows of one length are fitted together; every result equals the one-series path's."""
    series = []
    for points in raw:
        t = [float(a) for a, _ in points]
        if increasing:
            t = [float(k * 15 + a % 7) for k, (a, _) in enumerate(points)]  # strictly increasing, no NaN in t
        series.append((t, [b for _, b in points]))
    got = _segment_fits(series, 1000)
    for (t, y), batched in zip(series, got, strict=True):
        alone = _scalar(t, y)
        if isinstance(alone, int):
            assert batched == alone
            continue
        assert isinstance(batched, TrendFit)
        b = (batched.slope, batched.intercept, batched.slope_low, batched.slope_high, batched.n)
        a = (alone.slope, alone.intercept, alone.slope_low, alone.slope_high, alone.n)
        # Tied times give NaN bounds on both paths (as scipy does): NaN must match NaN.
        assert b == pytest.approx(a, rel=1e-12, abs=1e-12, nan_ok=True)
        assert batched.r2 == pytest.approx(alone.r2, rel=1e-9, abs=1e-12)
        assert batched.span_s == alone.span_s


def test_batched_rows_match_scipy() -> None:
    rng = np.random.default_rng(7)
    series = []
    for k in range(40):
        x = 1.7e9 + np.arange(20) * 15.0 + rng.uniform(0, 2, 20)
        y = np.round(150 + (k % 5) * 0.3 * (x - x[0]) + rng.normal(0, 4, 20))  # rounding makes ties
        series.append((x, y))
    for (x, y), fit in zip(series, _segment_fits(series, 1000), strict=True):
        assert isinstance(fit, TrendFit)
        ref = theilslopes(y, x)
        assert (fit.slope, fit.intercept, fit.slope_low, fit.slope_high) == pytest.approx(
            (ref.slope, ref.intercept, ref.low_slope, ref.high_slope), rel=1e-12, abs=1e-9
        )


def test_fit_segments_many_equals_fit_segments() -> None:
    rng = np.random.default_rng(3)
    entries = []
    for k in range(30):
        n = 5 + k % 4
        t = list(np.arange(n) * 15.0)
        y = list(100 + 0.5 * np.arange(n) * 15 + rng.normal(0, 1, n))
        cut = k % 3
        entries.append([(t[:cut], y[:cut]), (t[cut:], y[cut:])] if cut else [(t, y)])
    many = fit_segments_many(entries, min_samples=3, min_span_s=20)
    for segs, got in zip(entries, many, strict=True):
        assert got == fit_segments(segs, min_samples=3, min_span_s=20)
