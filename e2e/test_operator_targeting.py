"""Which pods and containers the operator tunes, on the real control plane and test kubelet:

- a pod whose labels match the target's selector but that the target does not own (a debug pod) is
  never touched; the owner chain decides, not the labels;
- with a sidecar injected first, the container that serves the policy's port is tuned: its memory
  limit sets GOMEMLIMIT, its gctrace lines come from pods/log with its name; a policy whose ports name
  no container is refused (AmbiguousContainer);
- two policies on one Deployment: the older keeps control, the newer says Conflict naming it;
- a StatefulSet under the Endpoint method;
- a container that answers without anything Go-shaped is reported NotGo and never written to;
- an in-place resize (pods/resize): the pod's GOMEMLIMIT follows its new limit within an interval.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest
from kubernetes import client

from e2e.cluster.manifests import workload_deployment
from e2e.cluster.waits import wait_for
from e2e.operator_support import (
    OperatorProc,
    agent_get,
    condition,
    create_policy,
    get_policy,
    token_secret,
    wait_condition,
)
from e2e.test_operator_endpoint import endpoint_deployment, endpoint_policy

pytestmark = pytest.mark.e2e

MiB = 1 << 20


def running_pods(kube: Any, namespace: str, app: str) -> list[Any]:
    pods = client.CoreV1Api(kube).list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return sorted(
        (
            p
            for p in pods
            if p.metadata.deletion_timestamp is None
            and p.status.phase == "Running"
            and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        ),
        key=lambda p: p.metadata.name,
    )


def with_proxy_first(
    dep: dict[str, Any], *, proxy_limit: str = "64Mi", app_limit: str = "256Mi"
) -> dict[str, Any]:
    """A service-mesh-like sidecar injected before the Go container (a process that serves no Go
    source on the policy's ports), each with its own memory limit."""
    spec = dep["spec"]["template"]["spec"]
    (app,) = spec["containers"]
    app["resources"] = {"limits": {"memory": app_limit}}
    proxy = {
        "name": "proxy",
        "image": "gc-tuner/testprog:dev",
        "ports": [{"containerPort": 15001}],
        "resources": {"limits": {"memory": proxy_limit}},
    }
    spec["containers"] = [proxy, app]
    return dep


def test_owner_chain_and_the_container_that_serves_the_port_are_tuned(
    namespace: str, kube: Any, operator: OperatorProc
) -> None:
    apps, core = client.AppsV1Api(kube), client.CoreV1Api(kube)
    secret = token_secret(kube, namespace)
    env = {"WORKLOAD_QPS": "1200", "GODEBUG": "gctrace=1"}
    apps.create_namespaced_deployment(namespace, with_proxy_first(endpoint_deployment("web", 1, env, secret)))
    # A debug pod with the Deployment's labels, nothing owns it: labels alone would tune it.
    debug = copy.deepcopy(endpoint_deployment("web", 1, env, secret)["spec"]["template"])
    debug["metadata"]["name"] = "web-debug"
    core.create_namespaced_pod(namespace, {"apiVersion": "v1", "kind": "Pod", **debug})
    # The same sidecar layout, with a policy whose ports name no container.
    apps.create_namespaced_deployment(namespace, with_proxy_first(workload_deployment("traced", replicas=0)))
    pods = wait_for(lambda: len(p := running_pods(kube, namespace, "web")) == 2 and p, 120, "2 ready pods")
    (tuned,) = [p for p in pods if p.metadata.name != "web-debug"]
    (untouched,) = [p for p in pods if p.metadata.name == "web-debug"]

    spec = endpoint_policy(secret)  # no targetRef.container: the port 8080 names the Go container
    spec["sampling"]["sources"]["gctrace"] = {"tailLines": 2000}
    spec["memoryLimit"] = {"mode": "FromContainerLimit", "percent": 90}
    create_policy(kube, namespace, "web", spec)
    create_policy(
        kube,
        namespace,
        "traced",
        {
            "targetRef": {"name": "traced"},
            "sampling": {"sources": {"gctrace": {}}},
            "qps": {"promql": {"url": "http://127.0.0.1:1/", "query": "q"}},
        },
    )
    pol = wait_condition(kube, namespace, "web", "Applied", timeout=90, what="Applied=True")
    pol = wait_for(
        lambda: (
            (o := get_policy(kube, namespace, "web"))["status"].get("gctrace", {}).get("cycles", 0) > 0 and o
        ),
        30,
        "gctrace cycles read from pods/log of the workload container",
    )
    assert pol["status"]["pods"]["matched"] == 1, pol["status"]["pods"]
    assert (condition(pol, "Degraded") or {}).get("status") == "False", condition(pol, "Degraded")
    state = agent_get(tuned.status.pod_ip)
    assert state["lease"]["owner"] == f"gc-tuner/{namespace}/web"
    # 90% of the workload container's 256Mi, not of the proxy's 64Mi (the first container).
    assert state["memoryLimitBytes"] == 230 * MiB, state
    assert pol["status"]["applied"]["gomemlimit"] == "230MiB"

    # Over a few more cycles the debug pod is never written: no lease, startup values.
    time.sleep(3 * 2)
    dbg = agent_get(untouched.status.pod_ip)
    assert dbg["lease"] is None and dbg["gogc"] == 100, dbg

    traced = wait_condition(kube, namespace, "traced", "Degraded", timeout=30, what="Degraded on traced")
    degraded = condition(traced, "Degraded") or {}
    assert degraded.get("reason") == "AmbiguousContainer", degraded
    assert "proxy, workload" in degraded["message"] and "spec.targetRef.container" in degraded["message"]
    assert (condition(traced, "Ready") or {}).get("reason") == "AmbiguousContainer"


def test_two_policies_on_one_deployment_the_older_keeps_control(
    namespace: str, kube: Any, operator: OperatorProc
) -> None:
    api = client.CustomObjectsApi(kube)
    client.AppsV1Api(kube).create_namespaced_deployment(
        namespace, workload_deployment("web", replicas=1, env={"WORKLOAD_QPS": "400"})
    )
    wait_for(lambda: len(running_pods(kube, namespace, "web")) == 1, 90, "1 ready pod")
    spec = {
        "targetRef": {"name": "web"},
        "mode": "Enforce",
        "rollout": {"method": "EnvPatch", "cooldownSeconds": 600},
        "guard": {"enabled": False},  # the conflict rule is under test, not the canary
        "sampling": {"intervalSeconds": 2, "windowSeconds": 30, "sources": {"prometheus": {"port": 8080}}},
        "qps": {"counter": {"name": "http_requests_total", "matchers": {"handler": "work"}}},
    }
    create_policy(kube, namespace, "first", spec)
    wait_condition(kube, namespace, "first", "Sampling", timeout=60)
    # creationTimestamp has whole seconds: the second one is created in a later second.
    time.sleep(1.1)
    create_policy(kube, namespace, "second", spec)
    second = wait_condition(kube, namespace, "second", "Degraded", timeout=30, what="second: Degraded")
    ready = condition(second, "Ready") or {}
    assert (ready.get("status"), ready.get("reason")) == ("False", "Conflict"), ready
    assert "GCPolicy first" in ready["message"], ready
    assert "pods" not in second["status"] or second["status"]["pods"].get("sampled", 0) == 0
    first = get_policy(kube, namespace, "first")
    assert (condition(first, "Sampling") or {}).get("status") == "True"
    assert (condition(first, "Degraded") or {}).get("reason") != "Conflict"
    # A DryRun policy on the same target tunes nothing, so it is never in conflict: it recommends.
    create_policy(kube, namespace, "observer", {**spec, "mode": "DryRun"})
    observer = wait_condition(kube, namespace, "observer", "Sampling", timeout=60, what="observer samples")
    assert (condition(observer, "Ready") or {}).get("reason") != "Conflict"

    # The older one gone, the newer one takes the target over.
    api.delete_namespaced_custom_object("gctuner.io", "v1alpha1", namespace, "gcpolicies", "first")
    took = wait_condition(kube, namespace, "second", "Sampling", timeout=60, what="second samples")
    assert (condition(took, "Degraded") or {}).get("reason") != "Conflict"


def test_statefulset_under_the_endpoint_method(namespace: str, kube: Any, operator: OperatorProc) -> None:
    secret = token_secret(kube, namespace)
    dep = endpoint_deployment("web", 2, {"WORKLOAD_QPS": "1200"}, secret)
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {**dep["spec"], "serviceName": "web", "podManagementPolicy": "Parallel"},
    }
    client.AppsV1Api(kube).create_namespaced_stateful_set(namespace, sts)
    wait_for(lambda: len(running_pods(kube, namespace, "web")) == 2, 120, "2 ready StatefulSet pods")
    spec = endpoint_policy(secret)
    spec["targetRef"] = {"kind": "StatefulSet", "name": "web"}
    create_policy(kube, namespace, "web", spec)
    pol = wait_for(
        lambda: (
            (o := get_policy(kube, namespace, "web"))
            and (condition(o, "Applied") or {}).get("status") == "True"
            and o["status"]["applied"]["pods"] == 2
            and o
        ),
        90,
        "Applied=True on both StatefulSet pods",
    )
    gogc = pol["status"]["applied"]["gogc"]
    for p in running_pods(kube, namespace, "web"):
        assert p.metadata.name in ("web-0", "web-1")
        state = agent_get(p.status.pod_ip)
        assert state["gogc"] == gogc and state["lease"]["owner"] == f"gc-tuner/{namespace}/web", state


