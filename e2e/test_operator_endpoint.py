"""Scenario 2, Enforce/Endpoint: every process runs status.applied.gogc (its own /gc/gogc:percent
says so), without a restart; a pod added later gets the value on its first sample; the lease is
renewed every interval."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from e2e.cluster.manifests import workload_deployment
from e2e.cluster.waits import pod_pids, wait_for
from e2e.operator_support import (
    OperatorProc,
    agent_get,
    condition,
    create_policy,
    get_policy,
    metric_value,
    ready_pods,
    token_secret,
    wait_condition,
)

pytestmark = pytest.mark.e2e

INTERVAL = 2
LEASE = 8


def endpoint_deployment(name: str, replicas: int, env: dict[str, str], secret: str) -> dict[str, Any]:
    dep = workload_deployment(name, replicas=replicas, env=env)
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    c["env"].append(
        {"name": "GC_TUNER_TOKEN", "valueFrom": {"secretKeyRef": {"name": secret, "key": "token"}}}
    )
    return dep


def endpoint_policy(secret: str, **over: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "targetRef": {"name": "web"},
        "mode": "Enforce",
        "rollout": {
            "method": "Endpoint",
            "endpoint": {"port": 8080, "tokenSecretRef": {"name": secret}},
            "leaseSeconds": LEASE,
            "cooldownSeconds": 0,
        },
        "sampling": {
            "intervalSeconds": INTERVAL,
            "windowSeconds": 30,
            "sources": {"agent": {"port": 8080}, "prometheus": {"port": 8080}},
        },
        "qps": {"counter": {"name": "http_requests_total", "matchers": {"handler": "work"}}},
        # Every pod at once, unjudged: these tests are about the Endpoint method itself; the guard's
        # canary and rollback have their own (e2e/test_operator_guard.py).
        "guard": {"enabled": False},
    }
    spec.update(over)
    return spec


def own_gogc(ip: str) -> int:
    """GOGC as the process reads it itself: runtime/metrics /gc/gogc:percent through its agent."""
    return int(agent_get(ip)["metrics"]["/gc/gogc:percent"])


def test_endpoint_sets_every_process_live_and_new_pods_on_first_sample(
    namespace: str, kube: Any, operator: OperatorProc
) -> None:
    apps, core = client.AppsV1Api(kube), client.CoreV1Api(kube)
    secret = token_secret(kube, namespace)
    # 1200 QPS per pod puts the formula well below the startup GOGC 100 (≈ 65).
    apps.create_namespaced_deployment(
        namespace, endpoint_deployment("web", 2, {"WORKLOAD_QPS": "1200"}, secret)
    )
    pods = wait_for(lambda: len(p := ready_pods(kube, namespace, "web")) == 2 and p, 90, "2 ready pods")
    before = {p.metadata.name: (p.metadata.uid, pod_pids(p.metadata.name)) for p in pods}

    create_policy(kube, namespace, "web", endpoint_policy(secret))
    pol = wait_condition(kube, namespace, "web", "Applied", what="Applied=True")
    applied = pol["status"]["applied"]
    assert applied["method"] == "Endpoint" and applied["pods"] == 2
    gogc = applied["gogc"]
    assert gogc != 100 and 25 <= gogc <= 200
    assert pol["status"]["decision"]["action"] in ("Apply", "Hold")
    for p in ready_pods(kube, namespace, "web"):
        assert own_gogc(p.status.pod_ip) == gogc
        assert metric_value(p.status.pod_ip, "go_gc_gogc_percent") == gogc
        lease = agent_get(p.status.pod_ip)["lease"]
        assert lease["owner"] == f"gc-tuner/{namespace}/web"
        # No restart: same pod, same process, restartCount 0.
        uid, pids = before[p.metadata.name]
        assert p.metadata.uid == uid and pod_pids(p.metadata.name) == pids
        assert all(cs.restart_count == 0 for cs in p.status.container_statuses)

    # The lease is renewed every interval: after more than one lease it is still held.
    first_expiry = agent_get(pods[0].status.pod_ip)["lease"]["expiresAt"]
    wait_for(
        lambda: agent_get(pods[0].status.pod_ip)["lease"]["expiresAt"] != first_expiry,
        3 * INTERVAL,
        "renewal",
    )

    time.sleep(LEASE + INTERVAL)
    assert own_gogc(pods[0].status.pod_ip) == get_policy(kube, namespace, "web")["status"]["applied"]["gogc"]

    # Scale up: the new process starts at GOGC 100 and gets the applied value on its first sample.
    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 3}})
    new = wait_for(
        lambda: [p for p in ready_pods(kube, namespace, "web") if p.metadata.name not in before],
        60,
        "the third pod",
    )[0]
    current = get_policy(kube, namespace, "web")["status"]["applied"]["gogc"]
    wait_for(
        lambda: own_gogc(new.status.pod_ip) == current, 3 * INTERVAL + 2, "the new pod at the applied GOGC"
    )
    pol = wait_for(
        lambda: (o := get_policy(kube, namespace, "web"))["status"]["applied"]["pods"] == 3 and o,
        10,
        "3 pods",
    )
    assert (condition(pol, "Degraded") or {}).get("status") == "False"
    assert (
        core.read_namespaced_pod(new.metadata.name, namespace).status.container_statuses[0].restart_count == 0
    )
    assert 'gctuner_applied_changes_total{method="Endpoint"}' in operator.metrics()


def test_operator_dry_run_kill_switch_applies_nothing(
    namespace: str, kube: Any, make_operator: Callable[..., OperatorProc]
) -> None:
    apps = client.AppsV1Api(kube)
    secret = token_secret(kube, namespace)
    apps.create_namespaced_deployment(
        namespace, endpoint_deployment("web", 1, {"WORKLOAD_QPS": "1200"}, secret)
    )
    (pod,) = wait_for(lambda: len(p := ready_pods(kube, namespace, "web")) == 1 and p, 90, "1 ready pod")
    make_operator("--dry-run")
    create_policy(kube, namespace, "web", endpoint_policy(secret))
    pol = wait_for(
        lambda: (
            (o := get_policy(kube, namespace, "web")) and "recommendation" in (o.get("status") or {}) and o
        ),
        60,
        "a recommendation",
    )
    time.sleep(2 * INTERVAL)
    pol = get_policy(kube, namespace, "web")
    assert (condition(pol, "Applied") or {}).get("reason") == "OperatorDryRun"
    assert "applied" not in pol["status"]
    state = agent_get(pod.status.pod_ip)
    assert state["lease"] is None and state["gogc"] == 100


def test_min_interval_floor_raises_the_interval_window_and_lease_of_a_policy(
    namespace: str, kube: Any, make_operator: Callable[..., OperatorProc]
) -> None:
    apps, core = client.AppsV1Api(kube), client.CoreV1Api(kube)
    secret = token_secret(kube, namespace)
    apps.create_namespaced_deployment(
        namespace, endpoint_deployment("web", 1, {"WORKLOAD_QPS": "1200"}, secret)
    )
    (pod,) = wait_for(lambda: len(p := ready_pods(kube, namespace, "web")) == 1 and p, 90, "1 ready pod")
    floor = 3
    op = make_operator("--min-interval-seconds", str(floor))
    # Valid for the CRD: a 1 s interval, a 3 s window and a 2 s lease. At the floor's 3 s cadence that
    # lease would lapse between two renewals, and the window would hold a single sample.
    spec = endpoint_policy(secret)
    spec["sampling"].update(intervalSeconds=1, windowSeconds=3)
    spec["rollout"]["leaseSeconds"] = 2
    create_policy(kube, namespace, "web", spec)
    pol = wait_condition(kube, namespace, "web", "Applied", what="Applied=True at the floor's cadence")
    assert pol["spec"]["sampling"]["intervalSeconds"] == 1, "the spec stays as written"
    in_force = pol["status"]["sampling"]
    assert {k: in_force[k] for k in ("intervalSeconds", "windowSeconds", "leaseSeconds")} == {
        "intervalSeconds": floor,
        "windowSeconds": 3 * floor,
        "leaseSeconds": 2 * floor,
    }
    assert "sampling.intervalSeconds 1 -> 3" in in_force["message"]

    # The cadence: one agent read per cycle of the one pod.
    def agent_reads() -> float:
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in op.metrics().splitlines()
            if line.startswith('gctuner_samples_total{source="agent"}')
        )

    before = agent_reads()
    # Meanwhile the raised lease is renewed before it lapses: the process keeps the applied GOGC.
    gogc = pol["status"]["applied"]["gogc"]
    deadline = time.monotonic() + 3 * floor
    while time.monotonic() < deadline:
        state = agent_get(pod.status.pod_ip)
        assert state["lease"] is not None and state["gogc"] == gogc, state
        time.sleep(0.5)
    cycles = agent_reads() - before
    assert 1 <= cycles <= 4, f"{cycles} cycles in {3 * floor} s: the policy asked for one per second"

    # One Warning for the override, not one per cycle.
    events = core.list_namespaced_event(namespace, field_selector="reason=IntervalRaised").items
    assert [(e.type, e.message) for e in events] == [("Warning", in_force["message"])]
