"""The guard and a memory trend it did not cause (tuning/trial_judgement.py): in a before/after trial, memory
that rises because the heap leaks must not roll back a change that can only lower memory use, such
as the GOMEMLIMIT that holds the leak off. A change that can raise memory is still judged on it, and
a canary (judged beside untouched pods, which share the trend) always is."""

from __future__ import annotations

import pytest

from gc_tuner.model.sample import RuntimeSample
from gc_tuner.tuning.guard_records import SafetyState
from gc_tuner.tuning.guard_signals import GC_CPU, MEMORY, WindowPoint
from gc_tuner.tuning.records import DecisionInfo, PodReading
from gc_tuner.tuning.safety import guard, safety_step
from gc_tuner.tuning.trial_judgement import lowers_memory_only
from tests.tuning.test_safety import BASE, GOOD, T0, fresh, pods, spec

MIB = 1 << 20


@pytest.mark.parametrize(
    ("was_gogc", "gogc", "was_limit", "limit", "expected"),
    [
        (100, 50, None, None, True),  # GOGC lowered, the limit left alone
        (100, 100, None, "900MiB", True),  # a limit where there was none
        (100, 100, 1024 * MIB, "900MiB", True),  # a limit lowered
        (100, 100, 900 * MIB, "900MiB", True),  # the same limit
        (100, 100, 512 * MIB, "900MiB", False),  # a limit raised
        (100, 150, None, None, False),  # GOGC raised
        (100, 150, None, "900MiB", False),  # GOGC raised beside a new limit
        (None, 50, None, None, False),  # GOGC before unknown or off: could have been anything
        (-1, 50, None, None, False),
        (100, 50, None, "12XB", False),  # a limit that does not parse is not known to be lower
    ],
)
def test_which_changes_can_only_lower_memory(
    was_gogc: int | None, gogc: int, was_limit: int | None, limit: str | None, expected: bool
) -> None:
    assert lowers_memory_only(was_gogc, gogc, was_limit, limit) is expected


def _windows(st: SafetyState, pod: str, memory: list[float], *, start: float) -> None:
    for i, (m, c) in enumerate(zip(memory, BASE, strict=False)):
        st.log.points.append(WindowPoint(start + 5 * i, start + 5 * i + 5, pod, {GC_CPU: c, MEMORY: m}))


LEAK_BEFORE = [38.0, 39.0, 40.0, 41.0, 42.0, 43.0, 44.0, 45.0]  # % of the container limit
LEAK_AFTER = [90.0, 92.0, 94.0, 96.0, 97.0, 98.0, 98.5, 99.0]  # above maxMemoryPercentOfLimit (95)


def _leaking_single_pod(gogc: int, memory: str | None) -> str:
    """A one-pod before/after trial of `gogc` (from 100) with `memory`, while the heap leaks."""
    s = spec()
    st = fresh()
    d = DecisionInfo("apply", gogc, "Applied", "r", 100)
    start = safety_step(s, st, d, GOOD, pods(1), {"p0"}, memory, T0, was_limit=None)
    assert start.trial is not None and start.trial.before_after
    st.trial, st.phase = start.trial, start.phase
    _windows(st, "p0", LEAK_BEFORE, start=T0 - 60)
    _windows(st, "p0", LEAK_AFTER, start=T0)
    step = safety_step(s, st, None, GOOD, pods(1), {"p0"}, memory, start.trial.until)
    if step.rollback is not None:
        return step.rollback.reason
    return step.action


def test_a_leak_does_not_roll_back_the_limit_that_holds_it_off() -> None:
    assert _leaking_single_pod(100, "921MiB") == "promote"
    assert _leaking_single_pod(50, None) == "promote"


def test_a_change_that_can_raise_memory_is_still_judged_on_it() -> None:
    assert _leaking_single_pod(150, None) == MEMORY
    assert _leaking_single_pod(150, "921MiB") == MEMORY


def test_a_canary_is_judged_on_memory_beside_the_untouched_pods() -> None:
    # Beside untouched pods the trend is on both sides; only the canary's own rise counts.
    s = spec()
    st = fresh()
    d = DecisionInfo("apply", 100, "MemoryLimitChanged", "r", 100)
    start = safety_step(s, st, d, GOOD, pods(3), {"p0", "p1", "p2"}, "921MiB", T0)
    assert start.trial is not None and not start.trial.before_after and start.trial.memory_safe
    st.trial, st.phase = start.trial, start.phase
    _windows(st, "p0", LEAK_AFTER, start=T0)
    for p in ("p1", "p2"):
        _windows(st, p, LEAK_BEFORE, start=T0)
    step = safety_step(s, st, None, GOOD, pods(3), {"p0", "p1", "p2"}, "921MiB", T0 + 45)
    assert step.rollback is not None and step.rollback.reason == MEMORY


@pytest.mark.parametrize(
    ("reported", "memory_safe"),
    [
        ((None,), True),  # no limit in force: a new one can only lower memory
        ((1024 * MIB,), True),
        ((512 * MIB,), False),  # 921MiB raises the limit in force
        ((1024 * MIB, None), True),  # one pod without a limit: the highest is none
    ],
)
def test_the_limit_in_force_is_what_the_pods_report(
    reported: tuple[int | None, ...], memory_safe: bool
) -> None:
    ps = pods(len(reported))
    readings = [
        PodReading(p, RuntimeSample(t=T0, source="agent", gogc=100, memory_limit_bytes=limit), None)
        for p, limit in zip(ps, reported, strict=True)
    ]
    s = spec(rollout={"canary": {"pods": 0, "evaluationSeconds": 60}})
    d = DecisionInfo("apply", 100, "MemoryLimitChanged", "r", 100)
    step = guard(s, fresh(), d, GOOD, readings, "921MiB", T0)
    assert step.trial is not None and step.trial.memory_safe is memory_safe
