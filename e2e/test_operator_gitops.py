"""EnvPatch beside a GitOps tool that self-heals the Deployment (Argo CD, Flux), on the real control
plane with real pods: a loop here re-applies the manifest from "git" with server-side apply under
its own field manager (forced), as those tools do. gc-tuner writes once, sees its GOGC taken back,
stops and says who did it, and rolls nothing out again (no rollout every cooldown) until the
policy's spec changes (also while the operator was down)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
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
    condition,
    create_policy,
    get_policy,
    ready_pods,
    wait_condition,
)

pytestmark = pytest.mark.e2e

GITOPS = "gitops-sim"
COOLDOWN = 5  # short: without the stop, gc-tuner and the GitOps loop would trade a rollout every 5 s


def manifest() -> dict[str, Any]:
    dep = workload_deployment("web", replicas=2, env={"WORKLOAD_QPS": "1200", "GOGC": "100"})
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    c["resources"] = {"limits": {"memory": "256Mi"}}
    return dep


def envpatch_policy(**rollout: Any) -> dict[str, Any]:
    return {
        "targetRef": {"name": "web", "container": "workload"},
        "mode": "Enforce",
        "rollout": {"method": "EnvPatch", "cooldownSeconds": COOLDOWN, **rollout},
        # Not about judging a value: every change goes to the Deployment at once.
        "guard": {"enabled": False},
        "sampling": {
            "intervalSeconds": 2,
            "windowSeconds": 30,
            "sources": {"agent": {"port": 8080}, "prometheus": {"port": 8080}},
        },
        "qps": {"counter": {"name": "http_requests_total", "matchers": {"handler": "work"}}},
        "memoryLimit": {"mode": "FromContainerLimit", "percent": 90},
    }


def gitops_apply(kube: Any, namespace: str, body: dict[str, Any]) -> None:
    client.AppsV1Api(kube).patch_namespaced_deployment(
        "web", namespace, body, field_manager=GITOPS, force=True, _content_type="application/apply-patch+yaml"
    )


class SelfHeal:
    """The GitOps tool's loop: re-apply the manifest every second while running."""

    def __init__(self, kube: Any, namespace: str) -> None:
        self.kube, self.namespace = kube, namespace
        self.thread: threading.Thread | None = None
        self.stopped = threading.Event()

    def start(self) -> None:
        self.stopped.clear()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        if self.thread is not None:
            self.thread.join(10)

    def _loop(self) -> None:
        while not self.stopped.is_set():
            # A 409 with a concurrent write: the next round applies again.
            with contextlib.suppress(client.ApiException):
                gitops_apply(self.kube, self.namespace, manifest())
            self.stopped.wait(1.0)


@pytest.fixture
def self_heal(kube: Any, namespace: str) -> Iterator[SelfHeal]:
    heal = SelfHeal(kube, namespace)
    try:
        yield heal
    finally:
        heal.stop()


def gogc(apps: client.AppsV1Api, namespace: str) -> str | None:
    (c,) = apps.read_namespaced_deployment("web", namespace).spec.template.spec.containers
    return {e.name: e.value for e in c.env or []}.get("GOGC")


def replicasets(apps: client.AppsV1Api, namespace: str) -> list[str]:
    return sorted(
        rs.metadata.name for rs in apps.list_namespaced_replica_set(namespace, label_selector="app=web").items
    )


def rs_gogc(apps: client.AppsV1Api, namespace: str) -> dict[str, str | None]:
    """Each ReplicaSet's GOGC: which rollout made it."""
    out = {}
    for rs in apps.list_namespaced_replica_set(namespace, label_selector="app=web").items:
        (c,) = rs.spec.template.spec.containers
        out[rs.metadata.name] = {e.name: e.value for e in c.env or []}.get("GOGC")
    return out


def events(kube: Any, namespace: str, reason: str) -> list[Any]:
    evs = (
        client.CoreV1Api(kube)
        .list_namespaced_event(namespace, field_selector="involvedObject.kind=GCPolicy")
        .items
    )
    return [e for e in evs if e.reason == reason]


