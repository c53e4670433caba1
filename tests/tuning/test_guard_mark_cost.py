"""The guard and GC CPU the application drifts into (tuning/trial_judgement.py): GC CPU/s ≈ cycles/s ×
c·(L+S+G), and the cost of a cycle per live byte, c, is the application's, not the setting's. The
reference workload's doubles over its first minute (its cache, built contiguous, scatters under
churn), so a one-pod before/after trial of GOGC 100 -> 180 saw GC CPU 27-64 % above the cost model's
expectation and was rolled back, though a higher GOGC cannot add GC CPU. The baseline is scaled by
c after over c before, as by the allocation rate; a change that makes the GC run more often (what a
setting can do wrong) is still rolled back through it."""

from __future__ import annotations

import math

from gc_tuner.model.sample import RuntimeSample
from gc_tuner.tuning.guard_records import SafetyState
from gc_tuner.tuning.guard_signals import GC_CPU, MARK_COST, WindowPoint, mark_cost, window_values
from gc_tuner.tuning.safety import safety_step
from gc_tuner.tuning.trial_judgement import median_ratio
from tests.tuning.test_safety import GOOD, T0, apply, fresh, pods, spec

MIB = 1 << 20
# The steady run's GOGC=100 process from 6 to 16 s: GC CPU and c (µs per cycle per live MiB) rising.
GC_BEFORE = [0.055, 0.059, 0.064, 0.062, 0.068, 0.066, 0.070, 0.072, 0.069, 0.075]
C_BEFORE = [0.22, 0.24, 0.25, 0.24, 0.27, 0.26, 0.28, 0.28, 0.27, 0.30]


def _windows(st: SafetyState, gc: list[float], cost: list[float] | None, *, start: float) -> None:
    for i, g in enumerate(gc):
        values = {GC_CPU: g} | ({MARK_COST: cost[i] * 1e-6 / MIB} if cost is not None else {})
        st.log.points.append(WindowPoint(start + 1.5 * i, start + 1.5 * i + 1.5, "p0", values))


def _trial(gogc: int, *, drift: float, cycles: float, with_cost: bool = True) -> str:
    """A one-pod trial of GOGC 100 -> `gogc` whose windows after the change cost `drift` times as
    much per cycle and live byte as before, and run `cycles` times the cycles the cost model expects."""
    s = spec()
    st = fresh()
    _windows(st, GC_BEFORE, C_BEFORE if with_cost else None, start=T0 - 15)
    start = safety_step(s, st, apply(gogc), GOOD, pods(1), {"p0"}, None, T0)
    assert start.trial is not None and start.trial.before_after
    st.trial, st.phase = start.trial, start.phase
    ratio = 100 / gogc * drift * cycles
    gc_after = [ratio * g for g in GC_BEFORE]
    cost_after = [drift * c for c in C_BEFORE]
    _windows(st, gc_after, cost_after if with_cost else None, start=T0)
    step = safety_step(s, st, None, GOOD, pods(1), {"p0"}, None, start.trial.until)
    return step.rollback.reason if step.rollback is not None else step.action


def test_marking_that_got_dearer_is_not_blamed_on_the_change() -> None:
    # The steady run's rolled-back raise: GOGC 100 -> 180 with c up 40 % over the trial.
    assert _trial(180, drift=1.4, cycles=1.0) == "promote"
    assert _trial(72, drift=1.4, cycles=1.0) == "promote"  # Formula's lowering, rolled back 5 of 5
    assert _trial(180, drift=0.7, cycles=1.0) == "promote"  # and marking that got cheaper


def test_more_cycles_than_the_change_explains_are_still_rolled_back() -> None:
    # A GOMEMLIMIT that binds makes the GC run back to back: twice the cycles at the same c.
    assert _trial(100, drift=1.0, cycles=2.0) == GC_CPU
    assert _trial(180, drift=1.4, cycles=2.0) == GC_CPU  # through the drift too


def test_without_the_cost_of_a_cycle_the_drift_is_rolled_back() -> None:
    # A source with no cycle count or live heap: the old judgement, and the rule is not idle.
    assert _trial(180, drift=1.4, cycles=1.0, with_cost=False) == GC_CPU


def test_the_window_carries_the_cost_of_a_cycle_per_live_byte() -> None:
    def sample(t: float, cycles: int, gc_s: float, live: int) -> RuntimeSample:
        return RuntimeSample(
            t=t, source="agent", gc_cycles=cycles, gc_cpu_seconds=gc_s, live_heap_bytes=live,
            stacks_bytes=MIB, globals_bytes=MIB,
        )  # fmt: skip

    edge, cur = sample(10.0, 4, 1.0, 98 * MIB), sample(12.0, 6, 1.02, 98 * MIB)
    # 20 ms over 2 cycles of 100 MiB each (live heap, stacks, globals).
    assert math.isclose(mark_cost(edge, cur) or 0.0, 0.010 / (100 * MIB))
    assert math.isclose(window_values(edge, cur, limit_bytes=None)[MARK_COST], 0.010 / (100 * MIB))
    assert mark_cost(edge, sample(12.0, 4, 1.0, 98 * MIB)) is None  # no cycle in the window
    assert mark_cost(edge, sample(12.0, 6, 0.5, 98 * MIB)) is None  # a counter that went down
    assert mark_cost(edge, RuntimeSample(t=12.0, source="agent", gc_cycles=6)) is None
    # A live heap estimated from the heap goal and GOGC would move with the value judged.
    estimated = RuntimeSample(
        t=12.0, source="expvar", gc_cycles=6, gc_cpu_seconds=1.02, live_heap_bytes=98 * MIB,
        live_heap_estimated=True,
    )  # fmt: skip
    assert mark_cost(edge, estimated) is None
    assert mark_cost(edge, sample(12.0, 6, math.inf, 98 * MIB)) is None


def test_a_ratio_of_no_finite_figures_is_one() -> None:
    assert median_ratio({MARK_COST: [2.0, math.nan]}, {MARK_COST: [1.0]}, MARK_COST) == 2.0
    assert median_ratio({MARK_COST: [math.inf]}, {MARK_COST: [1.0]}, MARK_COST) == 1.0
    assert median_ratio({MARK_COST: [2.0]}, {}, MARK_COST) == 1.0
