"""`gc-tuner analyze` on real gctrace logs: the JSON contract, the table, --plot, --run-example, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from gc_tuner.cli.main import main
from tests.gcdemo_runs import Run, gogc_tolerance

CYCLE_KEYS = {
    "n",
    "t",
    "cpu_pct",
    "heap_start_mb",
    "heap_end_mb",
    "live_mb",
    "goal_mb",
    "stacks_mb",
    "globals_mb",
    "procs",
    "forced",
    "stw_ms",
    "effective_gogc",
}
SUMMARY_KEYS = {
    "cycles",
    "forced",
    "skipped_lines",
    "stw_p50_ms",
    "stw_p99_ms",
    "stw_max_ms",
    "gc_cpu_pct",
    "live_slope_mb_per_s",
    "effective_gogc_median",
}
GC_TUNER = Path(sys.executable).with_name("gc-tuner")


def invoke(*args: str, input: bytes | None = None) -> Result:
    return CliRunner().invoke(main, ["analyze", *args], input=input)


def analyze_json(*args: str) -> dict[str, Any]:
    r = invoke(*args, "--format", "json")
    assert r.exit_code == 0, r.output + r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def assert_usage_error(r: Result, *fragments: str) -> None:
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert isinstance(r.exception, SystemExit)  # not an uncaught exception
    assert "Traceback" not in r.output
    for frag in fragments:
        assert frag in r.stderr, r.stderr


# -- real traces ------------------------------------------------------------------------------------------


@pytest.mark.go
def test_json_contract(gcdemo: dict[str, Run]) -> None:
    run = gcdemo["default"]
    doc = analyze_json(str(run.trace))
    assert {"cycles", "summary", "anomalies", "recommendation"} <= doc.keys()
    assert len(doc["cycles"]) == run.metric("/gc/cycles/total:gc-cycles")
    for c in doc["cycles"]:
        assert c.keys() >= CYCLE_KEYS
        assert isinstance(c["n"], int) and isinstance(c["t"], float) and isinstance(c["forced"], bool)
        assert isinstance(c["stacks_mb"], int) and isinstance(c["globals_mb"], int)  # Go 1.26: present
        assert c["effective_gogc"] is None or isinstance(c["effective_gogc"], float)
        assert c["stw_ms"] >= 0
    assert [c["n"] for c in doc["cycles"]] == list(range(1, len(doc["cycles"]) + 1))
    s = doc["summary"]
    assert s.keys() >= SUMMARY_KEYS
    assert s["cycles"] == len(doc["cycles"])
    assert s["forced"] == sum(c["forced"] for c in doc["cycles"]) == run.metric("/gc/cycles/forced:gc-cycles")
    assert s["skipped_lines"] == 0
    assert s["stw_p50_ms"] <= s["stw_p99_ms"] <= s["stw_max_ms"]
    assert s["gc_cpu_pct"] == doc["cycles"][-1]["cpu_pct"]
    assert s["live_slope_mb_per_s"] > 0
    tolerance = gogc_tolerance(
        [c["live_mb"] for c in doc["cycles"]], [c["stacks_mb"] + c["globals_mb"] for c in doc["cycles"]]
    )
    assert s["effective_gogc_median"] == pytest.approx(100, rel=tolerance)
    for a in doc["anomalies"]:
        assert {"rule", "evidence", "suggested_action"} <= a.keys()
    rec = doc["recommendation"]
    assert {"gogc", "qps_factor", "slope_factor", "explanation"} <= rec.keys()
    assert 25 <= rec["gogc"] <= 200


@pytest.mark.go
def test_table_output(gcdemo: dict[str, Run]) -> None:
    run = gcdemo["gogc400"]
    r = invoke(str(run.trace))
    assert r.exit_code == 0, r.stderr
    out = r.stdout
    n = run.metric("/gc/cycles/total:gc-cycles")
    rows = [line for line in out.splitlines() if line.split() and line.split()[0].isdigit()]
    assert len(rows) == n and rows[-1].split()[0] == str(n)
    for header in ("Summary of", "STW pause", "effective GOGC", "Anomalies", "Recommendation"):
        assert header in out
    assert "[article] goal_over_2x_live" in out and "Article's suggestion:" in out and "Facts:" in out


@pytest.mark.go
def test_stdin(gcdemo: dict[str, Run]) -> None:
    run = gcdemo["default"]
    r = invoke("-", "--format", "json", input=run.trace.read_bytes())
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["summary"]["cycles"] == run.metric("/gc/cycles/total:gc-cycles")


@pytest.mark.go
def test_qps_and_gogc_options(gcdemo: dict[str, Run]) -> None:
    run = gcdemo["gogc50"]
    doc = analyze_json(str(run.trace), "--qps", "1800", "--gogc", "50")
    assert doc["recommendation"]["qps_factor"] == 0.5 and not doc["recommendation"]["qps_assumed"]
    assert doc["summary"]["reference_gogc"] == 50 and doc["summary"]["reference_gogc_source"] == "given"
    for bad in (["--qps", "-1"], ["--qps", "nan"], ["--gogc", "0"]):
        assert_usage_error(invoke(str(run.trace), *bad), "Invalid value")


@pytest.mark.go
def test_interleaved_output_counts_skipped_lines(gcdemo: dict[str, Run]) -> None:
    doc = analyze_json(str(gcdemo["chatty"].trace))
    assert doc["summary"]["skipped_lines"] > 100 and doc["summary"]["cycles"] > 10


@pytest.mark.go
def test_plot_writes_a_png_timeline(gcdemo: dict[str, Run], tmp_path: Path) -> None:
    from matplotlib.image import imread

    out = tmp_path / "timeline.png"
    r = invoke(str(gcdemo["limit"].trace), "--plot", str(out))
    assert r.exit_code == 0, r.stderr
    assert f"wrote {out}" in r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = imread(out)
    assert img.shape[:2] == (800, 1200)
    assert float(np.std(img[..., :3])) > 0.05  # something was drawn
    bad = invoke(str(gcdemo["limit"].trace), "--plot", str(tmp_path / "missing-dir" / "x.png"))
    assert_usage_error(bad, "cannot write the plot")


@pytest.mark.go
def test_run_example() -> None:
    r = invoke("--run-example", "--example-duration", "1", "--format", "json")
    assert r.exit_code == 0, r.stderr
    assert "running examples/gcdemo" in r.stderr
    doc = json.loads(r.stdout)
    assert doc["source"] == "examples/gcdemo" and doc["summary"]["cycles"] > 5


@pytest.mark.go
def test_real_console_script(gcdemo: dict[str, Run], tmp_path: Path) -> None:
    run = gcdemo["default"]
    proc = subprocess.run(
        [str(GC_TUNER), "analyze", str(run.trace), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["summary"]["cycles"] == run.metric("/gc/cycles/total:gc-cycles")
    missing = subprocess.run(
        [str(GC_TUNER), "analyze", str(tmp_path / "nope.log")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert missing.returncode == 2
    assert "no such file" in missing.stderr and "Traceback" not in missing.stderr


# -- unusable input: exit 2 with a clear message, never a traceback ---------------------------------


def test_empty_file(tmp_path: Path) -> None:
    f = tmp_path / "empty.log"
    f.write_bytes(b"")
    assert_usage_error(invoke(str(f)), "empty input", "GODEBUG=gctrace=1")


def test_empty_stdin() -> None:
    assert_usage_error(invoke("-", input=b""), "stdin: empty input")


def test_binary_file(tmp_path: Path) -> None:
    f = tmp_path / "core.bin"
    f.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 64)
    assert_usage_error(invoke(str(f)), "binary data")


def test_missing_file(tmp_path: Path) -> None:
    assert_usage_error(invoke(str(tmp_path / "nope.log")), "no such file")


def test_directory(tmp_path: Path) -> None:
    assert_usage_error(invoke(str(tmp_path)), "is a directory")


def test_unreadable_file() -> None:
    # Reading /proc/self/mem at offset 0 fails with EIO even for root: a file that opens but cannot be read.
    assert_usage_error(invoke("/proc/self/mem"), "/proc/self/mem: read failed")


def test_text_without_gc_lines(tmp_path: Path) -> None:
    f = tmp_path / "app.log"
    f.write_text("listening on :8080\nGC forced\nscav 0 KiB work\nhello\n")
    assert_usage_error(invoke(str(f)), "no gctrace lines", "4 lines", "gc_forced")


def test_garbage_bytes_without_nul(tmp_path: Path) -> None:
    f = tmp_path / "noise.log"
    f.write_bytes(bytes(range(1, 256)) * 100 + b"\n\xff\xfe gc 1 @x\n")
    assert_usage_error(invoke(str(f)), "no gctrace lines")


def test_usage_errors(tmp_path: Path) -> None:
    assert_usage_error(invoke(), "missing FILE")
    assert_usage_error(invoke(str(tmp_path / "x"), "--run-example"), "not both")


def test_one_literal_line_is_enough_for_a_report() -> None:
    line = (
        b"gc 3 @0.181s 12%: 0.025+14+0.008 ms clock, 0.051+0/1.0/23+0.017 ms cpu, 96->96->25 MB, "
        b"134 MB goal, 3 MB stacks, 32 MB globals, 2 P (forced)\n"
    )
    r = invoke("-", "--format", "json", input=b"app says hi\n" + line)
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["summary"]["cycles"] == 1 and doc["summary"]["skipped_lines"] == 1
    assert doc["cycles"][0]["forced"] is True and doc["cycles"][0]["stw_ms"] == pytest.approx(0.033)
    assert doc["summary"]["live_slope_mb_per_s"] is None
    assert doc["recommendation"]["heap_slope_assumed"] is True


def test_help_has_examples() -> None:
    r = CliRunner().invoke(main, ["analyze", "--help"])
    assert r.exit_code == 0
    assert "GODEBUG=gctrace=1 ./server 2> gc.log; gc-tuner analyze gc.log" in r.output
    assert "--run-example" in r.output and "--plot" in r.output


def _synthetic_lines(n: int) -> list[str]:
    return [
        f"gc {i} @{i / 10:.3f}s 3%: 0.01+1.{i % 10}+0.01 ms clock, 0.02+0.1/1.0/0.5+0.02 ms cpu, "
        f"{200 + i % 7}->{201 + i % 7}->{100 + i % 5} MB, {204 + i % 5} MB goal, "
        "1 MB stacks, 2 MB globals, 2 P"
        for i in range(1, n + 1)
    ]


def test_json_streams_one_cycle_per_line(tmp_path: Path) -> None:
    # A log of a million cycles must not become a million dicts (and one huge string) at once.
    import contextlib
    import tracemalloc

    from gc_tuner.cli.analyze import _print_json
    from gc_tuner.input.gctrace import parse_gctrace
    from gc_tuner.logic.analysis import analyze_cycles

    n = 8000
    a = analyze_cycles(parse_gctrace(_synthetic_lines(n)))
    out = tmp_path / "out.json"
    tracemalloc.start()
    try:
        with out.open("w") as f, contextlib.redirect_stdout(f):
            _print_json(a, "synthetic")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 6 << 20, f"{peak / 2**20:.1f} MiB for {n} cycles"  # all rows at once: about 27 MiB
    text = out.read_text()
    doc = json.loads(text)
    assert [c["n"] for c in doc["cycles"]] == list(range(1, n + 1))
    assert doc.keys() == {"source", "cycles", "summary", "anomalies", "recommendation"}
    lines = text.splitlines()
    assert sum(1 for line in lines if line.startswith('  {"n": ')) == n  # one cycle per line


def test_a_real_pipe_with_an_overlong_line(tmp_path: Path) -> None:
    # 3 MiB without a newline (a binary blob, a runaway log line) on a real pipe, then gc lines.
    payload = b"x" * (3 << 20) + b"\n" + "\n".join(_synthetic_lines(50)).encode() + b"\n"
    proc = subprocess.run(
        [str(GC_TUNER), "analyze", "-", "--format", "json"],
        input=payload, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)["summary"]
    assert (s["cycles"], s["skipped_lines"]) == (50, 1)
