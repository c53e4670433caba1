"""One tuning cycle of one policy, read top to bottom like a recipe:

    1. gather    read every pod's sources concurrently (gather.py)
    2. windows   feed each pod's window; forget pods that are gone (state.py)
    3. fit       per-pod QPS and live-heap slope, then the Deployment's median (fitting.py)
    4. strategy  the policy's strategy turns the fit into a GOGC; GOMEMLIMIT from the limit (strategy.py)
    5. decide    bounds, hysteresis, cooldown (logic/decision.py)
    6. act       Endpoint: write + renew leases on every ready pod; EnvPatch: patch the template (act.py)

The caller turns the returned CycleOutcome into status (status.build_status), Events and metrics.
The operator's timer and `gc-tuner local` both call `run_cycle`; only CycleInputs and CycleIO differ.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gc_tuner.actuation.envpatch import EnvPatchError
from gc_tuner.logic.analysis import analyze_cycles
from gc_tuner.loop.execute import endpoint_push, lease_in_force, renew_margin_s
from gc_tuner.loop.gather import PodReading, gather, read_promql
from gc_tuner.loop.ports import CycleIO
from gc_tuner.model.policy import GCPolicySpec
from gc_tuner.net.errors import SourceError
from gc_tuner.tuning.decide import decide_change
from gc_tuner.tuning.discovery import WorkloadInfo
from gc_tuner.tuning.fitting import fit_deployment, fit_pods, leak_verdict
from gc_tuner.tuning.records import (
    AppliedState,
    CycleOutcome,
    DecisionInfo,
    GCTraceSummary,
    LoopEvent,
    PodFailure,
    PodTarget,
    Verdict,
    rfc3339,
)
from gc_tuner.tuning.state import PolicyState
from gc_tuner.tuning.strategies import MemoryLimitTarget, StrategyUnavailable, desired_memory_limit, recommend

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
    now = io.clock()
    o = CycleOutcome(time=now, mode=spec.mode, method=spec.rollout.method, kill_switch=inp.kill_switch)
    o.failures.extend(inp.extra_failures)
    if inp.target_error is not None:
        o.target_error = inp.target_error
        err = inp.target_error
        o.failures.append(PodFailure(spec.target_ref.name, "target", err.reason, err.message))
        _failure_events(o, state)
        return o
    state.resize(float(spec.sampling.window_seconds))
    state.cycles += 1

    # 1. gather
    readings = await gather(spec, inp.pods, state, io, token=inp.agent_token)
    promql, promql_error = await read_promql(spec, io, inp.pods)
    o.pods_matched = len(inp.pods)
    o.pods_ready = sum(1 for p in inp.pods if p.ready)
    o.pods_sampled = sum(1 for r in readings if r.sampled)
    for r in readings:
        o.failures.extend(r.failures)
    if promql_error is not None:
        o.failures.append(PodFailure("-", "promql", promql_error.split(":", 1)[0], promql_error))

    # 2. windows
    _feed_windows(readings, promql, state)
    state.prune(p.name for p in inp.pods)

    # 3. fit
    t0 = time.perf_counter()
    o.pod_fits = fit_pods([(r.pod.name, state.pods[r.pod.name]) for r in readings], spec)
    o.fit = fit_deployment(o.pod_fits, spec)
    o.leak = leak_verdict(o.fit, spec)
    o.gctrace = _gctrace_summary(state)
    io.metrics.fit_duration(time.perf_counter() - t0)

    # 4. strategy
    mem = _memory_target(spec, inp)
    o.gomemlimit, o.gomemlimit_note = mem.rendered, mem.note
    if o.fit.complete:
        assert o.fit.qps is not None and o.fit.heap_slope_mb_per_s is not None
        try:
            rec = recommend(spec, o.fit.qps, o.fit.heap_slope_mb_per_s, pod_fits=o.pod_fits, memory=mem)
        except StrategyUnavailable as e:
            o.fit = dataclasses.replace(o.fit, insufficient=str(e))  # Recommending=False says why
        else:
            o.recommendation_gogc = rec.gogc
            o.recommendation_strategy = rec.strategy
            o.recommendation_explanation = rec.explanation
            o.recommendation_inputs = dict(rec.inputs)
            if mem.bytes is not None:
                o.recommendation_inputs["memoryLimitBytes"] = mem.bytes
            if rec.leak is not None:
                o.leak = rec.leak

    # 5. decide, 6. act (Enforce only; DryRun stops at the recommendation)
    if o.enforcing:
        if spec.rollout.method == "Endpoint":
            await _act_endpoint(spec, state, inp, io, o, readings, mem)
        else:
            await _act_envpatch(spec, state, inp, io, o, readings, mem)
    io.metrics.gogc(
        *_policy_key(inp.owner),
        recommended=o.recommendation_gogc,
        applied=state.applied.gogc if state.applied and o.enforcing else None,
    )
    _failure_events(o, state)
    return o


def _feed_windows(readings: Sequence[PodReading], promql: Mapping[str, float], state: PolicyState) -> None:
    for r in readings:
        ps = state.pods[r.pod.name]
        if r.sample is not None:
            ps.window.add(r.sample)
            ps.sampled_once = True
        for c in r.cycles:
            ps.trace.add(c)
        if r.pod.name in promql:
            ps.promql_qps = promql[r.pod.name]


def _gctrace_summary(state: PolicyState) -> GCTraceSummary | None:
    p99s, medians, cycles, pods = [], [], 0, 0
    for ps in state.pods.values():
        if not len(ps.trace):
            continue
        s = analyze_cycles(list(ps.trace)).summary
        pods += 1
        cycles += s.cycles
        if s.stw_p99_ms is not None:
            p99s.append(s.stw_p99_ms)
        if s.effective_gogc_median is not None:
            medians.append(s.effective_gogc_median)
    if not pods:
        return None
    return GCTraceSummary(
        cycles, max(p99s) if p99s else None, statistics.median(medians) if medians else None, pods
    )


def _memory_target(spec: GCPolicySpec, inp: CycleInputs) -> MemoryLimitTarget:
    if spec.memory_limit.mode != "FromContainerLimit":
        return desired_memory_limit(spec, None)
    if inp.workload is not None:
        return desired_memory_limit(spec, inp.workload.memory_limit)
    limits = sorted({p.memory_limit for p in inp.pods if p.memory_limit is not None})
    return desired_memory_limit(spec, limits[0] if limits else None)


def _pod_memory_limits(
    spec: GCPolicySpec, pods: Sequence[PodTarget], mem: MemoryLimitTarget
) -> dict[str, int | None]:
    """Each pod's own GOMEMLIMIT: during a rollout old and new pods may have different limits."""
    if spec.memory_limit.mode != "FromContainerLimit":
        return {p.name: mem.bytes for p in pods}
    return {p.name: desired_memory_limit(spec, p.memory_limit).bytes for p in pods}