def rolled_out(apps: client.AppsV1Api, namespace: str) -> bool:
    d = apps.read_namespaced_deployment("web", namespace)
    s = d.status
    return bool(
        s.observed_generation >= d.metadata.generation
        and s.updated_replicas == 2
        and s.replicas == 2
        and s.available_replicas == 2
    )


def test_a_self_healing_gitops_tool_stops_gc_tuner_after_one_write(
    namespace: str, kube: Any, operator: OperatorProc, self_heal: SelfHeal
) -> None:
    apps = client.AppsV1Api(kube)
    gitops_apply(kube, namespace, manifest())
    wait_for(lambda: len(ready_pods(kube, namespace, "web")) == 2, 90, "2 ready pods")
    (original_rs,) = replicasets(apps, namespace)
    create_policy(kube, namespace, "web", envpatch_policy())

    # 1. gc-tuner writes once: one new ReplicaSet.
    ours = wait_for(lambda: (g := gogc(apps, namespace)) != "100" and g, 90, "gc-tuner's env patch")
    wait_for(lambda: rolled_out(apps, namespace), 120, "gc-tuner's rollout")
    assert len(replicasets(apps, namespace)) == 2  # exactly one new ReplicaSet: gc-tuner's

    # 2. The GitOps tool self-heals: GOGC goes back to the manifest's; gc-tuner stops and names it.
    self_heal.start()
    pol = wait_for(
        lambda: (
            (c := condition(p := get_policy(kube, namespace, "web"), "Applied"))
            and c["reason"] == "ExternalChange"
            and p
        ),
        60,
        "Applied reason ExternalChange",
    )
    applied = condition(pol, "Applied") or {}
    assert f'GOGC {ours} -> 100, changed by field manager "{GITOPS}"' in applied["message"], applied
    assert (condition(pol, "Degraded") or {}).get("status") == "True"
    # kopf posts Events from its own task, after the status patch: the Event may follow the condition.
    (warning,) = wait_for(lambda: events(kube, namespace, "ExternalChange"), 30, "the ExternalChange Event")
    assert warning.type == "Warning" and f'"{GITOPS}"' in warning.message
    assert gogc(apps, namespace) == "100"

    # The revert is the GitOps tool's rollout: its ReplicaSet runs GOGC 100 beside the GOMEMLIMIT
    # gc-tuner added (not in its manifest, so not its to take back).
    wait_for(lambda: rolled_out(apps, namespace), 120, "the GitOps tool's rollout")
    at_detection = replicasets(apps, namespace)
    assert len(at_detection) == 3 and original_rs in at_detection, at_detection
    assert sorted(rs_gogc(apps, namespace).values()) == sorted(["100", "100", ours])

    # 3. No rollout loop: for six cooldowns the template keeps the GitOps value, no new generation,
    #    no new ReplicaSet, no second patch.
    generation = apps.read_namespaced_deployment("web", namespace).metadata.generation
    time.sleep(6 * COOLDOWN)
    d = apps.read_namespaced_deployment("web", namespace)
    assert d.metadata.generation == generation, "gc-tuner patched again after the ExternalChange"
    assert gogc(apps, namespace) == "100"
    assert replicasets(apps, namespace) == at_detection
    assert len(events(kube, namespace, "EnvPatched")) == 1
    assert len(events(kube, namespace, "ExternalChange")) == 1  # one detection, one Event
    assert (condition(get_policy(kube, namespace, "web"), "Applied") or {}).get("reason") == "ExternalChange"

    # 4. The GitOps side ignores the field now (ignoreDifferences); a change of the policy's spec
    #    resumes, even one made while the operator was down: the stop and its generation are in status.
    self_heal.stop()
    operator.kill()
    client.CustomObjectsApi(kube).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "web", {"spec": {"rollout": {"minGOGCChange": 5}}}
    )
    operator.start()
    wait_for(lambda: gogc(apps, namespace) != "100", 60, "gc-tuner writing again after the spec change")
    wait_for(lambda: len(events(kube, namespace, "EnvPatched")) == 2, 30, "the second EnvPatched Event")
    wait_for(lambda: rolled_out(apps, namespace), 120, "the second rollout")
    wait_condition(kube, namespace, "web", "Applied", timeout=60, what="Applied=True after resuming")
