"""What building and running the image needs from the machine, named piece by piece so that a test
that cannot run says exactly what is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["BUILD_TOOLS", "RUN_TOOLS", "SECCOMP_PROFILE", "missing_for_build", "missing_for_run"]

# Debian packages: runc, mmdebstrap, umoci, buildah (scripts/test.sh installs them).
BUILD_TOOLS = ("mmdebstrap", "buildah", "umoci")
RUN_TOOLS = ("runc",)
# The RuntimeDefault seccomp profile of CRI-O and Podman, from Debian's golang-github-containers-common
# (a dependency of buildah).
SECCOMP_PROFILE = Path("/usr/share/containers/seccomp.json")


def _works(tool: str) -> bool:
    # Installed is not enough: a sandbox may refuse to run it at all.
    try:
        proc = subprocess.run([tool, "--version"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _missing(tools: tuple[str, ...]) -> list[str]:
    out = []
    for t in tools:
        if shutil.which(t) is None:
            out.append(f"{t} (not on PATH)")
        elif not _works(t):
            out.append(f"{t} (`{t} --version` fails here)")
    if os.geteuid() != 0:
        out.append("root (runc and buildah run rootful here)")
    return out


def missing_for_build() -> list[str]:
    """What the image build lacks on this machine; empty when it can run."""
    return _missing((*BUILD_TOOLS, *RUN_TOOLS))


def missing_for_run() -> list[str]:
    """What running a container of the built image lacks; empty when it can run."""
    out = _missing(RUN_TOOLS)
    if not SECCOMP_PROFILE.is_file():
        out.append(f"{SECCOMP_PROFILE} (the RuntimeDefault seccomp profile)")
    return out
