"""EnvPatch's server-side apply against the real apiserver, without the operator: what gc-tuner owns
after a write, who owns a value once someone else changes it (a GitOps tool's forced apply, an
ordinary update), what a restore leaves, and StatefulSets (a partition, OnDelete) with real pods."""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import pytest
from kubernetes import client

from e2e.cluster.manifests import workload_deployment
from e2e.cluster.waits import wait_for
from e2e.operator_support import ready_pods
from gc_tuner.actuation.envpatch import FIELD_MANAGER
from gc_tuner.actuation.managed_fields import env_value_owners
from gc_tuner.controller.kube import KubeEnv, KubeIO
from gc_tuner.model.policy_status import AppliedNote
from gc_tuner.tuning.env_gate import check_external, in_progress, statefulset_verdict, template_facts
from gc_tuner.tuning.records import AppliedState

pytestmark = pytest.mark.e2e

GITOPS = "gitops-sim"
C = "workload"
NOTE = AppliedNote(gogc=80, gomemlimit="230MiB", time="2026-01-01T00:00:00Z", policy="gc-tuner/ns/web")


def manifest(replicas: int = 1) -> dict[str, Any]:
    dep = workload_deployment("web", replicas=replicas, env={"GOGC": "100"})
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    c["resources"] = {"limits": {"memory": "256Mi"}}
    return dep


def gitops_apply(kube: Any, namespace: str, body: dict[str, Any], *, force: bool = True) -> None:
    """What Argo CD or Flux does with server-side apply: the whole manifest, under its own manager."""
    client.AppsV1Api(kube).patch_namespaced_deployment(
        body["metadata"]["name"],
        namespace,
        body,
        field_manager=GITOPS,
        force=force,
        _content_type="application/apply-patch+yaml",
    )


def live(kio: KubeIO, namespace: str, kind: str = "Deployment") -> dict[str, Any]:
    return kio.workloads.read(namespace, "web", kind)


def env(obj: dict[str, Any]) -> dict[str, str]:
    (c,) = obj["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "valueFrom") for e in c.get("env") or []}


def ours(obj: dict[str, Any]) -> dict[str, Any]:
    (m,) = [m for m in obj["metadata"]["managedFields"] if m["manager"] == FIELD_MANAGER]
    assert m["operation"] == "Apply"
    fields: dict[str, Any] = m["fieldsV1"]
    return fields


def test_the_apply_owns_only_gc_tuners_entries_and_keeps_what_it_wrote(namespace: str, kube: Any) -> None:
    client.AppsV1Api(kube).create_namespaced_deployment(namespace, manifest())
    kio = KubeIO(kube)
    assert asyncio.run(KubeEnv(kio, namespace, "web-gone", C).read()) is None  # a 404 is "gone", not an error
    plan = asyncio.run(KubeEnv(kio, namespace, "web", C).patch({"GOGC": "80", "GOMEMLIMIT": "230MiB"}, NOTE))
    assert plan.changes == {"GOGC": ("100", "80"), "GOMEMLIMIT": (None, "230MiB")}
    obj = live(kio, namespace)
    assert env(obj) == {"WORKLOAD_LIVE_MIB": "8", "WORKLOAD_QPS": "40", "GOGC": "80", "GOMEMLIMIT": "230MiB"}
    assert env_value_owners(obj, C, "GOGC") == (FIELD_MANAGER,)  # taken over from the creator (forced)
    assert env_value_owners(obj, C, "GOMEMLIMIT") == (FIELD_MANAGER,)
    assert FIELD_MANAGER not in env_value_owners(obj, C, "WORKLOAD_QPS")
    fields = ours(obj)
    assert set(fields) == {"f:metadata", "f:spec"}
    assert set(fields["f:metadata"]["f:annotations"]) == {"f:gctuner.io/previous-env", "f:gctuner.io/applied"}
    (container,) = fields["f:spec"]["f:template"]["f:spec"]["f:containers"].values()
    assert set(container["f:env"]) == {'k:{"name":"GOGC"}', 'k:{"name":"GOMEMLIMIT"}'}

    # A GOGC-only change keeps GOMEMLIMIT: the apply still names it.
    asyncio.run(KubeEnv(kio, namespace, "web", C).patch({"GOGC": "70"}, NOTE))
    assert env(live(kio, namespace))["GOMEMLIMIT"] == "230MiB"


def test_someone_elses_change_is_theirs_in_managed_fields_and_stops_gc_tuner(
    namespace: str, kube: Any
) -> None:
    original = manifest()
    gitops_apply(kube, namespace, original)
    kio = KubeIO(kube)
    asyncio.run(KubeEnv(kio, namespace, "web", C).patch({"GOGC": "80", "GOMEMLIMIT": "230MiB"}, NOTE))
    mine = AppliedState(80, "230MiB", "EnvPatch", 0.0)
    assert not check_external(mine, template_facts(live(kio, namespace), C), None, 1, at=1.0).stop

    # Without force, the GitOps tool's apply is refused: gc-tuner owns GOGC now.
    with pytest.raises(client.ApiException) as refused:
        gitops_apply(kube, namespace, original, force=False)
    assert refused.value.status == 409 and FIELD_MANAGER in str(refused.value.body)

    # Forced (self-heal), GOGC goes back to the manifest's and becomes the GitOps tool's.
    gitops_apply(kube, namespace, original)
    obj = live(kio, namespace)
    assert env(obj)["GOGC"] == "100" and env(obj)["GOMEMLIMIT"] == "230MiB"  # not in its manifest: ours still
    assert env_value_owners(obj, C, "GOGC") == (GITOPS,)
    check = check_external(mine, template_facts(obj, C), None, 1, at=1.0)
    assert check.stop is not None and check.stop.reason == "ExternalChange"
    assert f'GOGC 80 -> 100, changed by field manager "{GITOPS}"' in check.stop.message

    # An ordinary update (kubectl set env, kubectl edit) takes the value over the same way.
    client.AppsV1Api(kube).patch_namespaced_deployment(
        "web",
        namespace,
        {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": C, "env": [{"name": "GOMEMLIMIT", "value": "200MiB"}]}]}
                }
            }
        },
        field_manager="kubectl-set",
    )
    obj = live(kio, namespace)
    assert env_value_owners(obj, C, "GOMEMLIMIT") == ("kubectl-set",)
    check = check_external(mine, template_facts(obj, C), None, 1, at=1.0)
    assert check.stop is not None and '"kubectl-set"' in check.stop.message


