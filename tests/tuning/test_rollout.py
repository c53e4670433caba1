"""The rollout planner's rules as tables: takeover, renewals, in-sync, partial, conflicts, verdicts.

Each row gives the prior applied state, the decision and what the pods or the Deployment show, and
the plan (or its settled result) the planner must produce. No I/O: the planner is pure.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from gc_tuner.actuation.envpatch import EnvPlan
from gc_tuner.input.agent_doc import AgentBounds, AgentLease, AgentSettings, AgentStatus
from gc_tuner.model.policy import GCPolicySpec, parse_policy
from gc_tuner.model.sample import MiB, RuntimeSample
from gc_tuner.tuning.decide import current_settings
from gc_tuner.tuning.discovery import WorkloadInfo
from gc_tuner.tuning.env_gate import EnvHalt, TemplateFacts
from gc_tuner.tuning.records import AppliedState, DecisionInfo, PodFailure, PodReading, PodTarget
from gc_tuner.tuning.rollout import (
    ApplyPlan,
    plan_endpoint,
    plan_envpatch,
    renew_margin_s,
    settle_endpoint,
    settle_envpatch,
)
from gc_tuner.tuning.state import PolicyState
from gc_tuner.tuning.strategies import MemoryLimitTarget, memory_target

T0 = 1_700_000_000.0
OWNER = "gc-tuner/ns/web"
NO_LIMIT = MemoryLimitTarget(None, None, "memoryLimit.mode is Off")
LIMIT = MemoryLimitTarget(900 * MiB, "900MiB", "fixed 900Mi")


def spec(**over: Any) -> GCPolicySpec:
    doc: dict[str, Any] = {
        "targetRef": {"name": "web"},
        "mode": "Enforce",
        "sampling": {"intervalSeconds": 5, "windowSeconds": 60, "sources": {"agent": {"port": 8080}}},
        "qps": {"agent": {}},
        "rollout": {"method": "Endpoint", "endpoint": {"port": 8080}, "leaseSeconds": 120},
    }
    doc.update(over)
    return parse_policy(doc)


def apply(gogc: int, current: int | None = 100) -> DecisionInfo:
    return DecisionInfo("apply", gogc, "Applied", f"recommended {gogc}", current)


def hold(gogc: int, code: str, current: int | None = None) -> DecisionInfo:
    return DecisionInfo("hold", gogc, code, f"held: {code}", current)


def pods(n: int, *, not_ready: int = 0) -> list[PodTarget]:
    ready = [PodTarget(f"p{i}", f"10.0.0.{i}") for i in range(n)]
    return ready + [PodTarget(f"q{i}", f"10.0.1.{i}", ready=False) for i in range(not_ready)]


def reading(pod: PodTarget, *, gogc: int = 100, leased: int | None = None, left: float = 100.0) -> PodReading:
    """A pod's reading; `leased` = the GOGC it runs under our lease with `left` seconds to go."""
    lease = AgentLease(OWNER, datetime.now(UTC), left) if leased is not None else None
    status = AgentStatus(
        go_version="go1.26.0",
        gomaxprocs=2,
        current=AgentSettings(leased if leased is not None else gogc, None),
        startup=AgentSettings(100, None),
        lease=lease,
        bounds=AgentBounds(10, 1000, 1 << 20, 3600),
        writes_enabled=True,
    )
    sample = RuntimeSample(t=T0, source="agent", gogc=leased if leased is not None else gogc)
    return PodReading(pod, sample, status)


def endpoint(
    prior: AppliedState | None,
    decision: DecisionInfo | None,
    targets: list[PodTarget],
    readings: list[PodReading] | None = None,
    *,
    mem: MemoryLimitTarget = NO_LIMIT,
    s: GCPolicySpec | None = None,
) -> ApplyPlan:
    return plan_endpoint(
        s or spec(),
        prior,
        prior.time if prior is not None else None,
        decision,
        mem,
        targets,
        readings if readings is not None else [reading(p) for p in targets],
        owner=OWNER,
        at=T0,
        now=T0,
    )


OURS = AppliedState(80, None, "Endpoint", T0 - 600)
FROM_ENV = AppliedState(70, None, "EnvPatch", T0 - 600)


