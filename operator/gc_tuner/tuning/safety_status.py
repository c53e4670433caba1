"""The guard's state to and from status: `status.rollout`, `status.lastRollback`, `status.history`.

After an operator restart the trial, the back-offs, the history and the last rollback come back from
status. The windows do not (they live in memory), so a resumed trial is judged afresh
(`Trial.resumed`, see tuning/safety.py).
"""

from __future__ import annotations

from gc_tuner.model.policy_status import (
    BackoffEntry,
    GuardValue,
    HistoryItem,
    PolicyStatus,
    RollbackSection,
    RolloutSection,
)
from gc_tuner.tuning.guard_records import (
    Backoff,
    GuardMemory,
    HistoryEntry,
    RollbackRecord,
    SafetyState,
    SafetyStep,
    Trial,
)
from gc_tuner.tuning.records import AppliedState, parse_rfc3339, rfc3339

__all__ = ["history_items", "restore_safety", "rollback_section", "rollout_section"]


def _value(a: AppliedState | None) -> GuardValue | None:
    return GuardValue(gogc=a.gogc, gomemlimit=a.gomemlimit) if a is not None else None


def rollout_section(step: SafetyStep) -> RolloutSection:
    t, memory = step.trial, step.memory or GuardMemory()
    message = step.decision.reason[:1024] if step.decision is not None and step.action != "pass" else None
    return RolloutSection(
        phase=step.phase,
        candidate=_value(t.candidate) if t else None,
        last_good=_value(t.good) if t else None,
        was_gogc=t.was_gogc if t else None,
        canary_pods=list(t.canary[:100]) if t else [],
        before_after=t.before_after if t else False,
        started_at=rfc3339(t.started_at) if t else None,
        until=rfc3339(t.until) if t else None,
        backoff=[
            BackoffEntry(gogc=b.gogc, gomemlimit=b.gomemlimit, until=rfc3339(b.until))
            for b in memory.backoff[-10:]
        ],
        message=message,
    )


def rollback_section(r: RollbackRecord | None) -> RollbackSection | None:
    if r is None:
        return None
    return RollbackSection(
        time=rfc3339(r.time),
        gogc=r.gogc,
        gomemlimit=r.gomemlimit,
        restored_gogc=r.restored_gogc,
        reason=r.reason,
        message=r.message,
        p_value=r.p_value,
        changed=r.changed,
        baseline=r.baseline,
    )


def history_items(memory: GuardMemory) -> list[HistoryItem] | None:
    if not memory.history:
        return None
    return [
        HistoryItem(
            time=rfc3339(h.time), from_gogc=h.from_gogc, to_gogc=h.to_gogc, reason=h.reason, verdict=h.verdict
        )
        for h in memory.history
    ]


def _trial(r: RolloutSection) -> Trial | None:
    start = parse_rfc3339(r.started_at) if r.started_at else None
    until = parse_rfc3339(r.until) if r.until else None
    if r.phase != "Canary" or r.candidate is None or start is None or until is None:
        return None
    cand = AppliedState(r.candidate.gogc, r.candidate.gomemlimit, "Endpoint", start)
    good = AppliedState(r.last_good.gogc, r.last_good.gomemlimit, "Endpoint", start) if r.last_good else None
    return Trial(cand, good, tuple(r.canary_pods), r.before_after, start, until, (), r.was_gogc, resumed=True)


def restore_safety(s: SafetyState, status: PolicyStatus) -> None:
    """The guard's memory from a stored status (an operator restart)."""
    r = status.rollout
    if r is not None:
        s.trial = _trial(r)
        s.phase = r.phase if r.phase != "Canary" or s.trial is not None else "Steady"
        s.backoff = [
            Backoff(b.gogc, t, b.gomemlimit) for b in r.backoff if (t := parse_rfc3339(b.until)) is not None
        ]
    for h in status.history or []:
        if (t := parse_rfc3339(h.time)) is not None:
            s.history.append(HistoryEntry(t, h.from_gogc, h.to_gogc, h.reason, h.verdict))
    lr = status.last_rollback
    if lr is not None and (t := parse_rfc3339(lr.time)) is not None:
        s.last_rollback = RollbackRecord(
            t,
            lr.gogc,
            lr.gomemlimit,
            lr.restored_gogc,
            lr.reason,
            lr.message,
            lr.p_value,
            lr.changed,
            lr.baseline,
        )