def test_restore_puts_back_what_is_still_ours_and_leaves_the_rest(namespace: str, kube: Any) -> None:
    original = manifest()
    gitops_apply(kube, namespace, original)
    kio = KubeIO(kube)
    asyncio.run(KubeEnv(kio, namespace, "web", C).patch({"GOGC": "80", "GOMEMLIMIT": "230MiB"}, NOTE))
    changed = copy.deepcopy(original)
    (c,) = changed["spec"]["template"]["spec"]["containers"]
    c["env"] = [e if e["name"] != "GOGC" else {"name": "GOGC", "value": "150"} for e in c["env"]]
    gitops_apply(kube, namespace, changed)  # the manifest in git moved on to GOGC 150

    plan = asyncio.run(KubeEnv(kio, namespace, "web", C).restore())
    assert plan is not None and plan.changes == {"GOMEMLIMIT": ("230MiB", None)}
    obj = live(kio, namespace)
    assert env(obj) == {"WORKLOAD_LIVE_MIB": "8", "WORKLOAD_QPS": "40", "GOGC": "150"}
    annotations = obj["metadata"].get("annotations") or {}
    assert "gctuner.io/previous-env" not in annotations and "gctuner.io/applied" not in annotations


def test_restore_of_an_untouched_deployment_gives_back_its_env(namespace: str, kube: Any) -> None:
    client.AppsV1Api(kube).create_namespaced_deployment(namespace, manifest())
    kio = KubeIO(kube)
    before = env(live(kio, namespace))
    asyncio.run(KubeEnv(kio, namespace, "web", C).patch({"GOGC": "80", "GOMEMLIMIT": "230MiB"}, NOTE))
    plan = asyncio.run(KubeEnv(kio, namespace, "web", C).restore())
    assert plan is not None and plan.changes == {"GOGC": ("80", "100"), "GOMEMLIMIT": ("230MiB", None)}
    assert env(live(kio, namespace)) == before


def statefulset(partition: int) -> dict[str, Any]:
    dep = manifest(replicas=2)
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            **dep["spec"],
            "serviceName": "web",
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}},
        },
    }


