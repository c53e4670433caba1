"""Rollout plans: what to write where, and what the policy's applied state becomes. Pure, no I/O.

    plan_endpoint / plan_envpatch    prior applied state + decision + memory target + readings + time
                                     -> ApplyPlan: the writes, the new applied state, events, or the
                                        verdict when there is nothing to write
    (loop/execute.py carries the plan out)
    settle_endpoint / settle_envpatch  the plan + what the writes got back -> ApplyResult

The rules, each a row of tests/tuning/test_rollout.py:
- Endpoint takeover: pods that already run the recommended GOGC (decision `AtTarget`) while gc-tuner
  holds nothing are adopted, and their lease held, without counting a change.
- Endpoint renewals: every ready pod is written each cycle, except those whose own GET this cycle
  shows our values under our lease with more than `renew_margin_s` left (`in_force`), and those
  whose runtime could not be read this cycle (`unread`: gc-tuner never writes blind).
- Endpoint verdict: InSync when every ready pod acked, PartiallyApplied when some did, the first
  failure's reason when none did, NoReadyPods when there is no ready pod.
- EnvPatch: one template patch per applied decision; a patch that changes nothing is no change. A
  patched template is RolloutInProgress until the Deployment reports the rollout complete, then
  InSync. A template that already sets the recommended GOGC is InSync without a patch.
- EnvPatch conflicts: GOGC/GOMEMLIMIT set through valueFrom are never overwritten; that is a failure
  (Degraded) and the verdict ValueFromConflict, whatever else happened.
- EnvPatch gates (tuning/env_gate.py), on the workload as read this cycle: someone else changed
  gc-tuner's values (ExternalChange: stop until they match again or the policy's spec changes),
  a paused Deployment (DeploymentPaused) and a rollout under way (RolloutInProgress) hold a write;
  a StatefulSet's partition or OnDelete strategy leaves some pods on their values (Partitioned,
  PendingRecreate). A workload that could not be read is not written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gc_tuner.actuation.envpatch import EnvPlan
from gc_tuner.input.agent_doc import AgentStatus
from gc_tuner.model.policy import GCPolicySpec
from gc_tuner.model.policy_status import AppliedNote
from gc_tuner.tuning.discovery import WorkloadInfo
from gc_tuner.tuning.env_gate import (
    EnvHalt,
    TemplateFacts,
    check_external,
    in_progress,
    rollout_wait,
    statefulset_verdict,
)
from gc_tuner.tuning.records import (
    FALSE,
    TRUE,
    UNKNOWN,
    AppliedState,
    DecisionInfo,
    LoopEvent,
    PodFailure,
    PodReading,
    PodTarget,
    Verdict,
    rfc3339,
)
from gc_tuner.tuning.state import PolicyState
from gc_tuner.tuning.strategies import MemoryLimitTarget

__all__ = [
    "ApplyPlan",
    "ApplyResult",
    "PodWrite",
    "WritesDone",
    "lease_in_force",
    "plan_endpoint",
    "plan_envpatch",
    "plan_rollout",
    "renew_margin_s",
    "settle",
    "settle_endpoint",
    "settle_envpatch",
]


@dataclass(frozen=True, slots=True)
class PodWrite:
    """One agent write of the plan: its GOGC (the plan's, or a canary's) and this pod's own GOMEMLIMIT."""

    pod: PodTarget
    memory_limit_bytes: int | None
    gogc: int | None = None


