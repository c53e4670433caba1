"""Run the built image with runc as the Helm chart runs it, outside any kubelet: the chart's
podSecurityContext and securityContext (charts/gc-tuner/values.yaml) resolved as a kubelet resolves
them, the chart's only writable mount (an emptyDir at /tmp), optionally a ServiceAccount token directory
where Kubernetes mounts it, and the image's own entrypoint and environment."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from e2e.image.builder import BuiltImage
from e2e.image.bundle import prepare_bundle, remove_bundle, runc
from e2e.image.prerequisites import SECCOMP_PROFILE
from e2e.image.runc_spec import BindMount, ContainerProcess
from e2e.image.seccomp import runtime_default
from e2e.image.security import ProcessSecurity, resolve_security
from gc_tuner.cli.gobuild import repo_root

__all__ = [
    "SA_DIR",
    "RuncContainer",
    "chart_security",
    "container_process",
    "image_env",
    "make_empty_dir",
    "run_once",
    "start",
]

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
CHART_VALUES = repo_root() / "charts" / "gc-tuner" / "values.yaml"


def chart_security(image_user: str, values: Path = CHART_VALUES) -> ProcessSecurity:
    doc = yaml.safe_load(values.read_text())
    return resolve_security(doc["podSecurityContext"], doc["securityContext"], image_user)


def image_env(config: dict[str, Any]) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in config.get("Env") or [] if "=" in kv)


def make_empty_dir(path: Path, fs_group: int | None) -> Path:
    """An emptyDir as the kubelet makes one: mode 0777, and with an fsGroup owned by that group with
    the setgid bit, so files created in it stay in the group."""
    path.mkdir(parents=True, exist_ok=True)
    if fs_group is None:
        path.chmod(0o777)
    else:
        os.chown(path, -1, fs_group)
        path.chmod(0o2777)
    return path


def container_process(
    config: dict[str, Any],
    sec: ProcessSecurity,
    argv: list[str],
    *,
    env: dict[str, str],
    mounts: tuple[BindMount, ...],
    hostname: str,
    memory_limit: int | None = None,
    cgroups_path: str | None = None,
) -> ContainerProcess:
    """The runtime spec's process for the image config and the resolved security settings."""
    seccomp = (
        runtime_default(SECCOMP_PROFILE, set(sec.capabilities)) if sec.seccomp == "RuntimeDefault" else None
    )
    return ContainerProcess(
        args=argv,
        env={**image_env(config), "HOSTNAME": hostname, **env},
        uid=sec.uid,
        gid=sec.gid,
        groups=sec.groups,
        cwd=config.get("WorkingDir") or "/",
        hostname=hostname,
        capabilities=sec.capabilities,
        no_new_privileges=sec.no_new_privileges,
        read_only_root=sec.read_only_root,
        seccomp=seccomp,
        mounts=mounts,
        memory_limit=memory_limit,
        cgroups_path=cgroups_path,
    )


@dataclass
class RuncContainer:
    id: str
    state_root: Path
    bundle: Path
    proc: subprocess.Popen[str]

    def stop(self, grace: float = 15.0) -> int:
        """SIGTERM (runc forwards it to the container's PID 1), SIGKILL after `grace`, then delete."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                subprocess.run(
                    runc(self.state_root, "kill", self.id, "KILL"), capture_output=True, check=False
                )
                self.proc.wait(10)
        subprocess.run(runc(self.state_root, "delete", "--force", self.id), capture_output=True, check=False)
        remove_bundle(self.bundle)
        return self.proc.returncode


def _chart_run_process(
    built: BuiltImage, args: list[str], workdir: Path, command: list[str] | None, env: dict[str, str],
    mounts: tuple[BindMount, ...],
) -> ContainerProcess:  # fmt: skip
    config = built.info.config
    sec = chart_security(str(config.get("User", "")))
    fs_group = sec.groups[-1] if sec.groups else None
    tmp = make_empty_dir(workdir / "volumes" / "tmp", fs_group)
    argv = [*(command if command is not None else config.get("Entrypoint") or []), *args]
    return container_process(
        config, sec, argv, env=env, mounts=(BindMount("/tmp", tmp, read_only=False), *mounts),
        hostname="gc-tuner-image-test",
    )  # fmt: skip


def start(
    built: BuiltImage,
    args: list[str],
    workdir: Path,
    *,
    command: list[str] | None = None,
    env: dict[str, str] | None = None,
    mounts: tuple[BindMount, ...] = (),
    stdout: IO[str] | int | None = subprocess.PIPE,
) -> RuncContainer:
    """Start the image in the background as the chart runs it; stop() it when done."""
    process = _chart_run_process(built, args, workdir, command, env or {}, mounts)
    cid = f"gc-tuner-{uuid.uuid4().hex[:12]}"
    bundle = prepare_bundle(workdir / "bundle", built.rootfs, process)
    state = workdir / "runc-state"
    state.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.Popen(
            runc(state, "run", "--bundle", str(bundle), cid),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT if stdout is not subprocess.PIPE else subprocess.PIPE,
            text=True,
        )
    except OSError:
        remove_bundle(bundle)
        raise
    return RuncContainer(cid, state, bundle, proc)


def run_once(
    built: BuiltImage,
    args: list[str],
    *,
    command: list[str] | None = None,
    env: dict[str, str] | None = None,
    mounts: tuple[BindMount, ...] = (),
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the image to completion as the chart runs it; its exit code and output."""
    workdir = Path(tempfile.mkdtemp(prefix="gc-tuner-image-run-"))
    c = start(built, args, workdir, command=command, env=env, mounts=mounts)
    try:
        out, err = c.proc.communicate(timeout=timeout)
    finally:
        code = c.stop(grace=5)
        shutil.rmtree(workdir, ignore_errors=True)
    return subprocess.CompletedProcess(c.proc.args, code, out, err)
