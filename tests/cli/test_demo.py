"""`gc-tuner demo`: builds and runs the real workload through its phases, stops cleanly by itself and on
Ctrl-C; the live panel renders what the loop found."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import pytest

from gc_tuner.cli.demo_view import ViewState, render_panel, sparkline

GC_TUNER = str(Path(sys.executable).with_name("gc-tuner"))


@pytest.mark.go
@pytest.mark.slow
def test_demo_runs_all_phases_and_stops_by_itself() -> None:
    proc = subprocess.run(
        [
            GC_TUNER,
            "demo",
            "--enforce",
            "--duration",
            "16",
            "--phase-seconds",
            "5",
            "--interval",
            "1",
            "--plain",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for phase in ("steady", "burst", "leak"):
        assert f"== phase {phase}:" in out
    assert "recommend GOGC" in out
    assert "apply " in out or "hold " in out
    summary = out.strip().splitlines()[-1]
    assert summary.startswith("workload summary: GC CPU") and "p99 latency" in summary
    assert "Traceback" not in proc.stderr


@pytest.mark.go
@pytest.mark.slow
def test_demo_stops_cleanly_on_ctrl_c() -> None:
    proc = subprocess.Popen(
        [GC_TUNER, "demo", "--interval", "1", "--plain"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        assert proc.stdout is not None
        seen = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            seen.append(line)
            if "recommend GOGC" in line:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "workload summary:" in out and "Traceback" not in err


def test_sparkline_scales_from_zero_and_handles_flat_and_empty() -> None:
    assert sparkline([]) == ""
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert sparkline([100, 100]) == "██"  # from 0: a steady 100 is a full bar, not noise
    assert sparkline([5, 5], floor=None) == "▄▄"
    assert len(sparkline(list(range(100)), width=10)) == 10


def test_panel_shows_fit_recommendation_decision_and_conditions() -> None:
    v = ViewState(
        target="http://127.0.0.1:8080",
        mode="enforce",
        phase="burst",
        phase_index=2,
        phase_left_s=10,
        phase_len_s=40,
        qps=deque([200.0, 900.0]),
        heap_mib=deque([20.0, 21.5]),
    )
    v.last = {
        "qps": 901.5,
        "slope": 0.25,
        "r2": 0.91,
        "gogc_now": 100,
        "recommended": 76,
        "factors": "(qps factor 0.80 × slope factor 0.95)",
        "decision": "apply GOGC 76: setting GOGC 76 (was 100)",
        "applied": "GOGC 76 held on 1 process(es)",
        "gc": {"cycles": 12, "cpu_pct": 1.5, "p99_ms": 0.2},
        "conditions": {"Ready": "True", "LeakSuspected": "False", "Degraded": "True"},
        "failures": ["p agent: AuthFailed: HTTP 403"],
    }
    v.note("phase → burst")
    text = "\n".join(render_panel(v, color=False))
    for want in (
        "ENFORCE",
        "phase 2/3",
        "901.5",
        "21.5 MiB",
        "slope +0.250 MB/s",
        "recommended 76",
        "apply GOGC 76",
        "Ready ✓",
        "Degraded ✓",
        "AuthFailed",
        "phase → burst",
        "pause p99 0.200 ms",
    ):
        assert want in text, want
    assert "\x1b[" not in text
    assert "\x1b[" in "\n".join(render_panel(v, color=True))
