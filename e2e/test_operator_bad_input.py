"""Scenario 6, bad input: the apiserver rejects invalid GCPolicies naming the field; a wrong token, an
unreachable pod and a pod serving garbage each show up as Degraded with a reason, while the healthy
pods are still tuned.

The operator tunes the pods its target owns, so the three bad pods must be the target's own: the
target is a StatefulSet (update strategy OnDelete) that adopts them. They are created first as
orphans named as its pods (web-2..web-4, with its identity labels), each with the process the test
wants; the StatefulSet then starts web-0 and web-1 from its template and adopts the rest without
replacing them. The garbage pod is a real pod (the kubelet's testprog, listening on another port);
at its pod IP on the policy's port the test serves garbage, which is what the operator reads from
that pod.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from kubernetes import client

from e2e.cluster.manifests import WORKLOAD_IMAGE
from e2e.cluster.waits import wait_for
from e2e.operator_support import (
    OperatorProc,
    agent_get,
    condition,
    create_policy,
    get_policy,
    ready_pods,
    rejected_policy,
    token_secret,
)
from e2e.test_operator_endpoint import endpoint_deployment, endpoint_policy

pytestmark = pytest.mark.e2e

VALID: dict[str, Any] = {
    "targetRef": {"name": "web"},
    "sampling": {"intervalSeconds": 5, "sources": {"agent": {"port": 8080}}},
    "qps": {"counter": {"name": "http_requests_total", "port": 8080}},
}


def _with(path: str, value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(VALID)
    node = spec
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return spec


_DELETE = object()

INVALID = [
    ("bounds", {"minGOGC": 300, "maxGOGC": 200}, "bounds.minGOGC must be <= bounds.maxGOGC"),
    ("rollout", {"method": "Endpoint"}, "rollout.endpoint.port is required when rollout.method is Endpoint"),
    ("memoryLimit", {"mode": "FromContainerLimit", "percent": 40}, "spec.memoryLimit.percent"),
    ("memoryLimit", {"mode": "Fixed", "fixed": "1.5GB"}, "memoryLimit.fixed must be a quantity"),
    ("mode", "Auto", "spec.mode"),
    ("sampling.intervalSeconds", 0, "spec.sampling.intervalSeconds"),
    ("sampling.windowSeconds", 10, "sampling.windowSeconds must be at least 3"),
    ("strategy", {"formula": {"slopeCoefficientMilli": 0.2}}, "spec.strategy.formula.slopeCoefficientMilli"),
    (
        "qps",
        {"counter": {"name": "r", "port": 1}, "promql": {"url": "http://127.0.0.1:9090", "query": "up"}},
        "exactly one of qps.counter, qps.promql or qps.agent",
    ),
    ("qps", {"agent": {}, "counter": {"name": "r", "port": 1}}, "exactly one of qps.counter, qps.promql"),
    ("targetRef.name", _DELETE, "spec.targetRef.name"),
    ("targetRef.name", "Web_Service", "spec.targetRef.name"),
    ("rollout", {"leaseSeconds": 1}, "spec.rollout.leaseSeconds"),
    ("rollout", {"canary": {"percent": 0}}, "spec.rollout.canary.percent"),
    ("rollout", {"canary": {"evaluationSeconds": 5}}, "spec.rollout.canary.evaluationSeconds"),
    ("guard", {"maxMemoryPercentOfLimit": 101}, "spec.guard.maxMemoryPercentOfLimit"),
    (
        "guard",
        {"latency": {"histogram": "h"}},
        "guard.latency.port is required unless sampling.sources.prometheus",
    ),
    (
        "guard",
        {"latency": {"histogram": "h", "port": 8080, "matchers": {"a-b": "x"}}},
        "guard.latency.matchers keys",
    ),
    (
        "guard",
        {
            "latency": {
                "histogram": "h",
                "port": 8080,
                "promql": {"url": "http://127.0.0.1:9090", "query": "q"},
            }
        },
        "guard.latency needs exactly one of histogram or promql",
    ),
    ("guard", {"latency": {"port": 8080}}, "guard.latency needs exactly one of histogram or promql"),
    ("guard", {"latency": {"promql": {"url": "ftp://x", "query": "q"}}}, "spec.guard.latency.promql.url"),
    ("paused", "yes", "spec.paused"),
]


def test_an_agent_counter_without_the_agent_source_is_rejected(namespace: str, kube: Any, crd: None) -> None:
    spec = {**copy.deepcopy(VALID), "qps": {"agent": {}}}
    spec["sampling"]["sources"] = {"prometheus": {"port": 8080}}
    status = rejected_policy(kube, namespace, spec)
    assert "qps.agent needs sampling.sources.agent" in status["message"], status["message"]


@pytest.mark.parametrize(
    ("path", "value", "field"), INVALID, ids=[f"{p}-{i}" for i, (p, _, _) in enumerate(INVALID)]
)
def test_invalid_policies_are_rejected_naming_the_field(
    namespace: str, kube: Any, crd: None, path: str, value: Any, field: str
) -> None:
    status = rejected_policy(kube, namespace, _with(path, value))
    assert field in status["message"], status["message"]
    # The structured causes name the offending field by its path too.
    assert any(c.get("field", "").startswith("spec.") for c in status["details"]["causes"]), status["details"]


def test_a_valid_minimal_policy_is_accepted_and_defaulted_like_the_model(
    namespace: str, kube: Any, crd: None
) -> None:
    from gc_tuner.model.policy import parse_policy

    obj = create_policy(kube, namespace, "ok", copy.deepcopy(VALID))
    assert obj["spec"] == parse_policy(copy.deepcopy(VALID)).to_crd()


class _Garbage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html>this is not a metrics page</html>\n# TYPE x{ nonsense\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _serve_garbage(ip: str) -> ThreadingHTTPServer:
    srv = ThreadingHTTPServer((ip, 8080), _Garbage)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def _bare_pod(name: str, image: str, env: dict[str, str], port: int) -> dict[str, Any]:
    """An orphan pod with the identity of StatefulSet web's pod `name` (web-<ordinal>), for it to adopt."""
    return {
        "metadata": {
            "name": name,
            "labels": {
                "app": "web",
                "statefulset.kubernetes.io/pod-name": name,
                "apps.kubernetes.io/pod-index": name.rsplit("-", 1)[1],
            },
        },
        "spec": {
            "hostname": name,
            "subdomain": "web",
            "containers": [
                {
                    "name": "workload",
                    "image": image,
                    "ports": [{"containerPort": port}],
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                }
            ],
        },
    }


