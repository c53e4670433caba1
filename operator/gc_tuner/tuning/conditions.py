"""The GCPolicy status document, as a pure function of one cycle's outcome and the previous status.

Conditions follow the API conventions: every type is present from the first visit (Unknown until
known), reasons are CamelCase, and `lastTransitionTime` changes only when `status` changes.

    Sampling       at least one matched pod was sampled this cycle
    Recommending   the fit had enough data for a recommendation
    Applied        (Enforce) the applied values are in force on every ready pod
    LeakSuspected  the live heap grows at least leakDetection's slope with a good fit
    Degraded       some pod (or the target) fails: reason of the most frequent failure
    Ready          Sampling and Recommending, and in Enforce also Applied
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from gc_tuner.tuning.records import CycleOutcome, PodFailure, Verdict, rfc3339

__all__ = ["CONDITION_TYPES", "MAX_FAILURES_LISTED", "build_status", "merge_conditions"]

CONDITION_TYPES = ("Ready", "Sampling", "Recommending", "Applied", "LeakSuspected", "Degraded")
MAX_FAILURES_LISTED = 10
_MAX_MESSAGE = 2000


def _sampling(o: CycleOutcome) -> Verdict:
    if o.target_error is not None:
        return Verdict("False", o.target_error.reason, o.target_error.message)
    if o.pods_matched == 0:
        return Verdict("False", "NoPodsMatched", "no running pod matches the target's selector")
    if o.pods_sampled == 0:
        return Verdict("False", "AllPodsFailing", f"none of {o.pods_matched} matched pods could be sampled")
    return Verdict("True", "PodsSampled", f"{o.pods_sampled}/{o.pods_matched} pods sampled")


def _recommending(o: CycleOutcome) -> Verdict:
    if o.recommendation_gogc is not None:
        return Verdict("True", "Recommended", o.recommendation_explanation)
    why = o.fit.insufficient if o.fit is not None and o.fit.insufficient else "no pod sampled yet"
    return Verdict("False", "InsufficientData", why)


def _applied(o: CycleOutcome) -> Verdict:
    if o.kill_switch:
        return Verdict("False", "OperatorDryRun", "the operator runs with --dry-run: nothing is applied")
    if o.mode != "Enforce":
        return Verdict("False", "DryRun", "mode is DryRun: recommendations only")
    if o.apply_verdict is not None:
        return o.apply_verdict
    return Verdict("Unknown", "NothingApplied", "no recommendation has been applied yet")


def _degraded(o: CycleOutcome) -> Verdict:
    if o.target_error is not None:
        return Verdict("True", o.target_error.reason, o.target_error.message)
    if not o.failures:
        return Verdict(
            "False", "Healthy", "every matched pod was sampled" + (" and tuned" if o.enforcing else "")
        )
    counts = Counter(f.reason for f in o.failures)
    reason = counts.most_common(1)[0][0]
    pods = sorted({f.pod for f in o.failures})
    detail = "; ".join(
        f"{f.pod} {f.source}: {f.reason}: {f.message}" for f in o.failures[:MAX_FAILURES_LISTED]
    )
    return Verdict("True", reason, f"{len(pods)} pod(s) failing: {detail}")


def _ready(sampling: Verdict, recommending: Verdict, applied: Verdict, o: CycleOutcome) -> Verdict:
    needed = [sampling, recommending] + ([applied] if o.enforcing else [])
    for v in needed:
        if v.status != "True":
            return Verdict("False", v.reason, v.message)
    return Verdict("True", "Ready", "tuning" if o.enforcing else "recommending (dry run)")


def merge_conditions(
    previous: Sequence[Mapping[str, Any]] | None,
    verdicts: Mapping[str, Verdict],
    *,
    now: float,
    generation: int,
) -> list[dict[str, Any]]:
    """Conditions for `verdicts`, keeping each one's lastTransitionTime while its status is unchanged."""
    before = {c.get("type"): c for c in previous or ()}
    out = []
    for ctype in CONDITION_TYPES:
        v = verdicts[ctype]
        old = before.get(ctype)
        since = old.get("lastTransitionTime") if old and old.get("status") == v.status else None
        out.append(
            {
                "type": ctype,
                "status": v.status,
                "reason": v.reason,
                "message": v.message[:_MAX_MESSAGE],
                "lastTransitionTime": since or rfc3339(now),
                "observedGeneration": generation,
            }
        )
    return out


