"""Build kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and etcd from the Go module
proxy, once, into ~/.cache/gc-tuner/{k8s,etcd}/<version>/.

Why a wrapper module: k/k's go.mod requires its staging modules (k8s.io/api, client-go, ...) at v0.0.0 and
replaces them with ./staging/src paths, so `go install k8s.io/kubernetes/cmd/...@v1.36.3` cannot work.
The wrapper requires k8s.io/kubernetes and replaces every staging module with its published v0.X.Y
release; the list of staging modules is read from the real k/k go.mod so it tracks the version.
etcd gets its own wrapper module so version selection for the two can never mix.

The wrapper go.mod/go.sum are generated into the cache at build time (minimal version selection makes
`go mod tidy` deterministic for a fixed k/k version, and go.sum is checked against the checksum database).
The build is idempotent: a binary whose `--version` reports the wanted version is not rebuilt.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gc_tuner.cli.gobuild import cache_dir

__all__ = [
    "ETCD_VERSION",
    "K8S_BINARIES",
    "K8S_VERSION",
    "Binaries",
    "BuildError",
    "binaries",
    "build_lock",
    "ensure_built",
    "run_go",
    "staging_replaces",
]

K8S_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.16"
K8S_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
_HEARTBEAT_S = 30.0


class BuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path


def k8s_dir() -> Path:
    return cache_dir() / "k8s" / K8S_VERSION


def etcd_dir() -> Path:
    return cache_dir() / "etcd" / ETCD_VERSION


def binaries() -> Binaries:
    k = k8s_dir()
    return Binaries(
        etcd=etcd_dir() / "etcd",
        kube_apiserver=k / "kube-apiserver",
        kube_controller_manager=k / "kube-controller-manager",
        kube_scheduler=k / "kube-scheduler",
        kubectl=k / "kubectl",
    )


def _log(msg: str) -> None:
    print(f"[e2e.cluster build] {msg}", flush=True)


def _go_env() -> dict[str, str]:
    # GOTOOLCHAIN=local: a toolchain download is impossible here and would hide a version mismatch.
    goflags = f"{os.environ.get('GOFLAGS', '')} -mod=mod".strip()
    return {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": goflags}


def run_go(cmd: list[str], cwd: Path, what: str, *, extra_env: dict[str, str] | None = None) -> str:
    """Run a go command, printing a heartbeat so a long CI step visibly makes progress."""
    start = time.monotonic()
    done = threading.Event()

    def beat() -> None:
        while not done.wait(_HEARTBEAT_S):
            _log(f"  ... {what}: {time.monotonic() - start:.0f} s")

    t = threading.Thread(target=beat, daemon=True)
    t.start()
    try:
        env = {**_go_env(), **(extra_env or {})}
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    finally:
        done.set()
        t.join()
    if proc.returncode != 0:
        refused = _json_error(proc.stdout)
        if refused:
            raise BuildError(
                f"{what} failed: Go could not fetch a module: {refused}\n({' '.join(cmd)} in {cwd})"
            )
        detail = "\n".join(x for x in (proc.stderr.strip(), proc.stdout.strip()[-4000:]) if x)
        raise BuildError(f"{what} failed ({' '.join(cmd)} in {cwd}):\n{detail}")
    return proc.stdout


def _json_error(stdout: str) -> str | None:
    """The "Error" of `go mod download -json` output: it reports a refused module there, on stdout,
    with nothing on stderr."""
    try:
        doc = json.loads(stdout)
    except ValueError:
        return None
    error = doc.get("Error") if isinstance(doc, dict) else None
    return str(error) if error else None


def staging_replaces(k8s_version: str = K8S_VERSION, work: Path | None = None) -> list[str]:
    """The staging modules of k/k at `k8s_version`, read from its real go.mod's `=> ./staging/src/` lines."""
    work = work or k8s_dir()
    work.mkdir(parents=True, exist_ok=True)
    out = run_go(
        ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{k8s_version}"],
        work,
        f"download k8s.io/kubernetes@{k8s_version}",
    )
    info = json.loads(out)
    gomod = Path(info["GoMod"]).read_text()
    mods = re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/src/", gomod, flags=re.MULTILINE)
    if not mods:
        raise BuildError(f"no staging replace lines found in {info['GoMod']}")
    return sorted(set(mods))


def _staging_version(k8s_version: str) -> str:
    # Staging modules are published as v0.<minor>.<patch> for Kubernetes v1.<minor>.<patch>.
    m = re.fullmatch(r"v1\.(\d+)\.(\d+)", k8s_version)
    if not m:
        raise BuildError(f"unexpected Kubernetes version {k8s_version!r}, want v1.MINOR.PATCH")
    return f"v0.{m.group(1)}.{m.group(2)}"


