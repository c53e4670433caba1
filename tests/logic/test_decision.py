"""The decision step: bounds first, then hysteresis, then cooldown; never a GOGC outside the bounds."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gc_tuner.logic.decision import Decision, decide

BASE: dict[str, Any] = {
    "current": 100,
    "min_gogc": 50,
    "max_gogc": 200,
    "min_change": 10,
    "cooldown_s": 300.0,
    "last_applied_at": 0.0,
    "now": 1000.0,
}


def d(recommended: int, **kw: Any) -> Decision:
    return decide(recommended, **{**BASE, **kw})


def test_apply() -> None:
    r = d(150)
    assert (r.action, r.gogc, r.code, r.target, r.clamped) == ("apply", 150, "Applied", 150, False)
    assert "150" in r.reason and "was 100" in r.reason


def test_clamped_to_bounds_above_and_below() -> None:
    hi = d(500)
    assert (hi.action, hi.gogc, hi.code, hi.clamped) == ("apply", 200, "ClampedToBounds", True)
    assert "recommended 500 clamped to [50, 200]" in hi.reason
    lo = d(10)
    assert (lo.action, lo.gogc, lo.code) == ("apply", 50, "ClampedToBounds")


def test_hysteresis_holds_small_changes() -> None:
    r = d(109)
    assert (r.action, r.gogc, r.code) == ("hold", 100, "WithinHysteresis")
    assert d(110).action == "apply"  # exactly min_change is a change
    assert d(91).code == "WithinHysteresis" and d(90).code == "Applied"


def test_hysteresis_is_measured_after_clamping() -> None:
    # 500 clamps to 200; current 195 is within 10 of it, so hold even though 500 is far away.
    r = d(500, current=195)
    assert (r.action, r.gogc, r.code, r.clamped) == ("hold", 195, "WithinHysteresis", True)


def test_at_target() -> None:
    r = d(100)
    assert (r.action, r.gogc, r.code) == ("hold", 100, "AtTarget")
    assert d(100, min_change=0).code == "AtTarget"


def test_cooldown_holds_until_it_elapses() -> None:
    r = d(150, last_applied_at=900.0, now=1000.0)
    assert (r.action, r.gogc, r.code) == ("hold", 100, "CoolingDown")
    assert "100s ago" in r.reason and "300s" in r.reason
    assert d(150, last_applied_at=700.0, now=1000.0).action == "apply"  # exactly the cooldown
    assert d(150, last_applied_at=None).action == "apply"


def test_order_hysteresis_before_cooldown() -> None:
    assert d(105, last_applied_at=999.0).code == "WithinHysteresis"


def test_out_of_bounds_current_is_corrected_at_once() -> None:
    # The policy's bounds changed under a running pod: hysteresis and cooldown must not keep 300.
    r = d(195, current=300, last_applied_at=999.0)
    assert (r.action, r.gogc, r.code) == ("apply", 195, "OutOfBounds")
    r = d(60, current=40, min_change=50)
    assert (r.action, r.gogc, r.code) == ("apply", 60, "OutOfBounds")


def test_unknown_current_applies_or_waits() -> None:
    assert d(120, current=None).code == "Applied"
    r = d(120, current=None, last_applied_at=990.0)
    assert (r.action, r.gogc, r.code) == ("hold", 120, "CoolingDown")


@pytest.mark.parametrize(
    ("kw", "why"),
    [
        ({"min_gogc": 300}, "above max_gogc"),
        ({"min_change": -1}, "min_change"),
        ({"cooldown_s": -1.0}, "cooldown"),
        ({"cooldown_s": float("nan")}, "cooldown"),
    ],
)
def test_invalid_settings(kw: dict[str, Any], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        d(100, **kw)


@given(
    recommended=st.integers(-10_000, 10_000),
    current=st.none() | st.integers(-10_000, 10_000),
    lo=st.integers(1, 1000),
    width=st.integers(0, 1000),
    min_change=st.integers(0, 500),
    cooldown=st.floats(0, 1e4),
    last=st.none() | st.floats(0, 1e4),
    now=st.floats(0, 2e4),
)
def test_result_always_within_bounds(
    recommended: int,
    current: int | None,
    lo: int,
    width: int,
    min_change: int,
    cooldown: float,
    last: float | None,
    now: float,
) -> None:
    hi = lo + width
    r = decide(
        recommended,
        current=current,
        min_gogc=lo,
        max_gogc=hi,
        min_change=min_change,
        cooldown_s=cooldown,
        last_applied_at=last,
        now=now,
    )
    assert lo <= r.gogc <= hi
    assert r.target is not None and lo <= r.target <= hi
    if r.action == "apply":
        assert r.gogc == r.target
    else:
        assert r.gogc == (current if current is not None else r.target)
