"""The guard and a load it did not cause (tuning/trial_judgement.py): GC CPU follows the allocation
rate, so in a before/after trial a load that rose since "before" must not roll back the change; the
baseline is scaled by the allocation rate after over the one before. A rise beyond the load's is
still a regression, and a canary (which shares the load with the untouched pods) is not scaled."""

from __future__ import annotations

from gc_tuner.model.sample import RuntimeSample
from gc_tuner.tuning.guard_records import SafetyState
from gc_tuner.tuning.guard_signals import ALLOC_RATE, GC_CPU, WindowPoint, window_values
from gc_tuner.tuning.safety import safety_step
from gc_tuner.tuning.trial_judgement import load_ratio
from tests.tuning.test_safety import BASE, GOOD, T0, apply, fresh, pods, spec

MIB = 1 << 20


def _windows(st: SafetyState, pod: str, gc_cpu: list[float], alloc: float, *, start: float) -> None:
    for i, c in enumerate(gc_cpu):
        st.log.points.append(
            WindowPoint(start + 5 * i, start + 5 * i + 5, pod, {GC_CPU: c, ALLOC_RATE: alloc})
        )


def _single_pod(gc_after: float, alloc_after: float) -> str:
    """A one-pod before/after trial of GOGC 100 -> 110 (expected: GC CPU × 0.91) whose windows after
    the change carry `alloc_after` times the allocation rate and `gc_after` times the GC CPU."""
    s = spec()
    st = fresh()
    _windows(st, "p0", BASE, 100 * MIB, start=T0 - 60)
    start = safety_step(s, st, apply(110), GOOD, pods(1), {"p0"}, None, T0)
    assert start.trial is not None and start.trial.before_after
    st.trial, st.phase = start.trial, start.phase
    _windows(st, "p0", [gc_after * x for x in BASE], alloc_after * 100 * MIB, start=T0)
    step = safety_step(s, st, None, GOOD, pods(1), {"p0"}, None, start.trial.until)
    return step.rollback.reason if step.rollback is not None else step.action


def test_a_load_step_is_not_blamed_on_the_change() -> None:
    # Ten times the requests, ten times the allocation, ten times the GC CPU: GOGC 110 is no worse.
    assert _single_pod(gc_after=10 * 0.91, alloc_after=10) == "promote"
    assert _single_pod(gc_after=0.5 * 0.91, alloc_after=0.5) == "promote"  # and a load that fell


def test_a_rise_beyond_the_loads_is_still_rolled_back() -> None:
    assert _single_pod(gc_after=3.0, alloc_after=1.0) == GC_CPU
    assert _single_pod(gc_after=30.0, alloc_after=10.0) == GC_CPU
    # Without the correction the load step alone would have rolled it back: the rule is not idle.
    assert _single_pod(gc_after=10 * 0.91, alloc_after=1.0) == GC_CPU


def test_a_canary_is_not_scaled_by_the_load() -> None:
    # The canary allocates more than the others (it took more of the traffic) and burns more GC CPU:
    # beside the others over the same time that is judged as it is, without a load correction.
    s = spec()
    st = fresh()
    start = safety_step(s, st, apply(110), GOOD, pods(3), {"p0", "p1", "p2"}, None, T0)
    assert start.trial is not None and not start.trial.before_after
    st.trial, st.phase = start.trial, start.phase
    _windows(st, "p0", [3 * x for x in BASE], 300 * MIB, start=T0)
    for p in ("p1", "p2"):
        _windows(st, p, BASE, 100 * MIB, start=T0)
    step = safety_step(s, st, None, GOOD, pods(3), {"p0", "p1", "p2"}, None, T0 + 45)
    assert step.rollback is not None and step.rollback.reason == GC_CPU


def test_load_ratio_needs_both_sides() -> None:
    assert load_ratio({ALLOC_RATE: [4.0, 6.0]}, {ALLOC_RATE: [2.0, 3.0]}) == 2.0
    assert load_ratio({ALLOC_RATE: [4.0]}, {}) == 1.0
    assert load_ratio({}, {ALLOC_RATE: [4.0]}) == 1.0
    assert load_ratio({ALLOC_RATE: [4.0]}, {ALLOC_RATE: [0.0]}) == 1.0


def test_the_window_carries_the_allocation_rate() -> None:
    edge = RuntimeSample(t=10.0, source="agent", gc_cycles=1, heap_allocs_bytes_total=100 * MIB)
    cur = RuntimeSample(t=12.0, source="agent", gc_cycles=3, heap_allocs_bytes_total=300 * MIB)
    assert window_values(edge, cur, limit_bytes=None)[ALLOC_RATE] == 100 * MIB
    restarted = RuntimeSample(t=12.0, source="agent", gc_cycles=3, heap_allocs_bytes_total=MIB)
    assert ALLOC_RATE not in window_values(edge, restarted, limit_bytes=None)
    assert ALLOC_RATE not in window_values(edge, RuntimeSample(t=12.0, source="agent"), limit_bytes=None)
