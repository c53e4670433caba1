"""The decide step of the loop: logic/decision.py's bounds, hysteresis and cooldown for GOGC, plus the
one rule GOGC alone does not cover - a GOMEMLIMIT that must follow the container's memory limit.

A changed limit is applied even when GOGC is held by hysteresis (the limit is not a tuning guess, it
is derived from the container's), but never inside the cooldown: for EnvPatch every change is a
restart, and the cooldown is the promise of at most one per period.

One exception to the cooldown: a leak hold. When the strategy suspects a leak and holds GOGC at the
floor, waiting out the cooldown at a higher GOGC only lets the heap goal run into the memory limit,
where the runtime spends up to half the CPU on GC. The move to the floor is applied at once (reason
`LeakHold`); it can happen once per leak, since nothing is below the floor. Outside the cooldown the
move is `LeakHold` too: the guard neither canaries it nor lets it wait behind a trial in progress.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from gc_tuner.logic.decision import decide
from gc_tuner.logic.memlimit import same_limit
from gc_tuner.model.policy import GCPolicySpec
from gc_tuner.tuning.discovery import WorkloadInfo
from gc_tuner.tuning.outcome import CycleOutcome
from gc_tuner.tuning.records import AppliedState, DecisionInfo, PodReading
from gc_tuner.tuning.strategies import MemoryLimitTarget

__all__ = ["current_settings", "decide_change", "decide_step", "observed_gogc", "same_limit"]


def observed_gogc(readings: Sequence[PodReading]) -> int | None:
    values = [r.sample.gogc for r in readings if r.sample is not None and r.sample.gogc is not None]
    return int(statistics.median_low(values)) if values else None


def current_settings(
    method: str, prior: AppliedState | None, readings: Sequence[PodReading], workload: WorkloadInfo | None
) -> tuple[int | None, str | None]:
    """The GOGC and GOMEMLIMIT the decision starts from: what gc-tuner put in force by this method,
    else the template's env (EnvPatch), else what the pods report."""
    if method == "EnvPatch" and workload is not None:
        gogc = workload.template_gogc
        return (gogc if gogc is not None else observed_gogc(readings)), workload.env.get("GOMEMLIMIT")
    if prior is not None and prior.method == "Endpoint":
        return prior.gogc, prior.gomemlimit
    return observed_gogc(readings), None


def decide_change(
    spec: GCPolicySpec,
    recommended: int,
    *,
    current: int | None,
    current_mem: str | None,
    mem: MemoryLimitTarget,
    last_change_at: float | None,
    now: float,
    leak_hold: bool = False,
) -> DecisionInfo:
    r = spec.rollout
    d = decide(
        recommended,
        current=current,
        min_gogc=spec.bounds.min_gogc,
        max_gogc=spec.bounds.max_gogc,
        min_change=r.min_gogc_change,
        cooldown_s=float(r.cooldown_seconds),
        last_applied_at=last_change_at,
        now=now,
    )
    info = DecisionInfo(d.action, d.gogc, d.code, d.reason, current)
    floor = d.target
    if leak_hold and current is not None and floor is not None and floor < current:
        if d.code == "CoolingDown":
            return DecisionInfo(
                "apply",
                floor,
                "LeakHold",
                f"GOGC {current} -> {floor} inside the cooldown: a leak is suspected, and waiting at a "
                "higher GOGC only runs the heap into the memory limit",
                current,
            )
        if d.action == "apply":
            # Outside the cooldown too: LeakHold tells the guard not to canary it, nor wait for a trial.
            return DecisionInfo(
                "apply", d.gogc, "LeakHold", f"GOGC {current} -> {d.gogc}: a leak is suspected", current
            )
    if d.action == "apply" or mem.rendered is None or same_limit(mem.rendered, current_mem):
        return info
    waited = now - last_change_at if last_change_at is not None else None
    if waited is not None and waited < r.cooldown_seconds:
        return DecisionInfo(
            "hold",
            d.gogc,
            "CoolingDown",
            f"GOMEMLIMIT {mem.rendered} waits: last change {waited:.0f}s ago, cooldown is "
            f"{r.cooldown_seconds}s; {d.reason}",
            current,
        )
    return DecisionInfo(
        "apply",
        d.gogc,
        "MemoryLimitChanged",
        f"GOMEMLIMIT {current_mem or 'unset'} -> {mem.rendered} ({mem.note}); {d.reason}",
        current,
    )


def decide_step(
    spec: GCPolicySpec,
    prior: AppliedState | None,
    last_change_at: float | None,
    o: CycleOutcome,
    workload: WorkloadInfo | None,
) -> DecisionInfo | None:
    """The decide step: apply or hold the recommendation, from the values in force (what gc-tuner put
    there, else the template's env, else what the pods report). None: nothing to decide on (no
    recommendation, or EnvPatch without a Deployment to patch)."""
    rec = o.recommendation
    if rec is None or o.memory is None or (o.method == "EnvPatch" and workload is None):
        return None
    current, current_mem = current_settings(o.method, prior, o.gathered.readings, workload)
    return decide_change(
        spec,
        rec.gogc,
        current=current,
        current_mem=current_mem,
        mem=o.memory,
        last_change_at=last_change_at,
        now=o.time,
        leak_hold=rec.holds_for_leak,
    )
