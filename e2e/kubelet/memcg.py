"""A container's memory limit, enforced for real: a cgroup v1 memory cgroup per container run.

The test kubelet runs containers as plain processes. Where the host lets it (root, a writable cgroup
v1 memory hierarchy), a container with `resources.limits.memory` runs in its own memory cgroup whose
limit is that value, so the kernel's OOM killer ends it the way it ends a real pod's container, and
the kubelet can tell an OOM kill (the cgroup's `oom_kill` counter) from any other SIGKILL and report
`OOMKilled`, as the real kubelet does. Elsewhere the limit is not enforced and the kubelet says so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from pathlib import Path

__all__ = ["MemoryCgroup", "cgroup_root"]

log = logging.getLogger(__name__)
_V1 = Path(os.environ.get("E2E_MEMCG_ROOT", "/sys/fs/cgroup/memory"))
_PARENT = "gc-tuner-e2e"


def cgroup_root() -> Path | None:
    """The parent cgroup for the test kubelet's containers, or None where none can be made."""
    if not (_V1 / "memory.oom_control").exists():
        return None
    root = _V1 / _PARENT
    try:
        root.mkdir(exist_ok=True)
    except OSError:
        return None
    return root if os.access(root / "cgroup.procs", os.W_OK) else None


class MemoryCgroup:
    """One container run's memory cgroup: made with its limit, joined by the process before exec."""

    def __init__(self, root: Path, limit_bytes: int) -> None:
        self.path = root / uuid.uuid4().hex
        self.path.mkdir()
        # Limit swap too, where the kernel accounts it: otherwise a limit spills into swap, no OOM.
        (self.path / "memory.limit_in_bytes").write_text(str(limit_bytes))
        with contextlib.suppress(OSError):
            (self.path / "memory.memsw.limit_in_bytes").write_text(str(limit_bytes))
        self.procs = str(self.path / "cgroup.procs")

    def set_limit(self, limit_bytes: int) -> None:
        """An in-place resize: the new limit, on the running process. The memory+swap limit may
        never be below the memory limit, so it moves first when the limit grows and last when it
        shrinks. OSError (EBUSY) when the usage is above a smaller limit, as the kernel refuses it."""
        memsw = self.path / "memory.memsw.limit_in_bytes"
        current = int((self.path / "memory.limit_in_bytes").read_text())
        order = (memsw, self.path / "memory.limit_in_bytes")
        for f in order if limit_bytes > current else reversed(order):
            if f == memsw and not memsw.exists():
                continue
            f.write_text(str(limit_bytes))

    def join_self(self) -> None:
        """Runs in the child between fork and exec (preexec_fn): no allocation escapes the limit."""
        fd = os.open(self.procs, os.O_WRONLY)
        try:
            os.write(fd, b"0")  # "0": the writing process itself
        finally:
            os.close(fd)

    def oom_killed(self) -> bool:
        try:
            for line in (self.path / "memory.oom_control").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value) > 0
        except (OSError, ValueError):
            pass
        return False

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.rmdir()