def test_a_partitioned_statefulset_updates_the_pods_at_or_above_the_partition(
    namespace: str, kube: Any
) -> None:
    apps = client.AppsV1Api(kube)
    apps.create_namespaced_stateful_set(namespace, statefulset(partition=1))
    wait_for(lambda: len(ready_pods(kube, namespace, "web")) == 2, 120, "2 ready StatefulSet pods")
    kio = KubeIO(kube)
    before = {p.metadata.name: p.metadata.uid for p in ready_pods(kube, namespace, "web")}
    plan = asyncio.run(KubeEnv(kio, namespace, "web", C, "StatefulSet").patch({"GOGC": "80"}, NOTE))
    assert plan.changes == {"GOGC": ("100", "80")}
    assert env(live(kio, namespace, "StatefulSet"))["GOGC"] == "80"

    def settled() -> dict[str, Any] | None:
        obj = live(kio, namespace, "StatefulSet")
        pods = {p.metadata.name: p.metadata.uid for p in ready_pods(kube, namespace, "web")}
        return (
            obj
            if len(pods) == 2 and pods["web-1"] != before["web-1"] and not in_progress(template_facts(obj, C))
            else None
        )

    obj = wait_for(settled, 120, "web-1 recreated and the partitioned rollout done")
    facts = template_facts(obj, C)
    assert (facts.updated, facts.partition) == (1, 1)
    pods = {p.metadata.name: p for p in ready_pods(kube, namespace, "web")}
    assert pods["web-0"].metadata.uid == before["web-0"]  # below the partition: untouched
    gogc = {n: {e.name: e.value for e in p.spec.containers[0].env}["GOGC"] for n, p in pods.items()}
    assert gogc == {"web-0": "100", "web-1": "80"}
    verdict = statefulset_verdict(facts, "GOGC 80")
    assert verdict is not None and verdict.reason == "Partitioned"
    assert "the 1 pod(s) below the partition of statefulset/web keep their values" in verdict.message


def test_an_ondelete_statefulset_gets_the_value_only_on_recreated_pods(namespace: str, kube: Any) -> None:
    apps = client.AppsV1Api(kube)
    sts = statefulset(partition=0)
    sts["spec"]["updateStrategy"] = {"type": "OnDelete"}
    apps.create_namespaced_stateful_set(namespace, sts)
    wait_for(lambda: len(ready_pods(kube, namespace, "web")) == 2, 120, "2 ready StatefulSet pods")
    kio = KubeIO(kube)
    before = {p.metadata.name: p.metadata.uid for p in ready_pods(kube, namespace, "web")}
    asyncio.run(KubeEnv(kio, namespace, "web", C, "StatefulSet").patch({"GOGC": "80"}, NOTE))

    def observed() -> dict[str, Any] | None:
        obj = live(kio, namespace, "StatefulSet")
        s = obj.get("status") or {}
        return (
            obj
            if s.get("observedGeneration") == obj["metadata"]["generation"] and s.get("updateRevision")
            else None
        )

    facts = template_facts(wait_for(observed, 60, "the StatefulSet controller to observe the write"), C)
    assert (facts.strategy, facts.updated) == ("OnDelete", 0)
    assert not in_progress(facts)  # nothing rolls out: a later write need not wait
    verdict = statefulset_verdict(facts, "GOGC 80")
    assert (
        verdict is not None
        and verdict.reason == "PendingRecreate"
        and "(0/2 updated so far)" in verdict.message
    )
    time.sleep(5)
    assert {
        p.metadata.name: p.metadata.uid for p in ready_pods(kube, namespace, "web")
    } == before  # none deleted

    # Whoever recreates a pod (here: the test) gives it the value.
    client.CoreV1Api(kube).delete_namespaced_pod("web-1", namespace)

    def recreated() -> dict[str, Any] | None:
        pods = {p.metadata.name: p for p in ready_pods(kube, namespace, "web")}
        obj = live(kio, namespace, "StatefulSet")
        ok = len(pods) == 2 and pods["web-1"].metadata.uid != before["web-1"]
        return obj if ok and (obj.get("status") or {}).get("updatedReplicas") == 1 else None

    facts = template_facts(wait_for(recreated, 120, "web-1 recreated on the new template"), C)
    verdict = statefulset_verdict(facts, "GOGC 80")
    assert verdict is not None and "(1/2 updated so far)" in verdict.message
