"""Scenario 3, Enforce/EnvPatch (and scenario 7 for it): the env is patched, the rollout completes and
the new processes run the new GOGC and GOMEMLIMIT = percent × limit; a second change inside the
cooldown is held with the reason in status; deleting the policy restores the previous env."""

from __future__ import annotations

import json
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
    create_policy,
    get_policy,
    ready_pods,
    wait_condition,
)

pytestmark = pytest.mark.e2e

INTERVAL = 2
LIMIT = "256Mi"
EXPECTED_LIMIT = 230 << 20  # 90% of 256 MiB, rounded down to a whole MiB


def env_of(dep: Any) -> dict[str, Any]:
    (c,) = dep.spec.template.spec.containers
    return {e.name: (e.value if e.value_from is None else "valueFrom") for e in c.env or []}


def rollout_done(apps: client.AppsV1Api, ns: str, gen: int) -> bool:
    d = apps.read_namespaced_deployment("web", ns)
    s = d.status
    return bool(
        d.metadata.generation >= gen
        and s.observed_generation >= d.metadata.generation
        and s.updated_replicas == 2
        and s.replicas == 2
        and s.available_replicas == 2
    )


def test_envpatch_rolls_out_holds_in_cooldown_and_restores_on_delete(
    namespace: str, kube: Any, operator: OperatorProc
) -> None:
    apps, core = client.AppsV1Api(kube), client.CoreV1Api(kube)
    dep = workload_deployment("web", replicas=2, env={"WORKLOAD_QPS": "1200", "GOGC": "100"})
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    c["resources"] = {"limits": {"memory": LIMIT}}
    c["env"].append({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    apps.create_namespaced_deployment(namespace, dep)
    first = wait_for(lambda: len(p := ready_pods(kube, namespace, "web")) == 2 and p, 90, "pods")
    old = {p.metadata.name for p in first}
    env_before = env_of(apps.read_namespaced_deployment("web", namespace))

    create_policy(
        kube,
        namespace,
        "web",
        {
            "targetRef": {"name": "web", "container": "workload"},
            "mode": "Enforce",
            "rollout": {"method": "EnvPatch", "cooldownSeconds": 600},
            # The patch itself is under test; the guard's canary: test_operator_canary_envpatch.
            "guard": {"enabled": False},
            "sampling": {
                "intervalSeconds": INTERVAL,
                "windowSeconds": 30,
                "sources": {"agent": {"port": 8080}, "prometheus": {"port": 8080}},
            },
            "qps": {"counter": {"name": "http_requests_total", "matchers": {"handler": "work"}}},
            "memoryLimit": {"mode": "FromContainerLimit", "percent": 90},
        },
    )

    # 1. The env is patched (only GOGC/GOMEMLIMIT), by the gc-tuner field manager.
    patched = wait_for(
        lambda: (d := apps.read_namespaced_deployment("web", namespace)) and env_of(d)["GOGC"] != "100" and d,
        60,
        "the env patch",
    )
    env = env_of(patched)
    gogc = int(env["GOGC"])
    assert env["GOMEMLIMIT"] == "230MiB"
    assert {k: v for k, v in env.items() if k not in ("GOGC", "GOMEMLIMIT")} == {
        k: v for k, v in env_before.items() if k != "GOGC"
    }
    assert env["POD_NAME"] == "valueFrom"
    managers = {m.manager for m in patched.metadata.managed_fields or []}
    assert "gc-tuner" in managers
    previous = json.loads(patched.metadata.annotations["gctuner.io/previous-env"])
    assert previous == {"container": "workload", "env": {"GOGC": "100", "GOMEMLIMIT": None}}
    generation = patched.metadata.generation

    # 2. The rollout completes; the new processes run the new values.
    wait_for(lambda: rollout_done(apps, namespace, generation), 120, "the rollout")
    new = wait_for(lambda: len(p := ready_pods(kube, namespace, "web")) == 2 and p, 60, "new pods")
    assert not old & {p.metadata.name for p in new}
    for p in new:
        m = agent_get(p.status.pod_ip, token=None)["metrics"]
        assert m["/gc/gogc:percent"] == gogc
        assert m["/gc/gomemlimit:bytes"] == EXPECTED_LIMIT
    pol = wait_condition(kube, namespace, "web", "Applied", what="Applied=True after the rollout")
    assert pol["status"]["applied"]["gogc"] == gogc and pol["status"]["applied"]["gomemlimit"] == "230MiB"
    assert pol["status"]["applied"]["method"] == "EnvPatch"

    # 3. A second change inside the cooldown is held, with the reason in status, and no new rollout.
    custom = client.CustomObjectsApi(kube)
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "web", {"spec": {"strategy": {"formula": {"baseGOGC": 200}}}}
    )
    held = wait_for(
        lambda: (
            (o := get_policy(kube, namespace, "web"))
            and (o["status"].get("decision") or {}).get("code") == "CoolingDown"
            and o
        ),
        60,
        "the held decision",
    )
    assert held["status"]["recommendation"]["gogc"] >= gogc + 10
    assert held["status"]["decision"]["action"] == "Hold"
    assert "cooldown is 600s" in held["status"]["decision"]["reason"]
    d = apps.read_namespaced_deployment("web", namespace)
    assert d.metadata.generation == generation and env_of(d)["GOGC"] == str(gogc)

    # 4. Deleting the policy restores the previous env (GOGC 100, no GOMEMLIMIT) and goes away.
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "web")
    restored = wait_for(
        lambda: (d := apps.read_namespaced_deployment("web", namespace)) and env_of(d)["GOGC"] == "100" and d,
        30,
        "the restored env",
    )
    assert env_of(restored) == env_before
    assert "gctuner.io/previous-env" not in (restored.metadata.annotations or {})

    def gone() -> bool:
        try:
            get_policy(kube, namespace, "web")
        except client.ApiException as e:
            return e.status == 404
        return False

    wait_for(gone, 30, "the GCPolicy to be deleted (finalizer released)")
    events = core.list_namespaced_event(namespace, field_selector="involvedObject.kind=GCPolicy").items
    reasons = {e.reason for e in events}
    assert {"EnvPatched", "EnvRestored"} <= reasons, reasons
