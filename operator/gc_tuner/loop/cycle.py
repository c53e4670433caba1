"""One tuning cycle of one policy, as a numbered recipe of steps that each return a value:

    1. gather     read every pod's sources concurrently                        loop/gather.py
    2. windows    feed each pod's windows; forget pods that are gone           tuning/state.py
    3. fit        per-pod QPS and live-heap slope, the Deployment's median     tuning/fitting.py
    4. recommend  the policy's strategy -> GOGC; GOMEMLIMIT from the limit     tuning/strategies.py
    5. decide     bounds, hysteresis, cooldown (Enforce only)                  tuning/decide.py
    6. plan       the writes, and the applied state they lead to               tuning/rollout.py
    7. apply      carry the plan out; settle it into the Applied verdict       loop/execute.py
    8. report     failure Events, metrics                                      (here)

The outcome is the composition of the steps' results (tuning/outcome.py); the caller turns it into
status (tuning/conditions.py), Events and metrics. The operator's timer and `gc-tuner local` both
call `run_cycle`; only CycleInputs and CycleIO differ.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from gc_tuner.loop.execute import execute_endpoint, execute_envpatch
from gc_tuner.loop.gather import gather, read_promql
from gc_tuner.loop.ports import CycleIO
from gc_tuner.model.policy import GCPolicySpec
from gc_tuner.tuning.decide import decide_change
from gc_tuner.tuning.discovery import WorkloadInfo
from gc_tuner.tuning.fitting import fit_deployment, fit_pods, gctrace_summary, leak_verdict
from gc_tuner.tuning.outcome import CycleOutcome, Fitted, Gathered
from gc_tuner.tuning.records import DecisionInfo, LoopEvent, PodFailure, PodTarget, Verdict
from gc_tuner.tuning.rollout import (
    ApplyPlan,
    ApplyResult,
    current_settings,
    plan_endpoint,
    plan_envpatch,
    settle_endpoint,
    settle_envpatch,
)
from gc_tuner.tuning.state import PolicyState
from gc_tuner.tuning.strategies import memory_target, recommend_for

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


async def run_cycle(spec: GCPolicySpec, state: PolicyState, inp: CycleInputs, io: CycleIO) -> CycleOutcome:
    o = CycleOutcome(time=io.clock(), mode=spec.mode, method=spec.rollout.method, kill_switch=inp.kill_switch)
    if inp.target_error is not None:
        err = inp.target_error
        missing = PodFailure(spec.target_ref.name, "target", err.reason, err.message)
        o = dataclasses.replace(o, target_error=err, failures=(*inp.extra_failures, missing))
        return _report_failures(o, state)
    state.resize(float(spec.sampling.window_seconds))
    state.cycles += 1
    gathered = await _gather(spec, state, inp, io)  # 1
    state.feed(gathered.readings, gathered.promql)  # 2
    state.prune(p.name for p in inp.pods)
    fitted = _fit(spec, state, gathered, io)  # 3
    memory = memory_target(spec, inp.workload, inp.pods)  # 4
    rec, why = recommend_for(spec, fitted.summary, fitted.pod_fits, memory)
    o = dataclasses.replace(
        o, gathered=gathered, fitted=fitted, memory=memory, recommendation=rec, not_recommended=why
    )
    if o.enforcing:
        o = await _enforce(spec, state, inp, io, o)  # 5, 6, 7
    o = dataclasses.replace(o, failures=(*inp.extra_failures, *gathered.failures, *_apply_failures(o)))
    applied = state.applied.gogc if state.applied and o.enforcing else None  # 8
    io.metrics.gogc(*_policy_key(inp.owner), recommended=o.recommendation_gogc, applied=applied)
    return _report_failures(o, state)


async def _gather(spec: GCPolicySpec, state: PolicyState, inp: CycleInputs, io: CycleIO) -> Gathered:
    now = io.clock()
    states = {p.name: state.pod(p.name, now=now, restart_count=p.restart_count) for p in inp.pods}
    readings = await gather(spec, inp.pods, states, io, token=inp.agent_token)
    promql, promql_failure = await read_promql(spec, io, inp.pods)
    failures = [f for r in readings for f in r.failures]
    return Gathered(
        pods_matched=len(inp.pods),
        pods_ready=sum(1 for p in inp.pods if p.ready),
        readings=tuple(readings),
        promql=promql,
        failures=(*failures, *([promql_failure] if promql_failure else [])),
    )


def _fit(spec: GCPolicySpec, state: PolicyState, gathered: Gathered, io: CycleIO) -> Fitted:
    t0 = time.perf_counter()
    pod_fits = fit_pods([(r.pod.name, state.pods[r.pod.name]) for r in gathered.readings], spec)
    summary = fit_deployment(pod_fits, spec)
    fitted = Fitted(
        tuple(pod_fits), summary, leak_verdict(summary, spec), gctrace_summary(state.pods.values())
    )
    io.metrics.fit_duration(time.perf_counter() - t0)
    return fitted


async def _enforce(
    spec: GCPolicySpec, state: PolicyState, inp: CycleInputs, io: CycleIO, o: CycleOutcome
) -> CycleOutcome:
    """Steps 5-7: decide, plan, apply; the policy's applied state and cooldown clock follow the result."""
    workload = inp.workload if io.env is not None else None  # EnvPatch needs both
    decision = _decide(spec, state, o, workload)
    if decision is not None:
        io.metrics.decision(decision.action)
    plan = _plan(spec, state, inp, io, o, decision, workload)
    result = await _apply(spec, inp, io, plan, workload)
    state.applied, state.last_change_at = result.state, result.change_at
    if result.changed:
        io.metrics.applied_change(plan.method)
    return dataclasses.replace(o, decision=decision, plan=plan, result=result, posted=result.events)


