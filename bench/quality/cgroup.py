"""A memory limit for one benchmark process: a memory cgroup child of our own cgroup, or nothing.

With a cgroup the limit is real: the kernel reclaims at the limit and OOM-kills the process when it
cannot, so a breach is a `failcnt` above zero and a kill is counted in `oom_kill`. The child is
created under the cgroup this process already belongs to (never elsewhere), holds only the
benchmarked process (it joins between fork and exec, so every page it ever touches is charged),
and is removed afterwards. Where no memory cgroup is writable the caller runs without one and
counts peak memory above the limit as a breach.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CgroupReading", "MemoryCgroup", "NoCgroup", "create_memory_cgroup"]


class NoCgroup(Exception):
    """No writable memory cgroup here; the message says why."""


@dataclass(frozen=True, slots=True)
class CgroupReading:
    peak_bytes: int
    limit_hits: int  # v1 failcnt (memory or memory+swap) / v2 memory.events "max": usage reached the limit
    oom_kills: int


def _own_path(controller_line: Callable[[str], bool]) -> str:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller_line(controllers):
            return path
    raise NoCgroup("this process is in no memory cgroup")


def _mounts() -> list[tuple[str, str, set[str]]]:
    out = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 4:
            out.append((parts[1], parts[2], set(parts[3].split(","))))
    return out


def _kv(path: Path) -> dict[str, int]:
    values = {}
    for line in path.read_text().splitlines():
        k, _, v = line.partition(" ")
        with contextlib.suppress(ValueError):
            values[k] = int(v)
    return values


@dataclass
class MemoryCgroup:
    path: Path
    version: int  # 1 or 2
    limit_bytes: int

    @property
    def description(self) -> str:
        return f"cgroup v{self.version} memory controller, a child of {self.path.parent} per run"

    def join(self) -> None:
        """Move the calling process into the cgroup; used as preexec_fn between fork and exec."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def usage_bytes(self) -> int | None:
        name = "memory.usage_in_bytes" if self.version == 1 else "memory.current"
        try:
            return int((self.path / name).read_text())
        except (OSError, ValueError):
            return None

    def read(self) -> CgroupReading:
        if self.version == 1:
            oom = _kv(self.path / "memory.oom_control")
            # With swap accounting the memory+swap limit (set equal) is hit first and counts there.
            hits = [int((self.path / "memory.failcnt").read_text())]
            memsw = self.path / "memory.memsw.failcnt"
            if memsw.exists():
                hits.append(int(memsw.read_text()))
            return CgroupReading(
                int((self.path / "memory.max_usage_in_bytes").read_text()), max(hits), oom.get("oom_kill", 0)
            )
        events = _kv(self.path / "memory.events")
        peak_file = self.path / "memory.peak"  # Linux 5.19+
        peak = int(peak_file.read_text()) if peak_file.exists() else -1
        return CgroupReading(peak, events.get("max", 0), events.get("oom_kill", 0))

    def remove(self) -> None:
        """rmdir the child once its process has exited (charges move to the parent)."""
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)  # the exiting process may still be listed for a moment
        raise OSError(f"could not remove cgroup {self.path}")


def _create_v1(name: str, limit: int) -> MemoryCgroup:
    roots = [m for m, fstype, opts in _mounts() if fstype == "cgroup" and "memory" in opts]
    if not roots:
        raise NoCgroup("no cgroup v1 memory controller mounted")
    own = _own_path(lambda c: "memory" in c.split(","))
    path = Path(roots[0]) / own.lstrip("/") / name
    path.mkdir()
    try:
        (path / "memory.limit_in_bytes").write_text(str(limit))
        with contextlib.suppress(OSError):  # without swap the file is missing; nothing to limit
            (path / "memory.memsw.limit_in_bytes").write_text(str(limit))
    except OSError:
        path.rmdir()
        raise
    return MemoryCgroup(path, 1, limit)


def _create_v2(name: str, limit: int) -> MemoryCgroup:
    roots = [m for m, fstype, _ in _mounts() if fstype == "cgroup2"]
    if not roots:
        raise NoCgroup("no cgroup2 hierarchy mounted")
    own = _own_path(lambda c: c == "")
    parent = Path(roots[0]) / own.lstrip("/")
    if "memory" not in (parent / "cgroup.subtree_control").read_text().split():
        raise NoCgroup(f"the memory controller is not enabled for children of {parent}")
    path = parent / name
    path.mkdir()
    try:
        (path / "memory.max").write_text(str(limit))
        with contextlib.suppress(OSError):
            (path / "memory.swap.max").write_text("0")
    except OSError:
        path.rmdir()
        raise
    return MemoryCgroup(path, 2, limit)


def create_memory_cgroup(name: str, limit_bytes: int) -> MemoryCgroup:
    """A fresh child cgroup limited to `limit_bytes`; NoCgroup (with every reason) if impossible."""
    reasons = []
    for create in (_create_v1, _create_v2):
        try:
            return create(name, limit_bytes)
        except NoCgroup as e:
            reasons.append(str(e))
        except OSError as e:
            reasons.append(f"{create.__name__[-2:]}: {e}")
    raise NoCgroup("; ".join(reasons))
