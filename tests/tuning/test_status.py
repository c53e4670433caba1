"""The status document: conditions (all present, transition times kept), bounded failures, sections."""

from __future__ import annotations

import dataclasses
from typing import Any

from gc_tuner.model.sample import RuntimeSample
from gc_tuner.tuning.conditions import CONDITION_TYPES, MAX_FAILURES_LISTED, build_status
from gc_tuner.tuning.outcome import CycleOutcome, Fitted, Gathered
from gc_tuner.tuning.records import (
    AppliedState,
    FitSummary,
    PodFailure,
    PodReading,
    PodTarget,
    Verdict,
    parse_rfc3339,
    rfc3339,
)
from gc_tuner.tuning.rollout import ApplyResult
from gc_tuner.tuning.strategies import Recommendation

T0 = 1_700_000_000.0


def outcome(
    *,
    pods_matched: int = 0,
    pods_sampled: int = 0,
    fit: FitSummary | None = None,
    recommendation_gogc: int | None = None,
    recommendation_explanation: str = "",
    applied: AppliedState | None = None,
    apply_verdict: Verdict | None = None,
    **kw: Any,
) -> CycleOutcome:
    """A cycle's outcome from the figures a status test cares about."""
    sample = RuntimeSample(t=T0, source="agent")
    readings = tuple(PodReading(PodTarget(f"p{i}", "h"), sample) for i in range(pods_sampled))
    rec = None
    if recommendation_gogc is not None:
        rec = Recommendation(recommendation_gogc, recommendation_explanation, "Formula")
    result = None
    if applied is not None or apply_verdict is not None:
        result = ApplyResult(applied, None, applied, apply_verdict or Verdict("True", "InSync"))
    return CycleOutcome(
        gathered=Gathered(pods_matched=pods_matched, readings=readings),
        fitted=Fitted((), fit, Verdict("Unknown", "InsufficientData")) if fit is not None else None,
        recommendation=rec,
        result=result,
        **kw,
    )