# Serves /metrics like a non-Go exporter (no go_ series) and logs every write it gets.
NOT_GO = r"""
import http.server, os, sys
host, port = os.environ["PY_LISTEN"].rsplit(":", 1)
BODY = b"# TYPE http_requests_total counter\nhttp_requests_total 42\nprocess_cpu_seconds_total 1.5\n"
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Type", "text/plain"); self.end_headers()
        self.wfile.write(BODY)
    def do_POST(self):
        print("WRITE", self.path, flush=True); self.send_response(403); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer((host, int(port)), H).serve_forever()
"""


def test_a_container_that_is_not_go_is_reported_and_never_written(
    namespace: str, kube: Any, operator: OperatorProc
) -> None:
    core = client.CoreV1Api(kube)
    dep = workload_deployment("py", replicas=1)
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    c.update(image="gc-tuner/python:dev", args=["-c", NOT_GO], env=[])
    del c["readinessProbe"]
    client.AppsV1Api(kube).create_namespaced_deployment(namespace, dep)
    (pod,) = wait_for(lambda: len(p := running_pods(kube, namespace, "py")) == 1 and p, 90, "1 ready pod")
    spec = endpoint_policy("none")
    spec["targetRef"] = {"name": "py"}
    spec["rollout"]["endpoint"] = {"port": 8080}
    spec["sampling"]["sources"] = {"prometheus": {"port": 8080}}
    spec["qps"] = {"counter": {"name": "http_requests_total"}}
    create_policy(kube, namespace, "py", spec)
    pol = wait_condition(kube, namespace, "py", "Degraded", timeout=60, what="Degraded")
    degraded = condition(pol, "Degraded") or {}
    assert degraded.get("reason") == "NotGo", degraded
    assert "container workload" in degraded["message"], degraded
    sampling = condition(pol, "Sampling") or {}
    assert (sampling.get("status"), sampling.get("reason")) == ("False", "AllPodsFailing"), sampling
    time.sleep(3 * 2)
    logs = core.read_namespaced_pod_log(pod.metadata.name, namespace)
    assert "WRITE" not in logs, logs
    events = core.list_namespaced_event(namespace, field_selector="reason=NotGo").items
    assert len(events) == 1, [e.message for e in events]


