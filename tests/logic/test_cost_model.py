"""The Cost model: GOGC* on hand-computed numbers, the budget cap, the bounds, damping, predictions."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gc_tuner.logic.cost_model import (
    HOURS_PER_MONTH,
    MIN_BASE_BYTES,
    CostParams,
    PodCost,
    cost_gogc,
    cost_per_hour,
    damped_gogc,
    optimal_gogc,
)

MiB = 1 << 20
GiB = 1 << 30
PRICES = CostParams()  # 0.040 per core-hour, 0.004 per GiB-hour
WIDE = CostParams(gogc_min=1, gogc_max=10000)


def exact(a: float, c: float, base: int) -> PodCost:
    return PodCost(alloc_mib_per_s=a, alloc_se=0.0, mark_ms_per_mib=c, mark_se=0.0, base_bytes=base)


@pytest.mark.parametrize(
    ("a", "c", "base", "expected"),
    [
        # 100 × sqrt(0.04 × (1 ms/MiB × 25 MiB/s = 0.025 cores) / (0.004 × 1 GiB)) = 100 × sqrt(0.25) = 50
        (25.0, 1.0, GiB, 50.0),
        # c·a = 0.2 cores, L+S+G = 1/16 GiB: 100 × sqrt(0.008 / 0.00025) = 100 × sqrt(32)
        (100.0, 2.0, 64 * MiB, 100 * math.sqrt(32)),
        # c·a = 0.01 cores, L+S+G = 1/4 GiB: 100 × sqrt(0.0004 / 0.001) = 100 × sqrt(0.4)
        (10.0, 1.0, 256 * MiB, 100 * math.sqrt(0.4)),
        # four times the allocation: twice the GOGC
        (100.0, 1.0, GiB, 100.0),
    ],
)
def test_gogc_star_against_hand_computed_values(a: float, c: float, base: int, expected: float) -> None:
    assert optimal_gogc(c / 1000 * a, base, PRICES) == pytest.approx(expected)
    r = cost_gogc([exact(a, c, base)], WIDE)
    assert r.optimal_gogc == pytest.approx(expected)
    assert r.gogc == round(expected)
    assert r.fit_error == 0.0 and r.step_share == 1.0 and r.clamps == ()


def test_predictions_and_saving_at_the_chosen_gogc() -> None:
    r = cost_gogc([exact(25.0, 1.0, GiB)], PRICES)
    assert r.gogc == 50
    assert r.gc_cpu_cores == pytest.approx(0.05)  # 0.025 cores at GOGC=100, twice at 50
    assert r.heap_overhead_bytes == pytest.approx(GiB / 2)
    # at 100: 0.04 × 0.025 + 0.004 × 1 = 0.005 per hour; at 50: 0.04 × 0.05 + 0.004 × 0.5 = 0.004
    assert r.monthly_saving == pytest.approx(0.001 * HOURS_PER_MONTH)
    assert "+0.73 USD/month" in r.explanation


def test_several_pods_share_one_gogc_that_minimises_their_sum() -> None:
    a, b = exact(25.0, 1.0, GiB), exact(100.0, 2.0, 64 * MiB)
    r = cost_gogc([a, b], WIDE)
    ca = a.cores_at_100 + b.cores_at_100
    assert r.optimal_gogc == pytest.approx(optimal_gogc(ca, GiB + 64 * MiB, WIDE))
    total = [cost_per_hour(ca, GiB + 64 * MiB, g, WIDE) for g in (r.gogc - 1, r.gogc, r.gogc + 1)]
    assert total[1] <= total[0] and total[1] <= total[2]


def test_bounds_clamp_the_optimum() -> None:
    high = cost_gogc([exact(100.0, 2.0, 64 * MiB)], PRICES)  # GOGC* 565.7
    assert high.gogc == 200 and high.clamps == ("bounds",) and "bounded to [25, 200]" in high.explanation
    low = cost_gogc([exact(0.1, 1.0, GiB)], PRICES)  # GOGC* 3.16
    assert low.gogc == 25 and low.clamps == ("bounds",)


@pytest.mark.parametrize(
    ("cap", "expected", "clamps"),
    [
        (40.7, 40, ("budget",)),  # below GOGC* 50: the cap, rounded down
        (50.4, 50, ()),  # above GOGC*: no effect
        (10.0, 25, ("budget", "bounds")),  # below the floor: the floor wins, GOMEMLIMIT holds the rest
    ],
)
def test_the_budget_caps_from_above(cap: float, expected: int, clamps: tuple[str, ...]) -> None:
    r = cost_gogc([exact(25.0, 1.0, GiB)], PRICES, budget_cap=cap)
    assert r.gogc == expected and r.clamps == clamps
    if "budget" in clamps:
        assert f"capped at {cap:.1f} by the memory budget" in r.explanation


def test_the_budget_cap_is_never_exceeded_by_rounding() -> None:
    # GOGC* 100 × sqrt(0.4) = 63.2 is capped at 62.9: rounding would give 63, above the budget.
    r = cost_gogc([exact(10.0, 1.0, 256 * MiB)], WIDE, budget_cap=62.9)
    assert r.gogc == 62


@pytest.mark.parametrize(
    ("alloc_se", "current", "expected", "share"),
    [
        (0.0, 100, 50, 1.0),  # exact: the whole step
        (5.0, 100, 50, 1.0),  # error 0.5 × 5/25 = 10%: at the tolerance, still the whole step
        (10.0, 100, 75, 0.5),  # error 20%: half the step from 100 toward 50
        (10.0, 60, 55, 0.5),  # the same from 60
        (100.0, 100, 98, 0.05),  # error 200%: a twentieth of the step, 100 − 2.5 rounded
    ],
)
def test_a_poor_fit_damps_the_step_from_the_current_gogc(
    alloc_se: float, current: int, expected: int, share: float
) -> None:
    pod = PodCost(alloc_mib_per_s=25.0, alloc_se=alloc_se, mark_ms_per_mib=1.0, mark_se=0.0, base_bytes=GiB)
    r = cost_gogc([pod], PRICES, current_gogc=current)
    assert r.fit_error == pytest.approx(0.5 * alloc_se / 25.0)
    assert r.step_share == pytest.approx(share)
    assert r.gogc == expected
    if share < 1:
        assert "damping" in r.clamps and f"{share:.0%} of the step from {current}" in r.explanation


def test_damping_rule() -> None:
    assert damped_gogc(100, 50, 0.05, 0.10) == (50, 1.0)
    assert damped_gogc(100, 50, 0.40, 0.10) == (87.5, 0.25)
    assert damped_gogc(100, 50, None, 0.10) == (100, 0.0)
    assert damped_gogc(100, 50, math.inf, 0.10) == (100, 0.0)


def test_errors_of_a_and_c_add_in_quadrature_and_halve() -> None:
    pod = PodCost(alloc_mib_per_s=25.0, alloc_se=7.5, mark_ms_per_mib=1.0, mark_se=0.4, base_bytes=GiB)
    r = cost_gogc([pod], PRICES)
    assert r.fit_error == pytest.approx(0.5 * math.hypot(0.3, 0.4))


def test_nothing_allocating_keeps_the_current_gogc() -> None:
    r = cost_gogc([exact(0.0, 1.0, GiB)], PRICES, current_gogc=120)
    assert r.gogc == 120 and r.optimal_gogc is None and r.fit_error is None
    assert "nothing allocates" in r.explanation


def test_the_pacers_minimum_base_counts() -> None:
    tiny = cost_gogc([exact(1.0, 1.0, 0)], WIDE)
    assert tiny.optimal_gogc == pytest.approx(optimal_gogc(0.001, MIN_BASE_BYTES, WIDE))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cpu_per_core_hour": -1.0},
        {"memory_per_gib_hour": 0.0},
        {"cpu_per_core_hour": math.nan},
        {"max_fit_error": math.inf},
        {"gogc_min": 300, "gogc_max": 200},
    ],
)
def test_bad_params_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="CostParams"):
        CostParams(**kwargs)  # type: ignore[arg-type]


def test_bad_figures_are_refused_not_clamped() -> None:
    with pytest.raises(ValueError, match="alloc_mib_per_s"):
        exact(math.nan, 1.0, GiB)
    with pytest.raises(ValueError, match="mark_se"):
        PodCost(1.0, 0.0, 1.0, -1.0, GiB)
    with pytest.raises(ValueError, match="base_bytes"):
        exact(1.0, 1.0, -1)
    with pytest.raises(ValueError, match="budget cap"):
        cost_gogc([exact(1.0, 1.0, GiB)], PRICES, budget_cap=math.nan)
    with pytest.raises(ValueError, match="not a finite number"):
        cost_gogc([exact(1e300, 1e300, GiB)], PRICES)


positive = st.floats(min_value=1e-3, max_value=1e4, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    a=positive,
    c=positive,
    base_mib=st.integers(min_value=4, max_value=1 << 16),
    p_cpu=positive,
    p_mem=positive,
)
def test_gogc_star_is_the_minimum_of_the_cost_rate(
    a: float, c: float, base_mib: int, p_cpu: float, p_mem: float
) -> None:
    p = CostParams(cpu_per_core_hour=p_cpu, memory_per_gib_hour=p_mem, gogc_min=1, gogc_max=10000)
    ca, base = c / 1000 * a, base_mib * MiB
    g = optimal_gogc(ca, base, p)
    at = cost_per_hour(ca, base, g, p)
    assert at <= cost_per_hour(ca, base, g * 1.01, p) * (1 + 1e-12)
    assert at <= cost_per_hour(ca, base, g * 0.99, p) * (1 + 1e-12)
    # At the optimum the two halves of the cost are equal (the derivative's root).
    assert p_cpu * ca * 100 / g == pytest.approx(p_mem * base / GiB * g / 100, rel=1e-9)


@settings(max_examples=200, deadline=None)
@given(a=positive, factor=st.floats(min_value=1.01, max_value=100), c=positive, current=st.integers(1, 10000))
def test_more_allocation_never_lowers_the_gogc(a: float, factor: float, c: float, current: int) -> None:
    base = 64 * MiB
    lo = cost_gogc([exact(a, c, base)], WIDE, current_gogc=current)
    hi = cost_gogc([exact(a * factor, c, base)], WIDE, current_gogc=current)
    assert hi.gogc >= lo.gogc
    assert hi.optimal_gogc is not None and lo.optimal_gogc is not None
    assert hi.optimal_gogc / lo.optimal_gogc == pytest.approx(math.sqrt(factor))


@settings(max_examples=200, deadline=None)
@given(
    a=positive,
    se=st.floats(0, 1e5),
    c=positive,
    current=st.integers(1, 10000),
    lo=st.integers(1, 500),
    span=st.integers(0, 5000),
    cap=st.none() | st.floats(0, 20000, allow_nan=False),
)
def test_the_result_is_always_within_the_bounds(
    a: float, se: float, c: float, current: int, lo: int, span: int, cap: float | None
) -> None:
    p = CostParams(gogc_min=lo, gogc_max=lo + span)
    pod = PodCost(alloc_mib_per_s=a, alloc_se=se, mark_ms_per_mib=c, mark_se=0.0, base_bytes=128 * MiB)
    r = cost_gogc([pod], p, current_gogc=current, budget_cap=cap)
    assert p.gogc_min <= r.gogc <= p.gogc_max
    if cap is not None and cap >= p.gogc_min:
        assert r.gogc <= cap
