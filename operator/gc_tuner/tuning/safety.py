"""Safe Enforce: a change goes to a canary first, is judged on its effect, and is promoted or rolled
back. Pure: `safety_step` takes what the cycle knows and returns a SafetyStep; the cycle stores it.

    Steady --apply--> Canary --no worse after evaluationSeconds--> Promoted (Steady)
                        |
                        +--worse on a guarded signal, or a canary pod restarted--> RolledBack
                                                                                   (Backoff: the value
                                                                                   waits backoffSeconds)

- Canary: the first `canary.pods` ready, readable pods by name (or `canary.percent` of the ready pods,
  rounded up) get the candidate; the others keep the last good value. The canary's windows are judged
  against the others' over the same time (logic/verdict.py).
- Before/after: with `canary.pods: 0`, or when the canary would be every pod (a single pod), every pod
  gets the candidate and its windows are judged against the windows before the change.
- A canary pod that restarts (an OOM kill, a crash) during the evaluation rolls back at once.
- A before/after trial expects GC CPU to follow the allocation rate (the load): its baseline is scaled
  by the rate after the change over the rate before, as it is by old/new GOGC.
- A change that can only lower memory use (GOGC not raised, GOMEMLIMIT not raised) is not judged on
  memory in a before/after trial: there the memory that rises is the workload's own trend (a leak),
  and blaming the change for it would roll back the very limit that holds the leak off.
- Evaluation: at least five sampling intervals. A worse verdict rolls back as soon as it is reached; an
  ok one promotes at the end. Still short of windows at twice the evaluation: rolled back (NoVerdict),
  unless no guarded signal had any data at all, which promotes with a Warning (Unguarded).
- A leak hold (Budget's GOGC to the floor) is not canaried, and it ends a trial in progress unjudged
  (`Preempted`): the heap runs toward the limit, and the evaluation would keep it at a higher GOGC.
- A before/after trial waits (`AwaitingBaseline`) until the pods have five windows before the change
  on each guarded signal, or windows across the whole baseline span: a trial started on a pod only
  seconds old could never reach a verdict.
- Back-off: a rolled-back GOGC (± minGOGCChange) is not tried again for `guard.backoffSeconds`.
- EnvPatch: the canary is a second Deployment, `<target>-gctuner-canary`, running the candidate beside
  the target's pods (actuation/canary_deployment.py says why not a partitioned rollout). Its pods are
  judged from the moment the first is ready; a rollback deletes it and leaves the target untouched; a
  promotion patches the target and deletes it. `canary.pods: 0` with EnvPatch applies unguarded (a
  before/after judgement across a rollout would compare new pods with old ones).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TypeGuard

from gc_tuner.actuation.canary_deployment import canary_name
from gc_tuner.logic.verdict import ALPHA, EARLY_ALPHA, GuardVerdict
from gc_tuner.model.policy import GCPolicySpec
from gc_tuner.tuning.guard_records import (
    Backoff,
    GuardMemory,
    HistoryEntry,
    RollbackRecord,
    SafetyState,
    SafetyStep,
    Trial,
)
from gc_tuner.tuning.records import AppliedState, DecisionInfo, LoopEvent, PodReading, PodTarget
from gc_tuner.tuning.trial_judgement import (
    MIN_WINDOWS,
    evaluation_s,
    judge_trial,
    lowers_memory_only,
    short_baseline,
)

__all__ = [
    "canary_size",
    "guard",
    "remember",
    "safety_step",
    "split_note",
]


def canary_size(spec: GCPolicySpec, ready: int) -> int:
    c = spec.rollout.canary
    n = math.ceil(c.percent * ready / 100) if c.percent is not None else c.pods
    return max(0, min(n, ready))


def _entry(at: float, t: Trial, reason: str, verdict: str) -> HistoryEntry:
    return HistoryEntry(at, t.good.gogc if t.good else t.was_gogc, t.candidate.gogc, reason, verdict)


def _backing_off(
    state: SafetyState, gogc: int, memory: str | None, min_change: int, now: float
) -> Backoff | None:
    """The back-off that holds this value: the same GOMEMLIMIT and a GOGC within minGOGCChange."""
    for b in state.backoff:
        if (
            b.until > now
            and b.gogc is not None
            and abs(b.gogc - gogc) <= min_change
            and b.gomemlimit == memory
        ):
            return b
    return None


def _split(t: Trial, pods: Sequence[PodTarget]) -> dict[str, AppliedState | None]:
    chosen = set(t.canary)
    return {p.name: (t.candidate if t.before_after or p.name in chosen else t.good) for p in pods}


def _start(
    spec: GCPolicySpec,
    state: SafetyState,
    d: DecisionInfo,
    good: AppliedState | None,
    pods: Sequence[PodTarget],
    readable: set[str],
    memory: str | None,
    now: float,
    was_limit: int | None = None,
) -> SafetyStep:
    backing = _backing_off(state, d.gogc, memory, spec.rollout.min_gogc_change, now)
    if backing is not None:
        held = _waits(
            d,
            "BackingOff",
            f"GOGC {d.gogc}{f' with GOMEMLIMIT {memory}' if memory else ''} is within "
            f"{spec.rollout.min_gogc_change} of GOGC {backing.gogc}, rolled back; not tried again for "
            f"{backing.until - now:.0f}s",
        )
        # The values in force stay (renewed, or the startup ones): Applied says why nothing changes.
        return SafetyStep("hold", held, None, "Backoff", dict.fromkeys((p.name for p in pods), good))
    ready = [p for p in pods if p.ready and p.name in readable and not p.canary]
    if not ready:
        held = DecisionInfo(
            "hold", d.gogc, "NoReadablePods", "no ready pod was read this cycle; the change waits", d.current
        )
        return SafetyStep("hold", held, None, state.phase)
    n = canary_size(spec, len(ready))
    if spec.rollout.method == "EnvPatch":
        if n == 0:
            return SafetyStep("pass", d, None, "Steady")  # canary.pods 0: EnvPatch applies unguarded
        return _start_deployment(spec, d, good, n, memory, now)
    before_after = n == 0 or n >= len(ready)
    canary = tuple(p.name for p in ready) if before_after else tuple(p.name for p in ready[:n])
    short = short_baseline(spec, state.log, set(canary), now) if before_after else None
    if short is not None:
        held = _waits(
            d,
            "AwaitingBaseline",
            f"GOGC {d.gogc} waits: it will be judged against the windows before it, and so far there are "
            f"too few ({short}; {MIN_WINDOWS} each needed)",
        )
        return SafetyStep("hold", held, None, state.phase)
    candidate = AppliedState(d.gogc, memory, "Endpoint", now)
    restarts = tuple((p.name, p.restart_count) for p in pods if p.name in canary)
    safe = lowers_memory_only(d.current, d.gogc, was_limit, memory)
    t = Trial(
        candidate,
        good,
        canary,
        before_after,
        now,
        now + evaluation_s(spec),
        restarts,
        d.current,
        memory_safe=safe,
    )
    how = "every pod, judged against its own past" if before_after else f"canary {', '.join(canary)}"
    event = LoopEvent("Normal", "CanaryStarted", f"GOGC {d.current} -> {d.gogc} on {how}: {d.reason}")
    return SafetyStep(
        "start", d, t, "Canary", _split(t, pods), history=_entry(now, t, d.code, "Canary"), events=(event,)
    )


def _waits(d: DecisionInfo, code: str, reason: str) -> DecisionInfo:
    """The change `d` held back by the guard: the value in force stays (the candidate if none is known)."""
    return DecisionInfo("hold", d.current if d.current is not None else d.gogc, code, reason, d.current)


def _start_deployment(
    spec: GCPolicySpec, d: DecisionInfo, good: AppliedState | None, n: int, memory: str | None, now: float
) -> SafetyStep:
    """EnvPatch: the candidate goes to a canary Deployment of `n` pods; the target is not patched."""
    candidate = AppliedState(d.gogc, memory, "EnvPatch", now)
    t = Trial(
        candidate, good, (), False, now, now + evaluation_s(spec), (), d.current, deployment=True, replicas=n
    )
    name = canary_name(spec.target_ref.name)
    event = LoopEvent(
        "Normal",
        "CanaryStarted",
        f"GOGC {d.current} -> {d.gogc} on canary Deployment {name} ({n} pods): {d.reason}",
    )
    message = f"starting canary Deployment {name} with {_values(candidate)}"
    return SafetyStep(
        "start", _judging(t, message), t, "Canary", history=_entry(now, t, d.code, "Canary"), events=(event,)
    )


def _evaluate_deployment(
    spec: GCPolicySpec, state: SafetyState, t: Trial, pods: Sequence[PodTarget], now: float
) -> SafetyStep:
    """EnvPatch: the canary Deployment's pods (PodTarget.canary) judged against the target's. The
    evaluation starts when the first canary pod is ready; one that never is rolls back. (A restart
    of one was handled by `_evaluate`.)"""
    canaries = [p for p in pods if p.canary]
    names = tuple(p.name for p in canaries)
    if t.ready_at is None:
        if any(p.ready for p in canaries):
            t = dataclasses.replace(
                t, canary=names, ready_at=now, started_at=now, until=now + evaluation_s(spec)
            )
        elif now >= t.until:
            name = canary_name(spec.target_ref.name)
            msg = f"no pod of canary Deployment {name} became ready in {t.until - t.started_at:.0f}s"
            return _rollback(spec, t, pods, now, _record(t, now, "CanaryNotReady", msg))
        else:
            message = f"waiting for the pods of canary Deployment {canary_name(spec.target_ref.name)}"
            return SafetyStep("hold", _judging(t, message), t, "Canary")
    return _judged(spec, state, dataclasses.replace(t, canary=names), pods, now)


def _restarted(t: Trial, pods: Sequence[PodTarget]) -> PodTarget | None:
    """A canary pod that restarted since the trial began. A canary Deployment's pods began with the
    trial, so any restart of theirs counts."""
    if t.deployment:
        return next((p for p in pods if p.canary and p.restart_count > 0), None)
    before = dict(t.restarts)
    return next((p for p in pods if p.name in before and p.restart_count > before[p.name]), None)


def _rollback(
    spec: GCPolicySpec, t: Trial, pods: Sequence[PodTarget], now: float, record: RollbackRecord
) -> SafetyStep:
    back = Backoff(t.candidate.gogc, now + spec.guard.backoff_seconds, t.candidate.gomemlimit)
    restored = t.good.gogc if t.good is not None else None
    held = DecisionInfo(
        "hold",
        restored if restored is not None else (t.was_gogc or t.candidate.gogc or 0),
        "RolledBack",
        f"{_values(t.candidate)} rolled back to {_values(t.good)}: {record.message}",
        t.candidate.gogc,
    )
    # EnvPatch: the target was never patched; deleting the canary Deployment is the whole rollback.
    split = None if t.deployment else dict.fromkeys((p.name for p in pods), t.good)
    event = LoopEvent("Warning", "RolledBack", held.reason)
    entry = HistoryEntry(now, t.candidate.gogc, restored, record.reason, "RolledBack")
    return SafetyStep(
        "rollback",
        held,
        None,
        "RolledBack",
        split,
        rollback=record,
        backoff=back,
        history=entry,
        events=(event,),
    )


def _promote(t: Trial, now: float, note: str, verdict: GuardVerdict, warn: bool = False) -> SafetyStep:
    d = DecisionInfo(
        "apply",
        t.candidate.gogc if t.candidate.gogc is not None else 0,
        "Promoted",
        f"GOGC {t.candidate.gogc} promoted to every pod: {note}",
        t.good.gogc if t.good is not None else t.was_gogc,
    )
    event = LoopEvent("Warning" if warn else "Normal", "Unguarded" if warn else "Promoted", d.reason)
    entry = _entry(now, t, "Unguarded" if warn else "NoRegression", "Promoted")
    return SafetyStep(
        "promote", d, None, "Promoted", promoted=t.candidate, history=entry, verdict=verdict, events=(event,)
    )


def _judging(t: Trial, message: str) -> DecisionInfo:
    """The decision while trial `t` is judged: hold at the candidate, from the value it replaced."""
    current = t.good.gogc if t.good is not None else t.was_gogc
    gogc = t.candidate.gogc if t.candidate.gogc is not None else 0
    return DecisionInfo("hold", gogc, "CanaryInProgress", message, current)


def _record(
    t: Trial,
    now: float,
    reason: str,
    message: str,
    p_value: float | None = None,
    changed: float | None = None,
    baseline: float | None = None,
) -> RollbackRecord:
    """The rollback of trial `t`: its candidate, the good value it goes back to, and why."""
    restored = t.good.gogc if t.good is not None else None
    return RollbackRecord(
        now, t.candidate.gogc, t.candidate.gomemlimit, restored, reason, message, p_value, changed, baseline
    )


def _resume(
    spec: GCPolicySpec, state: SafetyState, t: Trial, pods: Sequence[PodTarget], now: float
) -> SafetyStep:
    """A trial restored after an operator restart: its windows were in memory. A canary is judged
    again from now (the baseline runs beside it); a before/after trial lost its "before" windows
    for good, so the change is rolled back, without a back-off, and comes again as a recommendation."""
    if spec.rollout.method == "EnvPatch":
        # The canary Deployment outlived the operator: its pods are judged again from now.
        targets = [p for p in pods if not p.canary]
        again = dataclasses.replace(
            t,
            candidate=dataclasses.replace(t.candidate, method="EnvPatch"),
            canary=(),
            started_at=now,
            until=now + evaluation_s(spec),
            resumed=False,
            deployment=True,
            replicas=max(1, canary_size(spec, len(targets))),
            ready_at=None,
        )
        return _evaluate(spec, state, again, pods, now)
    if t.before_after:
        record = _record(
            t,
            now,
            "EvaluationLost",
            "the operator restarted during a before/after evaluation; its windows are gone",
        )
        return dataclasses.replace(_rollback(spec, t, pods, now, record), backoff=None)
    restarts = tuple((p.name, p.restart_count) for p in pods if p.name in set(t.canary))
    again = dataclasses.replace(
        t, started_at=now, until=now + evaluation_s(spec), restarts=restarts, resumed=False
    )
    message = f"judging GOGC {t.candidate.gogc} again from now: the operator restarted during its evaluation"
    return SafetyStep("hold", _judging(t, message), again, "Canary", _split(again, pods))


def _evaluate(
    spec: GCPolicySpec, state: SafetyState, t: Trial, pods: Sequence[PodTarget], now: float
) -> SafetyStep:
    if t.resumed:
        return _resume(spec, state, t, pods, now)
    crashed = _restarted(t, pods)
    if crashed is not None:
        why = crashed.last_termination or "Restarted"
        msg = f"canary pod {crashed.name} restarted ({why}) during the evaluation"
        return _rollback(spec, t, pods, now, _record(t, now, why, msg))
    if t.deployment:
        return _evaluate_deployment(spec, state, t, pods, now)
    return _judged(spec, state, t, pods, now)


def _judged(
    spec: GCPolicySpec, state: SafetyState, t: Trial, pods: Sequence[PodTarget], now: float
) -> SafetyStep:
    """The verdict on trial `t` so far: roll back, promote, or keep judging. Before the evaluation
    ends only a clear regression (EARLY_ALPHA) rolls back; at its end, ALPHA decides."""
    v = judge_trial(spec, state.log, t, now, alpha=ALPHA if now >= t.until else EARLY_ALPHA)
    worst = v.worst
    if worst is not None:
        record = _record(
            t, now, worst.signal, worst.describe(), worst.p_value, worst.changed_median, worst.baseline_median
        )
        return _rollback(spec, t, pods, now, record)
    summary = "; ".join(s.describe() for s in v.signals) or "no guarded signal had data"
    if now >= t.until and v.outcome == "ok":
        return _promote(t, now, f"no worse ({summary})", v)
    if now >= t.until + (t.until - t.started_at):
        if not v.signals:
            return _promote(t, now, "no guarded signal had any data; promoted unjudged", v, warn=True)
        record = _record(t, now, "NoVerdict", f"too few windows for a verdict ({summary})")
        return _rollback(spec, t, pods, now, record)
    message = f"judging GOGC {t.candidate.gogc} until {max(0.0, t.until - now):.0f}s from now: {summary}"
    split = None if t.deployment else _split(t, pods)
    return SafetyStep("hold", _judging(t, message), t, "Canary", split, verdict=v)


def safety_step(
    spec: GCPolicySpec,
    state: SafetyState,
    decision: DecisionInfo | None,
    applied: AppliedState | None,
    pods: Sequence[PodTarget],
    readable: set[str],
    memory: str | None,
    now: float,
    *,
    deployments: bool = False,
    was_limit: int | None = None,
) -> SafetyStep:
    """The guard's part of one Enforce cycle: start, judge or finish a trial around `decision`.
    `applied` is what gc-tuner has in force on every pod (None: the pods' startup values);
    `readable`: the pods whose runtime was read this cycle (a canary is never chosen blind);
    `deployments`: an EnvPatch canary Deployment can be made (in a cluster, not `gc-tuner local`);
    `was_limit`: the GOMEMLIMIT the pods report, in bytes (None: none, or not reported)."""
    guarded = spec.rollout.method == "Endpoint" or (spec.rollout.method == "EnvPatch" and deployments)
    if not spec.guard.enabled or not guarded:
        return SafetyStep("pass", decision, None, "Steady")
    if state.trial is not None:
        if _urgent(decision):
            return _preempt(state.trial, decision, now)
        return _evaluate(spec, state, state.trial, pods, now)
    if decision is None or decision.action != "apply" or _urgent(decision):
        # A leak hold is urgent (the heap runs toward the limit) and goes to the floor: not canaried.
        backing = any(b.until > now for b in state.backoff)
        phase = "Backoff" if backing else ("Steady" if state.phase == "Canary" else state.phase)
        return SafetyStep("pass", decision, None, phase)
    return _start(spec, state, decision, applied, pods, readable, memory, now, was_limit)


def _urgent(decision: DecisionInfo | None) -> TypeGuard[DecisionInfo]:
    """A leak hold: the heap runs toward the limit, so the floor goes to every pod now, canaried by
    nothing and waiting for no trial."""
    return decision is not None and decision.action == "apply" and decision.code == "LeakHold"


def _preempt(t: Trial, d: DecisionInfo, now: float) -> SafetyStep:
    """A leak hold ends the trial in progress unjudged: waiting out its evaluation at a higher GOGC
    would only run the heap into the limit. The candidate is not backed off (nothing was found wrong
    with it); it comes again as a recommendation once the leak is over. An EnvPatch canary
    Deployment goes with the trial (loop/cycle.py removes it)."""
    message = f"{_values(t.candidate)} left unjudged: {d.reason}"
    event = LoopEvent("Warning", "CanaryPreempted", message)
    entry = HistoryEntry(now, t.candidate.gogc, d.gogc, d.code, "Preempted")
    return SafetyStep("pass", d, None, "Steady", history=entry, events=(event,))


def _reported_limit(readings: Sequence[PodReading]) -> int | None:
    """The highest GOMEMLIMIT the pods report (None: one has none, or none reports it). A source
    without the figure is read as no limit: the agent, which the judged Endpoint rollouts need,
    always reports it."""
    limits = [r.sample.memory_limit_bytes for r in readings if r.sample is not None]
    if not limits or any(x is None for x in limits):
        return None
    return max(x for x in limits if x is not None)


def remember(state: SafetyState, step: SafetyStep, now: float) -> None:
    """Store what the step decided: the trial, the back-off, the history, the last rollback."""
    state.trial = step.trial
    state.phase = step.phase
    state.backoff = [b for b in state.backoff if b.until > now]
    if step.backoff is not None:
        state.backoff.append(step.backoff)
    if step.history is not None:
        state.history.append(step.history)
    if step.rollback is not None:
        state.last_rollback = step.rollback


def _values(a: AppliedState | None) -> str:
    if a is None:
        return "the startup values"
    limit = f", GOMEMLIMIT {a.gomemlimit}" if a.gomemlimit is not None else ""
    return f"GOGC {a.gogc}{limit}"


def split_note(step: SafetyStep) -> tuple[str, str] | None:
    """The Applied verdict's (reason, message) while pods run their own values."""
    if step.split is None:
        return None
    if step.phase == "Backoff" and step.decision is not None:
        return ("BackingOff", step.decision.reason)
    if step.rollback is not None:
        return ("RolledBack", f"GOGC {step.rollback.gogc} rolled back: {step.rollback.message}")
    t = step.trial
    if t is None:
        return None
    others = f"GOGC {t.good.gogc}" if t.good is not None else "their startup values"
    where = "every pod" if t.before_after else f"canary {', '.join(t.canary)}; {others} on the others"
    return ("Canary", f"GOGC {t.candidate.gogc} on {where}")


def _paused(state: SafetyState, decision: DecisionInfo | None, pods: Sequence[PodTarget]) -> SafetyStep:
    """spec.paused: no change is made and no trial judged; the values in force stay in force (an
    Endpoint lease is still renewed, or the pods would fall back to their startup values)."""
    t = state.trial
    current = decision.current if decision is not None else None
    held = DecisionInfo(
        "hold",
        current if current is not None else (decision.gogc if decision is not None else 0),
        "Paused",
        "spec.paused is true: no changes; the values in force are kept",
        current,
    )
    return SafetyStep(
        "hold", held, t, "Paused", _split(t, pods) if t is not None and not t.deployment else None
    )


def guard(
    spec: GCPolicySpec,
    state: SafetyState,
    decision: DecisionInfo | None,
    applied: AppliedState | None,
    readings: Sequence[PodReading],
    memory: str | None,
    now: float,
    *,
    deployments: bool = False,
) -> SafetyStep:
    """The guard step of an Enforce cycle: `safety_step` (or the pause), remembered in `state`. The
    windows are in `state.log` already (PolicyState.feed)."""
    pods = [r.pod for r in readings]
    if spec.paused:
        step = _paused(state, decision, pods)
    else:
        readable = {r.pod.name for r in readings if r.sample is not None}
        step = safety_step(
            spec,
            state,
            decision,
            applied,
            pods,
            readable,
            memory,
            now,
            deployments=deployments,
            was_limit=_reported_limit(readings),
        )
    remember(state, step, now)
    kept = GuardMemory(tuple(state.backoff), tuple(state.history), state.last_rollback)
    return dataclasses.replace(step, memory=kept)