def _write_k8s_wrapper(src: Path) -> None:
    src.mkdir(parents=True, exist_ok=True)
    staging = _staging_version(K8S_VERSION)
    replaces = "\n".join(f"\t{m} => {m} {staging}" for m in staging_replaces(K8S_VERSION, src))
    (src / "go.mod").write_text(
        "module gc-tuner.local/k8s-binaries\n\ngo 1.26.0\n\n"
        f"require k8s.io/kubernetes {K8S_VERSION}\n\nreplace (\n{replaces}\n)\n"
    )
    imports = "\n".join(f'\t_ "k8s.io/kubernetes/cmd/{b}"' for b in K8S_BINARIES)
    (src / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n")


def _write_etcd_wrapper(src: Path) -> None:
    src.mkdir(parents=True, exist_ok=True)
    (src / "go.mod").write_text(
        f"module gc-tuner.local/etcd\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 {ETCD_VERSION}\n"
    )
    (src / "main.go").write_text(
        "// etcd's own main, built from the published server module.\n"
        'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\n'
        "func main() { etcdmain.Main(os.Args) }\n"
    )


def _version_ok(binary: Path, want: str) -> bool:
    if not binary.exists():
        return False
    args = ["version", "--client"] if binary.name == "kubectl" else ["--version"]
    try:
        out = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return False
    return want in out.stdout


def _ldflags() -> str:
    m = re.fullmatch(r"v(\d+)\.(\d+)\.\d+", K8S_VERSION)
    assert m is not None
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={K8S_VERSION}",
            f"-X {pkg}.gitMajor={m.group(1)}",
            f"-X {pkg}.gitMinor={m.group(2)}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return " ".join(flags)


def _go_build(src: Path, pkg: str, out: Path, ldflags: str) -> float:
    """Build one binary (one at a time: linking kube-apiserver alone peaks at about 2.2 GB)."""
    start = time.monotonic()
    _log(f"building {out.name} ...")
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    run_go(["go", "build", "-trimpath", "-ldflags", ldflags, "-o", str(tmp), pkg], src, f"build {out.name}")
    os.replace(tmp, out)
    took = time.monotonic() - start
    _log(f"built {out.name} in {took:.0f} s")
    return took


@contextlib.contextmanager
def build_lock(path: Path) -> Iterator[None]:
    # Two runs (scripts/test.sh and a pytest fixture, or two shells) must not build into the same dir.
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _ensure_etcd() -> set[str]:
    b = binaries().etcd
    if _version_ok(b, ETCD_VERSION.lstrip("v")):
        return set()
    src = etcd_dir() / "src"
    _write_etcd_wrapper(src)
    _log(f"resolving go.etcd.io/etcd/server/v3@{ETCD_VERSION} (go mod tidy) ...")
    run_go(["go", "mod", "tidy"], src, "go mod tidy (etcd)")
    _go_build(src, ".", b, "-s -w")
    if not _version_ok(b, ETCD_VERSION.lstrip("v")):
        raise BuildError(f"{b} built but `--version` does not report {ETCD_VERSION}")
    return {"etcd"}


def _ensure_k8s() -> set[str]:
    bins = binaries()
    paths = [bins.kube_apiserver, bins.kube_controller_manager, bins.kube_scheduler, bins.kubectl]
    missing = [p for p in paths if not _version_ok(p, K8S_VERSION)]
    if not missing:
        return set()
    src = k8s_dir() / "src"
    if not (src / "go.sum").exists():
        _write_k8s_wrapper(src)
        _log(f"resolving k8s.io/kubernetes@{K8S_VERSION} and its staging modules (go mod tidy) ...")
        run_go(["go", "mod", "tidy"], src, "go mod tidy (kubernetes)")
    ldflags = _ldflags()
    for p in missing:
        _go_build(src, f"k8s.io/kubernetes/cmd/{p.name}", p, ldflags)
        if not _version_ok(p, K8S_VERSION):
            raise BuildError(f"{p} built but its version does not report {K8S_VERSION}")
    return {p.name for p in missing}


def ensure_built() -> Binaries:
    """Build whatever is missing from the cache; return the binaries' paths. Cheap when all are cached."""
    start = time.monotonic()
    with build_lock(cache_dir() / "k8s" / ".build.lock"):
        built = _ensure_etcd() | _ensure_k8s()
    took = time.monotonic() - start
    what = f"built {', '.join(sorted(built))}" if built else "all cached"
    _log(
        f"Kubernetes {K8S_VERSION} + etcd {ETCD_VERSION} binaries ready in {took:.1f} s ({what}; {k8s_dir()})"
    )
    if built:
        _record_figure("build", took)
    return binaries()


def _record_figure(name: str, seconds: float) -> None:
    # The e2e terminal summary (e2e/conftest.py) reads these, since pytest hides fixture output.
    from e2e.cluster.figures import record

    record(name, seconds)


def main() -> int:
    try:
        ensure_built()
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