# -- Endpoint: what the plan writes and which state it leads to -------------------------------------

ENDPOINT_PLANS = [
    # (case, prior, decision, state gogc, state time, change_at, writes, event)
    ("first apply", None, apply(60), 60, T0, T0, 3, "GOGCApplied"),
    ("apply over ours", OURS, apply(60, 80), 60, T0, T0, 3, "GOGCApplied"),
    ("takeover at target", None, hold(100, "AtTarget"), 100, T0, None, 3, None),
    ("ours at target stays ours", OURS, hold(80, "AtTarget", 80), 80, OURS.time, OURS.time, 3, None),
    ("cooling down renews ours", OURS, hold(80, "CoolingDown", 80), 80, OURS.time, OURS.time, 3, None),
    ("nothing held, hysteresis", None, hold(100, "WithinHysteresis"), None, None, None, 0, None),
    ("no recommendation", None, None, None, None, None, 0, None),
    (
        "EnvPatch state is pushed",
        FROM_ENV,
        hold(70, "CoolingDown"),
        70,
        FROM_ENV.time,
        FROM_ENV.time,
        3,
        None,
    ),
]


@pytest.mark.parametrize(
    ("case", "prior", "decision", "gogc", "time", "change_at", "writes", "event"),
    ENDPOINT_PLANS,
    ids=[row[0] for row in ENDPOINT_PLANS],
)
def test_endpoint_plan(
    case: str,
    prior: AppliedState | None,
    decision: DecisionInfo | None,
    gogc: int | None,
    time: float | None,
    change_at: float | None,
    writes: int,
    event: str | None,
) -> None:
    plan = endpoint(prior, decision, pods(3, not_ready=1))
    assert (plan.state.gogc if plan.state else None, plan.state.time if plan.state else None) == (gogc, time)
    assert plan.change_at == change_at
    assert plan.changing == (decision is not None and decision.action == "apply")
    assert len(plan.writes) == writes
    assert all(w.pod.ready for w in plan.writes)  # a pod that is not ready is never written
    assert [e.reason for e in plan.events] == ([event] if event else [])
    if gogc is None:
        assert plan.verdict is not None and plan.verdict.reason == "NothingApplied"
    else:
        assert plan.verdict is None and plan.ready == 3


def test_the_applied_event_names_the_value_before() -> None:
    plan = endpoint(None, apply(60, 100), pods(1), mem=LIMIT)
    (event,) = plan.events
    assert event.message == "GOGC 60 (was 100), GOMEMLIMIT 900MiB through the agent endpoint: recommended 60"
    assert plan.writes[0].memory_limit_bytes == 900 * MiB


LEASES = [
    # (case, reading of the pod, written?)
    ("our value, our lease, time left", {"leased": 80, "left": 100.0}, False),
    ("our value, lease running short", {"leased": 80, "left": 15.0}, True),
    ("another value under our lease", {"leased": 90}, True),
    ("no lease", {"gogc": 80}, True),
]


@pytest.mark.parametrize(("case", "kw", "written"), LEASES, ids=[row[0] for row in LEASES])
def test_a_renewal_is_skipped_only_while_the_lease_holds(
    case: str, kw: dict[str, Any], written: bool
) -> None:
    (pod,) = pods(1)
    plan = endpoint(OURS, hold(80, "CoolingDown", 80), [pod], [reading(pod, **kw)])
    assert renew_margin_s(spec()) == 20.0  # 2 x (interval 5 s + timeout 5 s)
    assert (len(plan.writes), plan.in_force) == ((1, ()) if written else (0, ("p0",)))


def test_each_pod_gets_its_own_memory_limit_from_its_container() -> None:
    s = spec(memoryLimit={"mode": "FromContainerLimit", "percent": 90})
    old, new = (
        PodTarget("old", "10.0.0.1", memory_limit="1Gi"),
        PodTarget("new", "10.0.0.2", memory_limit="2Gi"),
    )
    plan = endpoint(None, apply(60), [old, new], mem=memory_target(s, None, [old, new]), s=s)
    assert {w.pod.name: w.memory_limit_bytes for w in plan.writes} == {
        "old": 921 * MiB,
        "new": 1843 * MiB,
    }  # 90 %, whole MiB down