def _decide(
    spec: GCPolicySpec, state: PolicyState, o: CycleOutcome, workload: WorkloadInfo | None
) -> DecisionInfo | None:
    rec = o.recommendation
    if rec is None or o.memory is None or (o.method == "EnvPatch" and workload is None):
        return None
    current, current_mem = current_settings(o.method, state.applied, o.gathered.readings, workload)
    return decide_change(
        spec,
        rec.gogc,
        current=current,
        current_mem=current_mem,
        mem=o.memory,
        last_change_at=state.last_change_at,
        now=o.time,
        leak_hold=rec.holds_for_leak,
    )


def _plan(
    spec: GCPolicySpec,
    state: PolicyState,
    inp: CycleInputs,
    io: CycleIO,
    o: CycleOutcome,
    decision: DecisionInfo | None,
    workload: WorkloadInfo | None,
) -> ApplyPlan:
    assert o.memory is not None  # set by step 4
    if o.method == "Endpoint":
        return plan_endpoint(
            spec,
            state.applied,
            state.last_change_at,
            decision,
            o.memory,
            inp.pods,
            o.gathered.readings,
            owner=inp.owner,
            at=o.time,
            now=io.clock(),
        )
    return plan_envpatch(
        state.applied, state.last_change_at, decision, o.memory, workload, owner=inp.owner, at=o.time
    )


async def _apply(
    spec: GCPolicySpec, inp: CycleInputs, io: CycleIO, plan: ApplyPlan, workload: WorkloadInfo | None
) -> ApplyResult:
    if plan.method == "Endpoint":
        if plan.verdict is not None:
            return settle_endpoint(plan, (), ())
        res = await execute_endpoint(io.http, spec, plan, token=inp.endpoint_token, owner=inp.owner)
        return settle_endpoint(plan, res.acked, res.failures)
    if workload is None or io.env is None:
        return settle_envpatch(plan, workload, None, None)
    patched, failure = await execute_envpatch(io.env, plan, workload.name)
    return settle_envpatch(plan, workload, patched, failure)


def _apply_failures(o: CycleOutcome) -> tuple[PodFailure, ...]:
    return o.result.failures if o.result is not None else ()


def _report_failures(o: CycleOutcome, state: PolicyState) -> CycleOutcome:
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