@pytest.fixture
def servers() -> Iterator[list[ThreadingHTTPServer]]:
    started: list[ThreadingHTTPServer] = []
    yield started
    for s in started:
        s.shutdown()
        s.server_close()


def test_failing_pods_degrade_while_healthy_pods_are_tuned(
    namespace: str, kube: Any, operator: OperatorProc, servers: list[ThreadingHTTPServer]
) -> None:
    apps, core = client.AppsV1Api(kube), client.CoreV1Api(kube)
    secret = token_secret(kube, namespace)
    core.create_namespaced_pod(
        namespace,
        _bare_pod("web-2", WORKLOAD_IMAGE, {"GC_TUNER_TOKEN": "not-the-token", "WORKLOAD_QPS": "100"}, 8080),
    )
    core.create_namespaced_pod(namespace, _bare_pod("web-3", WORKLOAD_IMAGE, {"WORKLOAD_QPS": "10"}, 9999))
    core.create_namespaced_pod(namespace, _bare_pod("web-4", "gc-tuner/testprog:dev", {}, 9998))
    dep = endpoint_deployment("web", 5, {"WORKLOAD_QPS": "1200"}, secret)
    apps.create_namespaced_stateful_set(
        namespace,
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                **dep["spec"],
                "serviceName": "web",
                "podManagementPolicy": "Parallel",
                "updateStrategy": {"type": "OnDelete"},
            },
        },
    )
    names = {"wrong-token": "web-2", "unreachable": "web-3", "garbage": "web-4"}
    healthy = {"web-0", "web-1"}
    wait_for(
        lambda: healthy <= {p.metadata.name for p in ready_pods(kube, namespace, "web")},
        90,
        "web-0 and web-1",
    )

    def running(name: str) -> Any:
        p = core.read_namespaced_pod(name, namespace)
        owners = [o.kind for o in p.metadata.owner_references or [] if o.controller]
        return p.status.phase == "Running" and p.status.pod_ip and owners == ["StatefulSet"] and p

    garbage_pod = wait_for(lambda: running(names["garbage"]), 60, "the garbage pod, adopted")
    servers.append(_serve_garbage(garbage_pod.status.pod_ip))
    for name in ("wrong-token", "unreachable"):
        wait_for(lambda n=name: running(names[n]), 60, name)

    policy = endpoint_policy(secret)
    policy["targetRef"] = {"kind": "StatefulSet", "name": "web"}
    create_policy(kube, namespace, "web", policy)
    want = {
        names["wrong-token"]: "AuthFailed",
        names["unreachable"]: "Unreachable",
        names["garbage"]: "MalformedData",
    }

    def degraded() -> dict[str, Any] | None:
        o = get_policy(kube, namespace, "web")
        failures = {
            f["name"]: f["reason"] for f in (o.get("status") or {}).get("pods", {}).get("failures", [])
        }
        applied = (o.get("status") or {}).get("applied") or {}
        return o if all(failures.get(k) == v for k, v in want.items()) and applied.get("pods") == 2 else None

    pol = wait_for(degraded, 60, "the three failures and two tuned pods")
    d = condition(pol, "Degraded") or {}
    assert d.get("status") == "True" and d.get("reason") in set(want.values()), d
    for name in want:
        assert name in d["message"]
    assert pol["status"]["pods"]["matched"] == 5 and pol["status"]["pods"]["failing"] == 3
    gogc = pol["status"]["applied"]["gogc"]
    for p in ready_pods(kube, namespace, "web"):
        if p.metadata.name in healthy:
            assert agent_get(p.status.pod_ip)["metrics"]["/gc/gogc:percent"] == gogc
    # The wrong-token process refused the write: it still runs its startup GOGC.
    wrong_ip = core.read_namespaced_pod(names["wrong-token"], namespace).status.pod_ip
    assert agent_get(wrong_ip, token="not-the-token")["gogc"] == 100

    def warnings() -> set[str]:
        events = core.list_namespaced_event(namespace, field_selector="involvedObject.kind=GCPolicy").items
        return {e.reason for e in events if e.type == "Warning"}

    # kopf posts Events from its own task, so one may follow the condition that names it.
    wait_for(lambda: set(want.values()) <= warnings(), 30, f"Warnings {sorted(set(want.values()))}")


