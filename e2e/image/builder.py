"""Build the operator image from the Dockerfile, once per content hash, into
~/.cache/gc-tuner/image/<key>/:

    oci/          the image as an OCI layout (tag = the version), pushable with skopeo or buildah
    bundle/rootfs the image unpacked by umoci: what runc runs (read-only, shared by every container)
    image.json    name, digest, size, config, labels and how long the build took

The key hashes the Dockerfile, .dockerignore, every file of the build context, the base's key and the
build arguments, so `make test` finds an unchanged image in the cache in well under a second and any
change to the operator's code rebuilds it. The build itself is `buildah bud` (rootful, host network so
pip reaches the host's index) with `--layers`: after a change to the operator's code only the wheel
and the final layers are rebuilt, the dependencies' layer is reused from buildah's storage.

Why buildah and not layers assembled by hand with umoci and runc: `buildah bud` runs here as root with
its OCI isolation (runc) and overlay storage, so the Dockerfile itself is the recipe, exactly what
`docker build` runs, including its build secrets; umoci only unpacks the result for runc.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e.cluster.build import build_lock
from e2e.image.commands import ImageBuildError, log, run_logged
from e2e.image.context import inputs_hash
from e2e.image.oci_layout import ImageInfo, read_image
from e2e.image.pip_settings import build_secrets
from e2e.image.prerequisites import missing_for_build
from e2e.image.rootfs import base_key, base_name, ensure_base
from gc_tuner.cli.gobuild import cache_dir, repo_root

__all__ = [
    "REPOSITORY",
    "BuiltImage",
    "cached_image",
    "ensure_image",
    "image_key",
    "image_root",
    "load_image",
]

REPOSITORY = "ghcr.io/gctuner/gc-tuner"
_LOCAL = "localhost/gc-tuner"
_FORMAT = 1  # bump when the cache's layout changes
_KEEP = 3  # image dirs kept in the cache (a running test kubelet may still use an older one)


@dataclass(frozen=True)
class BuiltImage:
    dir: Path
    key: str
    name: str  # ghcr.io/gctuner/gc-tuner:<version>
    info: ImageInfo
    build_seconds: float
    rootfs_bytes: int  # the unpacked root filesystem: what the image takes on a node's disk

    @property
    def rootfs(self) -> Path:
        return self.dir / "bundle" / "rootfs"

    @property
    def layout(self) -> Path:
        return self.dir / "oci"


def image_root() -> Path:
    return cache_dir() / "image"


def _version(root: Path) -> str:
    return str(tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"])


def image_key(root: Path | None = None) -> str:
    root = root or repo_root()
    extra = {"base": base_key(), "VERSION": _version(root), "format": str(_FORMAT)}
    return inputs_hash(root, extra)[:16]


def load_image(d: Path) -> BuiltImage | None:
    try:
        meta = json.loads((d / "image.json").read_text())
        info = read_image(d / "oci", meta["tag"])
    except (OSError, ValueError, KeyError):
        return None
    if not (d / "bundle" / "rootfs" / "opt" / "gc-tuner" / "bin" / "gc-tuner").exists():
        return None
    return BuiltImage(
        d, meta["key"], meta["name"], info, float(meta["build_seconds"]), int(meta["rootfs_bytes"])
    )


def cached_image(root: Path | None = None) -> BuiltImage | None:
    """The image for the current sources, if it is in the cache."""
    key = image_key(root)
    return load_image(image_root() / key)


def _tag_file(tag: str) -> Path:
    return image_root() / "tags" / tag


def _set_tag(built: BuiltImage) -> None:
    path = _tag_file(built.name.rpartition(":")[2])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(built.key)
    os.replace(tmp, path)


def tagged_image(tag: str) -> BuiltImage | None:
    """The image last built (or found) under `tag`, as a registry resolves a tag to its last push:
    the test kubelet runs that, and never rebuilds while a pod waits because a source file changed."""
    try:
        key = _tag_file(tag).read_text().strip()
    except OSError:
        return None
    return load_image(image_root() / key) if re.fullmatch(r"[0-9a-f]{16}", key) else None


def _revision(root: Path) -> str:
    proc = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    rev = proc.stdout.strip()
    return rev if re.fullmatch(r"[0-9a-f]{40}", rev) else ""


def _bud(root: Path, base: str, tags: list[str], work: Path, build_log: Path) -> None:
    secrets = build_secrets(work / "secrets")
    cmd = [
        "buildah", "bud", "--layers", "--force-rm", "--network=host", "--isolation=oci",
        "--file", str(root / "Dockerfile"),
        "--build-arg", f"BASE_IMAGE={base}",
        "--build-arg", f"VERSION={_version(root)}",
        "--build-arg", f"REVISION={_revision(root)}",
        *secrets.buildah_args(),
    ]  # fmt: skip
    for tag in tags:
        cmd += ["--tag", tag]
    log(f"buildah bud (log: {build_log}) ...")
    try:
        run_logged([*cmd, str(root)], "buildah bud", build_log)
    finally:
        shutil.rmtree(work / "secrets", ignore_errors=True)


def _export(name: str, tag: str, out: Path, build_log: Path) -> None:
    # Uncompressed layers: the push and the unpack are quicker, and the manifest's sizes are the
    # image's size on disk.
    run_logged(
        ["buildah", "push", "--quiet", "--disable-compression", name, f"oci:{out / 'oci'}:{tag}"],
        "export the OCI layout",
        build_log,
    )
    run_logged(
        ["umoci", "unpack", "--image", f"{out / 'oci'}:{tag}", str(out / "bundle")],
        "umoci unpack",
        build_log,
    )


def _tree_bytes(top: Path) -> int:
    """The apparent size of every file and symlink under `top` (as `du --apparent-size`)."""
    total = 0
    for dirpath, _dirs, files in os.walk(top):
        total += sum(os.lstat(os.path.join(dirpath, f)).st_size for f in files)
    return total


def _build(root: Path, key: str, build_log: Path) -> BuiltImage:
    start = time.monotonic()
    base = ensure_base(image_root(), build_log)
    version = _version(root)
    local = f"{_LOCAL}:{key}"
    work = image_root() / f".{key}.tmp{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        _bud(root, base, [local, f"{REPOSITORY}:{version}"], work, build_log)
        _export(local, version, work, build_log)
        took = time.monotonic() - start
        meta: dict[str, Any] = {"key": key, "name": f"{REPOSITORY}:{version}", "tag": version, "local": local}
        meta |= {"base": base, "build_seconds": round(took, 1), "built_at": time.time()}
        meta["rootfs_bytes"] = _tree_bytes(work / "bundle" / "rootfs")
        (work / "image.json").write_text(json.dumps(meta, indent=1))
        final = image_root() / key
        shutil.rmtree(final, ignore_errors=True)
        os.replace(work, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    built = load_image(final)
    if built is None:
        raise ImageBuildError(f"the image was built but {final} is incomplete")
    return built


def _prune(keep: str) -> None:
    """Keep the newest image dirs (and `keep`), their tags and logs, and the current base; remove the
    rest from the cache and from buildah's storage."""
    dirs = [d for d in image_root().iterdir() if d.is_dir() and (d / "image.json").is_file()]
    dirs.sort(key=lambda d: (d / "image.json").stat().st_mtime, reverse=True)
    for d in [d for d in dirs if d.name != keep][_KEEP - 1 :]:
        shutil.rmtree(d, ignore_errors=True)
    kept = {d.name for d in image_root().iterdir() if (d / "image.json").is_file()}
    base = base_name()
    proc = subprocess.run(["buildah", "images", "--json"], capture_output=True, text=True, check=False)
    try:
        listing = [name for image in json.loads(proc.stdout or "[]") for name in image.get("names") or []]
    except ValueError:
        listing = []
    for ref in listing:
        repo, _, tag = ref.rpartition(":")
        stale_image = repo == _LOCAL and tag not in kept
        stale_base = repo == base.rpartition(":")[0] and ref != base
        if stale_image or stale_base:
            subprocess.run(["buildah", "rmi", "--force", ref], capture_output=True, check=False)
    for path in image_root().glob("base-*.tar"):
        if path.name != f"base-{base.rpartition(':')[2]}.tar":
            path.unlink(missing_ok=True)
    for path in (image_root() / "logs").glob("*.log"):
        if path.stem not in kept:
            path.unlink(missing_ok=True)
    # The working containers of builds that were killed half-way (the lock is held: none is running),
    # then the layers only removed images used (the cached layers of the kept builds stay: they are
    # their parents), so that buildah's storage does not grow by the venv's size with every change.
    subprocess.run(["buildah", "rm", "--all"], capture_output=True, check=False)
    subprocess.run(["buildah", "rmi", "--prune"], capture_output=True, check=False)


