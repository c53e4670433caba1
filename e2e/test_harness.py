"""The e2e harness itself: a real control plane, the test kubelet and real workload processes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client

from e2e.cluster.build import BuildError, staging_replaces
from e2e.cluster.manifests import WORKLOAD_PORT, workload_deployment
from e2e.cluster.procs import pid_alive
from e2e.cluster.waits import pod_pids, wait_for
from e2e.kubelet.images import workload_binary
from gc_tuner.cli.gobuild import repo_root

pytestmark = pytest.mark.e2e

GCTRACE = re.compile(r"^gc \d+ @\d+\.\d+s \d+%: ")


def _apply(kubectl: Any, ns: str, obj: dict[str, Any]) -> None:
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(obj))


def _rollout(kubectl: Any, ns: str, name: str) -> None:
    kubectl("rollout", "status", f"deployment/{name}", "-n", ns, "--timeout=120s")


def _ready_pods(core: client.CoreV1Api, ns: str, app: str) -> list[client.V1Pod]:
    pods = core.list_namespaced_pod(ns, label_selector=f"app={app}").items
    return [
        p
        for p in pods
        if p.metadata.deletion_timestamp is None
        and p.status.phase == "Running"
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    ]


def _get(ip: str, path: str) -> httpx.Response:
    resp = httpx.get(f"http://{ip}:{WORKLOAD_PORT}{path}", timeout=5)
    resp.raise_for_status()
    return resp


def _gogc(ip: str) -> tuple[int, float]:
    """GOGC as the process itself reports it: the agent's value and the Prometheus runtime metric."""
    agent = _get(ip, "/debug/gctuner").json()["gogc"]
    metrics = _get(ip, "/metrics").text
    m = re.search(r"^go_gc_gogc_percent (\S+)$", metrics, flags=re.MULTILINE)
    assert m, "go_gc_gogc_percent missing from /metrics"
    return int(agent), float(m.group(1))


def test_two_replicas_are_two_ready_processes_reachable_at_their_pod_ips(
    namespace: str, kubectl: Any, kube: Any
) -> None:
    _apply(kubectl, namespace, workload_deployment("web", replicas=2))
    _rollout(kubectl, namespace, "web")
    pods = _ready_pods(client.CoreV1Api(kube), namespace, "web")
    assert len(pods) == 2
    ips = {p.status.pod_ip for p in pods}
    assert len(ips) == 2, f"pods share an IP: {ips}"
    binary = os.path.realpath(workload_binary())
    for pod in pods:
        ip = pod.status.pod_ip
        assert ip.startswith("127.") and ip != "127.0.0.1"
        assert [x.ip for x in pod.status.pod_ips] == [ip]
        pids = pod_pids(pod.metadata.name)
        assert len(pids) == 1, f"{pod.metadata.name}: want one process, found {pids}"
        assert os.path.realpath(f"/proc/{pids[0]}/exe") == binary
        assert _get(ip, "/healthz").text.strip() == "ok"
        # That process is the one bound to the pod's IP: the workload logs its address and PID.
        out = kubectl("logs", pod.metadata.name, "-n", namespace).stdout
        listening = [json.loads(x) for x in out.splitlines() if '"event":"listening"' in x]
        assert listening == [{"event": "listening", "addr": f"{ip}:{WORKLOAD_PORT}", "pid": pids[0]}]


def test_kubectl_logs_returns_gctrace_lines(namespace: str, kubectl: Any, kube: Any) -> None:
    _apply(kubectl, namespace, workload_deployment("traced", replicas=2, env={"GODEBUG": "gctrace=1"}))
    _rollout(kubectl, namespace, "traced")
    for pod in _ready_pods(client.CoreV1Api(kube), namespace, "traced"):
        name = pod.metadata.name

        def gctrace_lines(name: str = name) -> list[str]:
            out = kubectl("logs", name, "-n", namespace).stdout
            return [line for line in out.splitlines() if GCTRACE.match(line)]

        lines = wait_for(gctrace_lines, 30, f"gctrace lines in `kubectl logs {name}`")
        assert all(" MB, " in line and "P" in line.rsplit(",", 1)[-1] for line in lines)


