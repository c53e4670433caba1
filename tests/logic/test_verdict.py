"""The guard's verdict (logic/verdict.py): tables on crafted windows, and properties that identical
groups never roll back while a clear regression always does."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gc_tuner.logic.verdict import (
    MIN_SAMPLES,
    SignalRule,
    judge,
    judge_limit,
    judge_shift,
)

GC_CPU = SignalRule("gcCPU", max_increase_percent=20, abs_floor=0.005)
PAUSE = SignalRule("pauseP99", max_increase_percent=50, abs_floor=100e-6)
MEMORY = SignalRule("memoryPercentOfLimit", limit_percent=90)

BASE = [0.040, 0.042, 0.039, 0.041, 0.043, 0.040, 0.038]


@pytest.mark.parametrize(
    ("name", "changed", "baseline", "outcome"),
    [
        ("identical windows", BASE, BASE, "ok"),
        ("doubled GC CPU", [2 * x for x in BASE], BASE, "worse"),
        ("+10 %: real but under the 20 % threshold", [1.10 * x for x in BASE], BASE, "ok"),
        ("+30 %: over the threshold", [1.30 * x for x in BASE], BASE, "worse"),
        ("lower GC CPU is never worse", [0.5 * x for x in BASE], BASE, "ok"),
        ("too few changed windows", [0.09] * (MIN_SAMPLES - 1), BASE, "pending"),
        ("too few baseline windows", BASE, BASE[: MIN_SAMPLES - 1], "pending"),
        # +100 % of 0.1 %: a shift of nothing, under the absolute floor.
        ("tiny absolute shift", [0.002] * 6, [0.001] * 6, "ok"),
        # One slow window among normal ones moves the rank sum too little.
        ("one slow window", [*BASE[:-1], 0.5], BASE, "ok"),
        (
            "overlapping noise",
            [0.04, 0.06, 0.03, 0.05, 0.04, 0.07],
            [0.05, 0.04, 0.06, 0.03, 0.05, 0.04],
            "ok",
        ),
        ("NaN windows are dropped", [*[2 * x for x in BASE], math.nan], BASE, "worse"),
        ("from zero to something", [0.02] * 6, [0.0] * 6, "worse"),
        ("all zero", [0.0] * 6, [0.0] * 6, "ok"),
    ],
)
def test_judge_shift_table(name: str, changed: list[float], baseline: list[float], outcome: str) -> None:
    v = judge_shift(GC_CPU, changed, baseline)
    assert v.outcome == outcome, (name, v)


@pytest.mark.parametrize(
    ("name", "changed", "baseline", "outcome"),
    [
        ("under the limit", [70.0] * 5, [60.0] * 5, "ok"),
        ("over the limit, above the baseline", [95.0] * 5, [60.0] * 5, "worse"),
        ("over the limit like the baseline: not the change's doing", [95.0] * 5, [96.0] * 5, "ok"),
        ("over the limit, no baseline (before/after of one pod)", [95.0] * 5, [], "worse"),
        ("one window over the limit", [70.0, 70.0, 99.0, 70.0, 70.0], [60.0] * 5, "ok"),
        ("too few windows", [99.0] * (MIN_SAMPLES - 1), [60.0] * 5, "pending"),
    ],
)
def test_judge_limit_table(name: str, changed: list[float], baseline: list[float], outcome: str) -> None:
    assert judge_limit(MEMORY, changed, baseline).outcome == outcome, name


def test_judge_names_the_worst_signal_and_its_numbers() -> None:
    changed = {"gcCPU": [2 * x for x in BASE], "pauseP99": [1e-3] * 7, "memoryPercentOfLimit": [50.0] * 7}
    baseline = {"gcCPU": BASE, "pauseP99": [1e-3] * 7, "memoryPercentOfLimit": [50.0] * 7}
    v = judge([GC_CPU, PAUSE, MEMORY], changed, baseline)
    assert v.outcome == "worse"
    worst = v.worst
    assert worst is not None and worst.signal == "gcCPU"
    assert worst.p_value is not None and worst.p_value < 0.01
    assert worst.increase_percent == pytest.approx(100, rel=0.05)
    assert "gcCPU: 0.04 -> 0.08 (+100 %)" in worst.describe()


def test_judge_skips_signals_no_source_gives_and_waits_for_the_rest() -> None:
    # No pause figures at all: the pause rule is not guarded, not held forever.
    assert judge([GC_CPU, PAUSE], {"gcCPU": BASE}, {"gcCPU": BASE}).outcome == "ok"
    # Pause figures on one side only so far: pending.
    pending = judge([GC_CPU, PAUSE], {"gcCPU": BASE, "pauseP99": [1e-3]}, {"gcCPU": BASE})
    assert pending.outcome == "pending"
    assert judge([GC_CPU], {}, {}).outcome == "pending"  # nothing at all is no evidence of "ok"


_window = st.floats(min_value=0.001, max_value=0.5, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(base=st.lists(_window, min_size=MIN_SAMPLES, max_size=40), seed=st.integers(0, 2**32 - 1))
def test_identical_distributions_never_roll_back(base: list[float], seed: int) -> None:
    """The same windows in another order (the same distribution, exactly) promote or wait."""
    changed = list(base)
    random.Random(seed).shuffle(changed)
    v = judge([GC_CPU, PAUSE, MEMORY], {"gcCPU": changed}, {"gcCPU": base})
    assert v.outcome in ("ok", "pending")


@settings(max_examples=300, deadline=None)
@given(
    base=st.lists(_window, min_size=MIN_SAMPLES, max_size=40),
    noise=st.lists(st.floats(min_value=-0.08, max_value=0.08), min_size=40, max_size=40),
)
def test_noise_under_the_threshold_never_rolls_back(base: list[float], noise: list[float]) -> None:
    """Each window jittered by at most ±8 %: the median moves less than the 20 % threshold."""
    changed = [x * (1 + e) for x, e in zip(base, noise, strict=False)]
    assert judge_shift(GC_CPU, changed, base).outcome != "worse"


@settings(max_examples=300, deadline=None)
@given(
    base=st.lists(_window, min_size=MIN_SAMPLES, max_size=40),
    factor=st.floats(min_value=1.0, max_value=10.0),
    n=st.integers(MIN_SAMPLES, 40),
)
def test_a_clear_regression_always_rolls_back(base: list[float], factor: float, n: int) -> None:
    """Every changed window above every baseline window, by more than both floors: always worse."""
    top = max(base)
    changed = [top * 1.25 * factor + GC_CPU.abs_floor + 0.001 * i for i in range(n)]
    v = judge([GC_CPU], {"gcCPU": changed}, {"gcCPU": base})
    assert v.outcome == "worse", v


def test_expected_factor_forgives_the_rise_the_change_is_meant_to_cause() -> None:
    """GOGC 100 -> 50 doubles GC CPU by design; only a rise beyond that is a regression."""
    doubled = [2 * x for x in BASE]
    assert judge([GC_CPU], {"gcCPU": doubled}, {"gcCPU": BASE}, expected={"gcCPU": 2.0}).outcome == "ok"
    tripled = [3 * x for x in BASE]
    assert judge([GC_CPU], {"gcCPU": tripled}, {"gcCPU": BASE}, expected={"gcCPU": 2.0}).outcome == "worse"
