"""Session fixtures for the e2e tests: one real control plane + test kubelet per pytest session
(`cluster`), a Kubernetes API client (`kube`), a kubectl runner (`kubectl`) and a fresh namespace per
test (`namespace`). The cluster starts only if a test asks for it; its processes are stopped by PID at
session end, on Ctrl-C and on SIGTERM; after a failure their logs are copied to .artifacts/e2e-logs/."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster.build import BuildError, ensure_built
from e2e.cluster.control_plane import ClusterStartError, copy_logs
from e2e.cluster.figures import read_all, record
from e2e.cluster.harness import Cluster, start_cluster

# The operator tests' fixtures (`crd`, `make_operator`, `operator`), registered for every e2e module.
from e2e.operator_support import crd_fixture, make_operator_fixture, operator_fixture  # noqa: F401
from gc_tuner.cli.gobuild import repo_root

Kubectl = Callable[..., subprocess.CompletedProcess[str]]

_ARTIFACTS = repo_root() / ".artifacts" / "e2e-logs"
_session_figures: dict[str, float] = {}


def _keep_logs(src: Path) -> Path:
    return copy_logs(src, _ARTIFACTS / time.strftime("%Y%m%d-%H%M%S"))


def _prebuild_images() -> None:
    # Build the programs the pods run before the clock of the first test starts (a real node would
    # have pulled the images); the kubelet then finds them in the build cache.
    from e2e.kubelet.images import testprog_binary, workload_binary

    testprog_binary()
    if (repo_root() / "e2e" / "workload" / "go.mod").exists():
        workload_binary()


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    t0 = time.monotonic()
    try:
        ensure_built()
    except BuildError as e:
        # Every e2e test errors with this one message (the exact go error), not with a traceback.
        pytest.fail(f"building the Kubernetes binaries failed:\n{e}", pytrace=False)
    _session_figures["binaries_check_s"] = time.monotonic() - t0
    _prebuild_images()
    base = Path(tempfile.mkdtemp(prefix="gc-tuner-e2e-"))
    try:
        c = start_cluster(base)
    except ClusterStartError as e:
        kept = _keep_logs(base)
        raise ClusterStartError(f"{e}\n(logs kept in {kept})") from e
    record("control_plane_up", c.cp.started_in_s)
    _session_figures["control_plane_up_s"] = c.cp.started_in_s
    _session_figures["node_ready_s"] = c.started_in_s
    try:
        yield c
    finally:
        c.stop()
        if request.session.testsfailed:
            print(f"\n[e2e] logs of the failed session kept in {_keep_logs(base)}")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def kube(cluster: Cluster) -> Iterator[Any]:
    """A `kubernetes.client.ApiClient` with admin rights on the test cluster."""
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def kubectl(cluster: Cluster) -> Kubectl:
    """Run the cluster's kubectl: kubectl("get", "pods", "-n", ns) -> CompletedProcess (raises on error
    unless check=False)."""
    env = {**cluster.env(), "HOME": str(cluster.dir)}

    def run(
        *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(cluster.kubectl), f"--kubeconfig={cluster.kubeconfig}", *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
            env=env,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    return run


@pytest.fixture
def namespace(request: pytest.FixtureRequest, kube: Any) -> Iterator[str]:
    """A namespace of its own for each test, deleted afterwards (its pods' processes stop with it)."""
    from kubernetes import client

    core = client.CoreV1Api(kube)
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{slug}-{uuid.uuid4().hex[:5]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"e2e": "true"})))
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _session_figures:
        return
    tr = terminalreporter
    tr.section("e2e harness figures")
    build = read_all().get("build")
    if build is not None:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(build["at"]))
        tr.write_line(f"Kubernetes binaries: last build took {build['seconds']:.0f} s ({when})")
    tr.write_line(f"binaries found in the cache in {_session_figures['binaries_check_s']:.1f} s")
    tr.write_line(f"control plane up in {_session_figures['control_plane_up_s']:.1f} s")
    tr.write_line(f"node Ready after {_session_figures['node_ready_s']:.1f} s")
