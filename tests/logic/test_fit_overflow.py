"""Fits near float64's limits: no numpy warning, no inf or NaN in a result, a refusal (OutOfRange) instead.

A pod's counter may read anything up to 1.8e308 (Prometheus values are float64), and a series of times
may be spaced so finely that a slope overflows. Before logic/fit.py refused such series, they printed
RuntimeWarnings (overflow in subtract, multiply, dot) and returned inf or NaN slopes, intercepts and r².
Every test here turns warnings into errors.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gc_tuner.logic.fit import (
    InsufficientData,
    TrendFit,
    _one_segment,
    _segment_fits,
    fit_segments,
    fit_segments_many,
    fit_trend,
)
from gc_tuner.model.policy import parse_policy
from gc_tuner.model.sample import MiB, RuntimeSample
from gc_tuner.tuning.fitting import fit_deployment, fit_pods
from gc_tuner.tuning.state import PolicyState


@pytest.fixture(autouse=True)
def _warnings_are_errors() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


T = [0.0, 15.0, 30.0, 45.0, 60.0]
BIG = 1.7976931348623157e308

# (case, times, values): each overflowed somewhere in the fit before the fix.
CASES = [
    ("values of both signs near the limit (subtract)", T, [1e308, -1e308, 1e308, 0.0, 5.0]),
    ("values near 1e300 (dot: the squares of r²)", T, [1e300, 2e300, 3e300, 4e300, 5e300]),
    ("one value at the largest float (reduce: the mean)", T, [BIG] * 4 + [0.0]),
    ("times spanning beyond the largest float (subtract)", [-1e308, 0.0, 1e308, 1.5e308, BIG], T),
    (
        "times 1e-300 apart (divide: the slopes)",
        [0.0, 1e-300, 2e-300, 3e-300, 4e-300],
        [0, 1e10, 2e10, 3e10, 4e10],
    ),
    (
        "unix times, a counter near the limit (multiply: the intercept)",
        [1.8e9 + t for t in T],
        [0, 1e307, 2e307, 3e307, 4e307],
    ),
]
IDS = [c[0] for c in CASES]


def finite_or_refused(got: object) -> None:
    if isinstance(got, InsufficientData):  # too few points, no span, or refused
        assert got.code != "OutOfRange" or "beyond" in got.reason, got
        assert math.isfinite(got.span_s) and got.n >= 0, got
        return
    assert isinstance(got, TrendFit), got
    for name in ("slope", "intercept", "r2", "span_s"):
        assert math.isfinite(getattr(got, name)), got
    assert 0.0 <= got.r2 <= 1.0, got


@pytest.mark.parametrize(("case", "ts", "ys"), CASES, ids=IDS)
def test_each_overflow_is_refused_on_every_path(case: str, ts: list[float], ys: list[float]) -> None:
    got = fit_trend(ts, ys, min_span_s=0)
    assert isinstance(got, InsufficientData) and got.code == "OutOfRange", got
    assert got.n == 5
    assert _one_segment(ts, ys, 1000) == got
    assert _segment_fits([(ts, ys), (ts, ys)], 1000) == [got, got]  # the batched path
    assert fit_segments([(ts, ys)], min_span_s=0) == got


def test_one_bad_row_leaves_the_batch_to_the_others() -> None:
    """The batched path falls back to one by one when a row overflows; the other rows' fits are
    what the one-series path gives (r² to the last bits: einsum and dot sum in different orders)."""
    rng = np.random.default_rng(5)
    good = [(list(1.7e9 + np.arange(5) * 15.0), list(100 + rng.normal(0, 3, 5))) for _ in range(6)]
    series = [*good[:3], (T, [1e308, -1e308, 1e308, 0.0, 5.0]), *good[3:]]
    got = _segment_fits(series, 1000)
    assert isinstance(got[3], InsufficientData) and got[3].code == "OutOfRange"
    for k, alone in zip([0, 1, 2, 4, 5, 6], _segment_fits(good, 1000), strict=True):
        fit = got[k]
        assert isinstance(alone, TrendFit) and isinstance(fit, TrendFit)
        assert fit == dataclasses.replace(alone, r2=fit.r2) and fit.r2 == pytest.approx(alone.r2, rel=1e-12)


def test_segments_whose_spans_add_up_beyond_the_largest_float_are_refused() -> None:
    """Two segments that fit on their own, whose total span (the weights of their slopes) overflows."""
    ys = [0.0, 1e10, 2e10, 3e10]
    # The two middle times of each add up within range: their mean is the median time.
    a = ([-1.7e308, -0.8e308, -0.7e308, -0.2e308], ys)
    b = ([0.0, 0.5e308, 0.8e308, 1.5e308], ys)
    for seg in (a, b):
        assert isinstance(fit_segments([seg]), TrendFit)
    got = fit_segments([a, b])
    assert isinstance(got, InsufficientData) and got.code == "OutOfRange", got
    assert got.n == 8


def test_normal_series_still_fit() -> None:
    got = fit_trend([1.8e9 + t for t in T], [1e150 + 0.0, 1e150, 1e150, 1e150, 1e150])
    assert isinstance(got, TrendFit) and got.slope == 0.0 and got.r2 == 1.0


_EXTREME = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [BIG, -BIG, 1e308, -1e308, 1e300, 5e-324, -5e-324, 0.0, 1e-300]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_EXTREME, _EXTREME), min_size=2, max_size=12), st.booleans())
def test_any_finite_input_fits_finite_or_is_refused(points: list[tuple[float, float]], sort: bool) -> None:
    if sort:  # strictly increasing times take the batched path
        points = sorted(dict(points).items())
    ts, ys = [p[0] for p in points], [p[1] for p in points]
    finite_or_refused(fit_trend(ts, ys, min_samples=2, min_span_s=0))
    for got in _segment_fits([(ts, ys), (ts, ys)], 1000):
        if not isinstance(got, int):
            finite_or_refused(got)
    finite_or_refused(
        fit_segments_many([[(ts[:2], ys[:2]), (ts[2:], ys[2:])]], min_samples=2, min_span_s=0)[0]
    )


# -- the callers: tuning/fitting.py and tuning/screening.py ---------------------------------------------

T0 = 1_700_000_000.0


def test_a_pod_whose_counter_overflows_the_fit_is_left_out_with_a_reason() -> None:
    """Two pods; one's request counter climbs by 1e307 a sample. Its QPS fit is refused (a note says
    why), so it is not among the Deployment's pods, and the other pod's fit is untouched."""
    spec = parse_policy(
        {
            "targetRef": {"name": "web"},
            "sampling": {"intervalSeconds": 5, "windowSeconds": 60, "sources": {"agent": {"port": 8080}}},
            "qps": {"counter": {"name": "http_requests_total", "port": 8080}},
        }
    )
    state = PolicyState(60.0)
    for name, step in (("sane", 500.0), ("hostile", 1e307)):
        ps = state.pod(name, now=T0)
        for i in range(6):
            live = int((20 + 2.5 * i) * MiB)
            ps.window.add(
                RuntimeSample(t=T0 + 5 * i, source="agent", live_heap_bytes=live, requests_total=step * i)
            )
    sane, hostile = fit_pods([(n, state.pods[n]) for n in ("sane", "hostile")], spec)
    assert sane.qps == pytest.approx(100.0) and sane.heap_slope_mb_per_s == pytest.approx(0.5)
    assert hostile.qps is None and "qps: " in hostile.note and "beyond" in hostile.note
    assert hostile.heap_slope_mb_per_s == pytest.approx(0.5)  # its heap figures are fine
    summary = fit_deployment([sane, hostile], spec)
    assert summary.pods == 1 and summary.qps == pytest.approx(100.0)
