"""Real gctrace logs for the analysis and CLI tests: examples/gcdemo run under settings that each
cause one GC behaviour. Built once (cached by source hash) and run once per test session.

The runs go concurrently (most of them sleep between allocations), so the whole set costs about as
long as the longest run, about 2.5 s.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gc_tuner.cli.gobuild import build_go, repo_root

GCDEMO = repo_root() / "examples" / "gcdemo"

# name: (extra env, gcdemo flags). What each one is meant to show is in its name.
RUNS: dict[str, tuple[dict[str, str], list[str]]] = {
    "default": ({}, ["-duration", "2s", "-grow", "8"]),
    "forced": ({}, ["-duration", "1.5s", "-force-every", "50ms"]),
    # 8 MiB/s, not 16: the live heap then moves less between a cycle and the goal it sets, so few
    # cycles (GOGC 400 collects seldom) do not leave the median effective GOGC at the edge of rounding.
    "gogc400": ({"GOGC": "400"}, ["-duration", "2s", "-grow", "8"]),
    "gogc50": ({"GOGC": "50"}, ["-duration", "2s", "-grow", "16"]),
    # The live set stays under the limit: past it the GC runs back to back, those cycles outnumber
    # the unbound ones ten to one, and the 90th percentile the analysis takes as the reference GOGC
    # is then a bound cycle's, so the binding limit would no longer show.
    "limit": ({"GOMEMLIMIT": "24MiB"}, ["-duration", "2.5s", "-grow", "8", "-max-live", "18"]),
    "assist": (
        {"GOMAXPROCS": "1"},
        ["-duration", "2s", "-pointers", "-spin", "-grow", "16", "-max-live", "64"],
    ),
    "chatty": ({}, ["-duration", "1.5s", "-chatty"]),
}


@dataclass(frozen=True)
class Run:
    name: str
    trace: Path  # the program's stderr: gctrace lines (and, for "chatty", its own output)
    self_report: dict[str, Any]  # runtime/metrics as the program saw them at exit

    def metric(self, name: str) -> int:
        return int(self.self_report[name])


_cache: dict[str, Run] = {}


def _run_all(out_dir: Path) -> dict[str, Run]:
    if _cache:
        return _cache
    binary = build_go(GCDEMO, "gcdemo")
    base_env = {k: v for k, v in os.environ.items() if k not in {"GOGC", "GOMEMLIMIT", "GOMAXPROCS"}}
    procs = {}
    for name, (env, args) in RUNS.items():
        err = open(out_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed after wait below
        procs[name] = (
            subprocess.Popen(
                [str(binary), *args],
                env={**base_env, "GODEBUG": "gctrace=1", **env},
                stdout=subprocess.PIPE,
                stderr=err,
            ),
            err,
        )
    runs = {}
    try:
        for name, (proc, _) in procs.items():
            out, _ = proc.communicate(timeout=60)
            assert proc.returncode == 0, f"gcdemo {name} exited {proc.returncode}"
            runs[name] = Run(name, out_dir / f"{name}.log", json.loads(out))
    finally:
        for proc, err in procs.values():
            if proc.poll() is None:  # a failed run must not leave its siblings behind
                proc.kill()
                proc.wait()
            err.close()
    _cache.update(runs)
    return _cache


def gogc_tolerance(live_mb: list[int], roots_mb: list[int]) -> float:
    """Relative error MiB rounding allows in a median effective GOGC over these cycles.

    The goal base (live + stacks + globals) is three figures each floored to a MiB, so on the small
    heaps of these runs it reads low by 0.5 to 1.5 MiB; the goal minus the live heap is right on
    average. At the median base b that is up to 1.5 / b of the value (12.5% at 12 MiB), never taken
    below 5%.
    """
    bases = sorted(live + roots for live, roots in zip(live_mb, roots_mb, strict=True) if live + roots >= 4)
    assert bases, "no cycle with a base of at least 4 MiB"
    return max(0.05, 1.5 / bases[len(bases) // 2])


@pytest.fixture(scope="session")
def gcdemo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    return _run_all(tmp_path_factory.mktemp("gcdemo"))