SETTLED = [
    # (case, ready pods, acked, failures, status, reason)
    ("all acked", 3, ["p0", "p1", "p2"], [], "True", "InSync"),
    ("some acked", 3, ["p0"], [PodFailure("p1", "apply", "Timeout", "")], "False", "PartiallyApplied"),
    ("none acked", 2, [], [PodFailure("p0", "apply", "AuthFailed", "")], "False", "AuthFailed"),
    ("none acked, no failure", 2, [], [], "False", "ApplyFailed"),
    ("no ready pod", 0, [], [], "False", "NoReadyPods"),
]


@pytest.mark.parametrize(
    ("case", "ready", "acked", "failures", "status", "reason"), SETTLED, ids=[row[0] for row in SETTLED]
)
def test_endpoint_verdict(
    case: str, ready: int, acked: list[str], failures: list[PodFailure], status: str, reason: str
) -> None:
    plan = endpoint(None, apply(60), pods(ready))
    result = settle_endpoint(plan, acked, failures)
    assert (result.verdict.status, result.verdict.reason) == (status, reason)
    assert result.applied is not None and result.applied.pods == len(acked)
    assert result.state == plan.state and result.changed and list(result.failures) == failures


def test_pods_whose_lease_holds_count_as_acked() -> None:
    a, b = pods(2)
    plan = endpoint(OURS, hold(80, "CoolingDown", 80), [a, b], [reading(a, leased=80), reading(b)])
    result = settle_endpoint(plan, ["p1"], [])
    assert result.verdict.reason == "InSync" and result.applied is not None and result.applied.pods == 2
    assert not result.changed


def test_nothing_applied_settles_without_writes() -> None:
    plan = endpoint(None, hold(100, "WithinHysteresis"), pods(2))
    result = settle_endpoint(plan, [], [])
    assert (result.state, result.applied, result.verdict.reason) == (None, None, "NothingApplied")


# -- EnvPatch -------------------------------------------------------------------------------------


def workload(
    *, gogc: str | None = "100", value_from: tuple[str, ...] = (), complete: bool = True, updated: int = 3
) -> WorkloadInfo:
    return WorkloadInfo(
        name="web",
        container="app",
        selector={"matchLabels": {"app": "web"}},
        memory_limit=None,
        env={"GOGC": gogc} if gogc is not None else {},
        env_value_from=value_from,
        annotations={},
        replicas=3,
        updated_ready=updated,
        rollout_complete=complete,
    )


def envpatch(prior: AppliedState | None, decision: DecisionInfo | None, w: WorkloadInfo | None) -> ApplyPlan:
    return plan_envpatch(prior, prior.time if prior else None, decision, LIMIT, w, owner=OWNER, at=T0)


PATCHED = EnvPlan("app", {"spec": {}}, {"GOGC": ("100", "60")})
UNCHANGED = EnvPlan("app", None, {})
ENV_PRIOR = AppliedState(60, "900MiB", "EnvPatch", T0 - 600)

ENVPATCH = [
    # (case, prior, decision, workload, patched, error, status, reason, state gogc, changed, events)
    (
        "patched",
        None,
        apply(60),
        workload(),
        PATCHED,
        None,
        "False",
        "RolloutInProgress",
        60,
        True,
        ["EnvPatched"],
    ),
    (
        "patch changed nothing",
        None,
        apply(60),
        workload(),
        UNCHANGED,
        None,
        "Unknown",
        "NothingApplied",
        None,
        False,
        [],
    ),
    (
        "patch failed",
        ENV_PRIOR,
        apply(50, 60),
        workload(gogc="60"),
        None,
        PodFailure("web", "apply", "Conflict", "409"),
        "False",
        "EnvPatchFailed",
        60,
        False,
        [],
    ),
    (
        "template at target",
        None,
        hold(100, "AtTarget", 100),
        workload(),
        None,
        None,
        "True",
        "InSync",
        None,
        False,
        [],
    ),
    (
        "at target mid-rollout",
        None,
        hold(100, "AtTarget", 100),
        workload(complete=False),
        None,
        None,
        "Unknown",
        "NothingApplied",
        None,
        False,
        [],
    ),
    (
        "ours, rollout done",
        ENV_PRIOR,
        hold(60, "CoolingDown", 60),
        workload(gogc="60"),
        None,
        None,
        "True",
        "InSync",
        60,
        False,
        [],
    ),
    (
        "ours, rolling out",
        ENV_PRIOR,
        hold(60, "CoolingDown", 60),
        workload(gogc="60", complete=False, updated=1),
        None,
        None,
        "False",
        "RolloutInProgress",
        60,
        False,
        [],
    ),
    (
        "valueFrom, no patch",
        None,
        hold(100, "AtTarget", 100),
        workload(value_from=("GOGC",)),
        None,
        None,
        "False",
        "ValueFromConflict",
        None,
        False,
        [],
    ),
    (
        "valueFrom, patched the rest",
        None,
        apply(60),
        workload(value_from=("GOMEMLIMIT",)),
        PATCHED,
        None,
        "False",
        "ValueFromConflict",
        60,
        True,
        ["EnvPatched"],
    ),
]


