"""Run one container of a pod from the built operator image with runc: what a container runtime does
for a real kubelet (CRI CreateContainer + StartContainer), for the test kubelet.

`python -m e2e.kubelet.runc_container --image-dir DIR` is the program the kubelet starts for the
container (operator_image.resolve); it reads the pod, the container's spec and resolved env from the
file named by GC_TUNER_CONTAINER_FILE, and:

- resolves the pod's and the container's securityContext (user, groups, capabilities,
  allowPrivilegeEscalation, readOnlyRootFilesystem, seccompProfile) as a kubelet would;
- mounts the pod's emptyDir volumes where the container asks, and the ServiceAccount token the kubelet
  requested (token, ca.crt, namespace) read-only at /var/run/secrets/kubernetes.io/serviceaccount,
  with KUBERNETES_SERVICE_HOST/PORT set to the apiserver, so in-cluster config finds them;
- takes command/args as Kubernetes does (command replaces the image's ENTRYPOINT, args its CMD);
- then execs `runc run`: the kubelet's SIGTERM reaches runc, which forwards it to the container's
  PID 1, and the container's exit status is runc's.

A kubelet that SIGKILLs the container (grace period over) kills runc, not the container, which lives
in its own PID namespace and session: a watchdog, started here in a session of its own, waits for runc
to end however it ends, then kills and deletes the container and unmounts its root filesystem.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from e2e.image.builder import BuiltImage, load_image
from e2e.image.bundle import prepare_bundle, remove_bundle, runc
from e2e.image.runc_run import SA_DIR, container_process, make_empty_dir
from e2e.image.runc_spec import BindMount, ContainerProcess
from e2e.image.security import ProcessSecurity, SecurityContextError, resolve_security
from e2e.kubelet.operator_image import CONTAINER_FILE_ENV, bind_pod_ip
from e2e.kubelet.quantity import parse_quantity

__all__ = ["ContainerSetupError", "container_argv", "main"]

Obj = dict[str, Any]
_BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# runc's state, outside the kubelet's state dir: a test session removes that dir while the watchdogs
# may still need the state to delete their containers.
RUNC_ROOT = Path("/run/gc-tuner-e2e-runc")
# Every container's cgroups, apart from the kubelet's own memory cgroups (which hold only runc).
CGROUP_PARENT = "/gc-tuner-e2e-runc"


class ContainerSetupError(RuntimeError):
    pass


def container_argv(config: Obj, container: Obj) -> list[str]:
    """Kubernetes' rule: `command` replaces the image's ENTRYPOINT (and drops its CMD), `args`
    replaces its CMD."""
    if container.get("command"):
        return [*container["command"], *container.get("args", [])]
    args = container["args"] if "args" in container else (config.get("Cmd") or [])
    return [*(config.get("Entrypoint") or []), *args]


def _volumes(pod: Obj, container: Obj, pod_dir: Path, fs_group: int | None) -> list[BindMount]:
    by_name = {v["name"]: v for v in pod["spec"].get("volumes") or []}
    mounts = []
    for vm in container.get("volumeMounts") or []:
        vol = by_name.get(vm["name"])
        if vol is None or "emptyDir" not in vol:
            raise ContainerSetupError(f"volume {vm['name']!r}: only emptyDir volumes are supported here")
        src = make_empty_dir(pod_dir / "volumes" / vm["name"], fs_group)
        mounts.append(BindMount(vm["mountPath"], src, read_only=bool(vm.get("readOnly"))))
    return mounts


def _service_account(run_dir: Path, sec: ProcessSecurity, namespace: str) -> tuple[BindMount, dict[str, str]]:
    """The projected token directory from the kubelet's TokenRequest (its kubeconfig names the token
    file, the CA and the apiserver), and the in-cluster env pointing at that apiserver."""
    kubeconfig = yaml.safe_load(Path(os.environ["KUBECONFIG"]).read_text())
    cluster = kubeconfig["clusters"][0]["cluster"]
    user = kubeconfig["users"][0]["user"]
    sa = run_dir / "serviceaccount"
    sa.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(user["tokenFile"], sa / "token")
    shutil.copyfile(cluster["certificate-authority"], sa / "ca.crt")
    (sa / "namespace").write_text(namespace)
    group = sec.groups[-1] if sec.groups else sec.gid
    for name, mode in (("token", 0o600), ("ca.crt", 0o644), ("namespace", 0o644)):
        os.chown(sa / name, sec.uid, group)
        (sa / name).chmod(mode)
    sa.chmod(0o755)
    server = urlsplit(cluster["server"])
    env = {
        "KUBERNETES_SERVICE_HOST": server.hostname or "",
        "KUBERNETES_SERVICE_PORT": str(server.port or 443),
    }
    return BindMount(SA_DIR, sa), env


def _etc_files(run_dir: Path, pod: Obj) -> list[BindMount]:
    name, ip = pod["metadata"]["name"], pod.get("status", {}).get("podIP", "127.0.0.1")
    hosts = run_dir / "etc-hosts"
    hosts.write_text(f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{ip}\t{name}\n")
    hostname = run_dir / "etc-hostname"
    hostname.write_text(f"{name}\n")
    mounts = [BindMount("/etc/hosts", hosts), BindMount("/etc/hostname", hostname)]
    if Path("/etc/resolv.conf").is_file():
        mounts.append(BindMount("/etc/resolv.conf", Path("/etc/resolv.conf").resolve()))
    return mounts


def _memory_limit(container: Obj) -> int | None:
    limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    return None if limit is None else int(parse_quantity(limit))


def _process(built: BuiltImage, doc: Obj, pod_dir: Path, run_dir: Path, cid: str) -> ContainerProcess:
    pod, container = doc["pod"], doc["container"]
    config = built.info.config
    try:
        sec = resolve_security(
            pod["spec"].get("securityContext") or {}, container.get("securityContext") or {},
            str(config.get("User", "")),
        )  # fmt: skip
    except SecurityContextError as e:
        raise ContainerSetupError(str(e)) from e
    fs_group = (pod["spec"].get("securityContext") or {}).get("fsGroup")
    mounts = [*_volumes(pod, container, pod_dir, fs_group), *_etc_files(run_dir, pod)]
    env = dict(doc["env"])
    if "KUBECONFIG" in os.environ:
        sa_mount, sa_env = _service_account(run_dir, sec, pod["metadata"]["namespace"])
        mounts.append(sa_mount)
        env = {**sa_env, **env}
    pod_ip = pod.get("status", {}).get("podIP", "127.0.0.1")
    argv = container_argv(config, container)
    # Host network: a wildcard --bind-address would collide between pods (operator_image's docstring).
    argv = argv[:2] + bind_pod_ip(argv[2:], pod_ip) if argv[:2] == ["gc-tuner", "operator"] else argv
    return container_process(
        config, sec, argv, env=env, mounts=tuple(mounts), hostname=pod["metadata"]["name"],
        memory_limit=_memory_limit(container), cgroups_path=f"{CGROUP_PARENT}/{cid}",
    )  # fmt: skip


def _start_watchdog(state: Path, cid: str, run_dir: Path) -> int:
    """A process in its own session that cleans up once runc is gone; returns the pipe's write end,
    which runc holds (inherited across exec) until it exits."""
    r, w = os.pipe()
    subprocess.Popen(
        [
            sys.executable,
            "-m",
            "e2e.kubelet.runc_container",
            "--watchdog",
            str(r),
            str(state),
            cid,
            str(run_dir),
        ],
        pass_fds=(r,),
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={"PATH": _BASE_PATH, "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
    )
    os.close(r)
    os.set_inheritable(w, True)
    return w


def _leave_memory_cgroup() -> None:
    # Started by the launcher inside the kubelet's memory cgroup for the container, which the kubelet
    # removes once runc exits: a watchdog still in it would keep it from going.
    with contextlib.suppress(OSError):
        Path("/sys/fs/cgroup/memory/cgroup.procs").write_text(str(os.getpid()))


def _watchdog(fd: int, state: Path, cid: str, run_dir: Path) -> None:
    _leave_memory_cgroup()
    while os.read(fd, 4096):
        pass  # EOF: runc has exited, whether the container ended, runc was killed, or never started
    subprocess.run(runc(state, "kill", cid, "KILL"), capture_output=True, check=False)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        deleted = subprocess.run(runc(state, "delete", "--force", cid), capture_output=True, check=False)
        if deleted.returncode == 0:
            break
        time.sleep(0.1)
    _remove_cgroups(cid)
    remove_bundle(run_dir / "bundle")
    shutil.rmtree(run_dir, ignore_errors=True)


def _remove_cgroups(cid: str) -> None:
    """What `runc delete` leaves when it could not run: the container's cgroups, emptied first."""
    for _ in range(50):
        left = [d for d in Path("/sys/fs/cgroup").glob(f"*{CGROUP_PARENT}/{cid}") if d.is_dir()]
        for d in left:
            for pid in (d / "cgroup.procs").read_text().split() if (d / "cgroup.procs").exists() else []:
                with contextlib.suppress(OSError):
                    os.kill(int(pid), signal.SIGKILL)
            with contextlib.suppress(OSError):
                d.rmdir()
        if not left:
            return
        time.sleep(0.1)


