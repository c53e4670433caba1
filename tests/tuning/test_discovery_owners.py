"""Discovery by owner chain (tuning/discovery.py): a pod is the target's by its controller
ownerReferences, never by labels; each pod's memory limit is its own container's in force; a
StatefulSet and a DaemonSet are targets as a Deployment is; the conflict rule between policies."""

from __future__ import annotations

from typing import Any

import pytest

from gc_tuner.model.sample import GCCycle
from gc_tuner.tuning.conflicts import PolicyRef, in_control, policy_ref
from gc_tuner.tuning.discovery import (
    OwnerRef,
    ReplicaSetInfo,
    TargetError,
    method_refusal,
    owned_by,
    pod_info,
    replicaset_info,
    targets_for,
    workload_info,
)
from gc_tuner.tuning.log_tail import tail_overflow


def owner(kind: str, name: str, uid: str, *, controller: bool = True) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid, "controller": controller}


def pod(
    name: str, owners: list[dict[str, Any]], *, labels: dict[str, str] | None = None, **status: Any
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "labels": labels or {"app": "web"},
            "ownerReferences": owners,
        },
        "spec": {
            "containers": [
                {"name": "proxy", "resources": {"limits": {"memory": "64Mi"}}},
                {"name": "app", "resources": {"limits": {"memory": "512Mi"}}},
            ]
        },
        "status": {
            "phase": "Running",
            "podIP": "127.0.1.2",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "proxy", "restartCount": 0}, {"name": "app", "restartCount": 3}],
            **status,
        },
    }


def workload(kind: str, name: str = "web", uid: str = "dep-uid", **status: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "metadata": {"name": name, "uid": uid, "generation": 2},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "spec": {
                    "containers": [
                        {"name": "proxy", "ports": [{"containerPort": 15001}]},
                        {"name": "app", "ports": [{"containerPort": 8080}]},
                    ]
                }
            },
        },
        "status": {"observedGeneration": 2, **status},
    }


RS = {
    "rs-web": ReplicaSetInfo("web-5d9", "rs-web", OwnerRef("Deployment", "web", "dep-uid")),
    "rs-canary": ReplicaSetInfo("web-canary-77", "rs-canary", OwnerRef("Deployment", "web-canary", "c-uid")),
    "rs-old": ReplicaSetInfo("web-1a2", "rs-old", OwnerRef("Deployment", "web", "old-dep-uid")),
    "rs-bare": ReplicaSetInfo("web-bare", "rs-bare", None),
}


@pytest.mark.parametrize(
    ("kind", "owners", "mine"),
    [
        ("Deployment", [owner("ReplicaSet", "web-5d9", "rs-web")], True),
        # same labels, another Deployment's ReplicaSet (a canary)
        ("Deployment", [owner("ReplicaSet", "web-canary-77", "rs-canary")], False),
        # a debug pod: the labels match, nothing owns it
        ("Deployment", [], False),
        # owned, but not as its controller (an ownerReference for garbage collection only)
        ("Deployment", [owner("ReplicaSet", "web-5d9", "rs-web", controller=False)], False),
        # a ReplicaSet left from an earlier Deployment of the same name (another uid)
        ("Deployment", [owner("ReplicaSet", "web-1a2", "rs-old")], False),
        # an orphaned ReplicaSet, and one the index has not seen
        ("Deployment", [owner("ReplicaSet", "web-bare", "rs-bare")], False),
        ("Deployment", [owner("ReplicaSet", "web-zzz", "rs-unknown")], False),
        # a ReplicaSet uid reused under another name cannot happen, but a name mismatch never matches
        ("Deployment", [owner("ReplicaSet", "other", "rs-web")], False),
        ("StatefulSet", [owner("StatefulSet", "web", "dep-uid")], True),
        ("StatefulSet", [owner("StatefulSet", "web", "other-uid")], False),
        ("StatefulSet", [owner("ReplicaSet", "web-5d9", "rs-web")], False),
        ("DaemonSet", [owner("DaemonSet", "web", "dep-uid")], True),
        ("DaemonSet", [owner("StatefulSet", "web", "dep-uid")], False),
    ],
)
def test_owner_chain(kind: str, owners: list[dict[str, Any]], mine: bool) -> None:
    w = workload_info(workload(kind), "app")
    assert owned_by(pod_info(pod("p", owners)), w, RS) is mine


