"""Scenario 4 (leak) and 5 (gctrace through pods/log): the signals the recommendation rests on.

Leak: a Deployment that leaks gets LeakSuspected=True and a lower GOGC than the same load without
the leak; a twin that does not leak stays LeakSuspected=False.

gctrace: with GODEBUG=gctrace=1 and only the gctrace source for the heap, the operator reads the
pods' logs through the apiserver (pods/log, served by the test kubelet) and fills status.gctrace
(STW p99, effective GOGC) and the heap slope from the trace alone.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from e2e.cluster.manifests import workload_deployment
from e2e.cluster.waits import wait_for
from e2e.operator_support import (
    OperatorProc,
    condition,
    create_policy,
    get_policy,
    wait_ready,
)
from gc_tuner.logic.formula import formula_gogc

pytestmark = pytest.mark.e2e

INTERVAL = 2


def dry_run(target: str, sources: dict[str, Any]) -> dict[str, Any]:
    return {
        "targetRef": {"name": target},
        "sampling": {"intervalSeconds": INTERVAL, "windowSeconds": 30, "sources": sources},
        "qps": {"counter": {"name": "http_requests_total", "matchers": {"handler": "work"}, "port": 8080}},
    }


def test_leak_sets_leak_suspected_and_lowers_gogc(namespace: str, kube: Any, operator: OperatorProc) -> None:
    apps = client.AppsV1Api(kube)
    for name, leak in (("leaky", "2"), ("calm", "0")):
        env = {"WORKLOAD_QPS": "200", "WORKLOAD_LEAK_MIB_PER_SEC": leak}
        apps.create_namespaced_deployment(namespace, workload_deployment(name, replicas=1, env=env))
    for name in ("leaky", "calm"):
        wait_ready(kube, namespace, name, 1)
        create_policy(kube, namespace, name, dry_run(name, {"agent": {"port": 8080}}))

    def settled(name: str, want: str) -> dict[str, Any] | None:
        o = get_policy(kube, namespace, name)
        fit = (o.get("status") or {}).get("fit") or {}
        leak = condition(o, "LeakSuspected") or {}
        return o if fit.get("samples", 0) >= 8 and leak.get("status") == want else None

    leaky = wait_for(lambda: settled("leaky", "True"), 60, "LeakSuspected=True on the leaky Deployment")
    calm = wait_for(lambda: settled("calm", "False"), 60, "LeakSuspected=False on the calm one")
    assert condition(leaky, "LeakSuspected")["reason"] == "HeapGrowing"
    lfit = leaky["status"]["fit"]
    assert abs(lfit["heapSlopeMBPerSec"] - 2.0) <= 0.6, lfit
    rec = leaky["status"]["recommendation"]
    assert rec["gogc"] == formula_gogc(rec["inputs"]["qps"], rec["inputs"]["heapSlopeMBPerSec"]).gogc
    # The leak is what lowers it: the same QPS without heap growth gives a clearly higher GOGC.
    assert rec["gogc"] <= formula_gogc(lfit["qps"], 0.0).gogc - 20
    assert rec["gogc"] < calm["status"]["recommendation"]["gogc"]
    assert rec["inputs"]["slopeFactor"] < 0.8


def test_gctrace_from_pod_logs_fills_status(namespace: str, kube: Any, operator: OperatorProc) -> None:
    apps = client.AppsV1Api(kube)
    env = {"WORKLOAD_QPS": "300", "GODEBUG": "gctrace=1", "GOGC": "50", "WORKLOAD_LEAK_MIB_PER_SEC": "1"}
    apps.create_namespaced_deployment(namespace, workload_deployment("traced", replicas=2, env=env))
    wait_ready(kube, namespace, "traced", 2)
    create_policy(kube, namespace, "traced", dry_run("traced", {"gctrace": {"tailLines": 5000}}))

    last: list[Any] = []

    def filled() -> dict[str, Any] | None:
        o = get_policy(kube, namespace, "traced")
        last[:] = [o.get("status")]
        g = (o.get("status") or {}).get("gctrace") or {}
        return (
            o if g.get("pods") == 2 and g.get("cycles", 0) >= 20 and "recommendation" in o["status"] else None
        )

    try:
        pol = wait_for(filled, 60, "status.gctrace from both pods and a recommendation")
    except AssertionError as e:
        raise AssertionError(f"{e}\nlast status: {last}") from None
    g = pol["status"]["gctrace"]
    assert g["stwP99Ms"] > 0
    # GOGC=50 in the env: the goal the runtime printed says so, within MB rounding.
    assert abs(g["effectiveGOGCMedian"] - 50) <= 8, g
    # The heap slope came from the trace's live heap alone (no agent, no /metrics heap source).
    assert abs(pol["status"]["fit"]["heapSlopeMBPerSec"] - 1.0) <= 0.4, pol["status"]["fit"]
    assert (condition(pol, "Sampling") or {}).get("status") == "True"