@dataclass(frozen=True, slots=True)
class ApplyPlan:
    """What the act step is to do this cycle, and the policy's applied state before and after it."""

    method: str
    decision: DecisionInfo | None
    prior: AppliedState | None  # what gc-tuner had put in force before this cycle
    prior_change_at: float | None  # the cooldown clock before this cycle
    state: AppliedState | None  # the applied state once the plan is carried out
    change_at: float | None  # the cooldown clock once the plan is carried out
    verdict: Verdict | None = None  # known already: nothing will be written
    events: tuple[LoopEvent, ...] = ()
    writes: tuple[PodWrite, ...] = ()  # Endpoint: agents to POST, all with `state.gogc`
    in_force: tuple[str, ...] = ()  # Endpoint: ready pods counted as acked without a write
    unread: tuple[str, ...] = ()  # Endpoint: ready pods not written: their runtime was not read this cycle
    ready: int = 0  # Endpoint: ready pods
    releases: tuple[PodTarget, ...] = ()  # Endpoint: leases to give up (back to the startup values)
    untouched: tuple[str, ...] = ()  # Endpoint: ready pods meant to keep their startup values, as they do
    split_note: tuple[str, str] | None = None  # Endpoint: (reason, message) while pods run their own values
    env: Mapping[str, str] | None = None  # EnvPatch: the env to set in the template
    note: AppliedNote | None = None  # EnvPatch: the applied annotation written with it
    changing: bool = False  # carrying it out puts a new value in force (restarts the cooldown)
    template: TemplateFacts | None = None  # EnvPatch: the workload as read this cycle
    halt: EnvHalt | None = None  # EnvPatch: gc-tuner stopped after someone else's change (env_gate.py)
    failures: tuple[PodFailure, ...] = ()  # known already (the workload unread, someone else's change)


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What the act step achieved: the policy's applied state from now on, and what status shows."""

    state: AppliedState | None
    change_at: float | None
    applied: AppliedState | None  # for status: the values in force and on how many pods
    verdict: Verdict
    changed: bool = False  # a change was put in force this cycle
    events: tuple[LoopEvent, ...] = ()
    failures: tuple[PodFailure, ...] = ()
    halt: EnvHalt | None = None  # EnvPatch: kept in the policy's state until the next cycle


def renew_margin_s(spec: GCPolicySpec) -> float:
    """Lease time a pod must have left to skip its renewal this cycle.

    Two intervals and two timeouts: the next cycle may start late (a long cycle runs past its
    interval) and its write may take a full timeout, and the lease must still hold until then.
    """
    return 2.0 * spec.sampling.interval_seconds + 2.0 * spec.sampling.timeout_seconds


def lease_in_force(
    status: AgentStatus | None,
    *,
    owner: str,
    gogc: int | None,
    memory_limit_bytes: int | None,
    read_at: float,
    now: float,
    margin_s: float,
) -> bool:
    """True when the agent (as read at `read_at`) runs these values under `owner`'s lease and the
    lease still has more than `margin_s` seconds at `now`. A None knob is one the write leaves as it is."""
    if status is None or status.lease is None or status.lease.owner != owner:
        return False
    if status.current.gogc != gogc:
        return False
    if memory_limit_bytes is not None and status.current.memory_limit_bytes != memory_limit_bytes:
        return False
    return status.lease.remaining_seconds - max(0.0, now - read_at) > margin_s


def _endpoint_event(d: DecisionInfo, mem: MemoryLimitTarget) -> LoopEvent:
    was = f" (was {d.current})" if d.current is not None else ""
    limit = f", GOMEMLIMIT {mem.rendered}" if mem.rendered else ""
    return LoopEvent(
        "Normal", "GOGCApplied", f"GOGC {d.gogc}{was}{limit} through the agent endpoint: {d.reason}"
    )


