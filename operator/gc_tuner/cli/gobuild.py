"""Build the repo's Go programs (the reference workload, test programs) once, cached by source hash.

Used by `gc-tuner demo`, the tests, e2e and bench, so every one of them runs the same binary for the
same source. The cache lives under ~/.cache/gc-tuner/bin/ (override: GC_TUNER_CACHE).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["GoBuildError", "build_go", "cache_dir", "repo_root"]


class GoBuildError(RuntimeError):
    pass


def repo_root() -> Path:
    """The checkout this package was installed from (editable install: operator/gc_tuner/ -> repo)."""
    return Path(__file__).resolve().parents[3]


def cache_dir() -> Path:
    base = os.environ.get("GC_TUNER_CACHE") or os.path.join(Path.home(), ".cache", "gc-tuner")
    return Path(base)


def _source_hash(module_dir: Path, extra: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    # A module may depend on sibling modules via replace directives (the workload on agent/), so
    # hash those too: a change to the agent must rebuild the workload.
    roots = [module_dir] + [module_dir.joinpath(p).resolve() for p in extra]
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix in {".go", ".mod", ".sum"}:
                h.update(str(path.relative_to(root)).encode())
                h.update(path.read_bytes())
    h.update(" ".join(extra).encode())
    return h.hexdigest()[:16]


def build_go(
    module_dir: Path,
    name: str,
    *,
    package: str = ".",
    tags: tuple[str, ...] = (),
    depends_on: tuple[str, ...] = (),
    go: str = "go",
    env: dict[str, str] | None = None,
) -> Path:
    """Build `package` of the Go module at `module_dir` into the cache and return the binary's path.

    `depends_on` lists directories (relative to module_dir) whose sources also key the cache.
    """
    module_dir = module_dir.resolve()
    if shutil.which(go) is None and not Path(go).exists():
        raise GoBuildError(f"Go toolchain {go!r} not found on PATH; install Go >= 1.22")
    key = _source_hash(module_dir, depends_on + tuple(f"tag:{t}" for t in tags) + (go,))
    out = cache_dir() / "bin" / f"{name}-{key}"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    cmd = [go, "build", "-o", str(tmp)]
    if tags:
        cmd += ["-tags", ",".join(tags)]
    cmd.append(package)
    proc = subprocess.run(
        cmd, cwd=module_dir, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False
    )
    if proc.returncode != 0:
        raise GoBuildError(f"go build {package} in {module_dir} failed:\n{proc.stderr.strip()}")
    os.replace(tmp, out)  # atomic: concurrent builders of the same key never see a partial file
    return out