def _in_force(
    spec: GCPolicySpec,
    readings: Sequence[PodReading],
    gogc: int | None,
    limits: dict[str, int | None],
    owner: str,
    now: float,
) -> set[str]:
    margin = renew_margin_s(spec)
    return {
        r.pod.name
        for r in readings
        if r.sample is not None
        and lease_in_force(
            r.agent,
            owner=owner,
            gogc=gogc,
            memory_limit_bytes=limits.get(r.pod.name),
            read_at=r.sample.t,
            now=now,
            margin_s=margin,
        )
    }


def _observed_gogc(readings: Sequence[PodReading]) -> int | None:
    values = [r.sample.gogc for r in readings if r.sample is not None and r.sample.gogc is not None]
    return int(statistics.median_low(values)) if values else None


def _decision(
    spec: GCPolicySpec,
    state: PolicyState,
    o: CycleOutcome,
    current: int | None,
    current_mem: str | None,
    mem: MemoryLimitTarget,
) -> DecisionInfo | None:
    if o.recommendation_gogc is None:
        return None
    return decide_change(
        spec,
        o.recommendation_gogc,
        current=current,
        current_mem=current_mem,
        mem=mem,
        last_change_at=state.last_change_at,
        now=o.time,
        leak_hold=o.recommendation_strategy == "Budget" and o.leak is not None and o.leak.status == "True",
    )


