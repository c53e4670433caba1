"""The GCPolicy status document, as a pure function of one cycle's outcome and the previous status.

Conditions follow the API conventions: every type is present from the first visit (Unknown until
known), reasons are CamelCase, and `lastTransitionTime` changes only when `status` changes.

    Sampling       at least one matched pod was sampled this cycle
    Recommending   the fit had enough data for a recommendation
    Applied        (Enforce) the applied values are in force on every ready pod (reasons Canary and
                   RolledBack while a guard trial runs or ends, Paused while spec.paused)
    LeakSuspected  the live heap grows at least leakDetection's slope with a good fit
    Degraded       some pod (or the target) fails: reason of the most frequent failure
    Ready          Sampling and Recommending, and in Enforce also Applied
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from gc_tuner.model.policy_status import (
    AppliedSection,
    Condition,
    DecisionSection,
    FitSection,
    GCTraceSection,
    PodFailureEntry,
    PodsSection,
    PolicyStatus,
    RecommendationInputs,
    RecommendationSection,
)
from gc_tuner.tuning.outcome import CycleOutcome
from gc_tuner.tuning.records import FALSE, TRUE, UNKNOWN, PodFailure, Verdict, rfc3339
from gc_tuner.tuning.safety_status import history_items, rollback_section, rollout_section

__all__ = [
    "CONDITION_TYPES",
    "MAX_FAILURES_LISTED",
    "build_status",
    "condition_list",
    "limits_pending",
    "merge_conditions",
]

CONDITION_TYPES = ("Ready", "Sampling", "Recommending", "Applied", "LeakSuspected", "Degraded")
MAX_FAILURES_LISTED = 10
_MAX_MESSAGE = 2000


def _sampling(o: CycleOutcome) -> Verdict:
    if o.target_error is not None:
        return Verdict(FALSE, o.target_error.reason, o.target_error.message)
    if o.pods_matched == 0:
        return Verdict(FALSE, "NoPodsMatched", "no running pod matches the target's selector")
    if o.pods_sampled == 0:
        return Verdict(FALSE, "AllPodsFailing", f"none of {o.pods_matched} matched pods could be sampled")
    return Verdict(TRUE, "PodsSampled", f"{o.pods_sampled}/{o.pods_matched} pods sampled")


def _recommending(o: CycleOutcome) -> Verdict:
    if o.recommendation is not None:
        return Verdict(TRUE, "Recommended", o.recommendation.explanation)
    why = o.not_recommended or (o.fit.insufficient if o.fit is not None else None) or "no pod sampled yet"
    return Verdict(FALSE, "InsufficientData", why)


def _applied(o: CycleOutcome) -> Verdict:
    if o.kill_switch:
        return Verdict(FALSE, "OperatorDryRun", "the operator runs with --dry-run: nothing is applied")
    if o.mode != "Enforce":
        return Verdict(FALSE, "DryRun", "mode is DryRun: recommendations only")
    if o.guard is not None and o.guard.phase == "Paused":
        return Verdict(FALSE, "Paused", "spec.paused is true: no changes; the values in force are kept")
    if o.apply_verdict is not None:
        pending = limits_pending(o)
        v = o.apply_verdict
        return Verdict(v.status, v.reason, f"{v.message}; {pending}") if pending else v
    return Verdict(UNKNOWN, "NothingApplied", "no recommendation has been applied yet")


def limits_pending(o: CycleOutcome) -> str | None:
    """EnvPatch: pods whose own container limit (an in-place resize, a VPA-set limit) is not the
    template's. The env holds the template's GOMEMLIMIT; a pod's own comes only with its next start."""
    m = o.memory
    if o.method != "EnvPatch" or m is None or m.bytes is None:
        return None
    other = {name: b for name, b in sorted(m.per_pod.items()) if b is not None and b != m.bytes}
    if not other:
        return None
    shown = ", ".join(f"{name} ({b >> 20}MiB)" for name, b in list(other.items())[:5])
    more = f" and {len(other) - 5} more" if len(other) > 5 else ""
    return (
        f"GOMEMLIMIT pending on {len(other)} pod(s) whose own memory limit is not the template's: "
        f"{shown}{more} by their own limit; the env holds {m.rendered}, right for them once a rollout "
        "restarts them at the template's limit (the Endpoint method follows each pod's own)"
    )


def _degraded(o: CycleOutcome) -> Verdict:
    if o.target_error is not None:
        return Verdict(TRUE, o.target_error.reason, o.target_error.message)
    if not o.failures:
        return Verdict(
            FALSE, "Healthy", "every matched pod was sampled" + (" and tuned" if o.enforcing else "")
        )
    counts = Counter(f.reason for f in o.failures)
    reason = counts.most_common(1)[0][0]
    pods = sorted({f.pod for f in o.failures})
    detail = "; ".join(
        f"{f.pod} {f.source}: {f.reason}: {f.message}" for f in o.failures[:MAX_FAILURES_LISTED]
    )
    return Verdict(TRUE, reason, f"{len(pods)} pod(s) failing: {detail}")


def _ready(sampling: Verdict, recommending: Verdict, applied: Verdict, o: CycleOutcome) -> Verdict:
    needed = [sampling, recommending] + ([applied] if o.enforcing else [])
    for v in needed:
        if not v.true:
            return Verdict(FALSE, v.reason, v.message)
    return Verdict(TRUE, "Ready", "tuning" if o.enforcing else "recommending (dry run)")


