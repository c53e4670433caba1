"""The guard with EnvPatch (tuning/safety.py): the candidate runs on a second Deployment's pods, judged
against the target's; a rollback leaves the target untouched, a promotion patches it."""

from __future__ import annotations

import dataclasses

from gc_tuner.tuning.guard_records import SafetyState, Trial
from gc_tuner.tuning.guard_signals import GC_CPU
from gc_tuner.tuning.records import AppliedState, DecisionInfo, PodTarget
from gc_tuner.tuning.safety import safety_step
from tests.tuning.test_safety import BASE, T0, apply, fresh, spec, windows

GOOD = AppliedState(100, None, "EnvPatch", T0 - 1000)
ENVPATCH = {"method": "EnvPatch", "endpoint": None, "canary": {"pods": 1, "evaluationSeconds": 60}}


def targets(n: int) -> list[PodTarget]:
    return [PodTarget(f"web-{i}", f"10.0.0.{i}") for i in range(n)]


def canary(ready: bool = True, restarts: int = 0, why: str | None = None) -> PodTarget:
    return PodTarget(
        "web-gctuner-canary-x",
        "10.0.1.1",
        ready=ready,
        restart_count=restarts,
        last_termination=why,
        canary=True,
    )


def step(st: SafetyState, pods: list[PodTarget], now: float, gogc: int = 90, deployments: bool = True):  # type: ignore[no-untyped-def]
    names = {p.name for p in pods}
    return safety_step(
        spec(rollout=ENVPATCH), st, apply(gogc), GOOD, pods, names, None, now, deployments=deployments
    )


def started(gogc: int = 90) -> tuple[SafetyState, Trial]:
    st = fresh()
    s = step(st, targets(3), T0, gogc)
    assert s.trial is not None
    st.trial, st.phase = s.trial, s.phase
    return st, s.trial


def test_a_change_starts_a_canary_deployment_and_patches_nothing() -> None:
    st = fresh()
    s = step(st, targets(3), T0)
    assert s.action == "start" and s.phase == "Canary" and s.split is None
    assert s.decision is not None and s.decision.action == "hold"  # the target's template is not patched
    t = s.canary_deployment
    assert t is not None and t.deployment and t.replicas == 1 and t.candidate.gogc == 90 and t.good == GOOD
    assert [e.reason for e in s.events] == ["CanaryStarted"] and "web-gctuner-canary" in s.events[0].message


def test_without_a_cluster_or_with_canary_off_envpatch_passes_unguarded() -> None:
    assert step(fresh(), targets(3), T0, deployments=False).action == "pass"
    off = {**ENVPATCH, "canary": {"pods": 0}}
    s = safety_step(
        spec(rollout=off), fresh(), apply(90), GOOD, targets(3), {"web-0"}, None, T0, deployments=True
    )
    assert s.action == "pass" and s.trial is None


def test_the_evaluation_starts_when_a_canary_pod_is_ready() -> None:
    st, t = started()
    waiting = step(st, [*targets(3), canary(ready=False)], T0 + 20)
    assert (
        waiting.action == "hold"
        and waiting.trial == t
        and "waiting" in (waiting.decision.reason if waiting.decision else "")
    )
    st.trial = waiting.trial
    ready = step(st, [*targets(3), canary()], T0 + 30)
    assert ready.trial is not None and ready.trial.ready_at == T0 + 30 and ready.trial.started_at == T0 + 30
    assert ready.trial.until == T0 + 90 and ready.trial.canary == ("web-gctuner-canary-x",)


def test_a_canary_that_never_becomes_ready_rolls_back() -> None:
    st, t = started()
    s = step(st, targets(3), t.until)
    assert s.action == "rollback" and s.rollback is not None and s.rollback.reason == "CanaryNotReady"
    assert s.split is None and s.canary_deployment is None  # nothing to undo on the target


def test_a_regressing_canary_deployment_is_rolled_back() -> None:
    st, _t = started()
    st.trial = step(st, [*targets(3), canary()], T0).trial
    windows(st, "web-gctuner-canary-x", [3 * x for x in BASE], start=T0)
    for p in targets(3):
        windows(st, p.name, BASE, start=T0)
    s = step(st, [*targets(3), canary()], T0 + 45)
    assert s.action == "rollback" and s.rollback is not None and s.rollback.reason == GC_CPU
    assert s.split is None and s.decision is not None and s.decision.action == "hold"
    assert s.backoff is not None and s.backoff.gogc == 90


def test_a_harmless_canary_deployment_is_promoted_to_the_target() -> None:
    st, _t = started()
    st.trial = step(st, [*targets(3), canary()], T0).trial
    assert st.trial is not None
    windows(st, "web-gctuner-canary-x", [x * 100 / 90 for x in BASE], start=T0)
    for p in targets(3):
        windows(st, p.name, BASE, start=T0)
    s = step(st, [*targets(3), canary()], st.trial.until)
    assert s.action == "promote" and s.decision is not None and s.decision.action == "apply"
    assert s.decision.gogc == 90 and s.canary_deployment is None


def test_a_restarted_canary_pod_rolls_back_at_once() -> None:
    st, _t = started()
    s = step(st, [*targets(3), canary(restarts=1, why="OOMKilled")], T0 + 5)
    assert s.action == "rollback" and s.rollback is not None and s.rollback.reason == "OOMKilled"


def test_a_resumed_envpatch_trial_is_judged_again_on_its_deployment() -> None:
    st, t = started()
    st.trial = dataclasses.replace(t, deployment=False, replicas=0, resumed=True)  # as restored from status
    s = step(st, [*targets(3), canary()], T0 + 100)
    assert s.action == "hold" and s.trial is not None and s.trial.deployment and s.trial.replicas == 1
    assert s.trial.started_at == T0 + 100 and s.canary_deployment is not None


def test_a_leak_hold_ends_a_canary_deployment_trial() -> None:
    st, _ = started()
    hold = DecisionInfo("apply", 25, "LeakHold", "a leak is suspected", 100)
    names = {p.name for p in [*targets(3), canary()]}
    s = safety_step(
        spec(rollout=ENVPATCH),
        st,
        hold,
        GOOD,
        [*targets(3), canary()],
        names,
        None,
        T0 + 10,
        deployments=True,
    )
    # No trial: the cycle deletes the canary Deployment, and the target is patched with the floor.
    assert s.action == "pass" and s.decision is hold and s.canary_deployment is None
    assert s.history is not None and s.history.verdict == "Preempted"
