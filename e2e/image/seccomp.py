"""The RuntimeDefault seccomp profile for runc: the containers/common profile (the default of CRI-O
and Podman, /usr/share/containers/seccomp.json) turned into the OCI runtime spec's `linux.seccomp` for
this machine's architecture and the container's capabilities, as containers/common does for CRI-O.

The profile's entries may apply only to some architectures, only with some capabilities held
(`includes.caps`: e.g. the mount syscalls need CAP_SYS_ADMIN) or not with some (`excludes.caps`);
with every capability dropped, as the chart runs the operator, those entries are left out and the
syscalls they would allow stay denied."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

__all__ = ["go_arch", "runtime_default", "seccomp_for"]

Obj = dict[str, Any]
_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}
# The archMap's libseccomp names of the architectures Go (and the profile's `arches`) name otherwise.
_SCMP_GO = {"SCMP_ARCH_X86_64": "amd64", "SCMP_ARCH_AARCH64": "arm64", "SCMP_ARCH_PPC64LE": "ppc64le"}


def go_arch(machine: str | None = None) -> str:
    machine = machine or platform.machine()
    return _GO_ARCH.get(machine, machine)


def _kernel_at_least(want: str, have: str) -> bool:
    def parts(v: str) -> tuple[int, ...]:
        return tuple(int(p) for p in v.split("-")[0].split(".")[:2] if p.isdigit())

    return parts(have) >= parts(want)


def _applies(entry: Obj, arch: str, caps: set[str], kernel: str) -> bool:
    inc, exc = entry.get("includes") or {}, entry.get("excludes") or {}
    if arch in (exc.get("arches") or []) or caps & set(exc.get("caps") or []):
        return False
    if inc.get("arches") and arch not in inc["arches"]:
        return False
    if not set(inc.get("caps") or []) <= caps:
        return False
    return not (inc.get("minKernel") and not _kernel_at_least(inc["minKernel"], kernel))


def seccomp_for(profile: Obj, caps: set[str], arch: str, kernel: str) -> Obj:
    """`profile` (containers/common format) as an OCI `linux.seccomp` object for `arch` (Go name) and
    the capabilities the process holds."""
    arches: list[str] = []
    for m in profile.get("archMap") or []:
        name = m["architecture"]
        if _SCMP_GO.get(name, name.removeprefix("SCMP_ARCH_").lower()) == arch:
            arches = [m["architecture"], *m.get("subArchitectures", [])]
    out: Obj = {"defaultAction": profile["defaultAction"], "architectures": arches, "syscalls": []}
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    for entry in profile.get("syscalls") or []:
        if not _applies(entry, arch, caps, kernel):
            continue
        rule: Obj = {"names": list(entry["names"]), "action": entry["action"]}
        if entry.get("args"):
            rule["args"] = entry["args"]
        if entry.get("errnoRet") is not None:
            rule["errnoRet"] = entry["errnoRet"]
        out["syscalls"].append(rule)
    return out


def runtime_default(path: Path, caps: set[str]) -> Obj:
    """RuntimeDefault for this machine from the profile file at `path`."""
    return seccomp_for(json.loads(path.read_text()), caps, go_arch(), os.uname().release)