def test_an_in_place_resize_moves_the_pods_gomemlimit_within_an_interval(
    namespace: str, kube: Any, kubectl: Any, operator: OperatorProc
) -> None:
    secret = token_secret(kube, namespace)
    dep = endpoint_deployment("web", 1, {"WORKLOAD_QPS": "1200"}, secret)
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    c["resources"] = {"limits": {"memory": "256Mi"}}
    client.AppsV1Api(kube).create_namespaced_deployment(namespace, dep)
    (pod,) = wait_for(lambda: len(p := running_pods(kube, namespace, "web")) == 1 and p, 90, "1 ready pod")
    spec = endpoint_policy(secret)
    spec["memoryLimit"] = {"mode": "FromContainerLimit", "percent": 90}
    create_policy(kube, namespace, "web", spec)
    wait_for(
        lambda: agent_get(pod.status.pod_ip)["memoryLimitBytes"] == 230 * MiB, 90, "GOMEMLIMIT 90% of 256Mi"
    )
    # The resize subresource, as `kubectl patch --subresource resize` or a VPA in-place updater sends it.
    patch = '{"spec":{"containers":[{"name":"workload","resources":{"limits":{"memory":"512Mi"}}}]}}'
    kubectl("patch", "pod", pod.metadata.name, "-n", namespace, "--subresource", "resize", "-p", patch)
    resized = time.monotonic()
    wait_for(
        lambda: agent_get(pod.status.pod_ip)["memoryLimitBytes"] == 460 * MiB, 30, "GOMEMLIMIT 90% of 512Mi"
    )
    took = time.monotonic() - resized
    live = client.CoreV1Api(kube).read_namespaced_pod(pod.metadata.name, namespace)
    (cs,) = live.status.container_statuses
    assert cs.resources.limits["memory"] == "512Mi" and cs.restart_count == 0
    assert live.metadata.uid == pod.metadata.uid
    # One interval (2 s) plus the kubelet's actuation and one write; generous on a loaded machine.
    assert took < 3 * 2 + 5, took
    print(f"\n[e2e] resize 256Mi -> 512Mi: GOMEMLIMIT followed in {took:.1f} s")