@pytest.mark.parametrize(
    ("case", "prior", "decision", "w", "patched", "error", "status", "reason", "gogc", "changed", "events"),
    ENVPATCH,
    ids=[row[0] for row in ENVPATCH],
)
def test_envpatch(
    case: str,
    prior: AppliedState | None,
    decision: DecisionInfo | None,
    w: WorkloadInfo,
    patched: EnvPlan | None,
    error: PodFailure | None,
    status: str,
    reason: str,
    gogc: int | None,
    changed: bool,
    events: list[str],
) -> None:
    plan = envpatch(prior, decision, w)
    result = settle_envpatch(plan, w, patched, error)
    assert (result.verdict.status, result.verdict.reason) == (status, reason)
    assert (result.state.gogc if result.state else None) == gogc
    assert result.changed == changed and result.change_at == (T0 if changed else plan.prior_change_at)
    assert [e.reason for e in result.events] == events
    if reason in ("ValueFromConflict", "EnvPatchFailed"):
        assert result.failures and result.failures[-1].reason in ("ValueFromConflict", "Conflict")


def test_envpatch_plan_writes_the_env_and_the_applied_note() -> None:
    plan = envpatch(None, apply(60), workload())
    assert plan.env == {"GOGC": "60", "GOMEMLIMIT": "900MiB"}
    assert plan.note is not None and plan.note.annotation() == (
        '{"gogc": 60, "gomemlimit": "900MiB", "policy": "gc-tuner/ns/web", "time": "2023-11-14T22:13:20Z"}'
    )
    assert envpatch(None, hold(100, "WithinHysteresis"), workload()).env is None


def test_envpatch_without_a_deployment_is_unavailable() -> None:
    plan = envpatch(ENV_PRIOR, apply(50), None)
    result = settle_envpatch(plan, None, None, None)
    assert (result.verdict.reason, result.state) == ("EnvPatchUnavailable", ENV_PRIOR)
    assert plan.env is None


def test_envpatch_applied_figures_come_from_the_template() -> None:
    w = dataclasses.replace(
        workload(gogc="60", updated=2, complete=False), env={"GOGC": "60", "GOMEMLIMIT": "1GiB"}
    )
    result = settle_envpatch(envpatch(ENV_PRIOR, None, w), w, None, None)
    assert result.applied == AppliedState(60, "1GiB", "EnvPatch", ENV_PRIOR.time, 2)
    assert result.verdict.message == "2/3 pods updated"


# -- where the decision starts from -----------------------------------------------------------------

CURRENT = [
    # (case, method, prior, pods' GOGCs, template GOGC, expected (gogc, gomemlimit))
    ("endpoint, ours", "Endpoint", AppliedState(80, "1GiB", "Endpoint", T0), [100], None, (80, "1GiB")),
    ("endpoint, nothing held", "Endpoint", None, [100, 90, 120], None, (100, None)),
    ("endpoint after EnvPatch", "Endpoint", FROM_ENV, [70], None, (70, None)),
    ("envpatch, template", "EnvPatch", None, [100], "60", (60, None)),
    ("envpatch, template not a number", "EnvPatch", None, [90], "off", (90, None)),
]