async def _act_endpoint(
    spec: GCPolicySpec,
    state: PolicyState,
    inp: CycleInputs,
    io: CycleIO,
    o: CycleOutcome,
    readings: Sequence[PodReading],
    mem: MemoryLimitTarget,
) -> None:
    prior = state.applied if state.applied is not None and state.applied.method == "Endpoint" else None
    current = prior.gogc if prior is not None else _observed_gogc(readings)
    o.decision = _decision(spec, state, o, current, prior.gomemlimit if prior else None, mem)
    if o.decision is not None:
        io.metrics.decision(o.decision.action)
    if (
        o.decision is not None
        and o.decision.action == "hold"
        and prior is None
        and o.decision.code == "AtTarget"
    ):
        # The pods already run the target: take it over (and hold its lease) without counting a change.
        state.applied = AppliedState(o.decision.gogc, mem.rendered, "Endpoint", o.time)
    if o.decision is not None and o.decision.action == "apply":
        was = f" (was {current})" if current is not None else ""
        state.applied = AppliedState(o.decision.gogc, mem.rendered, "Endpoint", o.time)
        state.last_change_at = o.time
        io.metrics.applied_change("Endpoint")
        o.events.append(
            LoopEvent(
                "Normal",
                "GOGCApplied",
                f"GOGC {o.decision.gogc}{was}"
                + (f", GOMEMLIMIT {mem.rendered}" if mem.rendered else "")
                + f" through the agent endpoint: {o.decision.reason}",
            )
        )
    if state.applied is None:
        o.apply_verdict = Verdict("Unknown", "NothingApplied", "waiting for a recommendation")
        return
    ready = [p for p in inp.pods if p.ready]
    limits = _pod_memory_limits(spec, ready, mem)
    res = await endpoint_push(
        io.http,
        ready,
        spec,
        gogc=state.applied.gogc,
        memory_limits=limits,
        token=inp.endpoint_token,
        owner=inp.owner,
        in_force=_in_force(spec, readings, state.applied.gogc, limits, inp.owner, io.clock()),
    )
    o.failures.extend(res.failures)
    a = state.applied
    o.applied = AppliedState(a.gogc, a.gomemlimit, "Endpoint", a.time, len(res.acked))
    if not ready:
        o.apply_verdict = Verdict("False", "NoReadyPods", "no ready pod to write to")
    elif len(res.acked) == len(ready):
        o.apply_verdict = Verdict(
            "True", "InSync", f"GOGC {a.gogc} in force on {len(ready)}/{len(ready)} ready pods"
        )
    elif res.acked:
        o.apply_verdict = Verdict(
            "False", "PartiallyApplied", f"GOGC {a.gogc} in force on {len(res.acked)}/{len(ready)} ready pods"
        )
    else:
        reason = res.failures[0].reason if res.failures else "ApplyFailed"
        o.apply_verdict = Verdict("False", reason, f"no ready pod accepted GOGC {a.gogc}")


def _template_gogc(w: WorkloadInfo) -> int | None:
    v = w.env.get("GOGC")
    return int(v) if v is not None and v.isascii() and v.isdigit() else None