def test_patching_gogc_rolls_out_new_processes_that_report_the_new_gogc(
    namespace: str, kubectl: Any, kube: Any
) -> None:
    core, apps = client.CoreV1Api(kube), client.AppsV1Api(kube)
    _apply(kubectl, namespace, workload_deployment("tuned", replicas=2, env={"GOGC": "150"}))
    _rollout(kubectl, namespace, "tuned")
    old = _ready_pods(core, namespace, "tuned")
    assert [_gogc(p.status.pod_ip) for p in old] == [(150, 150.0)] * 2
    old_pids = {p.metadata.name: pod_pids(p.metadata.name) for p in old}
    assert all(len(pids) == 1 for pids in old_pids.values())

    kubectl("set", "env", "deployment/tuned", "-n", namespace, "GOGC=50")
    _rollout(kubectl, namespace, "tuned")

    dep = apps.read_namespaced_deployment("tuned", namespace)
    assert dep.status.observed_generation >= dep.metadata.generation
    assert dep.status.updated_replicas == dep.status.ready_replicas == 2
    sets = apps.list_namespaced_replica_set(namespace, label_selector="app=tuned").items
    sets.sort(key=lambda rs: int(rs.metadata.annotations["deployment.kubernetes.io/revision"]))
    assert len(sets) == 2
    old_rs, new_rs = sets
    assert (new_rs.status.ready_replicas, old_rs.spec.replicas) == (2, 0)

    def old_processes_gone() -> bool:
        return not any(pod_pids(name) for name in old_pids) and all(
            not os.path.exists(f"/proc/{pid}") for pids in old_pids.values() for pid in pids
        )

    wait_for(old_processes_gone, 30, "the old pods' processes to exit")
    new = _ready_pods(core, namespace, "tuned")
    new_hash = new_rs.metadata.labels["pod-template-hash"]
    assert {p.metadata.labels["pod-template-hash"] for p in new} == {new_hash}
    assert not set(old_pids) & {p.metadata.name for p in new}
    assert [_gogc(p.status.pod_ip) for p in new] == [(50, 50.0)] * 2


def test_deleting_a_pod_stops_its_process_and_the_replicaset_replaces_it(
    namespace: str, kubectl: Any, kube: Any
) -> None:
    core = client.CoreV1Api(kube)
    _apply(kubectl, namespace, workload_deployment("victim", replicas=2))
    _rollout(kubectl, namespace, "victim")
    pods = _ready_pods(core, namespace, "victim")
    doomed = pods[0].metadata.name
    [pid] = pod_pids(doomed)

    kubectl("delete", "pod", doomed, "-n", namespace, "--wait=false")
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 30, f"process {pid} of {doomed} to exit")

    def pod_gone() -> bool:
        names = [p.metadata.name for p in core.list_namespaced_pod(namespace).items]
        return doomed not in names

    wait_for(pod_gone, 30, f"pod {doomed} to be removed")

    def replaced() -> list[client.V1Pod]:
        ready = _ready_pods(core, namespace, "victim")
        return ready if len(ready) == 2 and doomed not in {p.metadata.name for p in ready} else []

    for pod in wait_for(replaced, 60, "the ReplicaSet to bring back 2 ready pods"):
        assert len(pod_pids(pod.metadata.name)) == 1
        assert _get(pod.status.pod_ip, "/healthz").status_code == 200


def _widget_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.e2e.gc-tuner.dev"},
        "spec": {
            "group": "e2e.gc-tuner.dev",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["size"],
                                    "properties": {"size": {"type": "integer", "minimum": 1, "maximum": 10}},
                                },
                                "status": {
                                    "type": "object",
                                    "properties": {"phase": {"type": "string"}},
                                },
                            },
                        }
                    },
                }
            ],
        },
    }