@pytest.mark.parametrize(
    ("case", "method", "prior", "gogcs", "template", "expected"), CURRENT, ids=[row[0] for row in CURRENT]
)
def test_current_settings(
    case: str,
    method: str,
    prior: AppliedState | None,
    gogcs: list[int],
    template: str | None,
    expected: tuple[int | None, str | None],
) -> None:
    readings = [reading(p, gogc=g) for p, g in zip(pods(len(gogcs)), gogcs, strict=True)]
    w = workload(gogc=template) if method == "EnvPatch" else None
    assert current_settings(method, prior, readings, w) == expected


def test_a_pod_that_could_not_be_read_is_never_written() -> None:
    a, b, c = pods(3)
    unread = PodReading(b, None, None, failures=(PodFailure("p1", "agent", "Timeout", "no answer"),))
    plan = endpoint(None, apply(60), [a, b, c], [reading(a), unread])  # c: no reading at all
    assert [w.pod.name for w in plan.writes] == ["p0"] and plan.unread == ("p1", "p2")
    result = settle_endpoint(plan, ["p0"], [])
    assert (result.verdict.status, result.verdict.reason) == ("False", "PartiallyApplied")
    assert result.verdict.message.endswith("not written, unread this cycle: p1, p2")


# -- EnvPatch gates: someone else's change, a pause, a rollout under way, a StatefulSet's strategy -----


def facts(
    gogc: str | None = "60",
    *,
    gomemlimit: str | None = "900MiB",
    kind: str = "Deployment",
    owners: tuple[str, ...] = ("gc-tuner",),
    last_writer: str | None = None,
    **over: Any,
) -> TemplateFacts:
    env = {k: v for k, v in (("GOGC", gogc), ("GOMEMLIMIT", gomemlimit)) if v is not None}
    base: dict[str, Any] = {
        "kind": kind,
        "name": "web",
        "container": "app",
        "generation": 4,
        "observed_generation": 4,
        "replicas": 3,
        "current": 3,
        "updated": 3,
        "available": 3,
        "env": env,
        "value_owners": {"GOGC": owners, "GOMEMLIMIT": ("gc-tuner",)},
        "last_writer": last_writer,
        "written": ("GOGC", "GOMEMLIMIT"),
    }
    base.update(over)
    return TemplateFacts(**base)


def gated(
    decision: DecisionInfo | None,
    t: TemplateFacts,
    *,
    prior: AppliedState | None = ENV_PRIOR,
    halt: EnvHalt | None = None,
    generation: int = 3,
) -> ApplyPlan:
    w = workload(gogc=t.env.get("GOGC"))
    return plan_envpatch(
        prior,
        prior.time if prior else None,
        decision,
        LIMIT,
        w,
        owner=OWNER,
        at=T0,
        template=t,
        halt=halt,
        generation=generation,
    )


def settled(plan: ApplyPlan, patched: EnvPlan | None = None) -> Any:
    return settle_envpatch(
        plan, workload(gogc=plan.template.env.get("GOGC") if plan.template else "60"), patched, None
    )


def test_someone_elses_value_stops_every_write_and_names_the_field_manager() -> None:
    reverted = facts("100", owners=("argocd-controller",))
    plan = gated(apply(50, 100), reverted)
    assert plan.env is None and not plan.changing
    result = settled(plan)
    assert (result.verdict.status, result.verdict.reason) == ("False", "ExternalChange")
    assert (
        'GOGC 60 -> 100, changed by field manager "argocd-controller", not gc-tuner' in result.verdict.message
    )
    (failure,) = result.failures
    assert failure.reason == "ExternalChange" and '"argocd-controller"' in failure.message
    assert result.halt == EnvHalt(3) and result.state == ENV_PRIOR and not result.changed


def test_a_removed_value_names_the_latest_writer_of_the_env() -> None:
    removed = facts("60", gomemlimit=None, last_writer="kubectl-edit")
    result = settled(gated(hold(60, "CoolingDown", 60), removed))
    assert result.verdict.reason == "ExternalChange"
    assert "GOMEMLIMIT 900MiB -> removed" in result.verdict.message
    assert '"kubectl-edit" (the latest writer of the container\'s env)' in result.verdict.message