def test_gctrace_after_a_restart_reads_the_run_that_ended(
    namespace: str, kube: Any, operator: OperatorProc
) -> None:
    core = client.CoreV1Api(kube)
    # The process ends by itself every 15 s and is restarted (restartPolicy Always): a crash as the
    # operator sees it, without waiting for a real one.
    env = {"GODEBUG": "gctrace=1", "WORKLOAD_DURATION": "15s", "WORKLOAD_QPS": "200"}
    client.AppsV1Api(kube).create_namespaced_deployment(
        namespace, with_proxy_first(workload_deployment("web", replicas=1, env=env))
    )
    spec = {
        "targetRef": {"name": "web", "container": "workload"},
        "sampling": {
            "intervalSeconds": 2,
            "windowSeconds": 300,
            "sources": {"prometheus": {"port": 8080}, "gctrace": {"tailLines": 5000}},
        },
        "qps": {"counter": {"name": "http_requests_total", "matchers": {"handler": "work"}}},
    }
    create_policy(kube, namespace, "web", spec)

    def restarted() -> Any:
        pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
        return next(
            (
                p
                for p in pods
                for cs in p.status.container_statuses or []
                if cs.name == "workload" and cs.restart_count >= 1
            ),
            None,
        )

    pod = wait_for(restarted, 90, "the workload container restarted")

    def previous_reads() -> float:
        for line in operator.metrics().splitlines():
            if line.startswith('gctuner_samples_total{source="gctrace-previous"}'):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    wait_for(lambda: previous_reads() >= 1, 30, "a pods/log?previous=true read of the run that ended")
    # Every cycle the run that ended logged is in the window, not only those read before it ended.
    before = core.read_namespaced_pod_log(pod.metadata.name, namespace, container="workload", previous=True)
    ended = sum(1 for line in before.splitlines() if line.startswith("gc ") and " @" in line)
    cycles = get_policy(kube, namespace, "web")["status"]["gctrace"]["cycles"]
    assert ended > 0 and cycles >= ended, (cycles, ended)