def test_crd_with_status_subresource_and_schema_rejects_an_invalid_object(
    namespace: str, kubectl: Any, kube: Any
) -> None:
    kubectl("apply", "-f", "-", input=json.dumps(_widget_crd()))
    kubectl("wait", "--for=condition=Established", "crd/widgets.e2e.gc-tuner.dev", "--timeout=30s")
    custom = client.CustomObjectsApi(kube)
    group, version, plural = "e2e.gc-tuner.dev", "v1", "widgets"

    def widget(name: str, size: object) -> dict[str, Any]:
        return {
            "apiVersion": f"{group}/{version}",
            "kind": "Widget",
            "metadata": {"name": name},
            "spec": {"size": size},
        }

    # The new resource may take a moment to be served after Established: retry only the valid object,
    # so that the invalid ones below surely reach the schema validation (a 404 would not prove it).
    wait_for(
        lambda: custom.create_namespaced_custom_object(group, version, namespace, plural, widget("ok", 3)),
        30,
        "a valid Widget to be accepted",
    )
    for bad, why in ((0, "should be greater than or equal to 1"), ("big", "must be of type integer")):
        with pytest.raises(client.ApiException) as err:
            custom.create_namespaced_custom_object(group, version, namespace, plural, widget("bad", bad))
        assert err.value.status == 422
        assert "spec.size" in err.value.body and why in err.value.body
    # The status subresource: the main endpoint ignores status, /status sets it (and validates it).
    obj = custom.get_namespaced_custom_object(group, version, namespace, plural, "ok")
    obj["status"] = {"phase": "Ignored"}
    custom.replace_namespaced_custom_object(group, version, namespace, plural, "ok", obj)
    assert "status" not in custom.get_namespaced_custom_object(group, version, namespace, plural, "ok")
    obj = custom.get_namespaced_custom_object(group, version, namespace, plural, "ok")
    obj["status"] = {"phase": "Done"}
    custom.replace_namespaced_custom_object_status(group, version, namespace, plural, "ok", obj)
    got = custom.get_namespaced_custom_object(group, version, namespace, plural, "ok")
    assert got["status"] == {"phase": "Done"} and got["spec"] == {"size": 3}
    obj = dict(got, status={"phase": 7})
    with pytest.raises(client.ApiException) as err:
        custom.replace_namespaced_custom_object_status(group, version, namespace, plural, "ok", obj)
    assert err.value.status == 422 and "status.phase" in err.value.body


def test_a_module_go_cannot_fetch_stops_the_build_with_the_exact_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GOPROXY=off refuses every module not in the cache, as a proxy that refuses one would, offline.
    monkeypatch.setenv("GOPROXY", "off")
    with pytest.raises(BuildError) as err:
        staging_replaces("v1.99.99", work=tmp_path)
    assert "k8s.io/kubernetes@v1.99.99: module lookup disabled by GOPROXY=off" in str(err.value)


def test_the_cluster_cli_brings_a_cluster_up_and_down_stopping_every_process(tmp_path: Path) -> None:
    env = {**os.environ, "E2E_CLUSTER_STATE": str(tmp_path / "state.json")}

    def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "e2e.cluster", *args],
            cwd=repo_root(),
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    up = cli("up")
    try:
        assert up.returncode == 0, up.stderr
        # stdout is only what `eval` needs; progress went to stderr.
        assert [line.split("=")[0] for line in up.stdout.splitlines()] == ["export KUBECONFIG", "export PATH"]
        pids = [int(p["pid"]) for p in json.loads((tmp_path / "state.json").read_text())["procs"]]
        assert len(pids) == 5 and all(pid_alive(pid) for pid in pids)
        assert cli("env").stdout == up.stdout
        shell = f'eval "$({sys.executable} -m e2e.cluster env)" && kubectl get nodes -o name'
        nodes = subprocess.run(
            ["bash", "-c", shell], cwd=repo_root(), env=env, capture_output=True, text=True, timeout=60
        )
        assert nodes.stdout.split() == ["node/e2e-node"], nodes.stderr
    finally:
        down = cli("down")
    assert down.returncode == 0, down.stderr
    wait_for(
        lambda: not any(os.path.exists(f"/proc/{pid}") for pid in pids), 10, "every cluster process to exit"
    )
    after = cli("env")
    assert after.returncode == 2 and "no cluster is up" in after.stderr
