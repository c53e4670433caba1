"""The image's base, made here from the Debian mirror: `mmdebstrap` builds a Debian bookworm root
filesystem with Python 3.11 (what `python:3.11-slim-bookworm` is built from), and buildah imports it as
the local image `localhost/gc-tuner-base:<key>`; the Dockerfile's BASE_IMAGE build argument names it.

The key is a hash of everything that decides the root filesystem (suite, packages, mirrors, options),
so the base is made once and reused until one of them changes. The tarball is kept in the cache too:
a machine whose buildah storage was wiped imports it again in seconds instead of bootstrapping.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

from e2e.image.commands import ImageBuildError, log, run_logged

__all__ = ["BASE_PACKAGES", "SUITE", "base_key", "base_name", "ensure_base", "mmdebstrap_argv"]

SUITE = "bookworm"
# python3-venv: the Dockerfile's stages make virtualenvs; passwd: groupadd/useradd for the nonroot user;
# ca-certificates as the upstream slim image has them; libstdc++6, which manylinux wheels (numpy, scipy)
# expect from the system and the upstream slim image has (its apt needs it): without it numpy's C
# extensions fail to import.
BASE_PACKAGES = ("python3", "python3-venv", "passwd", "ca-certificates", "libstdc++6")
MIRRORS = (
    f"deb http://deb.debian.org/debian {SUITE} main",
    f"deb http://deb.debian.org/debian {SUITE}-updates main",
    f"deb http://deb.debian.org/debian-security {SUITE}-security main",
)
# "essential" (no apt, no perl beyond perl-base) and a merged /usr set up by the hook rather than by
# the usrmerge package, which would pull in all of perl. Documentation, man pages and translations
# are left out as the slim images leave them out; copyright files stay.
_OPTIONS = (
    "--variant=essential",
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
)
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def mmdebstrap_argv(out: Path) -> list[str]:
    return ["mmdebstrap", *_OPTIONS, f"--include={','.join(BASE_PACKAGES)}", SUITE, str(out), *MIRRORS]


def base_key() -> str:
    spec = {"argv": mmdebstrap_argv(Path("OUT")), "path": _PATH, "format": 1}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def base_name() -> str:
    return f"localhost/gc-tuner-base:{SUITE}-{base_key()}"


def _imported(name: str) -> bool:
    proc = subprocess.run(
        ["buildah", "inspect", "--type", "image", name], capture_output=True, text=True, check=False
    )
    return proc.returncode == 0


def _bootstrap(tarball: Path, build_log: Path) -> None:
    tmp = tarball.with_name(f"{tarball.name}.tmp{os.getpid()}.tar")
    log(f"bootstrapping Debian {SUITE} ({', '.join(BASE_PACKAGES)}) with mmdebstrap ...")
    try:
        run_logged(mmdebstrap_argv(tmp), "mmdebstrap", build_log)
        os.replace(tmp, tarball)
    finally:
        tmp.unlink(missing_ok=True)


def _import(tarball: Path, name: str, build_log: Path) -> None:
    ctr = run_logged(["buildah", "from", "scratch"], "buildah from scratch", build_log, capture=True).strip()
    try:
        run_logged(["buildah", "add", "--quiet", ctr, str(tarball), "/"], "import the base", build_log)
        run_logged(
            [
                "buildah", "config", "--env", f"PATH={_PATH}", "--cmd", '["python3"]',
                "--label", f"io.gctuner.image.base=debian-{SUITE}-mmdebstrap",
                "--label", f"io.gctuner.image.base.packages={','.join(BASE_PACKAGES)}",
                ctr,
            ],
            "configure the base",
            build_log,
        )  # fmt: skip
        run_logged(["buildah", "commit", "--quiet", ctr, name], "commit the base", build_log)
    finally:
        subprocess.run(["buildah", "rm", ctr], capture_output=True, check=False)


def ensure_base(cache: Path, build_log: Path) -> str:
    """The base image's local name, bootstrapped and imported only when not there yet."""
    name = base_name()
    if _imported(name):
        return name
    tarball = cache / f"base-{SUITE}-{base_key()}.tar"
    if not tarball.is_file():
        _bootstrap(tarball, build_log)
    _import(tarball, name, build_log)
    if not _imported(name):
        raise ImageBuildError(f"{name} was committed but buildah cannot find it")
    log(f"base image {name} imported from {tarball}")
    return name