STOPPED = [
    # (case, template, halt, generation, decision, reason, writes, halt after, state gogc)
    (
        "stopped, same generation",
        facts("100"),
        EnvHalt(3),
        3,
        apply(50, 100),
        "ExternalChange",
        False,
        EnvHalt(3),
        60,
    ),
    ("values ours again", facts("60"), EnvHalt(3), 3, hold(60, "CoolingDown", 60), "InSync", False, None, 60),
    (
        "values ours again, apply",
        facts("60"),
        EnvHalt(3),
        3,
        apply(50, 60),
        "RolloutInProgress",
        True,
        None,
        50,
    ),
    ("spec changed, apply", facts("100"), EnvHalt(3), 4, apply(50, 100), "RolloutInProgress", True, None, 50),
    (
        "spec changed, hold",
        facts("100"),
        EnvHalt(3),
        4,
        hold(100, "WithinHysteresis", 100),
        "InSync",
        False,
        None,
        100,
    ),
    (
        "never written: valueFrom",
        facts(None, value_from=("GOGC",), written=("GOMEMLIMIT",)),
        None,
        3,
        None,
        "ValueFromConflict",
        False,
        None,
        60,
    ),
    (
        "nothing ours",
        facts("100"),
        None,
        3,
        hold(100, "WithinHysteresis", 100),
        "NothingApplied",
        False,
        None,
        None,
    ),
]


@pytest.mark.parametrize(
    ("case", "t", "halt", "generation", "decision", "reason", "writes", "halt_after", "gogc"),
    STOPPED,
    ids=[row[0] for row in STOPPED],
)
def test_stopped_until_the_values_match_or_the_spec_changes(
    case: str,
    t: TemplateFacts,
    halt: EnvHalt | None,
    generation: int,
    decision: DecisionInfo | None,
    reason: str,
    writes: bool,
    halt_after: EnvHalt | None,
    gogc: int | None,
) -> None:
    prior = None if case == "nothing ours" else ENV_PRIOR
    plan = gated(decision, t, prior=prior, halt=halt, generation=generation)
    assert (plan.env is not None) == writes
    w = dataclasses.replace(workload(gogc=t.env.get("GOGC")), env_value_from=t.value_from)
    result = settle_envpatch(plan, w, PATCHED if writes else None, None)
    assert result.verdict.reason == reason
    assert result.halt == halt_after
    assert (result.state.gogc if result.state else None) == gogc


def test_after_a_spec_change_the_templates_values_are_adopted_as_in_force() -> None:
    plan = gated(
        hold(100, "WithinHysteresis", 100), facts("100", gomemlimit=None), halt=EnvHalt(3), generation=4
    )
    assert plan.prior == AppliedState(100, None, "EnvPatch", T0)
    # and they are the baseline from then on: the same template is no longer someone else's change
    again = gated(
        hold(100, "WithinHysteresis", 100), facts("100", gomemlimit=None), prior=plan.prior, generation=4
    )
    assert again.halt is None and again.verdict is None


WAITS = [
    # (case, template, reason, message part)
    (
        "paused",
        facts(paused=True),
        "DeploymentPaused",
        "deployment/web is paused (spec.paused); GOGC 50, GOMEMLIMIT 900MiB waits",
    ),
    ("generation not observed", facts(generation=5), "RolloutInProgress", "not yet observed at generation 5"),
    ("pods not updated", facts(updated=1), "RolloutInProgress", "1/3 pods updated, 3/3 available"),
    ("pods not available", facts(available=2), "RolloutInProgress", "3/3 pods updated, 2/3 available"),
    ("old pods still running", facts(current=4), "RolloutInProgress", "is rolling out"),
    (
        "stalled",
        facts(updated=2, stalled='ReplicaSet "web-2" has timed out progressing.'),
        "RolloutInProgress",
        '(ReplicaSet "web-2" has timed out progressing.)',
    ),
    (
        "statefulset rolling",
        facts(kind="StatefulSet", updated=1),
        "RolloutInProgress",
        "statefulset/web is rolling out: 1/3 pods updated",
    ),
    (
        "statefulset partition rolling",
        facts(kind="StatefulSet", partition=1, updated=1),
        "RolloutInProgress",
        "1/2 pods updated",
    ),
]