def plan_endpoint(
    spec: GCPolicySpec,
    prior: AppliedState | None,
    prior_change_at: float | None,
    decision: DecisionInfo | None,
    mem: MemoryLimitTarget,
    pods: Sequence[PodTarget],
    readings: Sequence[PodReading],
    *,
    owner: str,
    at: float,
    now: float,
    split: Mapping[str, AppliedState | None] | None = None,
    split_note: tuple[str, str] | None = None,
) -> ApplyPlan:
    """The agent writes of this cycle. `at` stamps a new applied state (the cycle's time); `now` is
    when the leases are judged (the readings are older). `split`: each pod's own value while a
    guard trial runs (tuning/safety.py); None for a pod: its startup values (the lease is released)."""
    own = prior if prior is not None and prior.method == "Endpoint" else None
    plan = ApplyPlan("Endpoint", decision, prior, prior_change_at, prior, prior_change_at)
    d = decision
    if d is not None and d.action == "hold" and own is None and d.code == "AtTarget":
        plan = dataclasses.replace(plan, state=AppliedState(d.gogc, mem.rendered, "Endpoint", at))
    if d is not None and d.action == "apply" and split is not None:
        # A guard trial starts: the canary runs the new value, the policy's own stays what it was
        # until the trial promotes it (the trial's Event says so).
        plan = dataclasses.replace(plan, state=own, change_at=at, changing=True)
    elif d is not None and d.action == "apply":
        new = AppliedState(d.gogc, mem.rendered, "Endpoint", at)
        event = _endpoint_event(d, mem)
        plan = dataclasses.replace(plan, state=new, change_at=at, events=(event,), changing=True)
    if plan.state is None and split is None:
        return dataclasses.replace(
            plan, verdict=Verdict(UNKNOWN, "NothingApplied", "waiting for a recommendation")
        )
    ready = [p for p in pods if p.ready]
    desired = {p.name: (split.get(p.name, plan.state) if split is not None else plan.state) for p in ready}
    margin = renew_margin_s(spec)
    by_pod = {r.pod.name: r for r in readings}

    def limit(p: PodTarget, want: AppliedState) -> int | None:
        # Outside a trial every pod gets this cycle's limit; in one, a value without a limit keeps
        # the pod's own.
        return mem.for_pod(p.name) if split is None or want.gomemlimit is not None else None

    def held(p: PodTarget, want: AppliedState) -> bool:
        r = by_pod.get(p.name)
        return (
            r is not None
            and r.sample is not None
            and lease_in_force(
                r.agent,
                owner=owner,
                gogc=want.gogc,
                memory_limit_bytes=limit(p, want),
                read_at=r.sample.t,
                now=now,
                margin_s=margin,
            )
        )

    in_force = sorted(p.name for p in ready if (want := desired[p.name]) is not None and held(p, want))
    # Never write to a pod that could not be read this cycle: whatever broke the read (a wrong token,
    # a hung or hostile process) makes a write blind, and its failure is reported already.
    unread = tuple(p.name for p in ready if (r := by_pod.get(p.name)) is None or r.sample is None)
    ours = {p.name for p in ready if (r := by_pod.get(p.name)) is not None and _leased_by(r, owner)}
    to_startup = [p for p in ready if desired[p.name] is None and p.name not in unread]
    writes = tuple(
        PodWrite(p, limit(p, want), want.gogc)
        for p in ready
        if (want := desired[p.name]) is not None and p.name not in in_force and p.name not in unread
    )
    return dataclasses.replace(
        plan,
        writes=writes,
        in_force=tuple(in_force),
        unread=unread,
        ready=len(ready),
        releases=tuple(p for p in to_startup if p.name in ours),
        untouched=tuple(p.name for p in to_startup if p.name not in ours),
        split_note=split_note,
    )


def _leased_by(r: PodReading, owner: str) -> bool:
    return r.agent is not None and r.agent.lease is not None and r.agent.lease.owner == owner


def settle_endpoint(plan: ApplyPlan, acked: Sequence[str], failures: Sequence[PodFailure]) -> ApplyResult:
    """The Applied verdict from the agents' answers (`acked`: pods whose write or release succeeded)."""
    a = plan.state
    if plan.verdict is not None or (a is None and plan.split_note is None):
        verdict = plan.verdict or Verdict(UNKNOWN, "NothingApplied", "waiting for a recommendation")
        return ApplyResult(a, plan.change_at, None, verdict)
    done = len(set(acked) | set(plan.in_force) | set(plan.untouched))
    applied = AppliedState(a.gogc, a.gomemlimit, "Endpoint", a.time, done) if a is not None else None
    gogc = a.gogc if a is not None else None
    if not plan.ready:
        verdict = Verdict(FALSE, "NoReadyPods", "no ready pod to write to")
    elif plan.split_note is not None:
        reason, message = plan.split_note
        status = TRUE if done == plan.ready else FALSE
        verdict = Verdict(status, reason, f"{message}; {done}/{plan.ready} ready pods as planned")
    elif done == plan.ready:
        verdict = Verdict(TRUE, "InSync", f"GOGC {gogc} in force on {plan.ready}/{plan.ready} ready pods")
    elif done:
        skipped = f"; not written, unread this cycle: {', '.join(plan.unread)}" if plan.unread else ""
        verdict = Verdict(
            FALSE, "PartiallyApplied", f"GOGC {gogc} in force on {done}/{plan.ready} ready pods{skipped}"
        )
    else:
        reason = failures[0].reason if failures else "ApplyFailed"
        verdict = Verdict(FALSE, reason, f"no ready pod accepted GOGC {gogc}")
    return ApplyResult(a, plan.change_at, applied, verdict, plan.changing, plan.events, tuple(failures))


