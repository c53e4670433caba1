"""The fit's own Theil–Sen equals scipy.stats.theilslopes, estimate for estimate and bound for bound."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm, theilslopes

from gc_tuner.logic.fit import _Z_95, _theilslopes, fit_trend


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