def _failures(failures: Sequence[PodFailure]) -> list[dict[str, str]]:
    seen: set[str] = set()
    out = []
    for f in failures:
        if f.pod in seen:
            continue
        seen.add(f.pod)
        out.append({"name": f.pod, "reason": f.reason, "message": f"{f.source}: {f.message}"[:500]})
        if len(out) == MAX_FAILURES_LISTED:
            break
    return out


def build_status(o: CycleOutcome, previous: Mapping[str, Any] | None, *, generation: int) -> dict[str, Any]:
    """The whole status document after cycle `o`. Sections the cycle could not compute keep their
    previous value (a recommendation stays visible while a new window fills)."""
    prev = dict(previous or {})
    sampling, recommending, applied = _sampling(o), _recommending(o), _applied(o)
    verdicts = {
        "Sampling": sampling,
        "Recommending": recommending,
        "Applied": applied,
        "LeakSuspected": o.leak,
        "Degraded": _degraded(o),
        "Ready": _ready(sampling, recommending, applied, o),
    }
    failing = len({f.pod for f in o.failures})
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": merge_conditions(prev.get("conditions"), verdicts, now=o.time, generation=generation),
        "pods": {
            "matched": o.pods_matched,
            "ready": o.pods_ready,
            "sampled": o.pods_sampled,
            "failing": failing,
            "failures": _failures(o.failures),
        },
    }
    if o.fit is not None and o.fit.complete:
        assert o.fit.qps is not None and o.fit.heap_slope_mb_per_s is not None
        status["fit"] = {
            "qps": round(o.fit.qps, 3),
            "qpsSource": o.fit.qps_source,
            "heapSlopeMBPerSec": round(o.fit.heap_slope_mb_per_s, 4),
            "r2": round(o.fit.r2, 4) if o.fit.r2 is not None else 0.0,
            "samples": o.fit.samples,
            "pods": o.fit.pods,
            "windowSeconds": round(o.fit.window_s, 1),
        }
    elif "fit" in prev:
        status["fit"] = prev["fit"]
    if o.recommendation_gogc is not None:
        rec: dict[str, Any] = {
            "gogc": o.recommendation_gogc,
            "strategy": o.recommendation_strategy,
            "explanation": o.recommendation_explanation[:1000],
            "inputs": dict(o.recommendation_inputs),
            "time": rfc3339(o.time),
        }
        if o.gomemlimit is not None:
            rec["gomemlimit"] = o.gomemlimit
        status["recommendation"] = rec
    elif "recommendation" in prev:
        status["recommendation"] = prev["recommendation"]
    if o.decision is not None:
        status["decision"] = {
            "action": o.decision.action.capitalize(),
            "code": o.decision.code,
            "reason": o.decision.reason[:500],
            "time": rfc3339(o.time),
        }
    elif "decision" in prev:
        status["decision"] = prev["decision"]
    if o.applied is not None:
        a: dict[str, Any] = {
            "method": o.applied.method,
            "time": rfc3339(o.applied.time),
            "pods": o.applied.pods,
        }
        if o.applied.gogc is not None:
            a["gogc"] = o.applied.gogc
        if o.applied.gomemlimit is not None:
            a["gomemlimit"] = o.applied.gomemlimit
        status["applied"] = a
    elif "applied" in prev and (o.enforcing or prev["applied"].get("method") == "EnvPatch"):
        # Endpoint values lapse with their lease once gc-tuner stops renewing; env values stay.
        status["applied"] = prev["applied"]
    if o.gctrace is not None:
        g: dict[str, Any] = {"cycles": o.gctrace.cycles, "pods": o.gctrace.pods}
        if o.gctrace.stw_p99_ms is not None:
            g["stwP99Ms"] = round(o.gctrace.stw_p99_ms, 4)
        if o.gctrace.effective_gogc_median is not None:
            g["effectiveGOGCMedian"] = round(o.gctrace.effective_gogc_median, 1)
        status["gctrace"] = g
    elif "gctrace" in prev:
        status["gctrace"] = prev["gctrace"]
    return status