def ensure_image(*, force: bool = False, root: Path | None = None) -> BuiltImage:
    """The image for the current sources: from the cache, or built now. Raises ImageBuildError."""
    root = root or repo_root()
    missing = missing_for_build()
    start = time.monotonic()
    with build_lock(image_root() / ".build.lock"):
        key = image_key(root)
        found = None if force else load_image(image_root() / key)
        if found is not None:
            _set_tag(found)
            log(f"{found.name} ({key}) found in the cache in {time.monotonic() - start:.1f} s")
            return found
        if missing:
            raise ImageBuildError(f"cannot build the image here: missing {', '.join(missing)}")
        build_log = image_root() / "logs" / f"{key}.log"
        build_log.unlink(missing_ok=True)
        built = _build(root, key, build_log)
        _set_tag(built)
        _prune(key)
    _record_figure(built)
    log(
        f"built {built.name} ({key}) in {built.build_seconds:.0f} s: "
        f"{built.info.layers_bytes / 1e6:.0f} MB compressed in {len(built.info.layers)} layers, "
        f"{built.rootfs_bytes / 1e6:.0f} MB unpacked, {built.dir}"
    )
    return built


def _record_figure(built: BuiltImage) -> None:
    from e2e.cluster.figures import record

    record("image_build", built.build_seconds)


def describe(built: BuiltImage) -> dict[str, Any]:
    return {
        "name": built.name,
        "key": built.key,
        "digest": built.info.manifest_digest,
        "compressed_mb": round(built.info.layers_bytes / 1e6, 1),
        "unpacked_mb": round(built.rootfs_bytes / 1e6, 1),
        "layers_mb": [round(int(layer["size"]) / 1e6, 1) for layer in built.info.layers],
        "build_seconds": built.build_seconds,
        "labels": built.info.config.get("Labels", {}),
        "dir": str(built.dir),
    }