async def _act_envpatch(
    spec: GCPolicySpec,
    state: PolicyState,
    inp: CycleInputs,
    io: CycleIO,
    o: CycleOutcome,
    readings: Sequence[PodReading],
    mem: MemoryLimitTarget,
) -> None:
    w = inp.workload
    if w is None or io.env is None:
        o.apply_verdict = Verdict(
            "False", "EnvPatchUnavailable", "EnvPatch needs a Deployment (run in a cluster)"
        )
        return
    current = _template_gogc(w)
    if current is None:
        current = _observed_gogc(readings)
    o.decision = _decision(spec, state, o, current, w.env.get("GOMEMLIMIT"), mem)
    if o.decision is not None:
        io.metrics.decision(o.decision.action)
    conflicts = set(w.env_value_from)
    if o.decision is not None and o.decision.action == "apply":
        desired = {"GOGC": str(o.decision.gogc)}
        if mem.rendered is not None:
            desired["GOMEMLIMIT"] = mem.rendered
        note = {
            "gogc": o.decision.gogc,
            "gomemlimit": mem.rendered,
            "time": rfc3339(o.time),
            "policy": inp.owner,
        }
        try:
            plan = await io.env.patch(desired, note)
        except (EnvPatchError, SourceError) as e:
            o.failures.append(PodFailure(w.name, "apply", getattr(e, "reason", "EnvPatchFailed"), str(e)))
            o.apply_verdict = Verdict("False", "EnvPatchFailed", str(e))
            return
        except Exception as e:  # the API's own errors (409 conflict, 403) come in many types
            o.failures.append(PodFailure(w.name, "apply", "EnvPatchFailed", f"{type(e).__name__}: {e}"))
            o.apply_verdict = Verdict("False", "EnvPatchFailed", f"{type(e).__name__}: {e}")
            return
        conflicts |= set(plan.conflicts)
        if plan.changes:
            state.applied = AppliedState(o.decision.gogc, mem.rendered, "EnvPatch", o.time)
            state.last_change_at = o.time
            io.metrics.applied_change("EnvPatch")
            changes = ", ".join(
                f"{k} {old or 'unset'} -> {new}" for k, (old, new) in sorted(plan.changes.items())
            )
            o.events.append(
                LoopEvent(
                    "Normal",
                    "EnvPatched",
                    f"deployment/{w.name} container {plan.container}: {changes}; {o.decision.reason}",
                )
            )
            o.applied = AppliedState(o.decision.gogc, mem.rendered, "EnvPatch", o.time, 0)
            o.apply_verdict = Verdict(
                "False", "RolloutInProgress", f"patched: {changes}; waiting for the rollout"
            )
    if conflicts:
        o.failures.append(
            PodFailure(
                w.name,
                "apply",
                "ValueFromConflict",
                # A failure like any other: one Warning Event when it appears, Degraded while it lasts.
                f"{', '.join(sorted(conflicts))} of container {w.container} set through valueFrom; "
                "gc-tuner leaves it alone",
            )
        )
        o.apply_verdict = Verdict(
            "False",
            "ValueFromConflict",
            f"{', '.join(sorted(conflicts))} of container {w.container} use valueFrom; not overwritten",
        )
        return
    if o.apply_verdict is not None:
        return
    a = state.applied
    gogc_now = _template_gogc(w)
    if a is None:
        if o.decision is not None and o.decision.code == "AtTarget" and w.rollout_complete:
            o.apply_verdict = Verdict("True", "InSync", f"the template already sets GOGC {gogc_now}")
        else:
            o.apply_verdict = Verdict("Unknown", "NothingApplied", "no change applied yet")
        return
    o.applied = AppliedState(
        gogc_now if gogc_now is not None else a.gogc,
        w.env.get("GOMEMLIMIT", a.gomemlimit),
        "EnvPatch",
        a.time,
        w.updated_ready,
    )
    if w.rollout_complete:
        o.apply_verdict = Verdict(
            "True", "InSync", f"GOGC {gogc_now} in force on {w.updated_ready}/{w.replicas} pods"
        )
    else:
        o.apply_verdict = Verdict(
            "False", "RolloutInProgress", f"{w.updated_ready}/{w.replicas} pods updated"
        )


def _failure_events(o: CycleOutcome, state: PolicyState) -> None:
    """A Warning Event for each failure that was not there last cycle (a pod failing every cycle
    gets one Event, not one per interval)."""
    keys = {(f.pod, f.source, f.reason): f for f in o.failures}
    new = [keys[k] for k in sorted(set(keys) - state.failing)]
    state.failing = set(keys)
    for f in new[:MAX_FAILURE_EVENTS]:
        o.events.append(LoopEvent("Warning", f.reason, f"{f.pod} {f.source}: {f.message}"[:1000]))
    if len(new) > MAX_FAILURE_EVENTS:
        o.events.append(
            LoopEvent("Warning", "MoreFailures", f"{len(new) - MAX_FAILURE_EVENTS} more new failures")
        )


def _policy_key(owner: str) -> tuple[str, str]:
    parts = owner.split("/")
    return (parts[-2], parts[-1]) if len(parts) >= 3 else ("", owner)