def condition_list(
    previous: Sequence[Condition],
    verdicts: Mapping[str, Verdict],
    *,
    now: float,
    generation: int,
) -> list[Condition]:
    """Conditions for `verdicts`, keeping each one's lastTransitionTime while its status is unchanged."""
    before = {c.type: c for c in previous}
    out = []
    for ctype in CONDITION_TYPES:
        v = verdicts[ctype]
        old = before.get(ctype)
        since = old.last_transition_time if old is not None and old.status == v.status else None
        out.append(
            Condition(
                type=ctype,
                status=v.status,
                reason=v.reason,
                message=v.message[:_MAX_MESSAGE],
                last_transition_time=since or rfc3339(now),
                observed_generation=generation,
            )
        )
    return out


def merge_conditions(
    previous: Sequence[Mapping[str, Any]] | None,
    verdicts: Mapping[str, Verdict],
    *,
    now: float,
    generation: int,
) -> list[dict[str, Any]]:
    """`condition_list` on and to documents (an invalid policy's status is otherwise kept as it is)."""
    old = PolicyStatus.read({"conditions": list(previous or ())}).conditions
    return [c.doc() for c in condition_list(old, verdicts, now=now, generation=generation)]


def _failures(failures: Sequence[PodFailure]) -> list[PodFailureEntry]:
    seen: set[str] = set()
    out = []
    for f in failures:
        if f.pod in seen:
            continue
        seen.add(f.pod)
        out.append(PodFailureEntry(name=f.pod, reason=f.reason, message=f"{f.source}: {f.message}"[:500]))
        if len(out) == MAX_FAILURES_LISTED:
            break
    return out


def _fit_section(o: CycleOutcome) -> FitSection | None:
    f = o.fit
    if f is None or f.qps is None or f.heap_slope_mb_per_s is None:
        return None
    return FitSection(
        qps=round(f.qps, 3),
        qps_source=f.qps_source,
        heap_slope_mb_per_sec=round(f.heap_slope_mb_per_s, 4),
        r2=round(f.r2, 4) if f.r2 is not None else 0.0,
        samples=f.samples,
        pods=f.pods,
        window_seconds=round(f.window_s, 1),
    )


def _recommendation_section(o: CycleOutcome) -> RecommendationSection | None:
    rec = o.recommendation
    if rec is None:
        return None
    return RecommendationSection(
        gogc=rec.gogc,
        gomemlimit=o.gomemlimit,
        strategy=rec.strategy,
        explanation=rec.explanation[:1000],
        inputs=RecommendationInputs.model_validate(dict(rec.inputs)),
        time=rfc3339(o.time),
    )


def _decision_section(o: CycleOutcome) -> DecisionSection | None:
    d = o.decision
    if d is None:
        return None
    return DecisionSection(
        action=d.action.capitalize(), code=d.code, reason=d.reason[:500], time=rfc3339(o.time)
    )


def _applied_section(o: CycleOutcome, prev: PolicyStatus) -> AppliedSection | None:
    a = o.applied
    if a is not None:
        return AppliedSection(
            gogc=a.gogc, gomemlimit=a.gomemlimit, method=a.method, time=rfc3339(a.time), pods=a.pods
        )
    if prev.applied is not None and (o.enforcing or prev.applied.method == "EnvPatch"):
        # Endpoint values lapse with their lease once gc-tuner stops renewing; env values stay.
        return prev.applied
    return None


def _gctrace_section(o: CycleOutcome) -> GCTraceSection | None:
    g = o.gctrace
    if g is None:
        return None
    return GCTraceSection(
        cycles=g.cycles,
        pods=g.pods,
        stw_p99_ms=round(g.stw_p99_ms, 4) if g.stw_p99_ms is not None else None,
        effective_gogc_median=(
            round(g.effective_gogc_median, 1) if g.effective_gogc_median is not None else None
        ),
    )


def build_status(o: CycleOutcome, previous: Mapping[str, Any] | None, *, generation: int) -> dict[str, Any]:
    """The whole status document after cycle `o`. Sections the cycle could not compute keep their
    previous value (a recommendation stays visible while a new window fills)."""
    prev = PolicyStatus.read(previous)
    sampling, recommending, applied = _sampling(o), _recommending(o), _applied(o)
    verdicts = {
        "Sampling": sampling,
        "Recommending": recommending,
        "Applied": applied,
        "LeakSuspected": o.leak,
        "Degraded": _degraded(o),
        "Ready": _ready(sampling, recommending, applied, o),
    }
    status = PolicyStatus(
        observed_generation=generation,
        conditions=condition_list(prev.conditions, verdicts, now=o.time, generation=generation),
        pods=PodsSection(
            matched=o.pods_matched,
            ready=o.pods_ready,
            sampled=o.pods_sampled,
            failing=len({f.pod for f in o.failures}),
            failures=_failures(o.failures),
        ),
        fit=_fit_section(o) or prev.fit,
        recommendation=_recommendation_section(o) or prev.recommendation,
        decision=_decision_section(o) or prev.decision,
        applied=_applied_section(o, prev),
        gctrace=_gctrace_section(o) or prev.gctrace,
        **_guard_sections(o, prev),
    )
    return status.doc()


def _guard_sections(o: CycleOutcome, prev: PolicyStatus) -> dict[str, Any]:
    """status.rollout, lastRollback and history: from this cycle's guard step in Enforce; kept as they
    were otherwise (a DryRun policy shows the last rollback it had, and no phase)."""
    step = o.guard
    if step is None or step.memory is None:
        return {
            "rollout": prev.rollout if o.enforcing else None,
            "last_rollback": prev.last_rollback,
            "history": prev.history,
        }
    return {
        "rollout": rollout_section(step),
        "last_rollback": rollback_section(step.memory.last_rollback),
        "history": history_items(step.memory),
    }
