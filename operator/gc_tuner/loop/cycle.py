"""One tuning cycle of one policy, as a numbered recipe of steps that each return a value:

    1. gather     read every pod's sources concurrently             loop/gather.py       gather
    2. windows    feed each pod's windows; forget pods gone         tuning/state.py      PolicyState.feed
    3. fit        per-pod QPS and heap slope, the median            tuning/fitting.py    fit_step
    4. recommend  the strategy -> GOGC; GOMEMLIMIT from the limit   tuning/strategies.py recommend_for
    5. decide     bounds, hysteresis, cooldown (Enforce only)       tuning/decide.py     decide_step
       guard      canary, judge, promote or roll back; paused       tuning/safety.py     guard
    6. plan       the writes and the applied state they lead to     tuning/rollout.py    plan_rollout
    7. apply      carry the plan out, settle the Applied verdict    loop/execute.py      carry_out
       canary     the EnvPatch canary Deployment: made or removed   loop/cycle.py        _sync_canary
    8. report     failures, new-failure Events, metrics             loop/cycle.py        _report

The outcome is the composition of the steps' results (tuning/outcome.py); the caller turns it into
status (tuning/conditions.py), Events and metrics. The operator's timer and `gc-tuner local` both
call `run_cycle`; only CycleInputs and CycleIO differ.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from gc_tuner.actuation.canary_deployment import CanaryDeploymentError, canary_name
from gc_tuner.loop.execute import carry_out, read_template
from gc_tuner.loop.gather import gather
from gc_tuner.loop.ports import CycleIO
from gc_tuner.model.policy import GCPolicySpec
from gc_tuner.tuning.decide import decide_step
from gc_tuner.tuning.discovery import WorkloadInfo
from gc_tuner.tuning.fitting import fit_step
from gc_tuner.tuning.guard_records import SafetyStep, Trial
from gc_tuner.tuning.guard_signals import GC_CPU
from gc_tuner.tuning.outcome import CycleOutcome
from gc_tuner.tuning.records import FALSE, TRUE, LoopEvent, PodFailure, PodTarget, Verdict
from gc_tuner.tuning.rollout import ApplyResult, plan_rollout
from gc_tuner.tuning.safety import guard, split_note
from gc_tuner.tuning.state import PolicyState
from gc_tuner.tuning.strategies import WindowHistories, memory_target, recommend_for
from gc_tuner.tuning.trial_judgement import evaluation_s

__all__ = ["CycleInputs", "run_cycle"]

MAX_FAILURE_EVENTS = 5  # per cycle; the rest are summed up in one more Event


@dataclass(frozen=True, slots=True)
class CycleInputs:
    """What the runner knows before the cycle: the pods, the target, the credentials."""

    pods: Sequence[PodTarget]
    owner: str  # the lease owner written to agents, e.g. "gc-tuner/<namespace>/<policy>"
    workload: WorkloadInfo | None = None  # None in `gc-tuner local`
    target_error: Verdict | None = None  # the target Deployment or container cannot be found
    agent_token: str | None = None
    endpoint_token: str | None = None
    kill_switch: bool = False
    extra_failures: Sequence[PodFailure] = field(default_factory=tuple)  # e.g. a missing Secret
    generation: int = 0  # the policy's metadata.generation: a spec edit resumes a stopped EnvPatch


async def run_cycle(spec: GCPolicySpec, state: PolicyState, inp: CycleInputs, io: CycleIO) -> CycleOutcome:
    o = CycleOutcome(time=io.clock(), mode=spec.mode, method=spec.rollout.method, kill_switch=inp.kill_switch)
    if inp.target_error is not None:
        err = inp.target_error
        missing = PodFailure(spec.target_ref.name, "target", err.reason, err.message)
        return _report(
            dataclasses.replace(o, target_error=err, failures=(*inp.extra_failures, missing)), state
        )
    state.cycles += 1
    # 1. gather
    states = state.track(inp.pods, float(spec.sampling.window_seconds), now=io.clock())
    gathered = await gather(spec, states, inp.pods, io, token=inp.agent_token, reads=state.reads)
    # 2. windows
    state.safety.log.keep_s = 3 * evaluation_s(spec)
    state.feed(gathered.readings, gathered.promql, now=io.clock())
    state.prune(p.name for p in inp.pods)
    # 3. fit
    t0 = time.perf_counter()
    # The canary's pods run another GOGC: they are judged (step 5), not fitted.
    fitted = fit_step(spec, state, [r for r in gathered.readings if not r.pod.canary])
    io.metrics.fit_duration(time.perf_counter() - t0)
    # 4. recommend
    memory = memory_target(spec, inp.workload, inp.pods)
    rec, why = recommend_for(spec, fitted.summary, fitted.pod_fits, memory, WindowHistories(state.pods))
    windows = state.safety.log.latest(GC_CPU)
    o = dataclasses.replace(
        o,
        gathered=gathered,
        fitted=fitted,
        memory=memory,
        recommendation=rec,
        not_recommended=why,
        gc_cpu_window=max(windows.values()) if windows else None,
    )
    if o.enforcing:
        workload = inp.workload if io.env is not None else None  # EnvPatch needs both
        # 5. decide, and guard: canary, judge, promote or roll back
        decided = decide_step(spec, state.applied, state.last_change_at, o, workload)
        now = io.clock()
        had = state.safety.trial
        guarded = guard(
            spec,
            state.safety,
            decided,
            state.applied,
            gathered.readings,
            memory.rendered,
            now,
            deployments=io.canary is not None and workload is not None,
        )
        decision = guarded.decision
        if decision is not None:
            io.metrics.decision(decision.action)
        if guarded.history is not None and guarded.history.verdict != "Canary":  # a trial ended
            io.metrics.guard_verdict(*_policy_key(inp.owner), guarded.history.verdict, guarded.history.reason)
        # 6. plan (EnvPatch: on the workload as read now)
        template, unread = await read_template(io, spec, workload)
        plan = plan_rollout(
            spec,
            state,
            decision,
            memory,
            gathered.readings,
            workload,
            owner=inp.owner,
            at=o.time,
            now=now,
            split=guarded.split,
            split_note=split_note(guarded),
            template=template,
            unread=unread,
            generation=inp.generation,
        )
        # 7. apply
        result = await carry_out(io, spec, plan, workload, token=inp.endpoint_token, owner=inp.owner)
        canary_done, canary_failure = await _sync_canary(io, spec, had, guarded, first=state.cycles == 1)
        result = _canary_verdict(spec, guarded, result, canary_failure, canary_done)
        state.applied, state.last_change_at = result.state, result.change_at
        state.env_halt = result.halt
        if result.changed:
            io.metrics.applied_change(plan.method)
        o = dataclasses.replace(
            o,
            decision=decision,
            guard=guarded,
            plan=plan,
            result=result,
            posted=(*guarded.events, *result.events),
        )
    # 8. report
    failures = (
        *inp.extra_failures,
        *gathered.failures,
        *fitted.screened,
        *(o.result.failures if o.result else ()),
    )
    applied = state.applied.gogc if state.applied and o.enforcing else None
    io.metrics.gogc(*_policy_key(inp.owner), recommended=o.recommendation_gogc, applied=applied)
    return _report(dataclasses.replace(o, failures=failures), state)


async def _sync_canary(
    io: CycleIO, spec: GCPolicySpec, had: Trial | None, step: SafetyStep, *, first: bool
) -> tuple[str | None, PodFailure | None]:
    """The EnvPatch canary Deployment exists exactly while a trial needs it. A canary left behind
    (the trial ended, the guard was turned off, the operator restarted) is removed. Returns what
    `ensure` did ("created", "running", "replaced", "waiting"), or the failure."""
    if io.canary is None or spec.rollout.method != "EnvPatch":
        return None, None
    t = step.canary_deployment
    try:
        if t is not None:
            env = {"GOGC": str(t.candidate.gogc)}
            if t.candidate.gomemlimit is not None:
                env["GOMEMLIMIT"] = t.candidate.gomemlimit
            return await io.canary.ensure(env, t.replicas), None
        if (had is not None and had.deployment) or first:
            await io.canary.remove()
    except CanaryDeploymentError as e:
        return None, PodFailure(canary_name(spec.target_ref.name), "canary", e.reason, e.message)
    return None, None


def _canary_verdict(
    spec: GCPolicySpec,
    step: SafetyStep,
    result: ApplyResult,
    failure: PodFailure | None,
    done: str | None,
) -> ApplyResult:
    """While an EnvPatch trial runs, Applied says where the candidate runs (the target is unchanged),
    and whether it runs yet: a canary with other values is deleted before the new one is made."""
    if failure is not None:
        return dataclasses.replace(
            result,
            verdict=Verdict(FALSE, failure.reason, failure.message),
            failures=(*result.failures, failure),
        )
    t = step.canary_deployment
    if t is None or result.changed:
        return result
    name = canary_name(spec.target_ref.name)
    good = f"GOGC {t.good.gogc}" if t.good is not None else "its startup values"
    if done in ("replaced", "waiting"):
        where = f"waits for canary Deployment {name}: the one with other values is being deleted first"
    else:
        made = ", created this cycle" if done == "created" else ""
        pods = f"{t.replicas} pod" + ("s" if t.replicas != 1 else "")
        where = f"on canary Deployment {name} ({pods}{made})"
    message = f"GOGC {t.candidate.gogc} {where}; the target keeps {good}"
    return dataclasses.replace(result, verdict=Verdict(TRUE, "Canary", message))


def _report(o: CycleOutcome, state: PolicyState) -> CycleOutcome:
    """A Warning Event for each failure that was not there last cycle (a pod failing every cycle
    gets one Event, not one per interval)."""
    keys = {(f.pod, f.source, f.reason): f for f in o.failures}
    new = [keys[k] for k in sorted(set(keys) - state.failing)]
    state.failing = set(keys)
    events = [LoopEvent("Warning", f.reason, f"{f.pod} {f.source}: {f.message}"[:1000]) for f in new]
    if len(new) > MAX_FAILURE_EVENTS:
        more = LoopEvent("Warning", "MoreFailures", f"{len(new) - MAX_FAILURE_EVENTS} more new failures")
        events = [*events[:MAX_FAILURE_EVENTS], more]
    return dataclasses.replace(o, posted=(*o.posted, *events))


def _policy_key(owner: str) -> tuple[str, str]:
    parts = owner.split("/")
    return (parts[-2], parts[-1]) if len(parts) >= 3 else ("", owner)
