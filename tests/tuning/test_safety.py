"""The guard's state machine (tuning/safety.py) on crafted windows: start a canary, judge it, promote
or roll back, back off, pause, resume after a restart; and the per-pod plan it leads to."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from gc_tuner.model.policy import GCPolicySpec, parse_policy
from gc_tuner.model.policy_status import PolicyStatus
from gc_tuner.model.sample import RuntimeSample
from gc_tuner.tuning.guard_records import Backoff, SafetyState, Trial
from gc_tuner.tuning.guard_signals import GC_CPU, SignalLog, WindowPoint
from gc_tuner.tuning.records import AppliedState, DecisionInfo, PodReading, PodTarget
from gc_tuner.tuning.rollout import plan_endpoint, settle_endpoint
from gc_tuner.tuning.safety import canary_size, guard, safety_step, split_note
from gc_tuner.tuning.safety_status import restore_safety
from gc_tuner.tuning.strategies import MemoryLimitTarget
from gc_tuner.tuning.trial_judgement import evaluation_s

T0 = 1_700_000_000.0
OWNER = "gc-tuner/ns/web"
GOOD = AppliedState(100, None, "Endpoint", T0 - 1000)


def spec(**over: Any) -> GCPolicySpec:
    doc: dict[str, Any] = {
        "targetRef": {"name": "web"},
        "mode": "Enforce",
        "sampling": {"intervalSeconds": 5, "windowSeconds": 60, "sources": {"agent": {"port": 8080}}},
        "qps": {"agent": {}},
        "rollout": {
            "method": "Endpoint",
            "endpoint": {"port": 8080},
            "leaseSeconds": 120,
            "canary": {"evaluationSeconds": 60},
        },
    }
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(doc.get(k), dict):
            doc[k] = {**doc[k], **v}
        else:
            doc[k] = v
    return parse_policy(doc)


def pods(n: int) -> list[PodTarget]:
    return [PodTarget(f"p{i}", f"10.0.0.{i}") for i in range(n)]


def apply(gogc: int, current: int = 100) -> DecisionInfo:
    return DecisionInfo("apply", gogc, "Applied", f"recommended {gogc}", current)


def fresh() -> SafetyState:
    return SafetyState(SignalLog(keep_s=3600))


def started(s: GCPolicySpec, n: int, gogc: int = 50) -> tuple[SafetyState, Trial]:
    st = fresh()
    step = safety_step(s, st, apply(gogc), GOOD, pods(n), {p.name for p in pods(n)}, None, T0)
    assert step.trial is not None
    st.trial, st.phase = step.trial, step.phase
    return st, step.trial


def windows(st: SafetyState, pod: str, values: list[float], *, start: float) -> None:
    for i, v in enumerate(values):
        st.log.points.append(WindowPoint(start + 5 * i, start + 5 * i + 5, pod, {GC_CPU: v}))


BASE = [0.040, 0.042, 0.039, 0.041, 0.043, 0.040, 0.038, 0.041]


# ---- starting a trial ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("canary", "n", "expect_canary", "before_after"),
    [
        ({}, 4, ("p0",), False),  # default: one pod
        ({"pods": 2}, 4, ("p0", "p1"), False),
        ({"percent": 50}, 4, ("p0", "p1"), False),
        ({"percent": 10}, 4, ("p0",), False),  # rounded up
        ({}, 1, ("p0",), True),  # a single pod: judged against its own past
        ({"pods": 0}, 3, ("p0", "p1", "p2"), True),  # canary off
        ({"pods": 5}, 3, ("p0", "p1", "p2"), True),  # the canary would be every pod
    ],
)
def test_a_change_starts_a_trial(
    canary: dict[str, int], n: int, expect_canary: tuple[str, ...], before_after: bool
) -> None:
    s = spec(rollout={"canary": {"evaluationSeconds": 60, **canary}})
    step = safety_step(s, fresh(), apply(50), GOOD, pods(n), {p.name for p in pods(n)}, None, T0)
    assert step.action == "start" and step.phase == "Canary"
    assert step.trial is not None
    assert step.trial.canary == expect_canary and step.trial.before_after == before_after
    assert step.split is not None
    for p in pods(n):
        want = 50 if (before_after or p.name in expect_canary) else 100
        got = step.split[p.name]
        assert got is not None and got.gogc == want
    assert [e.reason for e in step.events] == ["CanaryStarted"]
    assert step.history is not None and step.history.verdict == "Canary"


def test_the_canary_is_chosen_among_pods_read_this_cycle() -> None:
    step = safety_step(spec(), fresh(), apply(50), GOOD, pods(3), {"p1", "p2"}, None, T0)
    assert step.trial is not None and step.trial.canary == ("p1",)


def test_canary_size_bounds() -> None:
    assert canary_size(spec(rollout={"canary": {"percent": 100}}), 7) == 7
    assert canary_size(spec(rollout={"canary": {"pods": 3}}), 2) == 2
    assert canary_size(spec(), 0) == 0


def test_the_evaluation_lasts_at_least_five_intervals() -> None:
    s = spec(
        sampling={"intervalSeconds": 30, "windowSeconds": 300}, rollout={"canary": {"evaluationSeconds": 10}}
    )
    assert evaluation_s(s) == 150


def test_a_rolled_back_value_waits_out_its_backoff() -> None:
    st = fresh()
    st.backoff.append(Backoff(50, T0 + 100))
    step = safety_step(spec(), st, apply(55), GOOD, pods(3), {"p0", "p1", "p2"}, None, T0)
    assert step.action == "hold" and step.decision is not None and step.decision.code == "BackingOff"
    far = safety_step(spec(), st, apply(70), GOOD, pods(3), {"p0", "p1", "p2"}, None, T0)
    assert far.action == "start"  # more than minGOGCChange away: a different value
    later = safety_step(spec(), st, apply(55), GOOD, pods(3), {"p0", "p1", "p2"}, None, T0 + 101)
    assert later.action == "start"


@pytest.mark.parametrize(
    ("over", "decision"),
    [
        ({"guard": {"enabled": False}}, apply(50)),
        ({"rollout": {"method": "EnvPatch"}}, apply(50)),
        ({}, DecisionInfo("apply", 25, "LeakHold", "leak", 100)),
        ({}, DecisionInfo("hold", 100, "WithinHysteresis", "h", 100)),
    ],
)
def test_what_the_guard_passes_through(over: dict[str, Any], decision: DecisionInfo) -> None:
    step = safety_step(spec(**over), fresh(), decision, GOOD, pods(3), {"p0", "p1", "p2"}, None, T0)
    assert step.action == "pass" and step.decision is decision and step.split is None


# ---- judging -------------------------------------------------------------------------------------


def test_a_regressing_canary_is_rolled_back_with_its_numbers() -> None:
    s = spec()
    st, _t = started(s, 3, gogc=90)  # 100 -> 90: the cost model expects GC CPU × 1.11
    windows(st, "p0", [3 * x for x in BASE], start=T0)
    for p in ("p1", "p2"):
        windows(st, p, BASE, start=T0)
    step = safety_step(s, st, apply(90), GOOD, pods(3), {"p0", "p1", "p2"}, None, T0 + 45)
    assert step.action == "rollback" and step.phase == "RolledBack"
    r = step.rollback
    assert r is not None and r.reason == GC_CPU and r.gogc == 90 and r.restored_gogc == 100
    assert r.p_value is not None and r.p_value < 0.01
    assert r.changed is not None and r.baseline is not None and r.changed > 2 * r.baseline
    assert step.split is not None and all(v is GOOD for v in step.split.values())
    assert step.backoff == Backoff(90, T0 + 45 + s.guard.backoff_seconds)
    assert [e.reason for e in step.events] == ["RolledBack"]
    assert split_note(step) is not None and split_note(step)[0] == "RolledBack"  # type: ignore[index]


def test_a_harmless_canary_waits_for_the_evaluation_then_is_promoted() -> None:
    s = spec()
    st, t = started(s, 3, gogc=90)
    windows(st, "p0", [x * 100 / 90 for x in BASE], start=T0)  # exactly what the cost model expects
    for p in ("p1", "p2"):
        windows(st, p, BASE, start=T0)
    early = safety_step(s, st, apply(90), GOOD, pods(3), {"p0", "p1", "p2"}, None, T0 + 45)
    assert early.action == "hold" and early.decision is not None and early.decision.code == "CanaryInProgress"
    assert early.trial == t and early.split is not None and early.split["p1"] is GOOD
    done = safety_step(s, st, apply(90), GOOD, pods(3), {"p0", "p1", "p2"}, None, t.until)
    assert done.action == "promote" and done.phase == "Promoted" and done.split is None
    assert done.decision is not None and done.decision.action == "apply" and done.decision.gogc == 90
    assert done.history is not None and done.history.verdict == "Promoted"


def test_a_canary_pod_that_restarts_rolls_back_at_once() -> None:
    s = spec()
    st, _t = started(s, 3)
    killed = [
        dataclasses.replace(p, restart_count=1, last_termination="OOMKilled") if p.name == "p0" else p
        for p in pods(3)
    ]
    step = safety_step(s, st, None, GOOD, killed, {"p1", "p2"}, None, T0 + 5)
    assert step.action == "rollback" and step.rollback is not None
    assert step.rollback.reason == "OOMKilled" and "p0" in step.rollback.message


def test_a_leak_hold_ends_a_trial_in_progress_unjudged() -> None:
    s = spec()
    st, t = started(s, 3, gogc=150)  # a raise on canary p0, judged until t.until
    hold = DecisionInfo("apply", 25, "LeakHold", "GOGC 100 -> 25: a leak is suspected", 100)
    step = guard(
        s,
        st,
        hold,
        GOOD,
        [PodReading(p, RuntimeSample(t=T0, source="agent")) for p in pods(3)],
        None,
        T0 + 10,
    )
    assert t.until > T0 + 10  # still mid-evaluation
    assert step.action == "pass" and step.decision is hold and step.phase == "Steady"
    assert step.trial is None and step.split is None  # every pod gets the floor
    assert step.rollback is None and step.backoff is None  # nothing was found wrong with GOGC 150
    h = step.history
    assert h is not None and (h.from_gogc, h.to_gogc, h.reason, h.verdict) == (
        150,
        25,
        "LeakHold",
        "Preempted",
    )
    assert [(e.type, e.reason) for e in step.events] == [("Warning", "CanaryPreempted")]
    assert "GOGC 150 left unjudged" in step.events[0].message
    assert st.trial is None and st.phase == "Steady" and not st.backoff
    # Any other decision waits for the trial's verdict, as before.
    st2, t2 = started(s, 3, gogc=150)
    other = safety_step(s, st2, apply(25), GOOD, pods(3), {"p0", "p1", "p2"}, None, T0 + 10)
    assert other.action == "hold" and other.trial == t2


def test_a_restart_of_an_untouched_pod_is_not_the_canarys_fault() -> None:
    s = spec()
    st, _ = started(s, 3)
    other = [dataclasses.replace(p, restart_count=1) if p.name == "p2" else p for p in pods(3)]
    assert safety_step(s, st, None, GOOD, other, {"p0", "p1", "p2"}, None, T0 + 5).action == "hold"


def test_no_guarded_signal_at_all_promotes_unguarded_with_a_warning() -> None:
    s = spec()
    st, t = started(s, 3)
    step = safety_step(s, st, None, GOOD, pods(3), {"p0", "p1", "p2"}, None, t.until + 60)
    assert step.action == "promote" and [e.reason for e in step.events] == ["Unguarded"]
    assert [e.type for e in step.events] == ["Warning"]


def test_too_few_windows_by_twice_the_evaluation_rolls_back() -> None:
    s = spec()
    st, t = started(s, 3)
    windows(st, "p0", BASE[:2], start=T0)
    windows(st, "p1", BASE, start=T0)
    step = safety_step(s, st, None, GOOD, pods(3), {"p0", "p1", "p2"}, None, t.until + 60)
    assert step.action == "rollback" and step.rollback is not None and step.rollback.reason == "NoVerdict"


def test_before_after_judges_against_the_windows_before_the_change() -> None:
    s = spec()
    st, _t = started(s, 1, gogc=90)
    windows(st, "p0", BASE, start=T0 - 60)  # before the change
    windows(st, "p0", [3 * x for x in BASE], start=T0)  # after it
    step = safety_step(s, st, None, GOOD, pods(1), {"p0"}, None, T0 + 45)
    assert step.action == "rollback" and step.rollback is not None and step.rollback.reason == GC_CPU


def test_a_before_after_trial_waits_for_a_baseline_it_can_be_judged_against() -> None:
    s = spec()  # evaluation 60 s: the baseline span
    st = fresh()
    windows(st, "p0", BASE[:4], start=T0 - 20)  # a pod 20 s old: 4 windows of GC CPU
    young = safety_step(s, st, apply(150), GOOD, pods(1), {"p0"}, None, T0)
    assert young.action == "hold" and young.trial is None and young.split is None
    d = young.decision
    assert d is not None and (d.code, d.gogc) == ("AwaitingBaseline", 100)
    assert "gcCPU 4" in d.reason and "5 each needed" in d.reason
    windows(st, "p0", BASE[4:5], start=T0)  # the fifth window
    ready = safety_step(s, st, apply(150), GOOD, pods(1), {"p0"}, None, T0 + 5)
    assert ready.action == "start" and ready.trial is not None and ready.trial.before_after


def test_a_sparse_signal_does_not_hold_a_change_forever() -> None:
    s = spec()
    st = fresh()
    windows(st, "p0", BASE[:2], start=T0 - 100)  # two windows, the first older than the 60 s span
    step = safety_step(s, st, apply(150), GOOD, pods(1), {"p0"}, None, T0)
    assert step.action == "start"


def test_a_canary_needs_no_baseline_of_its_own() -> None:
    st = fresh()
    windows(st, "p0", BASE[:2], start=T0 - 10)  # young pods: the untouched ones are the baseline
    step = safety_step(spec(), st, apply(150), GOOD, pods(3), {"p0", "p1", "p2"}, None, T0)
    assert step.action == "start" and step.trial is not None and not step.trial.before_after


def test_a_window_across_the_change_counts_on_neither_side() -> None:
    st = fresh()
    st.log.points.append(WindowPoint(T0 - 2, T0 + 3, "p0", {GC_CPU: 0.9}))
    assert st.log.collect(since=T0, until=T0 + 60) == {}
    assert st.log.collect(since=T0 - 60, until=T0) == {}


# ---- pause, restart ------------------------------------------------------------------------------


def test_paused_holds_every_change_and_keeps_the_trials_values() -> None:
    s = spec(paused=True)
    st, t = started(spec(), 3)
    readings = [PodReading(p, RuntimeSample(t=T0, source="agent")) for p in pods(3)]
    step = guard(s, st, apply(60), GOOD, readings, None, T0 + 200)
    assert step.phase == "Paused" and step.decision is not None and step.decision.code == "Paused"
    assert step.decision.action == "hold" and st.trial == t  # not judged, not dropped
    assert step.split is not None and step.split["p0"] is t.candidate


def test_a_resumed_canary_is_judged_again_from_now() -> None:
    s = spec()
    st, t = started(s, 3)
    resumed = dataclasses.replace(t, resumed=True)
    st.trial = resumed
    step = safety_step(s, st, None, GOOD, pods(3), {"p0", "p1", "p2"}, None, T0 + 500)
    assert step.action == "hold" and step.trial is not None and not step.trial.resumed
    assert step.trial.started_at == T0 + 500 and step.trial.until == T0 + 500 + evaluation_s(s)


def test_a_resumed_before_after_trial_rolls_back_without_a_backoff() -> None:
    s = spec()
    st, t = started(s, 1)
    st.trial = dataclasses.replace(t, resumed=True)
    step = safety_step(s, st, None, GOOD, pods(1), {"p0"}, None, T0 + 20)
    assert step.action == "rollback" and step.rollback is not None
    assert step.rollback.reason == "EvaluationLost" and step.backoff is None


def test_the_guard_state_round_trips_through_status() -> None:
    s = spec()
    st = fresh()
    readings = [PodReading(p, RuntimeSample(t=T0, source="agent")) for p in pods(3)]
    step = guard(s, st, apply(50), GOOD, readings, None, T0)
    from gc_tuner.tuning.safety_status import history_items, rollout_section

    status = PolicyStatus(rollout=rollout_section(step), history=history_items(step.memory))  # type: ignore[arg-type]
    back = fresh()
    restore_safety(back, PolicyStatus.read(status.doc()))
    assert back.trial is not None and back.trial.resumed
    assert back.trial.canary == ("p0",) and back.trial.candidate.gogc == 50
    assert back.trial.good is not None and back.trial.good.gogc == 100
    assert [h.verdict for h in back.history] == ["Canary"]


# ---- the plan the guard leads to -----------------------------------------------------------------


def test_the_planner_writes_each_pod_its_own_value_and_releases_a_startup_one() -> None:
    from datetime import UTC, datetime

    from gc_tuner.input.agent_doc import AgentBounds, AgentLease, AgentSettings, AgentStatus

    def reading(p: PodTarget, leased: int | None) -> PodReading:
        lease = AgentLease(OWNER, datetime.now(UTC), 100.0) if leased is not None else None
        status = AgentStatus(
            go_version="go1.26.0",
            gomaxprocs=2,
            current=AgentSettings(leased or 100, None),
            startup=AgentSettings(100, None),
            lease=lease,
            bounds=AgentBounds(10, 1000, 1 << 20, 3600),
            writes_enabled=True,
        )
        return PodReading(p, RuntimeSample(t=T0, source="agent", gogc=leased or 100), status)

    cand = AppliedState(50, None, "Endpoint", T0)
    ps = pods(3)
    # Rolling back to the startup values: p0 (ours, GOGC 50) is released; p1, p2 never leased.
    readings = [reading(ps[0], 50), reading(ps[1], None), reading(ps[2], None)]
    mem = MemoryLimitTarget(None, None, "off")
    split = {p.name: None for p in ps}
    plan = plan_endpoint(
        spec(),
        None,
        T0,
        None,
        mem,
        ps,
        readings,
        owner=OWNER,
        at=T0,
        now=T0,
        split=split,
        split_note=("RolledBack", "rolled back"),
    )
    assert [p.name for p in plan.releases] == ["p0"] and plan.writes == ()
    assert plan.untouched == ("p1", "p2")
    result = settle_endpoint(plan, ["p0"], [])
    assert result.verdict.reason == "RolledBack" and result.verdict.true and result.state is None
    # A canary: p0 gets 50, the others keep GOGC 100 (already in force under our lease: no write).
    readings = [reading(ps[0], None), reading(ps[1], 100), reading(ps[2], 100)]
    split2 = {"p0": cand, "p1": GOOD, "p2": GOOD}
    plan = plan_endpoint(
        spec(),
        GOOD,
        T0,
        DecisionInfo("apply", 50, "Applied", "r", 100),
        mem,
        ps,
        readings,
        owner=OWNER,
        at=T0,
        now=T0,
        split=split2,
        split_note=("Canary", "canary"),
    )
    assert [(w.pod.name, w.gogc) for w in plan.writes] == [("p0", 50)]
    assert plan.in_force == ("p1", "p2") and plan.state is GOOD and plan.changing
