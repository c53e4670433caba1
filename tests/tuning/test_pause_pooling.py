"""The guard's pause rule judges pauses pooled over the windows (logic/verdict.py `judge_tail`,
tuning/guard_signals.py): a window's longest pause grows with the cycles in it, so a lower GOGC would
look worse per window with no pause any longer. A real rise in the pauses is still a regression."""

from __future__ import annotations

import random

from gc_tuner.logic.verdict import SignalRule, judge_shift, judge_tail
from gc_tuner.tuning.guard_records import SafetyState
from gc_tuner.tuning.guard_signals import GC_CPU, MAX_PAUSES, PAUSE, WindowPoint, new_pauses, thin
from gc_tuner.tuning.records import DecisionInfo
from gc_tuner.tuning.safety import safety_step
from tests.tuning.test_safety import GOOD, T0, fresh, pods, spec

RULE = SignalRule(PAUSE, max_increase_percent=50, abs_floor=100e-6)
# The agent's pause histogram bounds, as a window reads them: mostly short, now and then a long one.
BOUNDS = [0.00026, 0.00052, 0.00079, 0.0013]
WEIGHTS = [50, 30, 15, 5]


def _windows(rng: random.Random, n: int, per_window: int, scale: float = 1.0) -> list[list[float]]:
    return [[scale * x for x in rng.choices(BOUNDS, WEIGHTS, k=per_window)] for _ in range(n)]


def flat(windows: list[list[float]]) -> list[float]:
    return [x for w in windows for x in w]


def test_more_cycles_per_window_is_not_a_regression() -> None:
    rng = random.Random(7)
    before = _windows(rng, 12, 2)  # GOGC 100: two cycles a window
    after = _windows(rng, 12, 8)  # GOGC 50 and a busier load: eight, from the same pauses
    # Each window's longest pause: the windows with more cycles look worse, with no pause longer.
    per_window = judge_shift(RULE, [max(w) for w in after], [max(w) for w in before])
    assert per_window.outcome == "worse", per_window
    pooled = judge_tail(RULE, flat(after), flat(before), windows=(12, 12))
    assert pooled.outcome == "ok", pooled


def test_pauses_that_really_grew_are_a_regression() -> None:
    rng = random.Random(7)
    before = _windows(rng, 12, 2)
    after = _windows(rng, 12, 2, scale=3.0)
    v = judge_tail(RULE, flat(after), flat(before), windows=(12, 12))
    assert v.outcome == "worse" and v.increase_percent is not None and v.increase_percent > 100, v


def test_the_quantile_is_the_same_on_both_sides_and_windows_count() -> None:
    base = [0.001] * 9 + [0.002]  # ten pauses: p99 is not estimable, 1 - 0.5/10 = p95 is
    v = judge_tail(RULE, [0.001] * 99 + [0.002], base, windows=(5, 5))
    assert v.outcome == "ok"
    assert v.changed_median is not None and v.changed_median < 0.0015  # p95 of 100 pauses, not the max
    assert judge_tail(RULE, [0.01] * 10, base, windows=(4, 5)).outcome == "pending"
    assert judge_tail(RULE, [], base, windows=(5, 5)).outcome == "pending"


def test_pauses_from_the_histogram_and_their_thinning() -> None:
    before = ((0.0001, 5.0), (0.0005, 2.0))
    assert new_pauses(before, ((0.0001, 7.0), (0.0005, 3.0), (0.002, 1.0))) == (0.0001, 0.0001, 0.0005, 0.002)
    assert new_pauses(before, ((0.0001, 4.0), (0.0005, 2.0))) == ()  # a count went down: another process
    many = [i / 1000 for i in range(100)]
    kept = thin(many)
    assert len(kept) == MAX_PAUSES and kept[0] == 0.0 and kept[-1] == 0.099  # the extremes are kept
    assert thin([0.3, 0.1]) == (0.1, 0.3)


def test_a_trial_judges_the_pooled_pauses() -> None:
    """GOGC 100 -> 50 on one pod: four times the cycles per window, the same pauses: promoted. The
    same trial with pauses three times as long: rolled back on the pause rule."""

    def run(scale: float) -> str:
        rng = random.Random(3)
        s = spec()
        st: SafetyState = fresh()
        for i, w in enumerate(_windows(rng, 8, 2)):
            st.log.points.append(
                WindowPoint(T0 - 60 + 5 * i, T0 - 55 + 5 * i, "p0", {PAUSE: max(w), GC_CPU: 0.01}, tuple(w))
            )
        start = safety_step(
            s, st, DecisionInfo("apply", 50, "Applied", "r", 100), GOOD, pods(1), {"p0"}, None, T0
        )
        assert start.trial is not None and start.trial.before_after
        st.trial = start.trial
        for i, w in enumerate(_windows(rng, 12, 8, scale)):
            point = WindowPoint(T0 + 5 * i, T0 + 5 + 5 * i, "p0", {PAUSE: max(w), GC_CPU: 0.01}, tuple(w))
            st.log.points.append(point)
        step = safety_step(s, st, None, GOOD, pods(1), {"p0"}, None, start.trial.until)
        return step.rollback.reason if step.rollback is not None else step.action

    assert run(1.0) == "promote"
    assert run(3.0) == PAUSE


def test_the_log_keeps_each_windows_pauses_from_the_histogram() -> None:
    from gc_tuner.model.sample import RuntimeSample
    from gc_tuner.tuning.guard_signals import SignalLog
    from gc_tuner.tuning.records import PodReading, PodTarget

    pod = PodTarget("p0", "10.0.0.1")
    log = SignalLog(keep_s=600)
    first = RuntimeSample(t=T0, source="agent", gc_cycles=1, pause_buckets=((0.0001, 1.0),))
    buckets = ((0.0001, 3.0), (0.0008, 1.0))
    second = RuntimeSample(t=T0 + 5, source="agent", gc_cycles=4, pause_buckets=buckets)
    log.observe([PodReading(pod, first)], T0)
    log.observe([PodReading(pod, second)], T0 + 5)
    (point,) = log.points
    assert point.values[PAUSE] == 0.0008 and point.pauses == (0.0001, 0.0001, 0.0008)
    assert log.collect_pauses(since=T0, until=T0 + 5) == [0.0001, 0.0001, 0.0008]
    assert log.collect_pauses(since=T0, until=T0 + 5, exclude={"p0"}) == []
