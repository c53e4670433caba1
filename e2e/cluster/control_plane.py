"""Start etcd, kube-apiserver, kube-controller-manager and kube-scheduler as local processes.

Every port is chosen free at run time on 127.0.0.1, so several clusters (several engineers' test runs)
can run on one machine at once. etcd keeps its data in /dev/shm with --unsafe-no-fsync: the data lives
as long as the cluster and fsync would dominate the start time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from e2e.cluster.build import Binaries, binaries
from e2e.cluster.certs import CertPair, Pki, make_pki
from e2e.cluster.procs import Proc, respawn, spawn

__all__ = [
    "ClusterStartError",
    "ControlPlane",
    "admin_ssl",
    "copy_logs",
    "free_port",
    "pause_etcd",
    "restart_apiserver",
    "start_control_plane",
    "sweep_abandoned",
    "write_kubeconfig",
]

SERVICE_CIDR = "10.0.0.0/24"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
_START_TIMEOUT_S = 90.0


class ClusterStartError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def write_kubeconfig(path: Path, server: str, ca: Path, client: CertPair, user: str) -> Path:
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [
            {"name": user, "user": {"client-certificate": str(client.cert), "client-key": str(client.key)}}
        ],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": user}}],
        "current-context": "e2e",
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@dataclass
class ControlPlane:
    dir: Path
    data_dir: Path
    pki: Pki
    server: str
    kubeconfig: Path
    bins: Binaries
    procs: list[Proc] = field(default_factory=list)
    started_in_s: float = 0.0

    @property
    def log_dir(self) -> Path:
        return self.dir / "logs"

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _component(cp: ControlPlane, name: str) -> Proc:
    for proc in cp.procs:
        if proc.name == name:
            return proc
    raise LookupError(f"{name} is not one of this control plane's processes")


def restart_apiserver(cp: ControlPlane, *, down_s: float = 0.0, timeout: float = 60.0) -> float:
    """Fault injection: stop kube-apiserver (SIGTERM, as a control-plane upgrade does), stay down for
    `down_s`, start it again on the same address, certs and etcd, and wait for /readyz. Its clients
    (the controller-manager, the kubelet, an operator) must reconnect on their own. Returns the
    seconds it did not serve."""
    old = _component(cp, "kube-apiserver")
    t0 = time.monotonic()
    old.stop(grace=10.0)
    time.sleep(down_s)
    new = respawn(old)
    cp.procs[cp.procs.index(old)] = new  # stop() still finds it, in the same order
    _wait_https(f"{cp.server}/readyz", admin_ssl(cp.pki), new, time.monotonic() + timeout)
    return time.monotonic() - t0


@contextlib.contextmanager
def pause_etcd(cp: ControlPlane) -> Iterator[None]:
    """Fault injection: freeze etcd (SIGSTOP) for the body of the with-block, then SIGCONT it, even if
    the body fails. The apiserver keeps its connections to etcd open; whatever needs etcd (every
    write) waits, or times out, until it is resumed."""
    etcd = _component(cp, "etcd")
    os.kill(etcd.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(etcd.pid, signal.SIGCONT)


def copy_logs(src: Path, dest: Path) -> Path:
    """Copy every *.log under src (control plane, kubelet, each container run) to dest, keeping paths."""
    for path in src.rglob("*.log"):
        target = dest / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            shutil.copy2(path, target)
    return dest


def _wait_https(url: str, ctx: ssl.SSLContext, proc: Proc, deadline: float) -> None:
    last = ""
    while time.monotonic() < deadline:
        if not proc.alive():
            raise ClusterStartError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_tail()}")
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
                if resp.status == 200:
                    return
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}: {e.read()[:300]!r}"
        except (OSError, ssl.SSLError) as e:
            last = str(e)
        time.sleep(0.1)
    raise ClusterStartError(f"{proc.name} not healthy at {url} in time ({last}):\n{proc.log_tail()}")


def admin_ssl(pki: Pki) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca.cert))
    ctx.load_cert_chain(str(pki.admin.cert), str(pki.admin.key))
    return ctx


def _insecure_ssl() -> ssl.SSLContext:
    # kube-controller-manager and kube-scheduler serve /healthz with a self-signed cert on loopback.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _referenced_paths() -> str:
    """The command lines of every process, joined: a data dir no process names is abandoned."""
    parts = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                parts.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
    return "\n".join(parts)


def sweep_abandoned(min_age_s: float = 120.0) -> list[Path]:
    """Remove etcd data dirs and cluster dirs left by a run that was SIGKILLed (nothing else can clean
    them: /dev/shm is memory). A dir is abandoned when it is older than `min_age_s` and no live process
    names it on its command line."""
    candidates = [
        *Path("/dev/shm").glob("gc-tuner-etcd-*"),
        *Path(tempfile.gettempdir()).glob("gc-tuner-e2e-*"),
    ]
    now = time.time()
    # Only etcd data dirs and cluster dirs (they hold pki/); never anything else under those names.
    old = [
        p
        for p in candidates
        if p.is_dir()
        and now - p.stat().st_mtime > min_age_s
        and (p.name.startswith("gc-tuner-etcd-") or (p / "pki").is_dir())
    ]
    if not old:
        return []
    live = _referenced_paths()
    removed = [p for p in old if str(p) not in live]
    for p in removed:
        shutil.rmtree(p, ignore_errors=True)
    return removed


def start_control_plane(
    base: Path | None = None,
    *,
    attached: bool = True,
    on_apiserver_ready: Callable[[ControlPlane], None] | None = None,
) -> ControlPlane:
    """Bring the control plane up and wait until it serves; stops what it started if any step fails.

    `on_apiserver_ready` runs once the apiserver serves, while the controller-manager and scheduler are
    still starting: the kubelet registers its node meanwhile instead of after them.
    """
    t0 = time.monotonic()
    bins = binaries()
    for b in (bins.etcd, bins.kube_apiserver, bins.kube_controller_manager, bins.kube_scheduler):
        if not b.exists():
            raise ClusterStartError(f"{b} is missing: run `python -m e2e.cluster build` first")
    sweep_abandoned()
    base = base or Path(tempfile.mkdtemp(prefix="gc-tuner-e2e-"))
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    data_dir = Path(tempfile.mkdtemp(prefix="gc-tuner-etcd-", dir=shm))
    pki = make_pki(base / "pki")
    api_port = free_port()
    server = f"https://127.0.0.1:{api_port}"
    kubeconfig = write_kubeconfig(base / "admin.kubeconfig", server, pki.ca.cert, pki.admin, "admin")
    cp = ControlPlane(base, data_dir, pki, server, kubeconfig, bins)
    try:
        _start_all(cp, api_port, attached, on_apiserver_ready)
    except BaseException:
        cp.stop()
        raise
    cp.started_in_s = time.monotonic() - t0
    return cp


def _start_component(
    cp: ControlPlane,
    name: str,
    binary: Path,
    cert: CertPair,
    user: str,
    extra: list[str],
    *,
    env: dict[str, str],
    attached: bool,
) -> tuple[Proc, int]:
    """Start a controller-manager or scheduler with its own kubeconfig and secure port: (process, port)."""
    short = "kcm" if name == "kube-controller-manager" else "sched"
    cfg_path = cp.dir / f"{name.removeprefix('kube-')}.kubeconfig"
    cfg = write_kubeconfig(cfg_path, cp.server, cp.pki.ca.cert, cert, user)
    port = free_port()
    proc = spawn(
        name,
        [
            str(binary),
            f"--kubeconfig={cfg}",
            f"--authentication-kubeconfig={cfg}",
            f"--authorization-kubeconfig={cfg}",
            "--leader-elect=false",
            *extra,
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={cp.dir / f'{short}-certs'}",
            "--profiling=false",
        ],
        cp.log_dir / f"{name}.log",
        env=env,
        attached=attached,
    )
    cp.procs.append(proc)
    return proc, port


def _start_all(
    cp: ControlPlane,
    api_port: int,
    attached: bool,
    on_apiserver_ready: Callable[[ControlPlane], None] | None,
) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    pki, logs, bins = cp.pki, cp.log_dir, cp.bins
    client_port, peer_port = free_port(), free_port()
    etcd_url = f"http://127.0.0.1:{client_port}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    env = {**os.environ, "GOMAXPROCS": os.environ.get("E2E_GOMAXPROCS", "2")}
    etcd = spawn(
        "etcd",
        [
            str(bins.etcd),
            "--name=e2e",
            f"--data-dir={cp.data_dir}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=e2e={peer_url}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
        logs / "etcd.log",
        env=env,
        attached=attached,
    )
    cp.procs.append(etcd)
    apiserver = spawn(
        "kube-apiserver",
        [
            str(bins.kube_apiserver),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={api_port}",
            f"--cert-dir={cp.dir / 'apiserver-certs'}",
            f"--tls-cert-file={pki.apiserver.cert}",
            f"--tls-private-key-file={pki.apiserver.key}",
            f"--client-ca-file={pki.ca.cert}",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            # TaintNodesByCondition would taint the test node not-ready at registration until the
            # controller-manager's node controller, the last thing to start, clears it (4-5 s).
            "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
            "--endpoint-reconciler-type=none",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--service-account-issuer={SA_ISSUER}",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            f"--requestheader-client-ca-file={pki.front_proxy_ca.cert}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-username-headers=X-Remote-User",
            f"--proxy-client-cert-file={pki.front_proxy_client.cert}",
            f"--proxy-client-key-file={pki.front_proxy_client.key}",
            f"--kubelet-client-certificate={pki.apiserver_kubelet_client.cert}",
            f"--kubelet-client-key={pki.apiserver_kubelet_client.key}",
            f"--kubelet-certificate-authority={pki.ca.cert}",
            "--kubelet-preferred-address-types=InternalIP",
            "--profiling=false",
        ],
        logs / "kube-apiserver.log",
        env=env,
        attached=attached,
    )
    cp.procs.append(apiserver)
    _wait_https(f"{cp.server}/readyz", admin_ssl(pki), apiserver, deadline)

    kcm, kcm_port = _start_component(
        cp,
        "kube-controller-manager",
        bins.kube_controller_manager,
        pki.controller_manager,
        "kcm",
        [
            "--controllers=*",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki.sa_key}",
            f"--root-ca-file={pki.ca.cert}",
            f"--cluster-signing-cert-file={pki.ca.cert}",
            f"--cluster-signing-key-file={pki.ca.key}",
        ],
        env=env,
        attached=attached,
    )
    sched, sched_port = _start_component(
        cp, "kube-scheduler", bins.kube_scheduler, pki.scheduler, "scheduler", [], env=env, attached=attached
    )
    if on_apiserver_ready is not None:
        on_apiserver_ready(cp)
    insecure = _insecure_ssl()
    _wait_https(f"https://127.0.0.1:{kcm_port}/healthz", insecure, kcm, deadline)
    _wait_https(f"https://127.0.0.1:{sched_port}/healthz", insecure, sched, deadline)
