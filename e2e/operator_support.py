"""What the operator e2e tests share: the CRD, the operator as a real subprocess, GCPolicy helpers.

e2e/conftest.py imports the `*_fixture` functions, so pytest registers them for every e2e module
under their `name=` (`crd`, `make_operator`, `operator`), which is what the tests ask for.

The operator runs as `gc-tuner operator --standalone --kubeconfig ...` scoped to the test's
namespace, exactly as a user would start it (with kopf peering instead when a test asks, as
e2e/test_operator_failover.py does); its log is kept next to the cluster's on failure.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.cluster.manifests import WORKLOAD_PORT
from e2e.cluster.waits import wait_for
from gc_tuner.cli.gobuild import repo_root

__all__ = [
    "GROUP",
    "PLURAL",
    "VERSION",
    "OperatorProc",
    "agent_get",
    "condition",
    "crd_fixture",
    "create_policy",
    "gcpolicy",
    "get_policy",
    "make_operator_fixture",
    "metric_value",
    "operator_fixture",
    "ready_pods",
    "rejected_policy",
    "token_secret",
    "wait_condition",
    "wait_ready",
]

GROUP, VERSION, PLURAL = "gctuner.io", "v1alpha1", "gcpolicies"
CRD_PATH = repo_root() / "crds" / "gcpolicies.gctuner.io.yaml"
TOKEN = "e2e-secret-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session", name="crd")
def crd_fixture(kubectl: Any) -> None:
    """The GCPolicy CRD, installed once per session and Established."""
    kubectl("apply", "-f", str(CRD_PATH))
    # `kubectl wait` fails at once, not later, while the new CRD has no status.conditions at all.
    established = '{.status.conditions[?(@.type=="Established")].status}'
    wait_for(
        lambda: kubectl("get", "crd/gcpolicies.gctuner.io", "-o", f"jsonpath={established}").stdout == "True",
        60,
        "the GCPolicy CRD Established",
    )


@dataclass
class OperatorProc:
    """`gc-tuner operator` as a subprocess; kill() is SIGKILL, start() starts a new one."""

    kubeconfig: Path
    namespace: str
    log_path: Path
    extra: tuple[str, ...] = ()
    standalone: bool = True  # False: kopf peering, with whatever --peering/--priority `extra` gives
    env: dict[str, str] = field(default_factory=dict)  # e.g. POD_ID, the replica's name as a peer
    proc: subprocess.Popen[bytes] | None = None
    metrics_port: int = 0
    liveness_port: int = 0
    starts: list[float] = field(default_factory=list)

    def start(self) -> None:
        self.metrics_port, self.liveness_port = _free_port(), _free_port()
        exe = Path(sys.executable).with_name("gc-tuner")
        cmd = [
            str(exe),
            "operator",
            *(["--standalone"] if self.standalone else []),
            "--kubeconfig",
            str(self.kubeconfig),
            "--namespace",
            self.namespace,
            "--metrics-port",
            str(self.metrics_port),
            "--liveness-port",
            str(self.liveness_port),
            "--bind-address",
            "127.0.0.1",
            *self.extra,
        ]
        log = self.log_path.open("ab")
        log.write(f"\n==== start {time.strftime('%H:%M:%S')}: {' '.join(cmd)}\n".encode())
        log.flush()
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), **self.env}
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        self.starts.append(time.time())
        wait_for(self._live, 60, "the operator's liveness endpoint")

    def _live(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"operator exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL: no cleanup, no finalizers, exactly a crashed or OOM-killed pod."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


@pytest.fixture(name="make_operator")
def make_operator_fixture(
    cluster: Any, namespace: str, crd: None, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., OperatorProc]]:
    """make_operator(*extra_args, standalone=True, env={}) -> a started operator watching the test's
    namespace."""
    started: list[OperatorProc] = []

    def make(*extra: str, standalone: bool = True, env: dict[str, str] | None = None) -> OperatorProc:
        op = OperatorProc(
            Path(cluster.kubeconfig),
            namespace,
            tmp_path / f"operator-{len(started)}.log",
            extra,
            standalone=standalone,
            env=dict(env or {}),
        )
        started.append(op)
        op.start()
        return op

    try:
        yield make
    finally:
        for i, op in enumerate(started):
            op.stop()
            # Kept for reading after a failure (git-ignored; the next run overwrites it).
            dest = repo_root() / ".artifacts" / "e2e-logs" / f"operator-{request.node.name}-{i}.log"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(op.log_path.read_bytes() if op.log_path.exists() else b"")


@pytest.fixture(name="operator")
def operator_fixture(make_operator: Callable[..., OperatorProc]) -> OperatorProc:
    """A running operator watching the test's namespace."""
    return make_operator()