def test_envpatch_writes_the_go_container_behind_a_sidecar_injected_first(
    namespace: str, kube: Any, operator: OperatorProc
) -> None:
    apps = client.AppsV1Api(kube)
    dep = with_proxy_first(
        workload_deployment("web", replicas=1, env={"WORKLOAD_QPS": "1200", "GOGC": "100"})
    )
    apps.create_namespaced_deployment(namespace, dep)
    wait_for(lambda: len(running_pods(kube, namespace, "web")) == 1, 90, "1 ready pod")
    create_policy(
        kube,
        namespace,
        "web",
        {
            "targetRef": {"name": "web"},  # no container: the one serving port 8080
            "mode": "Enforce",
            "rollout": {"method": "EnvPatch", "cooldownSeconds": 600},
            # The container the write goes to is under test; the EnvPatch canary has its own tests.
            "guard": {"enabled": False},
            "sampling": {
                "intervalSeconds": 2,
                "windowSeconds": 30,
                "sources": {"agent": {"port": 8080}, "prometheus": {"port": 8080}},
            },
            "qps": {"counter": {"name": "http_requests_total", "matchers": {"handler": "work"}}},
            "memoryLimit": {"mode": "FromContainerLimit", "percent": 90},
        },
    )

    def env(d: Any, name: str) -> dict[str, Any]:
        (c,) = [c for c in d.spec.template.spec.containers if c.name == name]
        return {e.name: e.value for e in c.env or []}

    patched = wait_for(
        lambda: (
            (d := apps.read_namespaced_deployment("web", namespace))
            and env(d, "workload")["GOGC"] != "100"
            and d
        ),
        90,
        "GOGC written into the workload container",
    )
    # The Go container got GOGC and 90% of its own 256Mi; the proxy (first, 64Mi) got nothing.
    assert env(patched, "workload")["GOMEMLIMIT"] == "230MiB"
    assert "GOGC" not in env(patched, "proxy") and "GOMEMLIMIT" not in env(patched, "proxy")


def test_envpatch_says_gomemlimit_is_pending_on_a_pod_resized_in_place(
    namespace: str, kube: Any, kubectl: Any, operator: OperatorProc
) -> None:
    apps = client.AppsV1Api(kube)
    dep = workload_deployment("web", replicas=1, env={"WORKLOAD_QPS": "1200", "GOGC": "100"})
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    c["resources"] = {"limits": {"memory": "256Mi"}}
    apps.create_namespaced_deployment(namespace, dep)
    wait_for(lambda: len(running_pods(kube, namespace, "web")) == 1, 90, "1 ready pod")
    create_policy(
        kube,
        namespace,
        "web",
        {
            "targetRef": {"name": "web"},
            "mode": "Enforce",
            "rollout": {"method": "EnvPatch", "cooldownSeconds": 600},
            "guard": {"enabled": False},  # the Applied message is under test, not the canary
            "sampling": {
                "intervalSeconds": 2,
                "windowSeconds": 30,
                "sources": {"agent": {"port": 8080}, "prometheus": {"port": 8080}},
            },
            "qps": {"counter": {"name": "http_requests_total", "matchers": {"handler": "work"}}},
            "memoryLimit": {"mode": "FromContainerLimit", "percent": 90},
        },
    )
    wait_for(
        lambda: (condition(get_policy(kube, namespace, "web"), "Applied") or {}).get("reason") == "InSync",
        150,
        "the env patched and rolled out (InSync)",
    )
    (pod,) = wait_for(lambda: len(p := running_pods(kube, namespace, "web")) == 1 and p, 60, "the new pod")
    patch = '{"spec":{"containers":[{"name":"workload","resources":{"limits":{"memory":"512Mi"}}}]}}'
    kubectl("patch", "pod", pod.metadata.name, "-n", namespace, "--subresource", "resize", "-p", patch)
    applied = wait_for(
        lambda: (
            (a := condition(get_policy(kube, namespace, "web"), "Applied") or {})
            and "GOMEMLIMIT pending on 1 pod(s)" in a.get("message", "")
            and a
        ),
        30,
        "Applied naming the resized pod as pending",
    )
    assert f"{pod.metadata.name} (460MiB)" in applied["message"] and "230MiB" in applied["message"], applied
