"""Safe Enforce with EnvPatch on the real control plane: the candidate runs on a canary Deployment,
`web-gctuner-canary`, beside the target's pods; it is judged against them, then either deleted (a
rollback: the target's template never changed, no rollout happened) or promoted (the target is patched
and rolls out, the canary is deleted).

The harmful change is the one of test_operator_guard: a GOMEMLIMIT of 32 MiB under a live heap of about
60 MiB, with GOGC held at 100 by the bounds; the GC then runs back to back on the canary.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client

from e2e.cluster.manifests import workload_deployment
from e2e.cluster.waits import wait_for
from e2e.operator_support import OperatorProc, agent_get, create_policy, get_policy, ready_pods

pytestmark = pytest.mark.e2e

INTERVAL = 2
EVALUATION = 12
CANARY = "web-gctuner-canary"
NO_LIMIT = 9223372036854775807


def policy(**over: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "targetRef": {"name": "web", "container": "workload"},
        "mode": "Enforce",
        "rollout": {
            "method": "EnvPatch",
            "cooldownSeconds": 0,
            "canary": {"pods": 1, "evaluationSeconds": EVALUATION},
        },
        "sampling": {"intervalSeconds": INTERVAL, "windowSeconds": 30, "sources": {"agent": {"port": 8080}}},
        "qps": {"agent": {}},
    }
    spec.update(over)
    return spec


def setup(kube: Any, namespace: str, *, live_mib: int) -> client.V1Deployment:
    apps = client.AppsV1Api(kube)
    env = {"WORKLOAD_QPS": "600", "WORKLOAD_LIVE_MIB": str(live_mib), "GOGC": "100"}
    apps.create_namespaced_deployment(namespace, workload_deployment("web", replicas=2, env=env))
    wait_for(lambda: len(ready_pods(kube, namespace, "web")) == 2, 120, "2 ready pods")
    return apps.read_namespaced_deployment("web", namespace)


def canary_pods(kube: Any, namespace: str) -> list[Any]:
    pods = client.CoreV1Api(kube).list_namespaced_pod(namespace, label_selector="gctuner.io/canary=web").items
    return [p for p in pods if p.status.phase == "Running" and p.metadata.deletion_timestamp is None]


def canary_deployment(kube: Any, namespace: str) -> Any:
    try:
        return client.AppsV1Api(kube).read_namespaced_deployment(CANARY, namespace)
    except client.ApiException as e:
        if e.status == 404:
            return None
        raise


def replicasets_of(kube: Any, namespace: str, owner: str) -> list[str]:
    sets = client.AppsV1Api(kube).list_namespaced_replica_set(namespace).items
    return [
        rs.metadata.name for rs in sets if any(o.name == owner for o in rs.metadata.owner_references or [])
    ]


def phase(kube: Any, namespace: str) -> str | None:
    return ((get_policy(kube, namespace, "web").get("status") or {}).get("rollout") or {}).get("phase")


def test_a_harmful_envpatch_change_runs_on_a_canary_deployment_and_is_rolled_back(
    namespace: str, kube: Any, operator: OperatorProc
) -> None:
    before = setup(kube, namespace, live_mib=60)
    create_policy(
        kube,
        namespace,
        "web",
        policy(bounds={"minGOGC": 100, "maxGOGC": 100}, memoryLimit={"mode": "Fixed", "fixed": "32Mi"}),
    )
    # The canary Deployment: the target's template with the candidate, owned by the policy.
    dep = wait_for(lambda: canary_deployment(kube, namespace), 60, "the canary Deployment")
    owner = dep.metadata.owner_references[0]
    assert (owner.kind, owner.name) == ("GCPolicy", "web")
    (c,) = dep.spec.template.spec.containers
    assert {e.name: e.value for e in c.env}["GOMEMLIMIT"] == "32MiB"
    (pod,) = wait_for(lambda: (p := canary_pods(kube, namespace)) and p, 60, "the canary pod")
    assert agent_get(pod.status.pod_ip, token=None)["metrics"]["/gc/gomemlimit:bytes"] == 32 << 20
    seen = time.monotonic()
    pol = wait_for(
        lambda: (p := get_policy(kube, namespace, "web"))["status"].get("lastRollback") and p,
        4 * EVALUATION,
        "a rollback",
    )
    took = time.monotonic() - seen
    rb = pol["status"]["lastRollback"]
    assert rb["gomemlimit"] == "32MiB" and rb["reason"] in ("gcCPU", "memoryPercentOfLimit"), rb
    # Well inside the evaluation and the pod's start, after the canary pod was running.
    assert took <= EVALUATION + 4 * INTERVAL, took
    # The rollback deletes the canary; the target was never patched, so nothing rolled out.
    wait_for(lambda: canary_deployment(kube, namespace) is None, 60, "the canary Deployment deleted")
    after = client.AppsV1Api(kube).read_namespaced_deployment("web", namespace)
    assert after.metadata.generation == before.metadata.generation
    assert len(replicasets_of(kube, namespace, "web")) == 1
    for p in ready_pods(kube, namespace, "web"):
        assert agent_get(p.status.pod_ip, token=None)["metrics"]["/gc/gomemlimit:bytes"] == NO_LIMIT
    # Not retried inside the back-off; the history and Events tell the story.
    time.sleep(4 * INTERVAL)
    status = get_policy(kube, namespace, "web")["status"]
    assert status["rollout"]["phase"] == "Backoff", status["rollout"]
    assert canary_deployment(kube, namespace) is None
    assert [h["verdict"] for h in status["history"]] == ["Canary", "RolledBack"]
    events = (
        client.CoreV1Api(kube)
        .list_namespaced_event(namespace, field_selector="involvedObject.kind=GCPolicy")
        .items
    )
    reasons = [e.reason for e in events]
    assert reasons.count("CanaryStarted") == 1 and reasons.count("RolledBack") == 1, reasons
    assert "EnvPatched" not in reasons


def test_a_helpful_envpatch_change_is_promoted_to_the_target(
    namespace: str, kube: Any, operator: OperatorProc
) -> None:
    before = setup(kube, namespace, live_mib=16)
    create_policy(kube, namespace, "web", policy(bounds={"minGOGC": 200, "maxGOGC": 200}))
    wait_for(lambda: canary_pods(kube, namespace), 60, "the canary pod")
    pol = get_policy(kube, namespace, "web")
    applied = next(c for c in pol["status"]["conditions"] if c["type"] == "Applied")
    assert applied["reason"] in ("Canary", "NothingApplied"), applied
    # While it is judged, the target keeps its template.
    assert client.AppsV1Api(kube).read_namespaced_deployment("web", namespace).metadata.generation == (
        before.metadata.generation
    )
    wait_for(lambda: phase(kube, namespace) == "Promoted", 6 * EVALUATION, "the promotion")
    patched = wait_for(
        lambda: (
            (d := client.AppsV1Api(kube).read_namespaced_deployment("web", namespace)).metadata.generation
            > before.metadata.generation
            and d
        ),
        30,
        "the target patched",
    )
    (c,) = patched.spec.template.spec.containers
    assert {e.name: e.value for e in c.env}["GOGC"] == "200"
    wait_for(lambda: canary_deployment(kube, namespace) is None, 60, "the canary Deployment deleted")
    wait_for(
        lambda: (
            len(p := ready_pods(kube, namespace, "web")) == 2
            and all(agent_get(x.status.pod_ip, token=None)["metrics"]["/gc/gogc:percent"] == 200 for x in p)
        ),
        120,
        "GOGC 200 on the target's new pods",
    )
    status = get_policy(kube, namespace, "web")["status"]
    assert [h["verdict"] for h in status["history"]] == ["Canary", "Promoted"]
    assert "lastRollback" not in status