def plan_envpatch(
    prior: AppliedState | None,
    prior_change_at: float | None,
    decision: DecisionInfo | None,
    mem: MemoryLimitTarget,
    workload: WorkloadInfo | None,
    *,
    owner: str,
    at: float,
    template: TemplateFacts | None = None,
    unread: PodFailure | None = None,
    halt: EnvHalt | None = None,
    generation: int = 0,
) -> ApplyPlan:
    """The template write of this cycle, if the decision is to apply and no gate holds it.
    `workload` None: nothing to write to (no cluster, or no env actuator). `template`: the workload
    as read this cycle (None: not read, the gates are not checked); `unread`: why it could not be
    read. `halt` and `generation`: the ExternalChange stop so far, and the policy's generation."""
    plan = ApplyPlan(
        "EnvPatch", decision, prior, prior_change_at, prior, prior_change_at, template=template, halt=halt
    )
    if workload is None:
        unavailable = Verdict(FALSE, "EnvPatchUnavailable", "EnvPatch needs a Deployment (run in a cluster)")
        return dataclasses.replace(plan, verdict=unavailable)
    if unread is not None:
        # gc-tuner never writes what it could not read (nor tell whether someone else changed it).
        verdict = Verdict(FALSE, unread.reason, f"not written: {unread.message}")
        return dataclasses.replace(plan, verdict=verdict, failures=(unread,))
    if template is not None:
        ext = check_external(prior, template, halt, generation, at=at)
        plan = dataclasses.replace(plan, halt=ext.halt)
        if ext.adopted is not None:
            plan = dataclasses.replace(plan, prior=ext.adopted, state=ext.adopted)
        if ext.stop is not None:
            failures = (ext.failure,) if ext.failure is not None else ()
            return dataclasses.replace(plan, verdict=ext.stop, failures=failures)
    if decision is None or decision.action != "apply":
        return plan
    env = {"GOGC": str(decision.gogc)}
    if mem.rendered is not None:
        env["GOMEMLIMIT"] = mem.rendered
    if template is not None:
        pending = ", ".join(f"{k} {v}" for k, v in env.items())
        wait = rollout_wait(template, pending)
        if wait is not None:
            return dataclasses.replace(plan, verdict=wait)
    note = AppliedNote(gogc=decision.gogc, gomemlimit=mem.rendered, time=rfc3339(at), policy=owner)
    new = AppliedState(decision.gogc, mem.rendered, "EnvPatch", at)
    return dataclasses.replace(plan, state=new, change_at=at, env=env, note=note, changing=True)


def settle_envpatch(
    plan: ApplyPlan, workload: WorkloadInfo | None, patched: EnvPlan | None, error: PodFailure | None
) -> ApplyResult:
    """The Applied verdict from the patch (None: nothing was patched) or its failure."""
    return dataclasses.replace(_settle_envpatch(plan, workload, patched, error), halt=plan.halt)


def _settle_envpatch(
    plan: ApplyPlan, workload: WorkloadInfo | None, patched: EnvPlan | None, error: PodFailure | None
) -> ApplyResult:
    kept = ApplyResult(
        plan.prior, plan.prior_change_at, None, plan.verdict or _nothing_applied(), failures=plan.failures
    )
    if plan.verdict is not None or workload is None:
        return kept
    if error is not None:
        return dataclasses.replace(
            kept, verdict=Verdict(FALSE, "EnvPatchFailed", error.message), failures=(error,)
        )
    result = kept
    t = plan.template
    if patched is not None and patched.changes and plan.state is not None and plan.decision is not None:
        changes = ", ".join(
            f"{k} {old or 'unset'} -> {new}" for k, (old, new) in sorted(patched.changes.items())
        )
        ref = t.ref if t is not None else f"deployment/{workload.name}"
        event = LoopEvent(
            "Normal", "EnvPatched", f"{ref} container {patched.container}: {changes}; {plan.decision.reason}"
        )
        result = ApplyResult(
            plan.state,
            plan.change_at,
            dataclasses.replace(plan.state, pods=0),
            _patched_verdict(t, changes),
            changed=True,
            events=(event,),
        )
    conflicts = set(workload.env_value_from) | set(patched.conflicts if patched is not None else ())
    if conflicts:
        return _value_from_conflict(result, workload, conflicts)
    if result.changed:
        return result
    return _rollout_verdict(plan, workload)


def _patched_verdict(t: TemplateFacts | None, changes: str) -> Verdict:
    if t is not None and t.kind == "StatefulSet" and t.strategy == "OnDelete":
        return Verdict(
            FALSE,
            "PendingRecreate",
            f"patched: {changes}; {t.ref} updates pods OnDelete: the values reach each pod when it is "
            "recreated; gc-tuner never deletes pods",
        )
    if t is not None and t.kind == "StatefulSet" and t.partition > 0:
        return Verdict(
            FALSE,
            "RolloutInProgress",
            f"patched: {changes}; waiting for the rollout of the pods at ordinal {t.partition} or above "
            "(those below the partition keep their values)",
        )
    return Verdict(FALSE, "RolloutInProgress", f"patched: {changes}; waiting for the rollout")


