"""A before/after baseline holds only the values the change replaces (tuning/trial_judgement.py).

Found on the diurnal bench: Budget's leak hold put GOGC 25 on a pod that had run GOGC 200; fifteen
seconds later its raise to 39 was judged against the windows of the last minute, most of them at
GOGC 200, scaled as if they had run at 25 (× 25/39), and rolled back for "+390 % GC CPU". A window
now carries the setting in force through it; the baseline starts at the last change of it, and a
trial waits (AwaitingBaseline) until it has five windows of the values it replaces."""

from __future__ import annotations

from gc_tuner.model.sample import RuntimeSample
from gc_tuner.tuning.guard_records import SafetyState
from gc_tuner.tuning.guard_signals import (
    ALLOC_RATE,
    GC_CPU,
    Setting,
    SignalLog,
    WindowPoint,
    window_setting,
)
from gc_tuner.tuning.records import AppliedState
from gc_tuner.tuning.safety import safety_step
from gc_tuner.tuning.trial_judgement import short_baseline
from tests.tuning.test_safety import BASE, T0, apply, fresh, pods, spec

LIMIT = 921 << 20
AT_200: Setting = (200, LIMIT)
AT_25: Setting = (25, LIMIT)
HELD = AppliedState(25, "921MiB", "Endpoint", T0 - 15)


def _window(st: SafetyState, t: float, gc: float, setting: Setting | None) -> None:
    st.log.points.append(WindowPoint(t, t + 3, "p0", {GC_CPU: gc, ALLOC_RATE: 1e8}, (), setting))


def _day(st: SafetyState, *, known: bool, after_hold: int) -> None:
    """45 s at GOGC 200 (GC CPU 0.005), the window the hold fell in, then `after_hold` windows at
    GOGC 25 (GC CPU 0.04, eight times as much, as the cost model says)."""
    t = T0 - 3 * (16 + after_hold)
    for i in range(15):
        _window(st, t + 3 * i, 0.005, AT_200 if known else (None, None))
    _window(st, t + 45, 0.02, None if known else (None, None))
    for i in range(after_hold):
        _window(st, t + 48 + 3 * i, BASE[i % len(BASE)], AT_25 if known else (None, None))


def _raise_to_39(st: SafetyState) -> str:
    """Start the raise at T0 and judge it at the evaluation's end: GC CPU at 25/39 of GOGC 25's."""
    s = spec(sampling={"intervalSeconds": 3, "windowSeconds": 30, "sources": {"agent": {"port": 8080}}})
    start = safety_step(s, st, apply(39, current=25), HELD, pods(1), {"p0"}, None, T0)
    if start.trial is None:
        assert start.decision is not None
        return start.decision.code
    st.trial, st.phase = start.trial, start.phase
    until = start.trial.until
    for i in range(int((until - T0) // 3)):
        st.log.points.append(
            WindowPoint(
                T0 + 3 * i,
                T0 + 3 * i + 3,
                "p0",
                {GC_CPU: BASE[i % 8] * 25 / 39, ALLOC_RATE: 1e8},
                (),
                (39, LIMIT),
            )
        )
    step = safety_step(s, st, None, HELD, pods(1), {"p0"}, None, until)
    return step.rollback.reason if step.rollback is not None else step.action


def test_a_raise_soon_after_a_hold_waits_for_windows_of_the_held_value() -> None:
    st = fresh()
    _day(st, known=True, after_hold=3)
    assert _raise_to_39(st) == "AwaitingBaseline"
    why = short_baseline(spec(), st.log, {"p0"}, T0)
    assert why is not None and why.startswith("since the values in force changed 9s ago") and "gcCPU 3" in why


def test_then_it_is_judged_against_the_held_value_only_and_promoted() -> None:
    st = fresh()
    _day(st, known=True, after_hold=6)
    assert _raise_to_39(st) == "promote"


def test_without_the_setting_in_the_windows_the_old_baseline_rolls_it_back() -> None:
    # The same day from a source that cannot say its GOGC: the baseline reaches across the hold,
    # and the raise is blamed for the GC CPU that GOGC 25 itself costs. The rule is not idle.
    st = fresh()
    _day(st, known=False, after_hold=6)
    assert _raise_to_39(st) == GC_CPU


def test_a_window_has_a_setting_only_when_both_edges_report_the_same() -> None:
    a = RuntimeSample(t=1.0, source="agent", gogc=100, memory_limit_bytes=LIMIT)
    b = RuntimeSample(t=4.0, source="agent", gogc=100, memory_limit_bytes=LIMIT)
    c = RuntimeSample(t=4.0, source="agent", gogc=50, memory_limit_bytes=LIMIT)
    d = RuntimeSample(t=4.0, source="agent", gogc=100, memory_limit_bytes=None)
    assert window_setting(a, b) == (100, LIMIT)
    assert window_setting(a, c) is None
    assert window_setting(a, d) is None
    unknown = RuntimeSample(t=4.0, source="gctrace")
    assert window_setting(unknown, unknown) == (None, None)


def test_settled_since_is_per_pod_and_bounded_by_the_floor() -> None:
    log = SignalLog(keep_s=3600)
    for pod, setting in (("a", (100, None)), ("b", (100, None))):
        for i in range(10):
            log.points.append(WindowPoint(float(i), i + 1.0, pod, {GC_CPU: 0.01}, (), setting))
    assert log.settled_since(pods={"a", "b"}, until=10.0, floor=0.0) == 0.0
    log.points.append(WindowPoint(10.0, 11.0, "b", {GC_CPU: 0.01}, (), None))  # b's value changes
    for i in range(11, 14):
        log.points.append(WindowPoint(float(i), i + 1.0, "b", {GC_CPU: 0.01}, (), (50, None)))
        log.points.append(WindowPoint(float(i), i + 1.0, "a", {GC_CPU: 0.01}, (), (100, None)))
    assert log.settled_since(pods={"a", "b"}, until=14.0, floor=0.0) == 11.0
    assert log.settled_since(pods={"a"}, until=14.0, floor=0.0) == 0.0
    assert log.settled_since(pods={"a", "b"}, until=14.0, floor=12.0) == 12.0
    assert log.settled_since(pods={"a", "b"}, until=10.0, floor=0.0) == 0.0  # before the change