def _launch(image_dir: Path) -> None:
    built = load_image(image_dir)
    if built is None:
        raise ContainerSetupError(f"no complete image in {image_dir}")
    doc = json.loads(Path(os.environ[CONTAINER_FILE_ENV]).read_text())
    pod_dir = Path.cwd()  # the kubelet starts every container in its pod's directory
    cid = f"{doc['pod']['metadata']['uid'][:8]}-{doc['container']['name']}-{uuid.uuid4().hex[:8]}"
    run_dir = pod_dir / doc["container"]["name"] / f"runc-{cid}"
    run_dir.mkdir(parents=True)
    state = RUNC_ROOT
    state.mkdir(parents=True, exist_ok=True)
    _start_watchdog(state, cid, run_dir)
    process = _process(built, doc, pod_dir, run_dir, cid)
    bundle = prepare_bundle(run_dir / "bundle", built.rootfs, process)
    # The pipe's write end stays open across the exec: runc alone holds it. runc's env has no
    # HOSTNAME, so only the container's process is found as the pod's (e2e.cluster.waits.pod_pids).
    argv = runc(state, "run", "--bundle", str(bundle), cid)
    os.execve(shutil.which("runc") or "runc", argv, {"PATH": _BASE_PATH})


def main(argv: list[str]) -> int:
    if argv[:1] == ["--watchdog"]:
        _watchdog(int(argv[1]), Path(argv[2]), argv[3], Path(argv[4]))
        return 0
    p = argparse.ArgumentParser(prog="python -m e2e.kubelet.runc_container")
    p.add_argument("--image-dir", type=Path, required=True)
    # The kubelet appends the pod's command and args to every program's argv; this one reads them from
    # the container file instead (Kubernetes' command/args rule needs them apart).
    args, _pod_args = p.parse_known_args(argv)
    try:
        _launch(args.image_dir)
    except (ContainerSetupError, OSError, KeyError, ValueError) as e:
        print(f"runc_container: cannot start the container: {e}", file=sys.stderr)
        return 128
    return 0  # not reached: _launch execs runc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
