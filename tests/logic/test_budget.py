"""The Budget strategy: its formula on worked numbers, the clamps, leak suspicion, and its invariants."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gc_tuner.logic.budget import BudgetParams, budget_gogc, time_to_budget_s
from gc_tuner.logic.memlimit import parse_gomemlimit

MiB = 1 << 20
GiB = 1 << 30
WIDE = BudgetParams(gogc_min=1, gogc_max=10000)


def test_worked_example_steady_service() -> None:
    # 900 MiB budget, 150 MiB live, flat heap, 30 MiB non-heap, 1 MiB stacks, 1 MiB globals:
    # 100 × (900 − 150 − 30) / (150 + 1 + 1) = 473.68 -> 473 within wide bounds.
    r = budget_gogc(budget_bytes=900 * MiB, live_bytes=150 * MiB, heap_slope_mb_per_s=0.0,
                    stacks_bytes=MiB, globals_bytes=MiB, non_heap_bytes=30 * MiB, params=WIDE)
    assert r.gogc == 473
    assert r.raw_gogc == pytest.approx(100 * 720 / 152)
    assert r.gomemlimit_bytes == 900 * MiB and r.gomemlimit == "900MiB"
    assert not r.leak_suspected and r.clamps == ()
    # The predicted heap goal at that GOGC plus non-heap memory stays inside the budget.
    goal = 150 * MiB + (152 * MiB) * r.gogc / 100
    assert goal + 30 * MiB <= 900 * MiB
    assert goal + 30 * MiB + (152 * MiB) / 100 > 900 * MiB  # and one more GOGC point would not fit


def test_positive_slope_is_predicted_over_the_horizon() -> None:
    # live_pred = 100 MiB + 2 MB/s × 60 s = 220 MiB; 100 × (1024 − 220 − 0) / 220 = 365.45
    r = budget_gogc(budget_bytes=GiB, live_bytes=100 * MiB, heap_slope_mb_per_s=2.0,
                    params=BudgetParams(gogc_min=1, gogc_max=10000, horizon_s=60))
    assert r.inputs["live_pred_bytes"] == 220 * MiB
    assert r.gogc == 365
    assert "2 MB/s × 60s = 220 MiB" in r.explanation
    longer = budget_gogc(budget_bytes=GiB, live_bytes=100 * MiB, heap_slope_mb_per_s=2.0,
                         params=BudgetParams(gogc_min=1, gogc_max=10000, horizon_s=120))
    assert longer.gogc < r.gogc


def test_negative_slope_counts_as_flat_and_is_said() -> None:
    flat = budget_gogc(budget_bytes=GiB, live_bytes=100 * MiB, heap_slope_mb_per_s=0.0, params=WIDE)
    shrinking = budget_gogc(budget_bytes=GiB, live_bytes=100 * MiB, heap_slope_mb_per_s=-3.0, params=WIDE)
    assert shrinking.gogc == flat.gogc
    assert "heap_slope" in shrinking.clamps
    assert shrinking.time_to_budget_s is None


def test_clamped_to_the_ceiling_and_the_floor() -> None:
    high = budget_gogc(budget_bytes=GiB, live_bytes=100 * MiB, heap_slope_mb_per_s=0.0)
    assert high.gogc == 200 and "gogc" in high.clamps and "clamped to [25, 200]" in high.explanation
    low = budget_gogc(budget_bytes=GiB, live_bytes=900 * MiB, heap_slope_mb_per_s=0.0,
                      non_heap_bytes=100 * MiB)
    assert low.gogc == 25 and low.raw_gogc == pytest.approx(100 * 24 / 900)
    assert "little headroom" in low.explanation and "GOMEMLIMIT must hold it" in low.explanation
    none = budget_gogc(budget_bytes=GiB, live_bytes=1000 * MiB, heap_slope_mb_per_s=0.0,
                       non_heap_bytes=100 * MiB)
    assert none.gogc == 25 and "no headroom left" in none.explanation
    assert not low.leak_suspected


def test_empty_heap_takes_the_ceiling() -> None:
    r = budget_gogc(budget_bytes=GiB, live_bytes=0, heap_slope_mb_per_s=0.0)
    assert r.gogc == 200 and r.raw_gogc is None and "empty heap" in r.explanation


def test_gomemlimit_is_the_budget_in_go_syntax() -> None:
    r = budget_gogc(budget_bytes=966_367_641, live_bytes=100 * MiB, heap_slope_mb_per_s=0.0)
    assert r.gomemlimit == "966367641B"
    assert parse_gomemlimit(r.gomemlimit) == 966_367_641


LEAK = {"budget_bytes": GiB, "live_bytes": 200 * MiB, "heap_slope_mb_per_s": 2.0, "r2": 0.97, "span_s": 120.0}


def test_a_steady_well_fitted_leak_holds_gogc_at_the_floor() -> None:
    p = BudgetParams(gogc_min=30, gogc_max=400, horizon_s=60)
    r = budget_gogc(**LEAK, params=p)  # type: ignore[arg-type]
    assert r.leak_suspected
    assert r.gogc == 30
    # Without the leak rule the formula would still give a GOGC far above the floor: the hold is
    # the leak rule's doing, not a clamp.
    assert r.raw_gogc is not None and r.raw_gogc > 100
    assert r.time_to_budget_s == pytest.approx((1024 - 200) / 2.0)
    assert "leak suspected" in r.explanation and "412s" in r.explanation
    assert "GOMEMLIMIT 1GiB is the backstop" in r.explanation


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"heap_slope_mb_per_s": 0.05}, "below 0.1 MB/s"),
        ({"r2": 0.5}, "noisy, no leak"),
        ({"span_s": 30.0}, "60s make it sustained"),
        ({"heap_slope_mb_per_s": 0.2}, "reaches the budget only in"),  # 824 MiB at 0.2 MB/s: 4120 s
        ({"r2": None}, "no fit quality"),
        ({"span_s": None}, "no fit quality"),
    ],
)
def test_each_leak_condition_is_required(change: dict[str, object], why: str) -> None:
    r = budget_gogc(**{**LEAK, **change})  # type: ignore[arg-type]
    assert not r.leak_suspected
    assert why in r.leak_reason
    assert r.gogc > 25


def test_leak_thresholds_are_parameters() -> None:
    slow = {**LEAK, "heap_slope_mb_per_s": 0.2}
    assert not budget_gogc(**slow).leak_suspected  # type: ignore[arg-type]
    p = BudgetParams(leak_max_time_to_budget_s=5000)
    assert budget_gogc(**slow, params=p).leak_suspected  # type: ignore[arg-type]
    assert budget_gogc(**{**LEAK, "r2": 0.5}, params=BudgetParams(leak_min_r2=0.4)).leak_suspected  # type: ignore[arg-type]


def test_time_to_budget() -> None:
    def ttb(live: int, non_heap: int, slope: float) -> float | None:
        return time_to_budget_s(budget_bytes=GiB, live_bytes=live, non_heap_bytes=non_heap,
                                heap_slope_mb_per_s=slope)

    assert ttb(24 * MiB, 0, 4) == 250
    assert ttb(GiB, MiB, 4) == 0
    assert ttb(0, 0, 0) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"budget_bytes": 0}, "budget must be > 0"),
        ({"budget_bytes": 1.5}, "budget must be an integer"),
        ({"budget_bytes": True}, "budget must be an integer"),
        ({"live_bytes": -1}, "live heap must be >= 0"),
        ({"stacks_bytes": 2.0}, "stacks must be an integer"),
        ({"non_heap_bytes": -5}, "non-heap memory must be >= 0"),
        ({"heap_slope_mb_per_s": math.nan}, "heap slope must be a finite"),
        ({"heap_slope_mb_per_s": math.inf}, "heap slope must be a finite"),
        ({"r2": 1.5}, "r² must be within 0..1"),
        ({"span_s": -1.0}, "fit span must be"),
    ],
)
def test_bad_input_is_named(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"budget_bytes": GiB, "live_bytes": 100 * MiB, "heap_slope_mb_per_s": 0.0}
    with pytest.raises(ValueError, match=message):
        budget_gogc(**{**base, **kwargs})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gogc_min": 0}, "0 < gogc_min <= gogc_max"),
        ({"gogc_min": 300}, "0 < gogc_min <= gogc_max"),
        ({"horizon_s": -1.0}, "horizon_s must be"),
        ({"leak_min_r2": 2.0}, "leak_min_r2 must be within"),
        ({"leak_min_span_s": math.nan}, "leak_min_span_s must be"),
    ],
)
def test_bad_params_are_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BudgetParams(**kwargs)  # type: ignore[arg-type]


_bytes = st.integers(min_value=0, max_value=64 * GiB)
_slopes = st.floats(min_value=-100, max_value=100, allow_nan=False)
_r2 = st.one_of(st.none(), st.floats(min_value=0, max_value=1))
_span = st.one_of(st.none(), st.floats(min_value=0, max_value=86400))


@st.composite
def _params(draw: st.DrawFn) -> BudgetParams:
    lo = draw(st.integers(min_value=1, max_value=5000))
    hi = draw(st.integers(min_value=lo, max_value=10000))
    return BudgetParams(gogc_min=lo, gogc_max=hi, horizon_s=draw(st.floats(min_value=0, max_value=3600)))


@settings(max_examples=300, deadline=None)
@given(budget=st.integers(min_value=1, max_value=64 * GiB), live=_bytes, slope=_slopes, stacks=_bytes,
       globals_=_bytes, non_heap=_bytes, r2=_r2, span=_span, p=_params())
def test_always_within_bounds_and_gomemlimit_is_the_budget(
    budget: int, live: int, slope: float, stacks: int, globals_: int, non_heap: int,
    r2: float | None, span: float | None, p: BudgetParams,
) -> None:
    r = budget_gogc(budget_bytes=budget, live_bytes=live, heap_slope_mb_per_s=slope, stacks_bytes=stacks,
                    globals_bytes=globals_, non_heap_bytes=non_heap, r2=r2, span_s=span, params=p)
    assert p.gogc_min <= r.gogc <= p.gogc_max
    assert r.gomemlimit_bytes == budget and parse_gomemlimit(r.gomemlimit) == budget
    assert "\n" not in r.explanation
    if r.leak_suspected:
        assert r.gogc == p.gogc_min


@settings(max_examples=300, deadline=None)
@given(b1=st.integers(min_value=1, max_value=64 * GiB), b2=st.integers(min_value=1, max_value=64 * GiB),
       live=_bytes, slope=_slopes, stacks=_bytes, non_heap=_bytes, r2=_r2, span=_span, p=_params())
def test_monotone_in_budget(
    b1: int, b2: int, live: int, slope: float, stacks: int, non_heap: int,
    r2: float | None, span: float | None, p: BudgetParams,
) -> None:
    lo, hi = sorted((b1, b2))
    common = {"live_bytes": live, "heap_slope_mb_per_s": slope, "stacks_bytes": stacks,
              "non_heap_bytes": non_heap, "r2": r2, "span_s": span, "params": p}
    small = budget_gogc(budget_bytes=lo, **common)  # type: ignore[arg-type]
    large = budget_gogc(budget_bytes=hi, **common)  # type: ignore[arg-type]
    assert small.gogc <= large.gogc
    assert large.leak_suspected <= small.leak_suspected  # more room never creates a leak verdict


@settings(max_examples=200, deadline=None)
@given(l1=_bytes, l2=_bytes, budget=st.integers(min_value=1, max_value=64 * GiB), slope=_slopes,
       r2=_r2, span=_span, p=_params())
def test_monotone_in_live_heap(
    l1: int, l2: int, budget: int, slope: float, r2: float | None, span: float | None, p: BudgetParams
) -> None:
    lo, hi = sorted((l1, l2))
    common = {"budget_bytes": budget, "heap_slope_mb_per_s": slope, "stacks_bytes": MiB, "r2": r2,
              "span_s": span, "params": p}
    assert budget_gogc(live_bytes=hi, **common).gogc <= budget_gogc(live_bytes=lo, **common).gogc  # type: ignore[arg-type]


# -- non-finite intermediates raise instead of being clamped ------------------------------------------
# Regression: a heap slope of 1e308 MB/s made live_pred inf and the raw GOGC NaN, which max/min "clamped"
# to the ceiling: a float artefact presented as the most generous decision.


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"heap_slope_mb_per_s": 1e308}, r"predicted live heap inf bytes, raw GOGC nan"),
        ({"heap_slope_mb_per_s": 1e-320, "live_bytes": 0}, r"raw GOGC inf"),  # room / 3e-312 bytes
        ({"live_bytes": 10**400}, r"too large for a float"),
    ],
)
def test_a_non_finite_prediction_raises_instead_of_hitting_a_bound(
    kwargs: dict[str, object], message: str
) -> None:
    base: dict[str, object] = {"budget_bytes": GiB, "live_bytes": 100 * MiB, "heap_slope_mb_per_s": 0.0}
    with pytest.raises(ValueError, match=message) as e:
        budget_gogc(**{**base, **kwargs})  # type: ignore[arg-type]
    assert "refusing to clamp it to a bound" in str(e.value)


def test_a_time_to_budget_beyond_a_float_is_no_growth() -> None:
    # 1 GiB of room at 5e-324 MB/s is 1e327 s: inf in a float, which must not reach the JSON.
    tiny = 5e-324
    ttb = time_to_budget_s(budget_bytes=GiB, live_bytes=0, non_heap_bytes=0, heap_slope_mb_per_s=tiny)
    assert ttb is None
    params = BudgetParams(leak_min_slope_mb_per_s=0.0)
    r = budget_gogc(budget_bytes=GiB, live_bytes=100 * MiB, heap_slope_mb_per_s=tiny, r2=0.99, span_s=600,
                    params=params)  # fmt: skip
    assert r.time_to_budget_s is None and not r.leak_suspected and r.gogc == 200
