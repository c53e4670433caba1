"""The OCI runtime spec (runc's config.json) for one container of the image, from what a kubelet knows:
the image config, the process (argv, env, user, groups), its security settings and its mounts.

Only what the runtime spec says is enforced; everything here is read back by the tests from the
running process (/proc/PID/status, mountinfo) rather than trusted. Host network: no network namespace,
so a pod's loopback alias and the apiserver on 127.0.0.1 are reachable as the test kubelet arranges."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_CAPABILITIES", "BindMount", "ContainerProcess", "runtime_config"]

Obj = dict[str, Any]

# What containerd and CRI-O grant a container unless its securityContext drops them.
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)  # fmt: skip
_MASKED = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
)  # fmt: skip
_READONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


@dataclass(frozen=True)
class BindMount:
    destination: str
    source: Path
    read_only: bool = True


@dataclass(frozen=True)
class ContainerProcess:
    args: list[str]
    env: dict[str, str]
    uid: int
    gid: int
    groups: tuple[int, ...] = ()
    cwd: str = "/"
    hostname: str = "container"
    capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES
    no_new_privileges: bool = False
    read_only_root: bool = False
    seccomp: Obj | None = None
    mounts: tuple[BindMount, ...] = field(default_factory=tuple)
    memory_limit: int | None = None
    cgroups_path: str | None = None


def _system_mounts() -> list[Obj]:
    return [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
    ]  # fmt: skip


def _bind(m: BindMount) -> Obj:
    options = ["rbind", "nosuid", "nodev", "ro" if m.read_only else "rw"]
    return {"destination": m.destination, "type": "bind", "source": str(m.source), "options": options}


def _linux(p: ContainerProcess) -> Obj:
    linux: Obj = {
        # No network namespace: the pod shares the host's (see the module docstring).
        "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount")],
        "maskedPaths": list(_MASKED),
        "readonlyPaths": list(_READONLY),
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
    }
    if p.memory_limit is not None:
        linux["resources"]["memory"] = {"limit": p.memory_limit}
    if p.cgroups_path is not None:
        linux["cgroupsPath"] = p.cgroups_path
    if p.seccomp is not None:
        linux["seccomp"] = p.seccomp
    return linux


def runtime_config(rootfs: Path, p: ContainerProcess) -> Obj:
    """config.json for `runc run`, rootfs given as an absolute path."""
    caps = list(p.capabilities)
    # Like containerd: a non-root process gets its capabilities only in the bounding set.
    held = caps if p.uid == 0 else []
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": p.uid, "gid": p.gid, "additionalGids": sorted(set(p.groups))},
            "args": list(p.args),
            "env": [f"{k}={v}" for k, v in p.env.items()],
            "cwd": p.cwd,
            "capabilities": {
                "bounding": caps,
                "effective": held,
                "permitted": held,
                "inheritable": [],
                "ambient": [],
            },
            "noNewPrivileges": p.no_new_privileges,
        },
        "root": {"path": str(rootfs), "readonly": p.read_only_root},
        "hostname": p.hostname,
        "mounts": _system_mounts() + [_bind(m) for m in p.mounts],
        "linux": _linux(p),
    }
