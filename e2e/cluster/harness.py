"""The whole test cluster: the control plane plus one test kubelet node, started and stopped together.
Used by the pytest session fixture (e2e/conftest.py) and by `python -m e2e.cluster up`."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from e2e.cluster.build import K8S_VERSION
from e2e.cluster.certs import issue_kubelet_serving
from e2e.cluster.control_plane import (
    ClusterStartError,
    ControlPlane,
    admin_ssl,
    free_port,
    start_control_plane,
    write_kubeconfig,
)
from e2e.cluster.procs import Proc, spawn
from gc_tuner.cli.gobuild import repo_root

__all__ = ["NODE_NAME", "Cluster", "start_cluster"]

NODE_NAME = "e2e-node"


@dataclass
class Cluster:
    cp: ControlPlane
    kubelet: Proc
    node: str
    started_in_s: float

    @property
    def kubeconfig(self) -> Path:
        return self.cp.kubeconfig

    @property
    def kubectl(self) -> Path:
        return self.cp.bins.kubectl

    @property
    def dir(self) -> Path:
        return self.cp.dir

    def env(self) -> dict[str, str]:
        """Environment for a shell or subprocess that talks to this cluster."""
        path = f"{self.kubectl.parent}{os.pathsep}{os.environ.get('PATH', '')}"
        return {"KUBECONFIG": str(self.kubeconfig), "PATH": path}

    def stop(self) -> None:
        self.kubelet.stop(grace=10.0)  # first: it stops its pods' processes
        self.cp.stop()


def _wait_node_ready(cp: ControlPlane, kubelet: Proc, node: str, deadline: float) -> None:
    ctx = admin_ssl(cp.pki)
    url = f"{cp.server}/api/v1/nodes/{node}"
    last = ""
    while time.monotonic() < deadline:
        if not kubelet.alive():
            raise ClusterStartError(f"the test kubelet exited:\n{kubelet.log_tail()}")
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
                obj = json.loads(resp.read())
            conds = obj["status"].get("conditions", [])
            taints = obj["spec"].get("taints", [])
            # The node lifecycle controller taints a new node not-ready until it has seen it Ready;
            # a pod created before that is parked by the scheduler for seconds.
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conds) and not taints:
                return
            last = f"conditions {conds}, taints {taints}"
        except (urllib.error.URLError, OSError, KeyError, ValueError) as e:
            last = str(e)
        time.sleep(0.1)
    raise ClusterStartError(f"node {node} not Ready in time ({last}):\n{kubelet.log_tail()}")


def start_kubelet(
    cp: ControlPlane, node: str = NODE_NAME, *, attached: bool = True, images: dict[str, str] | None = None
) -> Proc:
    state = cp.dir / "kubelet"
    state.mkdir(parents=True, exist_ok=True)
    # One cert serves the logs endpoint (the apiserver verifies it against the CA) and authenticates
    # the kubelet to the apiserver; its O=system:masters stands in for the Node authorizer.
    pair = issue_kubelet_serving(cp.pki, node)
    kubeconfig = write_kubeconfig(
        state / "kubelet.kubeconfig", cp.server, cp.pki.ca.cert, pair, f"system:node:{node}"
    )
    argv = [
        sys.executable,
        "-m",
        "e2e.kubelet",
        f"--kubeconfig={kubeconfig}",
        f"--node-name={node}",
        f"--port={free_port()}",
        f"--tls-cert={pair.cert}",
        f"--tls-key={pair.key}",
        f"--client-ca={cp.pki.ca.cert}",
        f"--state-dir={state}",
    ]
    for pattern, command in (images or {}).items():
        argv.append(f"--image={pattern}={command}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo_root()), os.environ.get("PYTHONPATH", "")])}
    return spawn(
        "test-kubelet", argv, cp.log_dir / "kubelet.log", env=env, attached=attached, cwd=repo_root()
    )


def start_cluster(
    base: Path | None = None, *, attached: bool = True, images: dict[str, str] | None = None
) -> Cluster:
    t0 = time.monotonic()
    kubelets: list[Proc] = []

    def kubelet_early(cp: ControlPlane) -> None:
        proc = start_kubelet(cp, attached=attached, images=images)
        cp.procs.append(proc)
        kubelets.append(proc)

    cp = start_control_plane(base, attached=attached, on_apiserver_ready=kubelet_early)
    try:
        _wait_node_ready(cp, kubelets[0], NODE_NAME, time.monotonic() + 60)
    except BaseException:
        cp.stop()
        raise
    took = time.monotonic() - t0
    print(
        f"[e2e.cluster] control plane up in {cp.started_in_s:.1f} s, node {NODE_NAME} Ready after "
        f"{took:.1f} s (Kubernetes {K8S_VERSION}, {cp.server})",
        flush=True,
    )
    return Cluster(cp, kubelets[0], NODE_NAME, took)
