"""The benchmarks' smoke modes run end to end and write well-formed reports (no figure is judged).

Timing belongs to the benchmarks themselves (bench/), never to the test suite: these tests only
check that every scenario × contender ran, and that the tables, JSON and PNGs are complete.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.quality.scenarios import CONTENDERS

pytestmark = [pytest.mark.go, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"


def _run(module: str, out: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", module, "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_quality_smoke_writes_a_complete_report(tmp_path: Path) -> None:
    proc = _run("bench.quality", tmp_path)
    report = (tmp_path / "quality_smoke.md").read_text()
    for section in ("## Machine", "## Setup", "## steady", "## burst", "## leak", "## Goals", "## Plots"):
        assert section in report, section
    assert "enforced by:" in report and "load average" in report
    for png in ("quality_gc_vs_peak.png", "quality_timelines.png"):
        assert (tmp_path / png).read_bytes()[:8] == PNG
        assert f"({png})" in report
    runs = json.loads((tmp_path / "quality_smoke.json").read_text())
    built = [c for c in CONTENDERS if c.kind != "bytedance" or "bytedance gctuner left out" not in report]
    assert {(r["scenario"], r["contender"]) for r in runs} == {
        (s, c.key) for s in ("steady", "burst", "leak") for c in built
    }
    for r in runs:
        assert r["exit"], r
        assert r["timeline"], (r["scenario"], r["contender"], r["notes"])
        assert r["peak_bytes"] and r["gc_cpu_s"] is not None and r["requests"], r["notes"]
        if r["contender"] in ("formula", "budget"):
            assert r["tuner"], "gc-tuner local printed no cycle"
    # Every goal is reported with a verdict, and the printed tables name every contender.
    assert report.count("- **") >= 10
    for c in built:
        assert c.label in proc.stdout


def test_fleet_smoke_writes_a_complete_report(tmp_path: Path) -> None:
    _run("bench.fleet", tmp_path)
    report = (tmp_path / "fleet_smoke.md").read_text()
    for section in ("## Machine", "## Fleet", "## Decision time", "## Endpoint rollout", "## Goals"):
        assert section in report, section
    doc = json.loads((tmp_path / "fleet_smoke.json").read_text())
    assert doc["fleet"] and all(r["cycles"] >= 1 and r["pods_sampled"] > 0 for r in doc["fleet"]), doc
    (rollout,) = doc["rollout"]
    assert rollout["acked"] == rollout["pods"], rollout
    assert all(d["median_ms"] > 0 for d in doc["decision"])
    assert (tmp_path / "fleet_cost.png").read_bytes()[:8] == PNG