def conds(status: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    return {c["type"]: c for c in status["conditions"]}


def fit(qps: float = 100.0, slope: float = 0.5) -> FitSummary:
    return FitSummary(qps, "Counter", slope, 0.9, 12, 2, 30.0)


def test_first_visit_sets_every_condition() -> None:
    s = build_status(outcome(time=T0, mode="DryRun", method="Endpoint"), None, generation=3)
    c = conds(s)
    assert list(c) == list(CONDITION_TYPES)
    assert c["Sampling"]["status"] == "False" and c["Sampling"]["reason"] == "NoPodsMatched"
    assert c["Recommending"]["reason"] == "InsufficientData"
    assert c["LeakSuspected"]["status"] == "Unknown"
    assert all(x["observedGeneration"] == 3 and x["lastTransitionTime"] == rfc3339(T0) for x in c.values())
    assert s["observedGeneration"] == 3


def test_transition_time_kept_while_status_unchanged_and_moved_on_change() -> None:
    o1 = outcome(time=T0, mode="DryRun", method="Endpoint", pods_matched=2, pods_sampled=2)
    s1 = build_status(o1, None, generation=1)
    o2 = outcome(
        time=T0 + 30,
        mode="DryRun",
        method="Endpoint",
        pods_matched=2,
        pods_sampled=2,
        fit=fit(),
        recommendation_gogc=90,
        recommendation_explanation="x",
    )
    s2 = build_status(o2, s1, generation=1)
    c1, c2 = conds(s1), conds(s2)
    assert c2["Sampling"]["lastTransitionTime"] == c1["Sampling"]["lastTransitionTime"] == rfc3339(T0)
    assert c2["Recommending"]["status"] == "True"
    assert c2["Recommending"]["lastTransitionTime"] == rfc3339(T0 + 30)
    assert c2["Ready"]["status"] == "True"  # DryRun needs no Applied
    assert s2["recommendation"]["gogc"] == 90 and s2["fit"]["qps"] == 100.0


def test_degraded_names_the_most_common_reason_and_lists_bounded_failures() -> None:
    failures = [PodFailure(f"p{i}", "agent", "AuthFailed", "HTTP 403") for i in range(15)]
    failures.append(PodFailure("q", "prometheus", "MalformedData", "garbage"))
    o = outcome(
        time=T0, mode="Enforce", method="Endpoint", pods_matched=17, pods_sampled=1, failures=tuple(failures)
    )
    s = build_status(o, None, generation=1)
    d = conds(s)["Degraded"]
    assert d["status"] == "True" and d["reason"] == "AuthFailed"
    assert s["pods"]["failing"] == 16
    assert len(s["pods"]["failures"]) == MAX_FAILURES_LISTED
    assert s["pods"]["failures"][0] == {"name": "p0", "reason": "AuthFailed", "message": "agent: HTTP 403"}


def test_enforce_ready_needs_applied_and_kill_switch_reports_itself() -> None:
    o = outcome(
        time=T0,
        mode="Enforce",
        method="Endpoint",
        pods_matched=1,
        pods_sampled=1,
        fit=fit(),
        recommendation_gogc=80,
        applied=AppliedState(80, None, "Endpoint", T0, 1),
        apply_verdict=Verdict("False", "PartiallyApplied", "1/2"),
    )
    c = conds(build_status(o, None, generation=1))
    assert c["Ready"]["status"] == "False" and c["Ready"]["reason"] == "PartiallyApplied"
    o = dataclasses.replace(o, kill_switch=True)
    c = conds(build_status(o, None, generation=1))
    assert c["Applied"]["reason"] == "OperatorDryRun"
    assert c["Ready"]["status"] == "True"


def test_sections_survive_a_cycle_without_data_but_endpoint_applied_lapses_in_dry_run() -> None:
    o = outcome(
        time=T0,
        mode="Enforce",
        method="Endpoint",
        pods_matched=1,
        pods_sampled=1,
        fit=fit(),
        recommendation_gogc=80,
        applied=AppliedState(80, "900MiB", "Endpoint", T0, 1),
    )
    s1 = build_status(o, None, generation=1)
    assert s1["applied"] == {
        "gogc": 80,
        "gomemlimit": "900MiB",
        "method": "Endpoint",
        "time": rfc3339(T0),
        "pods": 1,
    }
    empty = outcome(time=T0 + 5, mode="Enforce", method="Endpoint", pods_matched=1)
    s2 = build_status(empty, s1, generation=1)
    assert s2["recommendation"] == s1["recommendation"] and s2["applied"] == s1["applied"]
    dry = outcome(time=T0 + 5, mode="DryRun", method="Endpoint", pods_matched=1)
    assert "applied" not in build_status(dry, s1, generation=2)


def test_target_not_found_is_degraded_and_not_sampling() -> None:
    o = outcome(
        time=T0,
        mode="DryRun",
        method="EnvPatch",
        target_error=Verdict("True", "TargetNotFound", "Deployment ns/web not found"),
    )
    c = conds(build_status(o, None, generation=1))
    assert c["Sampling"]["status"] == "False" and c["Sampling"]["reason"] == "TargetNotFound"
    assert c["Degraded"]["status"] == "True" and c["Degraded"]["reason"] == "TargetNotFound"


def test_rfc3339_round_trip() -> None:
    assert parse_rfc3339(rfc3339(T0)) == T0
    assert parse_rfc3339("yesterday") is None


def test_envpatch_applied_says_gomemlimit_is_pending_on_pods_with_their_own_limit() -> None:
    from gc_tuner.tuning.strategies import MemoryLimitTarget

    mem = MemoryLimitTarget(
        230 << 20, "230MiB", "90% of 256Mi", per_pod={"web-a": 230 << 20, "web-b": 460 << 20}
    )
    o = outcome(
        pods_matched=2,
        pods_sampled=2,
        applied=AppliedState(80, "230MiB", "EnvPatch", T0),
        apply_verdict=Verdict("True", "InSync", "GOGC 80 in the template"),
        memory=mem,
        method="EnvPatch",
        mode="Enforce",
        time=T0,
    )
    applied = conds(build_status(o, None, generation=1))["Applied"]
    assert (applied["status"], applied["reason"]) == ("True", "InSync")
    assert "GOMEMLIMIT pending on 1 pod(s)" in applied["message"] and "web-b (460MiB)" in applied["message"]
    assert "web-a" not in applied["message"]
    # The Endpoint method writes each pod's own limit: nothing is pending there.
    endpoint = dataclasses.replace(o, method="Endpoint")
    assert "pending" not in conds(build_status(endpoint, None, generation=1))["Applied"]["message"]
