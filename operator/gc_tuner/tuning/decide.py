"""The decide step of the loop: logic/decision.py's bounds, hysteresis and cooldown for GOGC, plus the
one rule GOGC alone does not cover - a GOMEMLIMIT that must follow the container's memory limit.

A changed limit is applied even when GOGC is held by hysteresis (the limit is not a tuning guess, it
is derived from the container's), but never inside the cooldown: for EnvPatch every change is a
restart, and the cooldown is the promise of at most one per period.

One exception to the cooldown: a leak hold. When the strategy suspects a leak and holds GOGC at the
floor, waiting out the cooldown at a higher GOGC only lets the heap goal run into the memory limit,
where the runtime spends up to half the CPU on GC. The move to the floor is applied at once (reason
`LeakHold`); it can happen once per leak, since nothing is below the floor.
"""

from __future__ import annotations

from gc_tuner.logic.decision import decide
from gc_tuner.logic.memlimit import GoMemLimitError, parse_gomemlimit
from gc_tuner.model.policy import GCPolicySpec
from gc_tuner.tuning.records import DecisionInfo
from gc_tuner.tuning.strategies import MemoryLimitTarget

__all__ = ["decide_change", "same_limit"]


def same_limit(a: str, b: str | None) -> bool:
    """Whether two GOMEMLIMIT renderings mean the same number of bytes (`1GiB` == `1024MiB`)."""
    if b is None:
        return False
    try:
        return parse_gomemlimit(a) == parse_gomemlimit(b)
    except GoMemLimitError:
        return False


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
    if (
        leak_hold
        and d.code == "CoolingDown"
        and current is not None
        and floor is not None
        and floor < current
    ):
        return DecisionInfo(
            "apply",
            floor,
            "LeakHold",
            f"GOGC {current} -> {floor} inside the cooldown: a leak is suspected, and waiting at a higher "
            "GOGC only runs the heap into the memory limit",
            current,
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