def test_targets_carry_the_chosen_containers_facts() -> None:
    w = workload_info(workload("Deployment"), None, {8080})
    assert w.container == "app"
    pods = [
        pod("web-b", [owner("ReplicaSet", "web-5d9", "rs-web")]),
        pod("web-canary-a", [owner("ReplicaSet", "web-canary-77", "rs-canary")]),
        pod("debug", []),
    ]
    (t,) = targets_for([pod_info(p) for p in pods], w, RS)
    # the app container's restarts and limit, not the proxy's (the first container)
    assert (t.name, t.container, t.restart_count, t.memory_limit) == ("web-b", "app", 3, "512Mi")


def test_replicaset_info_keeps_the_controller_owner() -> None:
    body = {
        "metadata": {"name": "web-5d9", "uid": "rs-web", "ownerReferences": [owner("Deployment", "web", "d")]}
    }
    assert replicaset_info(body) == ReplicaSetInfo("web-5d9", "rs-web", OwnerRef("Deployment", "web", "d"))


@pytest.mark.parametrize(
    ("status_limit", "want"),
    [
        (None, "512Mi"),  # no resize reported: the spec's
        ("512Mi", "512Mi"),
        ("1Gi", "512Mi"),  # resized down in the spec, the larger one still in force: follow at once
        ("256Mi", "256Mi"),  # resized up in the spec, not in force yet: the one in force
        ("garbage", "512Mi"),
    ],
)
def test_pod_memory_limit_is_the_lower_of_spec_and_in_force(status_limit: str | None, want: str) -> None:
    statuses = [{"name": "proxy", "restartCount": 0}, {"name": "app", "restartCount": 0}]
    if status_limit is not None:
        statuses[1]["resources"] = {"limits": {"memory": status_limit}}
    info = pod_info(pod("p", [], containerStatuses=statuses))
    assert dict(info.memory_limits) == {"proxy": "64Mi", "app": want}


def test_container_refusals_are_target_errors() -> None:
    with pytest.raises(TargetError) as e:
        workload_info(workload("Deployment"), None, {9999})
    assert e.value.reason == "AmbiguousContainer" and "proxy, app" in e.value.message
    with pytest.raises(TargetError) as e:
        workload_info(workload("StatefulSet"), "web")
    assert e.value.reason == "ContainerNotFound" and "StatefulSet web" in e.value.message


