"""EnvPatch waits for the workload, on the real control plane with real pods: a paused Deployment is
not patched until it is resumed, a rollout that cannot finish (new pods never ready) holds the patch
until it does, and a StatefulSet's partition keeps its lower pods on their values, and says so."""

from __future__ import annotations

import time
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
    ready_pods,
    wait_condition,
)
from e2e.test_operator_gitops import envpatch_policy

pytestmark = pytest.mark.e2e


def deployment() -> dict[str, Any]:
    dep = workload_deployment("web", replicas=2, env={"WORKLOAD_QPS": "1200", "GOGC": "100"})
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    c["resources"] = {"limits": {"memory": "256Mi"}}
    return dep


def template_gogc(apps: client.AppsV1Api, namespace: str, kind: str = "Deployment") -> str | None:
    read = apps.read_namespaced_stateful_set if kind == "StatefulSet" else apps.read_namespaced_deployment
    (c,) = read("web", namespace).spec.template.spec.containers
    return {e.name: e.value for e in c.env or []}.get("GOGC")


def applied_reason(kube: Any, namespace: str, reason: str) -> dict[str, Any] | None:
    pol = get_policy(kube, namespace, "web")
    c = condition(pol, "Applied")
    return pol if c is not None and c["reason"] == reason else None


def held_for(apps: client.AppsV1Api, namespace: str, seconds: float) -> None:
    """The template keeps GOGC 100 and its generation for `seconds` (several cycles)."""
    generation = apps.read_namespaced_deployment("web", namespace).metadata.generation
    time.sleep(seconds)
    assert template_gogc(apps, namespace) == "100"
    assert apps.read_namespaced_deployment("web", namespace).metadata.generation == generation


def test_a_paused_deployment_is_patched_only_once_resumed(
    namespace: str, kube: Any, operator: OperatorProc
) -> None:
    apps = client.AppsV1Api(kube)
    apps.create_namespaced_deployment(namespace, deployment())
    wait_for(lambda: len(ready_pods(kube, namespace, "web")) == 2, 90, "2 ready pods")
    apps.patch_namespaced_deployment("web", namespace, {"spec": {"paused": True}})
    create_policy(kube, namespace, "web", envpatch_policy())

    pol = wait_for(
        lambda: applied_reason(kube, namespace, "DeploymentPaused"), 60, "Applied reason DeploymentPaused"
    )
    message = (condition(pol, "Applied") or {})["message"]
    assert "deployment/web is paused (spec.paused); GOGC" in message and "waits for it" in message
    assert pol["status"]["decision"]["action"] == "Apply"
    held_for(apps, namespace, 10)

    apps.patch_namespaced_deployment("web", namespace, {"spec": {"paused": False}})
    wait_for(lambda: template_gogc(apps, namespace) != "100", 60, "the patch after the Deployment is resumed")
    wait_condition(kube, namespace, "web", "Applied", timeout=120, what="Applied=True after the rollout")


def test_a_rollout_in_progress_holds_the_patch_until_it_finishes(
    namespace: str, kube: Any, operator: OperatorProc
) -> None:
    apps = client.AppsV1Api(kube)
    apps.create_namespaced_deployment(namespace, deployment())
    wait_for(lambda: len(ready_pods(kube, namespace, "web")) == 2, 90, "2 ready pods")
    # Someone's rollout that cannot finish: its new pod never passes its readiness probe.
    probe = {"httpGet": {"path": "/never-ready", "port": "http"}, "periodSeconds": 1}
    broken = {"spec": {"template": {"spec": {"containers": [{"name": "workload", "readinessProbe": probe}]}}}}
    apps.patch_namespaced_deployment("web", namespace, broken)

    def stuck() -> bool:
        s = apps.read_namespaced_deployment("web", namespace).status
        return bool((s.updated_replicas or 0) >= 1 and (s.replicas or 0) > 2)

    wait_for(stuck, 60, "a rollout with a new pod that is not ready")
    create_policy(kube, namespace, "web", envpatch_policy())

    pol = wait_for(
        lambda: (
            (p := applied_reason(kube, namespace, "RolloutInProgress"))
            and "waits until it finishes" in (condition(p, "Applied") or {})["message"]
            and p
        ),
        60,
        "Applied reason RolloutInProgress, waiting",
    )
    assert "deployment/web is rolling out: 1/2 pods updated" in (condition(pol, "Applied") or {})["message"]
    held_for(apps, namespace, 10)

    healthy = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1}
    fixed = {
        "spec": {"template": {"spec": {"containers": [{"name": "workload", "readinessProbe": healthy}]}}}
    }
    apps.patch_namespaced_deployment("web", namespace, fixed)
    wait_for(lambda: template_gogc(apps, namespace) != "100", 120, "the patch once the rollout finished")
    wait_condition(
        kube, namespace, "web", "Applied", timeout=120, what="Applied=True after gc-tuner's rollout"
    )


def test_a_partitioned_statefulset_gets_the_value_above_its_partition(
    namespace: str, kube: Any, operator: OperatorProc
) -> None:
    apps = client.AppsV1Api(kube)
    dep = deployment()
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            **dep["spec"],
            "serviceName": "web",
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
        },
    }
    apps.create_namespaced_stateful_set(namespace, sts)
    wait_for(lambda: len(ready_pods(kube, namespace, "web")) == 2, 120, "2 ready StatefulSet pods")
    web0 = {p.metadata.name: p.metadata.uid for p in ready_pods(kube, namespace, "web")}["web-0"]
    policy = envpatch_policy()
    policy["targetRef"] = {"kind": "StatefulSet", "name": "web", "container": "workload"}
    create_policy(kube, namespace, "web", policy)

    gogc = wait_for(
        lambda: (g := template_gogc(apps, namespace, "StatefulSet")) != "100" and g,
        90,
        "the StatefulSet's patch",
    )
    pol = wait_for(lambda: applied_reason(kube, namespace, "Partitioned"), 120, "Applied reason Partitioned")
    message = (condition(pol, "Applied") or {})["message"]
    assert f"GOGC {gogc} in force on the 1 pod(s) at ordinal 1 or above" in message
    assert "the 1 pod(s) below the partition of statefulset/web keep their values" in message
    pods = {p.metadata.name: p for p in ready_pods(kube, namespace, "web")}
    assert pods["web-0"].metadata.uid == web0  # never deleted
    assert {e.name: e.value for e in pods["web-1"].spec.containers[0].env}["GOGC"] == gogc

    # The partition lowered: the last pod gets it, and every pod runs gc-tuner's value.
    apps.patch_namespaced_stateful_set(
        "web", namespace, {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}}
    )
    wait_condition(
        kube, namespace, "web", "Applied", timeout=120, what="Applied=True once every pod is updated"
    )
