"""The test kubelet against the real control plane, with its own probe program (testdata/testprog):
env sources, image errors, restart policies, probes, graceful deletion, logs, heartbeats, tokens."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from typing import Any

import httpx
import pytest
from kubernetes import client

from e2e.cluster.waits import pod_pids, wait_for

pytestmark = pytest.mark.e2e

PORT = 9000
IMAGE = "gc-tuner/testprog:dev"


def _pod(
    name: str,
    *,
    args: tuple[str, ...] = (),
    restart: str = "Always",
    grace: int = 5,
    container: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    c: dict[str, Any] = {
        "name": "main",
        "image": IMAGE,
        "args": list(args),
        "ports": [{"name": "http", "containerPort": PORT}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1},
    }
    c.update(container or {})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": grace, "containers": [c], **spec},
    }


def _create(core: client.CoreV1Api, ns: str, *pods: dict[str, Any]) -> None:
    for pod in pods:
        core.create_namespaced_pod(ns, pod)


def _status(core: client.CoreV1Api, ns: str, name: str) -> Any:
    return core.read_namespaced_pod(name, ns).status


def _ready(core: client.CoreV1Api, ns: str, name: str) -> Any:
    st = _status(core, ns, name)
    ok = any(c.type == "Ready" and c.status == "True" for c in st.conditions or [])
    return st if ok else None


def _waiting(core: client.CoreV1Api, ns: str, name: str, reason: str) -> Any:
    st = _status(core, ns, name)
    cs = (st.container_statuses or [None])[0]
    w = cs and cs.state.waiting
    return w if w and w.reason == reason else None


def test_env_sources_resolve_like_a_kubelet(namespace: str, kube: Any) -> None:
    core = client.CoreV1Api(kube)
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}}
    )
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "cm"}, "data": {"mode": "fast", "x": "1"}}
    )
    env = [
        {"name": "PLAIN", "value": "v"},
        {"name": "EXPANDED", "value": "$(PLAIN)-w-$$(PLAIN)"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {
            "name": "MEM_MI",
            "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
        },
        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "mode"}}},
        {"name": "MAYBE", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k", "optional": True}}},
    ]
    container = {
        "env": env,
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
        "resources": {"limits": {"memory": "300Mi"}},
    }
    _create(core, namespace, _pod("envy", container=container))
    st = wait_for(lambda: _ready(core, namespace, "envy"), 30, "pod envy Ready")
    got = httpx.get(f"http://{st.pod_ip}:{PORT}/env", timeout=5).json()
    want = {
        "PLAIN": "v",
        "EXPANDED": "v-w-$(PLAIN)",
        "POD_NAME": "envy",
        "POD_NS": namespace,
        "POD_IP": st.pod_ip,
        "MEM_MI": "300",
        "MEM": str(300 * 2**20),
        "PASSWORD": "hunter2",
        "MODE": "fast",
        "CM_mode": "fast",
        "CM_x": "1",
        "TESTPROG_LISTEN": f"{st.pod_ip}:{PORT}",
    }
    assert {k: got.get(k) for k in want} == want
    assert "MAYBE" not in got
    assert st.host_ip == "127.0.0.1" and st.pod_ip != st.host_ip


def test_unknown_image_waits_in_err_image_pull(namespace: str, kube: Any) -> None:
    core = client.CoreV1Api(kube)
    pod = _pod("nginx", container={"image": "nginx:1.27"})
    _create(core, namespace, pod)
    w = wait_for(lambda: _waiting(core, namespace, "nginx", "ErrImagePull"), 30, "ErrImagePull")
    assert 'image "nginx:1.27" is not known to the test kubelet' in w.message
    assert "gc-tuner/workload:*" in w.message
    assert _status(core, namespace, "nginx").phase == "Pending"


def test_missing_secret_is_create_container_config_error_until_it_exists(namespace: str, kube: Any) -> None:
    core = client.CoreV1Api(kube)
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "late", "key": "token"}}}]
    _create(core, namespace, _pod("patient", container={"env": env}))
    w = wait_for(
        lambda: _waiting(core, namespace, "patient", "CreateContainerConfigError"), 30, "config error"
    )
    assert w.message == 'secret "late" not found'
    core.create_namespaced_secret(namespace, {"metadata": {"name": "late"}, "stringData": {"token": "t0k"}})
    st = wait_for(lambda: _ready(core, namespace, "patient"), 30, "pod patient Ready once the secret exists")
    assert httpx.get(f"http://{st.pod_ip}:{PORT}/env", timeout=5).json()["TOKEN"] == "t0k"


def test_restart_policies_and_liveness(namespace: str, kube: Any, kubectl: Any) -> None:
    core = client.CoreV1Api(kube)
    crash = ("--exit-after=300ms", "--exit-code=3")
    _create(
        core,
        namespace,
        _pod("always", args=crash, restart="Always"),
        _pod("onfailure-ok", args=("--exit-after=300ms",), restart="OnFailure"),
        _pod("never", args=("--exit-after=300ms", "--exit-code=4"), restart="Never"),
        _pod(
            "unstarted",
            grace=1,
            container={
                "startupProbe": {
                    "httpGet": {"path": "/nope", "port": PORT},
                    "periodSeconds": 1,
                    "failureThreshold": 2,
                }
            },
        ),
        _pod(
            "unlive",
            grace=1,
            container={
                "livenessProbe": {
                    "httpGet": {"path": "/nope", "port": PORT},
                    "periodSeconds": 1,
                    "failureThreshold": 2,
                }
            },
        ),
    )

    def restarted(name: str, times: int) -> Any:
        cs = _status(core, namespace, name).container_statuses
        return cs and cs[0].restart_count >= times and cs[0]

    cs = wait_for(lambda: restarted("always", 2), 30, "pod always to restart twice")
    assert cs.last_state.terminated.exit_code == 3 and cs.last_state.terminated.reason == "Error"
    previous = kubectl("logs", "always", "-n", namespace, "--previous").stdout
    assert "exiting with 3" in previous

    def phase(name: str, want: str) -> Any:
        st = _status(core, namespace, name)
        return st if st.phase == want else None

    st = wait_for(lambda: phase("onfailure-ok", "Succeeded"), 30, "onfailure-ok Succeeded")
    assert st.container_statuses[0].restart_count == 0
    assert st.container_statuses[0].state.terminated.reason == "Completed"
    st = wait_for(lambda: phase("never", "Failed"), 30, "never Failed")
    assert st.container_statuses[0].restart_count == 0
    assert st.container_statuses[0].state.terminated.exit_code == 4

    for name, probe in (("unlive", "Liveness"), ("unstarted", "Startup")):
        cs = wait_for(lambda name=name: restarted(name, 1), 30, f"{probe} failures to restart pod {name}")
        assert cs.last_state.terminated is not None
        events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
        assert any(e.reason == "Unhealthy" and f"{probe} probe failed" in e.message for e in events)
    assert not _status(core, namespace, "unstarted").container_statuses[0].ready


def test_delete_sends_sigterm_then_sigkill_after_the_grace_period(namespace: str, kube: Any) -> None:
    core = client.CoreV1Api(kube)
    _create(
        core,
        namespace,
        _pod("polite", grace=30),
        _pod("stubborn", grace=2, args=("--ignore-sigterm",)),
    )
    for name in ("polite", "stubborn"):
        wait_for(lambda name=name: _ready(core, namespace, name), 30, f"pod {name} Ready")
    pids = {name: pod_pids(name) for name in ("polite", "stubborn")}
    assert all(len(p) == 1 for p in pids.values())

    start = time.monotonic()
    for name in pids:
        core.delete_namespaced_pod(name, namespace)

    def gone(name: str) -> bool:
        return not os.path.exists(f"/proc/{pids[name][0]}") and name not in {
            p.metadata.name for p in core.list_namespaced_pod(namespace).items
        }

    # polite exits on SIGTERM, long before its 30 s grace period would end in a SIGKILL.
    wait_for(lambda: gone("polite"), 15, "polite to exit on SIGTERM")
    wait_for(lambda: gone("stubborn"), 20, "stubborn to be killed after its grace period")
    assert time.monotonic() - start >= 1.5, "stubborn ignored SIGTERM: only SIGKILL at 2 s may end it"


def test_logs_tail_timestamps_previous_and_follow_through_the_apiserver(
    namespace: str, kube: Any, kubectl: Any, cluster: Any
) -> None:
    core = client.CoreV1Api(kube)
    _create(core, namespace, _pod("chatty", args=("--print=first line", "--tick=200ms")))
    wait_for(lambda: _ready(core, namespace, "chatty"), 30, "pod chatty Ready")
    wait_for(lambda: "tick 3" in kubectl("logs", "chatty", "-n", namespace).stdout, 15, "three ticks")

    full = kubectl("logs", "chatty", "-n", namespace).stdout.splitlines()
    assert full[0] == "first line"
    tail = kubectl("logs", "chatty", "-n", namespace, "--tail=2").stdout.splitlines()
    assert len(tail) == 2 and all(line.startswith("tick ") for line in tail)
    stamped = kubectl("logs", "chatty", "-n", namespace, "--timestamps").stdout.splitlines()
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z first line$", stamped[0])
    # The pods/log API directly (what the operator's kubernetes client uses).
    api_log = core.read_namespaced_pod_log("chatty", namespace, container="main", tail_lines=1)
    assert api_log.startswith("tick ")
    err = kubectl("logs", "chatty", "-n", namespace, "--previous", check=False)
    assert err.returncode != 0 and 'previous terminated container "main"' in err.stderr

    # follow: lines written after the request arrive on the open stream.
    proc = subprocess.Popen(
        [
            str(cluster.kubectl),
            f"--kubeconfig={cluster.kubeconfig}",
            "logs",
            "-f",
            "chatty",
            "-n",
            namespace,
            "--tail=1",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ticks = [int(proc.stdout.readline().split()[1]) for _ in range(4)]
    finally:
        proc.kill()
        proc.wait()
    assert ticks == list(range(ticks[0], ticks[0] + 4))


def test_node_keeps_its_lease_and_ready_heartbeat_fresh(kube: Any, cluster: Any) -> None:
    core, coord = client.CoreV1Api(kube), client.CoordinationV1Api(kube)
    node = core.read_node(cluster.node)
    assert ("InternalIP", "127.0.0.1") in [(a.type, a.address) for a in node.status.addresses]
    assert node.status.daemon_endpoints.kubelet_endpoint.port > 0
    assert any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
    assert not node.spec.taints
    first = coord.read_namespaced_lease(cluster.node, "kube-node-lease").spec.renew_time
    renewed = wait_for(
        lambda: (
            (t := coord.read_namespaced_lease(cluster.node, "kube-node-lease").spec.renew_time) > first and t
        ),
        20,
        "the node lease to be renewed",
    )
    assert renewed > first


def test_pod_with_a_service_account_gets_a_token_for_it(namespace: str, kube: Any, cluster: Any) -> None:
    core = client.CoreV1Api(kube)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})
    _create(core, namespace, _pod("creds", serviceAccountName="reader"))
    st = wait_for(lambda: _ready(core, namespace, "creds"), 30, "pod creds Ready")
    env = httpx.get(f"http://{st.pod_ip}:{PORT}/env", timeout=5).json()
    out = subprocess.run(
        [str(cluster.kubectl), f"--kubeconfig={env['KUBECONFIG']}", "auth", "whoami", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    user = json.loads(out)["status"]["userInfo"]
    assert user["username"] == f"system:serviceaccount:{namespace}:reader"
    assert user["extra"]["authentication.kubernetes.io/pod-name"] == ["creds"]


def test_a_container_over_its_memory_limit_is_oom_killed(namespace: str, kube: Any) -> None:
    """limits.memory is a real cgroup v1 limit: the kernel's OOM killer ends the process, and the
    status says OOMKilled (not Error) with exit code 137, as the real kubelet reports it."""
    from e2e.cluster.manifests import WORKLOAD_IMAGE
    from e2e.kubelet.memcg import cgroup_root

    if cgroup_root() is None:
        pytest.skip("no writable cgroup v1 memory hierarchy on this host: limits are not enforced")
    core = client.CoreV1Api(kube)
    container = {
        "image": WORKLOAD_IMAGE,
        "env": [{"name": "WORKLOAD_LIVE_MIB", "value": "200"}],
        "resources": {"limits": {"memory": "64Mi"}},
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1},
    }
    _create(core, namespace, _pod("hog", restart="Never", container=container))
    st = wait_for(lambda: (s := _status(core, namespace, "hog")).phase == "Failed" and s, 60, "hog to fail")
    term = st.container_statuses[0].state.terminated
    assert term.reason == "OOMKilled" and term.exit_code == 137, term