@pytest.mark.parametrize(
    ("kind", "status", "want"),
    [
        (
            "Deployment",
            {"replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2},
            (2, 2, True),
        ),
        (
            "Deployment",
            {"replicas": 3, "updatedReplicas": 1, "readyReplicas": 3, "availableReplicas": 3},
            (2, 1, False),
        ),
        (
            "StatefulSet",
            {
                "replicas": 2,
                "updatedReplicas": 2,
                "readyReplicas": 2,
                "currentRevision": "a",
                "updateRevision": "a",
            },
            (2, 2, True),
        ),
        (
            "StatefulSet",
            {
                "replicas": 2,
                "updatedReplicas": 2,
                "readyReplicas": 2,
                "currentRevision": "a",
                "updateRevision": "b",
            },
            (2, 2, False),
        ),
        (
            "DaemonSet",
            {
                "desiredNumberScheduled": 3,
                "updatedNumberScheduled": 3,
                "numberReady": 3,
                "numberAvailable": 3,
            },
            (3, 3, True),
        ),
        (
            "DaemonSet",
            {
                "desiredNumberScheduled": 3,
                "updatedNumberScheduled": 1,
                "numberReady": 3,
                "numberAvailable": 3,
            },
            (3, 1, False),
        ),
    ],
)
def test_rollout_state_per_kind(kind: str, status: dict[str, Any], want: tuple[int, int, bool]) -> None:
    w = workload_info(workload(kind, **status), "app")
    assert (w.replicas, w.updated_ready, w.rollout_complete) == want
    assert (w.kind, w.uid) == (kind, "dep-uid")


def test_envpatch_is_refused_for_a_kind_it_cannot_write() -> None:
    assert method_refusal("Deployment", "EnvPatch") is None
    assert method_refusal("StatefulSet", "EnvPatch") is None
    assert method_refusal("DaemonSet", "Endpoint") is None
    refusal = method_refusal("DaemonSet", "EnvPatch")
    assert refusal is not None and "Endpoint" in refusal


def ref(name: str, created: str, target: str = "web", container: str | None = None, **kw: Any) -> PolicyRef:
    return PolicyRef(name, created, kw.pop("kind", "Deployment"), target, container, **kw)


A = ref("a", "2026-01-01T00:00:00Z")
B = ref("b", "2026-01-02T00:00:00Z")


@pytest.mark.parametrize(
    ("me", "others", "winner"),
    [
        (A, [A], None),  # alone
        (B, [A, B], "a"),  # older keeps control
        (A, [A, B], None),
        # same second: the name decides, the same way on every replica of the operator
        (ref("z", "2026-01-01T00:00:00Z"), [A, ref("z", "2026-01-01T00:00:00Z")], "a"),
        # another container of the same workload: both tune
        (
            ref("b", "2026-01-02T00:00:00Z", container="side"),
            [ref("a", "2026-01-01T00:00:00Z", container="app")],
            None,
        ),
        # one names no container: it may land on any, so it conflicts
        (ref("b", "2026-01-02T00:00:00Z", container="app"), [A], "a"),
        (ref("b", "2026-01-02T00:00:00Z"), [ref("a", "2026-01-01T00:00:00Z", container="app")], "a"),
        # another workload, or another kind of the same name
        (ref("b", "2026-01-02T00:00:00Z", target="api"), [A], None),
        (ref("b", "2026-01-02T00:00:00Z", kind="StatefulSet"), [A], None),
        # the older one is being deleted: it gives the target up
        (B, [ref("a", "2026-01-01T00:00:00Z", deleting=True)], None),
        # DryRun policies tune nothing: an older one holds nothing, a newer one is never refused
        (B, [ref("a", "2026-01-01T00:00:00Z", enforce=False), B], None),
        (ref("b", "2026-01-02T00:00:00Z", enforce=False), [A], None),
    ],
)
def test_conflict_older_policy_keeps_control(
    me: PolicyRef, others: list[PolicyRef], winner: str | None
) -> None:
    got = in_control(me, others)
    assert (got.name if got is not None else None) == winner


def test_policy_ref_from_a_body() -> None:
    body = {
        "metadata": {"name": "p", "creationTimestamp": "2026-03-01T10:00:00Z"},
        "spec": {"targetRef": {"name": "web", "container": "app"}, "mode": "Enforce"},
    }
    assert policy_ref(body) == PolicyRef("p", "2026-03-01T10:00:00Z", "Deployment", "web", "app")
    dry = {**body, "spec": {**body["spec"], "mode": "DryRun"}}
    unset = {**body, "spec": {"targetRef": {"name": "web"}}}  # the CRD's default mode: DryRun
    assert not policy_ref(dry).enforce and not policy_ref(unset).enforce
    assert "GCPolicy p" in policy_ref(body).describe() and "container app" in policy_ref(body).describe()


def cycle(n: int) -> GCCycle:
    return GCCycle(n, float(n), 1, 0.01, 1.0, 0.01, 0.1, 0.1, 0.5, 0.1, 0.01, 8, 9, 4, 8, 0, 0, 4, False)


@pytest.mark.parametrize(
    ("last_seen", "first", "lines", "lost"),
    [
        (10, 11, 500, None),  # full, but contiguous: nothing lost
        (10, 15, 500, 4),  # full and a gap: cycles 11..14 were pushed out of the tail
        (10, 15, 499, None),  # not full: a gap means the interval was longer than `since`, not the tail
        (0, 15, 500, None),  # nothing read from this process before: nothing known lost
    ],
)
def test_tail_overflow(last_seen: int, first: int, lines: int, lost: int | None) -> None:
    msg = tail_overflow(last_seen, [cycle(first), cycle(first + 1)], lines, 500, 35)
    assert (msg is None) == (lost is None)
    if msg is not None:
        assert msg.startswith(f"{lost} gctrace cycle(s)") and "tailLines=500" in msg
