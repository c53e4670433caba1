"""Scenario 1, DryRun: the recommendation appears within three intervals, matches the formula on the
fitted inputs, the fit matches what the workload is configured to do, and nothing is touched."""

from __future__ import annotations

import time
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
    ready_pods,
)
from gc_tuner.logic.formula import formula_gogc

pytestmark = pytest.mark.e2e

INTERVAL = 2
QPS = 60.0  # per pod, from each pod's built-in load driver
LEAK = 0.5  # MiB/s per pod


def policy_spec(**over: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "targetRef": {"name": "web"},
        "mode": "DryRun",
        "sampling": {
            "intervalSeconds": INTERVAL,
            "windowSeconds": 30,
            "sources": {"agent": {"port": 8080}, "prometheus": {"port": 8080}},
        },
        "qps": {"counter": {"name": "http_requests_total", "matchers": {"handler": "work"}}},
    }
    spec.update(over)
    return spec


def test_dry_run_recommends_from_the_fit_and_touches_nothing(
    namespace: str, kube: Any, operator: OperatorProc
) -> None:
    apps, core = client.AppsV1Api(kube), client.CoreV1Api(kube)
    env = {
        "WORKLOAD_QPS": str(QPS),
        "WORKLOAD_LEAK_MIB_PER_SEC": str(LEAK),
        "GC_TUNER_ALLOW_UNAUTHENTICATED_WRITES": "true",
    }
    apps.create_namespaced_deployment(namespace, workload_deployment("web", replicas=2, env=env))
    pods = wait_for(
        lambda: (p := ready_pods(kube, namespace, "web")) and len(p) == 2 and p, 90, "2 ready pods"
    )
    before = {p.metadata.name: (p.metadata.uid, pod_pids(p.metadata.name)) for p in pods}
    dep_before = apps.read_namespaced_deployment("web", namespace)

    created = time.monotonic()
    create_policy(kube, namespace, "web", policy_spec())
    first = wait_for(
        lambda: (o := get_policy(kube, namespace, "web")).get("status", {}).get("recommendation") and o,
        30,
        "status.recommendation",
    )
    elapsed = time.monotonic() - created
    # Three intervals, plus the time the status write takes to come back through a watch.
    assert elapsed <= 3 * INTERVAL + 2, f"recommendation after {elapsed:.1f}s"
    rec, fit = first["status"]["recommendation"], first["status"]["fit"]
    expected = formula_gogc(fit["qps"], fit["heapSlopeMBPerSec"])
    assert abs(rec["gogc"] - expected.inputs["raw_gogc"]) < 1.0 and rec["gogc"] in (
        expected.gogc,
        expected.gogc + 1,
    )
    assert rec["strategy"] == "Formula" and "GOGC" in rec["explanation"]

    # Let the window fill, then hold the fit against the configured rates.
    full = wait_for(
        lambda: (o := get_policy(kube, namespace, "web"))["status"]["fit"]["samples"] >= 20 and o,
        60,
        "a fit over ~10 intervals",
    )
    fit = full["status"]["fit"]
    assert abs(fit["qps"] - QPS) <= 0.15 * QPS, fit
    assert abs(fit["heapSlopeMBPerSec"] - LEAK) <= 0.30 * LEAK, fit
    rec = full["status"]["recommendation"]
    assert rec["gogc"] == formula_gogc(rec["inputs"]["qps"], rec["inputs"]["heapSlopeMBPerSec"]).gogc
    for ctype, want in (
        ("Ready", "True"),
        ("Sampling", "True"),
        ("Recommending", "True"),
        ("Degraded", "False"),
    ):
        assert (condition(full, ctype) or {}).get("status") == want, (ctype, full["status"]["conditions"])
    assert (condition(full, "Applied") or {}).get("reason") == "DryRun"
    assert "applied" not in full["status"]

    # Untouched: the Deployment's spec, the same processes, no lease, the startup GOGC.
    dep_after = apps.read_namespaced_deployment("web", namespace)
    assert dep_after.metadata.generation == dep_before.metadata.generation
    assert dep_after.spec.template == dep_before.spec.template
    assert not (dep_after.metadata.annotations or {}).keys() & {
        "gctuner.io/previous-env",
        "gctuner.io/applied",
    }
    for p in core.list_namespaced_pod(namespace, label_selector="app=web").items:
        uid, pids = before[p.metadata.name]
        assert p.metadata.uid == uid and pod_pids(p.metadata.name) == pids
        assert all(cs.restart_count == 0 for cs in p.status.container_statuses)
        state = agent_get(p.status.pod_ip, token=None)
        assert state["lease"] is None and state["gogc"] == state["startup"]["gogc"] == 100