def token_secret(
    kube: Any, namespace: str, name: str = "gctuner-token", token: str = TOKEN, *, opted_in: bool = True
) -> str:
    """A token Secret; `opted_in` labels it gctuner.io/agent-token=true, without which gc-tuner refuses it."""
    from kubernetes import client

    labels = {"gctuner.io/agent-token": "true"} if opted_in else {}
    client.CoreV1Api(kube).create_namespaced_secret(
        namespace, {"metadata": {"name": name, "labels": labels}, "stringData": {"token": token}}
    )
    return name


def gcpolicy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GCPolicy", "metadata": {"name": name}, "spec": spec}


def create_policy(kube: Any, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    from kubernetes import client

    api = client.CustomObjectsApi(kube)
    obj: dict[str, Any] = api.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, gcpolicy(name, spec)
    )
    return obj


def rejected_policy(kube: Any, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Create a GCPolicy the apiserver must refuse (422); its Status body, parsed."""
    from kubernetes import client

    with pytest.raises(client.ApiException) as e:
        client.CustomObjectsApi(kube).create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, gcpolicy("bad", spec)
        )
    assert e.value.status == 422, e.value.body
    status: dict[str, Any] = json.loads(e.value.body)
    return status


def get_policy(kube: Any, namespace: str, name: str) -> dict[str, Any]:
    from kubernetes import client

    obj: dict[str, Any] = client.CustomObjectsApi(kube).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    return obj


def condition(policy: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for c in (policy.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return dict(c)
    return None


def wait_condition(
    kube: Any,
    namespace: str,
    name: str,
    ctype: str,
    *,
    status: str = "True",
    timeout: float = 60,
    what: str = "",
) -> dict[str, Any]:
    """The policy once its `ctype` condition has `status`; fails naming `what` (default: the condition)."""

    def check() -> dict[str, Any] | None:
        o = get_policy(kube, namespace, name)
        return o if (condition(o, ctype) or {}).get("status") == status else None

    return wait_for(check, timeout, what or f"{ctype}={status}")


def ready_pods(kube: Any, namespace: str, app: str) -> list[Any]:
    from kubernetes import client

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


def agent_get(ip: str, token: str | None = TOKEN) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = httpx.get(f"http://{ip}:{WORKLOAD_PORT}/debug/gctuner", headers=headers, timeout=5)
    resp.raise_for_status()
    doc: dict[str, Any] = resp.json()
    return doc


def metric_value(ip: str, name: str) -> float:
    text = httpx.get(f"http://{ip}:{WORKLOAD_PORT}/metrics", timeout=5).text
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, flags=re.MULTILINE)
    assert m, f"{name} missing from /metrics of {ip}"
    return float(m.group(1))


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True, default=str)


def wait_ready(kube: Any, namespace: str, app: str, n: int, timeout: float = 90) -> list[Any]:
    """Wait for exactly `n` ready pods of `app`; returns them sorted by name."""

    def check() -> list[Any] | None:
        pods = ready_pods(kube, namespace, app)
        return pods if len(pods) == n else None

    return wait_for(check, timeout, f"{n} ready pods of {app}")
