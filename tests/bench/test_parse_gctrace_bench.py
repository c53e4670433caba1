"""bench/parse_gctrace.py: its synthetic log is valid gctrace, and the script runs (no figure is judged;
the script's own exit status says whether both parse paths gave the same results with flat memory)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from bench.parse_gctrace import _ms, write_log
from gc_tuner.input.gctrace import GCTraceParser, iter_lines

ROOT = Path(__file__).resolve().parents[2]


def test_the_synthetic_log_parses_without_a_garbled_line(tmp_path: Path) -> None:
    log = tmp_path / "gctrace.log"
    write_log(log, 5000, seed=3)
    gc_lines = sum(1 for line in log.read_text().splitlines() if re.search(r"gc \d+ @", line))
    p = GCTraceParser()
    with log.open("rb") as f:
        records = list(p.parse(iter_lines(f)))
    assert len(records) == gc_lines > 4000
    assert p.skipped["garbled"] == 0 and p.missing_cycles == 0
    assert {r.stacks_mb is None for r in records} == {True, False}  # pre-1.18 and 1.19+ lines
    assert any(r.leak_check for r in records) and any(r.forced for r in records)


def test_times_are_spelled_as_the_runtime_spells_them() -> None:
    # runtime fmtNSAsMS: whole ms from 10 ms, else two significant digits of the microseconds
    assert [_ms(v) for v in (0.0005, 0.014, 0.44, 1.0, 2.5, 9.96, 10.2, 31)] == [
        "0", "0.014", "0.44", "1.0", "2.5", "9.9", "10", "31",
    ]  # fmt: skip


def test_the_benchmark_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "bench/parse_gctrace.py", "--lines", "3000"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "lines/s" in proc.stdout and "peak RSS" in proc.stdout
    assert "ratio:        per-line / block = " in proc.stdout  # both paths timed in one run
    assert "same results: yes" in proc.stdout
