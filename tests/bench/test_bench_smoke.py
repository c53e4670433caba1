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

from bench.quality.contenders import by_key
from bench.quality.scenarios import SCENARIO_NAMES

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
    for name in SCENARIO_NAMES:
        report = (tmp_path / f"quality_smoke_{name}.md").read_text()
        for section in ("## Machine", "## Setup", "## Results", "## Goals", "## Trials in run order"):
            assert section in report, (name, section)
        assert "source: commit " in report and "trial order seed" in report and "load average" in report
        assert "## Distance to the oracle front" in report, name  # root: memory measured
        assert (tmp_path / f"quality_smoke_{name}.png").read_bytes()[:8] == PNG
        runs = json.loads((tmp_path / f"quality_smoke_{name}.json").read_text())
        assert runs, name
        for r in runs:
            assert r["exit"], r
            # GOGC=off may not reach its limit in a smoke trial: no cycle then, and that is right.
            assert r["cycles"] or r["config"].startswith("off"), (name, r["config"], r["notes"])
            assert r["memory"] and r["cpu"], (name, r["config"], r["notes"])
            assert len(r["memory"]) >= 10 * (r["run_s"] - 1), "memory sampled below 10 Hz"
            assert r["latency"], (name, r["config"], "no latency snapshots")
            if r["config"] in ("budget", "cost", "formula"):
                assert r["gogc"], "no GOGC timeline"
                assert isinstance(r["guard"], list), "the guard's trail was not recorded"
        # A gc-tuner contender that cannot run is listed with its reason, never dropped.
        for key in ("budget", "cost"):
            label = by_key(key).label
            assert label in report, (name, label)
            ran = any(r["config"] == key for r in runs)
            assert ran or f"{label} | 0 | unavailable:" in report, (name, key)
    diurnal = (tmp_path / "quality_smoke_diurnal.md").read_text()
    assert "## What switching could earn at best" in diurnal
    assert "## What the guard did" in diurnal
    foreign = (tmp_path / "quality_smoke_foreign.md").read_text()
    assert "etcd v3.6.16" in foreign
    assert "== steady" in proc.stdout and "seed" in proc.stdout


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
