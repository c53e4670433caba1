"""helm for the chart tests, built from its Go module once and cached beside the Kubernetes binaries
(~/.cache/gc-tuner/helm/<version>/helm). `python -m e2e.helm build` builds it (scripts/test.sh's setup
stage calls it); `python -m e2e.helm path` prints where it is.

The same step makes the prometheus-operator CRDs (ServiceMonitor, PrometheusRule) the chart's
monitoring objects are validated against: controller-gen, built from sigs.k8s.io/controller-tools,
generates them from the prometheus-operator's published Go API types
(github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring), exactly as that project
generates its own CRDs, so the apiserver checks the chart's objects against their real schemas.

Why `go install` with ldflags: helm reads its own version and the default Kubernetes version for
`helm lint`/`helm template` from variables its Makefile sets at link time; without them `helm version`
reports only "v3.22" and the cache check below could not tell a stale binary from the wanted one.
The build is idempotent: a binary whose `helm version` reports HELM_VERSION is not rebuilt.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from e2e.cluster.build import BuildError, build_lock, run_go
from gc_tuner.cli.gobuild import cache_dir

__all__ = [
    "HELM_MODULE",
    "HELM_VERSION",
    "MONITORING_API_VERSION",
    "HelmBuildError",
    "ensure_helm",
    "ensure_monitoring_crds",
    "helm_path",
]

HELM_VERSION = "v3.22.0"
HELM_MODULE = "helm.sh/helm/v3"
# helm v3.22 links k8s.io/client-go v0.37: its Makefile sets these to 1.37 (client-go minor + 1.x).
_K8S_MAJOR, _K8S_MINOR = "1", "37"
CONTROLLER_TOOLS_VERSION = "v0.23.0"
MONITORING_API = "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring"
MONITORING_API_VERSION = "v0.95.2"
MONITORING_KINDS = ("servicemonitors", "prometheusrules")


class HelmBuildError(RuntimeError):
    pass


def _log(msg: str) -> None:
    print(f"[e2e.helm build] {msg}", flush=True)


def helm_dir() -> Path:
    return cache_dir() / "helm" / HELM_VERSION


def helm_path() -> Path:
    return helm_dir() / "helm"


def _version_ok(binary: Path) -> bool:
    if not binary.exists():
        return False
    try:
        out = subprocess.run(
            [str(binary), "version", "--template", "{{.Version}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return False
    return out.returncode == 0 and out.stdout.strip() == HELM_VERSION


def _ldflags() -> str:
    flags = ["-s", "-w", f"-X {HELM_MODULE}/internal/version.version={HELM_VERSION}"]
    for pkg in ("pkg/lint/rules", "pkg/chartutil"):
        flags += [
            f"-X {HELM_MODULE}/{pkg}.k8sVersionMajor={_K8S_MAJOR}",
            f"-X {HELM_MODULE}/{pkg}.k8sVersionMinor={_K8S_MINOR}",
        ]
    return " ".join(flags)


def _go(cmd: list[str], *, cwd: Path, what: str, gobin: Path | None = None) -> None:
    if shutil.which("go") is None:
        raise HelmBuildError("Go toolchain `go` not found on PATH; helm is built from its Go module")
    try:
        run_go(cmd, cwd, what, extra_env={"GOBIN": str(gobin)} if gobin is not None else None)
    except BuildError as e:
        raise HelmBuildError(str(e)) from None


def _go_install(gobin: Path) -> None:
    cmd = ["go", "install", "-trimpath", "-ldflags", _ldflags(), f"{HELM_MODULE}/cmd/helm@{HELM_VERSION}"]
    _go(cmd, cwd=gobin, what="go install helm", gobin=gobin)


def monitoring_dir() -> Path:
    return cache_dir() / "monitoring-crds" / MONITORING_API_VERSION


def _monitoring_paths() -> dict[str, Path]:
    out = monitoring_dir() / "out"
    return {kind: out / f"monitoring.coreos.com_{kind}.yaml" for kind in MONITORING_KINDS}


def ensure_monitoring_crds() -> dict[str, Path]:
    """The ServiceMonitor and PrometheusRule CRDs, generated once from the prometheus-operator's Go API."""
    paths = _monitoring_paths()
    base = monitoring_dir()
    with build_lock(base.parent / ".build.lock"):
        if all(p.is_file() and p.stat().st_size > 0 for p in paths.values()):
            _log(f"prometheus-operator {MONITORING_API_VERSION} CRDs found in the cache ({base / 'out'})")
            return paths
        start = time.monotonic()
        gen = base / "bin" / "controller-gen"
        if not gen.exists():
            _log(
                f"building controller-gen {CONTROLLER_TOOLS_VERSION} (one Go build, about 2 minutes cold) ..."
            )
            gen.parent.mkdir(parents=True, exist_ok=True)
            tool = f"sigs.k8s.io/controller-tools/cmd/controller-gen@{CONTROLLER_TOOLS_VERSION}"
            _go(
                ["go", "install", "-trimpath", tool],
                cwd=gen.parent,
                what="go install controller-gen",
                gobin=gen.parent,
            )
        src = base / "src"
        src.mkdir(parents=True, exist_ok=True)
        (src / "go.mod").write_text(
            "module gc-tuner.local/monitoring-crds\n\ngo 1.26.0\n\n"
            f"require {MONITORING_API} {MONITORING_API_VERSION}\n"
        )
        (src / "tools.go").write_text(
            f'//go:build tools\n\npackage tools\n\nimport _ "{MONITORING_API}/v1"\n'
        )
        _go(["go", "mod", "tidy"], cwd=src, what="go mod tidy (prometheus-operator API)")
        out = base / "out"
        crd_opts = "crd:crdVersions=v1,maxDescLen=0"
        cmd = [str(gen), crd_opts, f"paths={MONITORING_API}/v1", f"output:crd:dir={out}"]
        _go(cmd, cwd=src, what="controller-gen crd")
        missing = [str(p) for p in paths.values() if not p.is_file()]
        if missing:
            raise HelmBuildError(f"controller-gen did not write {missing}")
        _log(f"prometheus-operator CRDs generated in {time.monotonic() - start:.0f} s ({out})")
    return paths


def ensure_helm() -> Path:
    """Build helm if the cache lacks the wanted version; return its path. Cheap when cached."""
    start = time.monotonic()
    out = helm_path()
    with build_lock(helm_dir().parent / ".build.lock"):
        if _version_ok(out):
            _log(f"helm {HELM_VERSION} found in the cache ({out})")
            return out
        _log(f"building helm {HELM_VERSION} from {HELM_MODULE} (one Go build; a few minutes cold) ...")
        tmp = helm_dir() / f".gobin-{os.getpid()}"
        tmp.mkdir(parents=True, exist_ok=True)
        try:
            _go_install(tmp)
            os.replace(tmp / "helm", out)  # atomic: a reader never sees a partial binary
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if not _version_ok(out):
            raise HelmBuildError(f"{out} built but `helm version` does not report {HELM_VERSION}")
    _log(f"helm {HELM_VERSION} built in {time.monotonic() - start:.0f} s ({out})")
    return out


def main(argv: list[str]) -> int:
    if argv not in (["build"], ["path"]):
        print((__doc__ or "").strip(), file=sys.stderr)
        return 2
    try:
        path = ensure_helm()
        if argv == ["build"]:
            ensure_monitoring_crds()
    except HelmBuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if argv == ["path"]:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
