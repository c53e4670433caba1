"""The article's formula, exactly: its three rows, every clamp, the evaluation order, the parameters."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gc_tuner.logic.formula import FormulaParams, formula_gogc


@pytest.mark.parametrize(
    ("qps", "slope", "gogc"),
    [(200, 0.8, 99), (1800, 3.2, 30), (0, 12.5, 37)],
)
def test_article_rows(qps: float, slope: float, gogc: int) -> None:
    # The article's table claims 130 / 65 / 25 for these inputs; its own formula gives these.
    assert formula_gogc(qps, slope).gogc == gogc


def test_article_rows_factors() -> None:
    r = formula_gogc(200, 0.8)
    assert r.qps_factor == pytest.approx(1.15)
    assert r.slope_factor == pytest.approx(1 / 1.16)
    r = formula_gogc(1800, 3.2)
    assert r.qps_factor == 0.5 and "qps_factor" in r.clamps
    r = formula_gogc(0, 12.5)
    assert r.slope_factor == 0.3 and "slope_factor" in r.clamps
    assert r.qps_factor == pytest.approx(1.25)


@pytest.mark.parametrize(("qps", "slope", "gogc"), [(4, 0.2, 119), (10, 1.225, 100), (1, 1.125, 101)])
def test_product_is_evaluated_in_the_formulas_order(qps: float, slope: float, gogc: int) -> None:
    # 100 * qf * sf truncates differently from 100 * (qf * sf) for these inputs.
    assert formula_gogc(qps, slope).gogc == gogc


def test_negative_slope_is_clamped_to_zero_and_said() -> None:
    r = formula_gogc(500, -5.0)  # unclamped this divides by zero
    assert r.slope_factor == 1.0
    assert r.gogc == 100
    assert "heap_slope" in r.clamps
    assert "heap slope -5 MB/s clamped to 0" in r.explanation
    assert r.inputs["heap_slope_mb_per_s"] == -5.0 and r.inputs["heap_slope_used_mb_per_s"] == 0.0
    assert formula_gogc(500, -1.0).gogc == 100  # unclamped: slope_factor 1.25 -> 125


def test_negative_qps_is_clamped_to_zero_and_said() -> None:
    r = formula_gogc(-300, 0.0)
    assert r.qps_factor == pytest.approx(1.25)
    assert "qps" in r.clamps and "QPS -300 clamped to 0" in r.explanation


def test_gogc_bounds_clamp_and_explanation() -> None:
    low = formula_gogc(1e9, 1e9)
    assert low.gogc == 25
    assert "gogc" in low.clamps and "clamped to [25, 200]" in low.explanation
    high = formula_gogc(0, 0, FormulaParams(qps_factor_max=3.0))  # 100 * 1.25 -> 125 < 200: no clamp
    assert high.gogc == 125 and "gogc" not in high.clamps
    top = formula_gogc(0, 0, FormulaParams(base_gogc=400))  # 500 -> 200
    assert top.gogc == 200 and "gogc" in top.clamps


def test_no_clamp_explanation_is_one_line_without_notes() -> None:
    r = formula_gogc(200, 0.8)
    assert r.clamps == ()
    assert "\n" not in r.explanation and "clamped" not in r.explanation
    assert r.explanation.startswith("GOGC 99 = int(100 × qps_factor 1.150 × slope_factor 0.862)")


def test_every_constant_is_a_parameter() -> None:
    defaults = FormulaParams()
    assert dataclasses.asdict(defaults) == {
        "qps_pivot": 500.0,
        "qps_scale": 2000.0,
        "qps_factor_min": 0.5,
        "qps_factor_max": 2.0,
        "slope_coefficient": 0.2,
        "slope_factor_min": 0.3,
        "base_gogc": 100.0,
        "gogc_min": 25,
        "gogc_max": 200,
    }
    # Each parameter changes the result for some input.
    assert formula_gogc(1000, 0, FormulaParams(qps_pivot=1000)).gogc == 100
    assert formula_gogc(1000, 0, FormulaParams(qps_scale=1000)).gogc == 50
    assert formula_gogc(5000, 0, FormulaParams(qps_factor_min=0.8)).gogc == 80
    assert formula_gogc(0, 0, FormulaParams(qps_factor_max=1.1)).gogc == 110
    assert formula_gogc(500, 1, FormulaParams(slope_coefficient=1.0)).gogc == 50
    assert formula_gogc(500, 1000, FormulaParams(slope_factor_min=0.5)).gogc == 50
    assert formula_gogc(500, 0, FormulaParams(base_gogc=150)).gogc == 150
    assert formula_gogc(500, 1000, FormulaParams(gogc_min=40)).gogc == 40
    assert formula_gogc(0, 0, FormulaParams(gogc_max=110)).gogc == 110


@pytest.mark.parametrize(
    "bad",
    [
        {"qps_scale": 0},
        {"qps_factor_min": 3.0},
        {"qps_factor_min": 0},
        {"slope_coefficient": -1},
        {"slope_factor_min": 0},
        {"slope_factor_min": 1.5},
        {"base_gogc": 0},
        {"gogc_min": 300},
        {"gogc_min": 0},
        {"qps_pivot": math.inf},
    ],
)
def test_invalid_params_are_rejected(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="FormulaParams"):
        FormulaParams(**bad)  # type: ignore[arg-type]


def test_nan_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="must be numbers"):
        formula_gogc(math.nan, 1.0)
    with pytest.raises(ValueError, match="must be numbers"):
        formula_gogc(1.0, math.nan)


def test_infinite_inputs_hit_the_clamps() -> None:
    r = formula_gogc(math.inf, math.inf)  # 100 * 0.5 * 0.3 = 15, below the minimum
    assert (r.gogc, r.qps_factor, r.slope_factor) == (25, 0.5, 0.3)
    assert r.clamps == ("qps_factor", "slope_factor", "gogc")


def test_extreme_inputs_keep_the_explanation_short() -> None:
    r = formula_gogc(1e300, 1e300)
    assert (r.gogc, r.qps_factor, r.slope_factor) == (25, 0.5, 0.3)
    assert "qps_factor -5e+296 clamped to 0.5" in r.explanation
    assert len(r.explanation) < 300 and "\n" not in r.explanation


finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)


@given(finite, finite)
def test_result_within_bounds_and_matches_the_formula(qps: float, slope: float) -> None:
    r = formula_gogc(qps, slope)
    assert 25 <= r.gogc <= 200
    q, s = max(0.0, qps), max(0.0, slope)
    qf = max(0.5, min(2.0, 1.0 - (q - 500) / 2000))
    sf = max(0.3, 1.0 / (1.0 + 0.2 * s))
    assert r.gogc == int(max(25, min(200, 100 * qf * sf)))


@given(st.floats(0, 1e6), st.floats(0, 1e6), st.floats(0, 1e3))
def test_more_qps_or_faster_growth_never_raises_gogc(q1: float, q2: float, slope: float) -> None:
    lo, hi = sorted((q1, q2))
    assert formula_gogc(hi, slope).gogc <= formula_gogc(lo, slope).gogc
    assert formula_gogc(lo, slope + 1).gogc <= formula_gogc(lo, slope).gogc


# -- NaN and infinite intermediates are never clamped ---------------------------------------------------
# Regression: max(lo, min(hi, nan)) returns a bound, so a NaN slope factor (0 × inf) was "clamped" to 0.3,
# and an overflowing raw GOGC (inf) became the ceiling.


def test_a_nan_factor_raises_instead_of_being_clamped() -> None:
    with pytest.raises(ValueError, match=r"slope_factor nan.*refusing to clamp"):
        formula_gogc(100.0, math.inf, FormulaParams(slope_coefficient=0.0))


def test_an_infinite_raw_gogc_raises_instead_of_becoming_the_ceiling() -> None:
    params = FormulaParams(base_gogc=1e308, qps_scale=1e-3)  # qps_factor clamps to 2: raw 2e308 = inf
    with pytest.raises(ValueError, match=r"raw GOGC inf.*refusing to clamp"):
        formula_gogc(0.0, 0.0, params)