class _Spy(BaseHTTPRequestHandler):
    """A pod's agent port that records every Authorization header it is sent, and answers 401."""

    seen: ClassVar[list[str | None]] = []

    def _record(self) -> None:
        type(self).seen.append(self.headers.get("Authorization"))
        self.send_response(401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_DELETE = _record

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_secret_not_opted_in_is_never_sent_to_pods(
    namespace: str, kube: Any, operator: OperatorProc, servers: list[ThreadingHTTPServer]
) -> None:
    """A policy author names a Secret of the namespace that is not an agent token: the operator says
    so, and no request to the matched pods carries its value."""
    core = client.CoreV1Api(kube)
    value = "database-password-not-a-token"
    secret = token_secret(kube, namespace, name="db-credentials", token=value, opted_in=False)
    # The target's one pod runs testprog on another port; the test listens on the policy's port.
    dep = endpoint_deployment("web", 1, {}, secret)
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    c.update(image="gc-tuner/testprog:dev", ports=[{"containerPort": 9998}], env=[])
    del c["readinessProbe"]
    client.AppsV1Api(kube).create_namespaced_deployment(namespace, dep)

    def running() -> Any:
        pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
        return next((p for p in pods if p.status.phase == "Running" and p.status.pod_ip), None)

    spy = wait_for(running, 60, "the spy pod")
    handler = type("S", (_Spy,), {"seen": []})
    srv = ThreadingHTTPServer((spy.status.pod_ip, 8080), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    servers.append(srv)

    create_policy(kube, namespace, "web", endpoint_policy(secret))

    def refused() -> dict[str, Any] | None:
        o = get_policy(kube, namespace, "web")
        d = condition(o, "Degraded") or {}
        return o if "SecretNotOptedIn" in d.get("message", "") and len(handler.seen) >= 2 else None

    pol = wait_for(refused, 60, "Degraded naming the Secret, and the spy pod sampled")
    d = condition(pol, "Degraded") or {}
    assert (
        d["status"] == "True"
        and "db-credentials" in d["message"]
        and "gctuner.io/agent-token" in d["message"]
    )
    assert handler.seen and all(value not in (h or "") for h in handler.seen), handler.seen


def test_a_promql_url_outside_the_operators_allow_list_is_never_queried(
    namespace: str, kube: Any, make_operator: Callable[..., OperatorProc], servers: list[ThreadingHTTPServer]
) -> None:
    """A policy author points qps.promql.url at an address the operator's owner did not allow (here
    a recording server; in a cluster, say, a metadata service): refused, and no request is made."""
    handler = type("P", (_Spy,), {"seen": []})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    servers.append(srv)
    make_operator("--promql-url-prefix", "http://prometheus.monitoring.svc:9090/")
    client.AppsV1Api(kube).create_namespaced_deployment(namespace, endpoint_deployment("web", 0, {}, "none"))
    spec = {
        "targetRef": {"name": "web"},
        "sampling": {"intervalSeconds": 1, "windowSeconds": 30, "sources": {"agent": {"port": 8080}}},
        "qps": {"promql": {"url": f"http://127.0.0.1:{srv.server_address[1]}", "query": "sum(up)"}},
    }
    create_policy(kube, namespace, "web", spec)

    def refused() -> dict[str, Any] | None:
        o = get_policy(kube, namespace, "web")
        return o if (condition(o, "Degraded") or {}).get("reason") == "PromQLNotAllowed" else None

    pol = wait_for(refused, 60, "Degraded, PromQLNotAllowed")
    assert "prometheus.monitoring.svc" in (condition(pol, "Ready") or {})["message"]
    time.sleep(3)  # three more intervals: still nothing sent
    assert handler.seen == []
