"""One container's runc bundle: config.json and a root filesystem that is an overlay of the image's
unpacked rootfs (shared by every container, never written) and a private upper directory, as a
container runtime's snapshotter does. runc creates missing mount points (/var/run/secrets/...) in the
upper directory, not in the cached image."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from e2e.image.runc_spec import ContainerProcess, runtime_config

__all__ = ["prepare_bundle", "remove_bundle", "runc"]


def runc(state_root: Path, *args: str) -> list[str]:
    """A runc command line with its state kept under `state_root` (not the host's /run/runc)."""
    return ["runc", "--root", str(state_root), *args]


def prepare_bundle(bundle: Path, image_rootfs: Path, process: ContainerProcess) -> Path:
    """Mount the overlay and write config.json into `bundle`; returns the bundle directory."""
    upper, work, merged = bundle / "upper", bundle / "work", bundle / "rootfs"
    for d in (upper, work, merged):
        d.mkdir(parents=True, exist_ok=True)
    opts = f"lowerdir={image_rootfs},upperdir={upper},workdir={work}"
    proc = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise OSError(f"mounting the container's root filesystem failed: {proc.stderr.strip()}")
    (bundle / "config.json").write_text(json.dumps(runtime_config(merged, process), indent=1))
    return bundle


def remove_bundle(bundle: Path) -> None:
    merged = bundle / "rootfs"
    if merged.is_mount():
        subprocess.run(["umount", "--lazy", str(merged)], capture_output=True, check=False)
    shutil.rmtree(bundle, ignore_errors=True)