@pytest.mark.parametrize(("case", "t", "reason", "message"), WAITS, ids=[row[0] for row in WAITS])
def test_a_write_waits_for_a_pause_or_a_rollout(
    case: str, t: TemplateFacts, reason: str, message: str
) -> None:
    plan = gated(apply(50, 60), t)
    assert plan.env is None and not plan.changing and plan.state == ENV_PRIOR
    result = settled(plan)
    assert (result.verdict.status, result.verdict.reason) == ("False", reason)
    assert message in result.verdict.message
    assert not result.changed and result.change_at == ENV_PRIOR.time  # the cooldown clock is not restarted


NO_WAIT = [
    ("deployment done", facts()),
    ("statefulset partition done", facts(kind="StatefulSet", partition=1, updated=2)),
    ("statefulset OnDelete, pods not recreated", facts(kind="StatefulSet", strategy="OnDelete", updated=1)),
    ("recreate strategy done", facts(strategy="Recreate")),
]


@pytest.mark.parametrize(("case", "t"), NO_WAIT, ids=[row[0] for row in NO_WAIT])
def test_a_write_goes_ahead_once_nothing_is_rolling_out(case: str, t: TemplateFacts) -> None:
    plan = gated(apply(50, 60), t)
    assert plan.env == {"GOGC": "50", "GOMEMLIMIT": "900MiB"} and plan.changing


STATEFULSET = [
    # (case, template, after a patch?, reason, message part)
    (
        "partition: pods below keep theirs",
        facts(kind="StatefulSet", partition=1, updated=2),
        False,
        "Partitioned",
        "the 1 pod(s) below the partition of statefulset/web keep their values",
    ),
    (
        "OnDelete: pending recreate",
        facts(kind="StatefulSet", strategy="OnDelete", updated=1),
        False,
        "PendingRecreate",
        "(1/3 updated so far); gc-tuner never deletes pods",
    ),
    (
        "OnDelete: every pod recreated",
        facts(kind="StatefulSet", strategy="OnDelete"),
        False,
        "InSync",
        "GOGC 60 in force",
    ),
    (
        "OnDelete: just patched",
        facts(kind="StatefulSet", strategy="OnDelete"),
        True,
        "PendingRecreate",
        "reach each pod when it is recreated",
    ),
    (
        "partition: just patched",
        facts(kind="StatefulSet", partition=2, updated=1),
        True,
        "RolloutInProgress",
        "pods at ordinal 2 or above",
    ),
]


@pytest.mark.parametrize(
    ("case", "t", "patch", "reason", "message"), STATEFULSET, ids=[row[0] for row in STATEFULSET]
)
def test_a_statefulsets_strategy_says_which_pods_get_the_value(
    case: str, t: TemplateFacts, patch: bool, reason: str, message: str
) -> None:
    plan = gated(apply(50, 60) if patch else hold(60, "CoolingDown", 60), t)
    result = settled(plan, PATCHED if patch else None)
    assert result.verdict.reason == reason
    assert message in result.verdict.message


def test_a_workload_that_could_not_be_read_is_not_written() -> None:
    unread = PodFailure("web", "read", "TargetUnreadable", "ApiException: (503)")
    plan = plan_envpatch(
        ENV_PRIOR,
        ENV_PRIOR.time,
        apply(50, 60),
        LIMIT,
        workload(gogc="60"),
        owner=OWNER,
        at=T0,
        unread=unread,
        halt=EnvHalt(2),
    )
    assert plan.env is None
    result = settle_envpatch(plan, workload(gogc="60"), None, None)
    assert (result.verdict.reason, result.failures, result.halt) == (
        "TargetUnreadable",
        (unread,),
        EnvHalt(2),
    )


def test_a_stop_survives_a_restart_through_the_applied_condition() -> None:
    status = {
        "conditions": [
            {
                "type": "Applied",
                "status": "False",
                "reason": "ExternalChange",
                "message": "...",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
                "observedGeneration": 7,
            }
        ]
    }
    state = PolicyState(60.0)
    state.restore(status, {})
    assert state.env_halt == EnvHalt(7)
    fresh = PolicyState(60.0)
    fresh.restore({"conditions": [{**status["conditions"][0], "reason": "InSync", "status": "True"}]}, {})
    assert fresh.env_halt is None
