"""Enforce without the agent: the reference workload started without /debug/gctuner, read through its
gctrace (pods/log) and its own client_golang /metrics, tuned by EnvPatch. The loop closes end to end:
the canary Deployment runs the candidate, it is promoted, the target rolls out, and the new processes
report the new GOGC themselves (go_gc_gogc_percent)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from kubernetes import client

from e2e.cluster.manifests import WORKLOAD_PORT, workload_deployment
from e2e.cluster.waits import wait_for
from e2e.operator_support import OperatorProc, create_policy, get_policy, ready_pods

pytestmark = pytest.mark.e2e

GOGC = 150


def own_gogc(pod: Any) -> int | None:
    """The process's own GOGC, from its client_golang /metrics."""
    text = httpx.get(f"http://{pod.status.pod_ip}:{WORKLOAD_PORT}/metrics", timeout=5).text
    m = re.search(r"^go_gc_gogc_percent (\S+)$", text, re.M)
    return int(float(m.group(1))) if m else None


def test_envpatch_closes_the_loop_on_a_workload_without_the_agent(
    namespace: str, kube: Any, operator: OperatorProc
) -> None:
    apps = client.AppsV1Api(kube)
    env = {"WORKLOAD_QPS": "400", "GODEBUG": "gctrace=1", "GC_TUNER_AGENT": "false", "GOGC": "100"}
    apps.create_namespaced_deployment(namespace, workload_deployment("web", replicas=2, env=env))
    first = wait_for(lambda: len(p := ready_pods(kube, namespace, "web")) == 2 and p, 90, "2 ready pods")
    for p in first:
        gone = httpx.get(f"http://{p.status.pod_ip}:{WORKLOAD_PORT}/debug/gctuner", timeout=5)
        assert gone.status_code == 404 and own_gogc(p) == 100
    create_policy(
        kube,
        namespace,
        "web",
        {
            "targetRef": {"name": "web", "container": "workload"},
            "mode": "Enforce",
            "rollout": {"method": "EnvPatch", "cooldownSeconds": 600, "canary": {"evaluationSeconds": 12}},
            "bounds": {"minGOGC": GOGC, "maxGOGC": GOGC},
            "sampling": {
                "intervalSeconds": 2,
                "windowSeconds": 30,
                "sources": {"prometheus": {"port": WORKLOAD_PORT}, "gctrace": {"tailLines": 5000}},
            },
            "qps": {"counter": {"name": "http_requests_total", "matchers": {"handler": "work"}}},
        },
    )
    # Judged on a canary Deployment (the guard's windows from /metrics and gctrace), then promoted.
    pol = wait_for(
        lambda: (
            (o := get_policy(kube, namespace, "web")).get("status", {}).get("rollout", {}).get("phase")
            in ("Promoted", "RolledBack", "Backoff")
            and o
        ),
        120,
        "a verdict on the canary",
    )
    assert pol["status"]["rollout"]["phase"] == "Promoted", pol["status"].get("lastRollback")
    # The target rolls out; its new processes run the new GOGC by their own account.
    new = wait_for(
        lambda: (
            len(p := ready_pods(kube, namespace, "web")) == 2
            and not {x.metadata.name for x in first} & {x.metadata.name for x in p}
            and all(own_gogc(x) == GOGC for x in p)
            and p
        ),
        120,
        f"the target's new pods on GOGC {GOGC}",
    )
    assert all(x.metadata.labels.get("gctuner.io/canary") is None for x in new)
    status = wait_for(
        lambda: (
            (s := get_policy(kube, namespace, "web")["status"])
            and next(c for c in s["conditions"] if c["type"] == "Applied")["reason"] == "InSync"
            and s
        ),
        60,
        "Applied InSync",
    )
    assert status["applied"] == {**status["applied"], "gogc": GOGC, "method": "EnvPatch"}
    assert status["gctrace"]["pods"] >= 2  # read from pods/log (the canary's may still count)
    assert [h["verdict"] for h in status["history"]] == ["Canary", "Promoted"]
