"""Scenario 7 (delete restores, Endpoint) and 8 (the operator SIGKILLed and restarted mid-loop).

EnvPatch's restore on delete is part of test_operator_envpatch.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from e2e.cluster.manifests import workload_deployment
from e2e.cluster.waits import wait_for
from e2e.operator_support import (
    GROUP,
    PLURAL,
    VERSION,
    OperatorProc,
    agent_get,
    condition,
    create_policy,
    get_policy,
    token_secret,
    wait_ready,
)
from e2e.test_operator_endpoint import endpoint_deployment, endpoint_policy

pytestmark = pytest.mark.e2e

INTERVAL = 2


def test_deleting_an_endpoint_policy_releases_the_leases_at_once(
    namespace: str, kube: Any, operator: OperatorProc
) -> None:
    apps = client.AppsV1Api(kube)
    secret = token_secret(kube, namespace)
    apps.create_namespaced_deployment(
        namespace, endpoint_deployment("web", 2, {"WORKLOAD_QPS": "1200"}, secret)
    )
    pods = wait_ready(kube, namespace, "web", 2)
    spec = endpoint_policy(secret)
    spec["rollout"]["leaseSeconds"] = 600  # a lapse cannot explain what follows; only the release can
    create_policy(kube, namespace, "web", spec)
    pol = wait_for(
        lambda: (
            (o := get_policy(kube, namespace, "web"))
            and (o.get("status") or {}).get("applied", {}).get("pods") == 2
            and o
        ),
        60,
        "applied on both pods",
    )
    gogc = pol["status"]["applied"]["gogc"]
    assert all(agent_get(p.status.pod_ip)["gogc"] == gogc for p in pods)

    client.CustomObjectsApi(kube).delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "web")

    def restored() -> bool:
        states = [agent_get(p.status.pod_ip) for p in pods]
        return all(s["lease"] is None and s["gogc"] == s["startup"]["gogc"] == 100 for s in states)

    wait_for(restored, 20, "both processes back at their startup GOGC with no lease")
    events = client.CoreV1Api(kube).list_namespaced_event(namespace).items
    assert "LeaseReleased" in {e.reason for e in events}


def test_operator_killed_mid_loop_neither_rolls_out_twice_nor_stops_status(
    namespace: str, kube: Any, make_operator: Callable[..., OperatorProc]
) -> None:
    apps, core = client.AppsV1Api(kube), client.CoreV1Api(kube)
    dep = workload_deployment("web", replicas=2, env={"WORKLOAD_QPS": "1200"})
    apps.create_namespaced_deployment(namespace, dep)
    wait_ready(kube, namespace, "web", 2)
    op = make_operator()
    create_policy(
        kube,
        namespace,
        "web",
        {
            "targetRef": {"name": "web"},
            "mode": "Enforce",
            # minGOGCChange 1: after a restart any new fit differs enough to patch again, unless the
            # operator remembers that it changed the Deployment less than a cooldown ago.
            "rollout": {"method": "EnvPatch", "cooldownSeconds": 600, "minGOGCChange": 1},
            "guard": {"enabled": False},  # the patch's lifecycle; the canary is tested on its own
            "sampling": {
                "intervalSeconds": INTERVAL,
                "windowSeconds": 30,
                "sources": {"agent": {"port": 8080}},
            },
            "qps": {
                "counter": {"name": "http_requests_total", "matchers": {"handler": "work"}, "port": 8080}
            },
        },
    )

    def patched() -> Any:
        d = apps.read_namespaced_deployment("web", namespace)
        env = {e.name: e.value for e in d.spec.template.spec.containers[0].env or []}
        return d if "GOGC" in env else None

    d = wait_for(patched, 60, "the env patch", interval=0.05)
    op.kill()  # SIGKILL right after the patch, while the rollout runs and status may be unwritten
    killed_at = time.time()
    generation = d.metadata.generation
    gogc = next(e.value for e in d.spec.template.spec.containers[0].env if e.name == "GOGC")

    make_operator()  # a new process: empty memory, same cluster

    def continued() -> dict[str, Any] | None:
        o = get_policy(kube, namespace, "web")
        s = o.get("status") or {}
        rec_time = (s.get("recommendation") or {}).get("time", "")
        fresh = (
            rec_time
            and time.mktime(time.strptime(rec_time, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone > killed_at
        )
        return o if fresh and s.get("decision") else None

    pol = wait_for(continued, 90, "status written again by the restarted operator")
    time.sleep(5 * INTERVAL)  # more cycles of the new operator
    pol = get_policy(kube, namespace, "web")
    d = apps.read_namespaced_deployment("web", namespace)
    assert d.metadata.generation == generation, "the restarted operator rolled the Deployment out again"
    env = {e.name: e.value for e in d.spec.template.spec.containers[0].env or []}
    assert env["GOGC"] == gogc
    assert pol["status"]["applied"]["gogc"] == int(gogc)
    assert pol["status"]["decision"]["action"] == "Hold", pol["status"]["decision"]
    assert pol["status"]["decision"]["code"] in ("CoolingDown", "AtTarget"), pol["status"]["decision"]
    assert (condition(pol, "Recommending") or {}).get("status") == "True"
    # Exactly two ReplicaSets: the original and the one gc-tuner's single patch created.
    assert len(apps.list_namespaced_replica_set(namespace, label_selector="app=web").items) == 2
    # The killed process may not have flushed its Event; the restarted one must not add another.
    patches = [e for e in core.list_namespaced_event(namespace).items if e.reason == "EnvPatched"]
    assert sum(e.count or 1 for e in patches) <= 1