def _nothing_applied() -> Verdict:
    return Verdict(UNKNOWN, "NothingApplied", "no change applied yet")


def _value_from_conflict(result: ApplyResult, w: WorkloadInfo, conflicts: set[str]) -> ApplyResult:
    names = ", ".join(sorted(conflicts))
    # A failure like any other: one Warning Event when it appears, Degraded while it lasts.
    failure = PodFailure(
        w.name,
        "apply",
        "ValueFromConflict",
        f"{names} of container {w.container} set through valueFrom; gc-tuner leaves it alone",
    )
    verdict = Verdict(
        FALSE, "ValueFromConflict", f"{names} of container {w.container} use valueFrom; not overwritten"
    )
    return dataclasses.replace(result, verdict=verdict, failures=(*result.failures, failure))


def _rollout_verdict(plan: ApplyPlan, w: WorkloadInfo) -> ApplyResult:
    """No patch this cycle: the verdict is where the workload's rollout of our values stands (from
    the workload as read this cycle when there is one, else from the index's copy)."""
    a, gogc_now, t = plan.prior, w.template_gogc, plan.template
    done = not in_progress(t) if t is not None else w.rollout_complete
    if a is None:
        d = plan.decision
        if d is not None and d.code == "AtTarget" and done:
            verdict = Verdict(TRUE, "InSync", f"the template already sets GOGC {gogc_now}")
        else:
            verdict = _nothing_applied()
        return ApplyResult(None, plan.prior_change_at, None, verdict)
    applied = AppliedState(
        gogc_now if gogc_now is not None else a.gogc,
        w.env.get("GOMEMLIMIT", a.gomemlimit),
        "EnvPatch",
        a.time,
        w.updated_ready,
    )
    short = statefulset_verdict(t, f"GOGC {gogc_now}") if t is not None else None
    if short is not None:
        verdict = short
    elif done:
        verdict = Verdict(TRUE, "InSync", f"GOGC {gogc_now} in force on {w.updated_ready}/{w.replicas} pods")
    else:
        verdict = Verdict(FALSE, "RolloutInProgress", f"{w.updated_ready}/{w.replicas} pods updated")
    return ApplyResult(a, plan.prior_change_at, applied, verdict)


def plan_rollout(
    spec: GCPolicySpec,
    state: PolicyState,
    decision: DecisionInfo | None,
    mem: MemoryLimitTarget,
    readings: Sequence[PodReading],
    workload: WorkloadInfo | None,
    *,
    owner: str,
    at: float,
    now: float,
    split: Mapping[str, AppliedState | None] | None = None,
    split_note: tuple[str, str] | None = None,
    template: TemplateFacts | None = None,
    unread: PodFailure | None = None,
    generation: int = 0,
) -> ApplyPlan:
    """The plan step: the rollout method's plan from what the policy has in force (`state` is read,
    not changed; see plan_endpoint and plan_envpatch). `split`: a guard trial's per-pod values.
    `template`, `unread`: EnvPatch's workload as read this cycle, or why it could not be read;
    `generation`: the policy's."""
    prior, since = state.applied, state.last_change_at
    if spec.rollout.method == "Endpoint":
        pods = [r.pod for r in readings]  # gather reads every matched pod, in order
        return plan_endpoint(
            spec,
            prior,
            since,
            decision,
            mem,
            pods,
            readings,
            owner=owner,
            at=at,
            now=now,
            split=split,
            split_note=split_note,
        )
    return plan_envpatch(
        prior,
        since,
        decision,
        mem,
        workload,
        owner=owner,
        at=at,
        template=template,
        unread=unread,
        halt=state.env_halt,
        generation=generation,
    )


@dataclass(frozen=True, slots=True)
class WritesDone:
    """What carrying a plan out got back: the agents that acked (Endpoint), the template patch made
    (EnvPatch), and the failures."""

    acked: tuple[str, ...] = ()
    patched: EnvPlan | None = None
    failures: tuple[PodFailure, ...] = ()


def settle(plan: ApplyPlan, workload: WorkloadInfo | None, done: WritesDone) -> ApplyResult:
    """The plan and what its writes got back -> the ApplyResult (see settle_endpoint, settle_envpatch)."""
    if plan.method == "Endpoint":
        return settle_endpoint(plan, done.acked, done.failures)
    return settle_envpatch(plan, workload, done.patched, done.failures[0] if done.failures else None)
