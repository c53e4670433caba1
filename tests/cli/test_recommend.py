"""`gc-tuner recommend`: the formula's GOGC, factors, explanation and a Go-valid GOMEMLIMIT."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from gc_tuner.cli.main import main

GC_TUNER = Path(sys.executable).with_name("gc-tuner")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, ["recommend", *args])


def as_json(*args: str) -> dict[str, Any]:
    r = invoke(*args, "--format", "json")
    assert r.exit_code == 0, r.output + r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


@pytest.mark.parametrize(
    ("qps", "slope", "gogc"), [("200", "0.8", 99), ("1800", "3.2", 30), ("0", "12.5", 37)]
)
def test_article_rows(qps: str, slope: str, gogc: int) -> None:
    doc = as_json("--qps", qps, "--heap-slope", slope)
    assert doc["gogc"] == gogc
    assert {"gogc", "qps_factor", "slope_factor", "gomemlimit", "explanation"} <= doc.keys()
    assert doc["gomemlimit"] is None


def test_memory_limit() -> None:
    doc = as_json("--qps", "200", "--heap-slope", "0.8", "--memory-limit", "1Gi", "--percent", "90")
    assert doc["gomemlimit"] == "921MiB" and doc["gomemlimit_bytes"] == 921 << 20
    assert (
        as_json("--qps", "1", "--heap-slope", "0", "--memory-limit", "512Mi")["gomemlimit"] == "460MiB"
    )  # 90%
    assert as_json("--qps", "1", "--heap-slope", "0", "--memory-limit", "1G", "--percent", "100")[
        "gomemlimit"
    ] == ("953MiB")


def test_table_output() -> None:
    r = invoke("--qps", "1800", "--heap-slope", "3.2", "--memory-limit", "2Gi")
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["GOGC", "30"]
    assert lines[1].split() == ["qps_factor", "0.5000"]
    assert "GOMEMLIMIT    1843MiB" in r.stdout
    assert lines[-1].startswith("GOGC 30 = int(100 × qps_factor 0.500 × slope_factor 0.610)")
    assert "qps_factor 0.350 clamped to 0.5" in lines[-1]


def test_clamps_are_explained() -> None:
    doc = as_json("--qps", "-10", "--heap-slope", "-5")
    assert doc["gogc"] == 125 and doc["slope_factor"] == 1.0
    assert (
        "heap slope -5 MB/s clamped to 0" in doc["explanation"]
        and "QPS -10 clamped to 0" in doc["explanation"]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--qps", "1", "--heap-slope", "1", "--memory-limit", "1GB"], "invalid memory quantity '1GB'"),
        (["--qps", "1", "--heap-slope", "1", "--memory-limit", "-1Gi"], "negative"),
        (["--qps", "1", "--heap-slope", "1", "--memory-limit", "1Ki"], "below 1 MiB"),
        (["--qps", "1", "--heap-slope", "1", "--percent", "90"], "--percent needs --memory-limit"),
        (["--qps", "1", "--heap-slope", "1", "--memory-limit", "1Gi", "--percent", "0"], "Invalid value"),
        (["--qps", "1", "--heap-slope", "1", "--memory-limit", "1Gi", "--percent", "101"], "Invalid value"),
        (["--qps", "nan", "--heap-slope", "1"], "finite"),
        (["--qps", "1", "--heap-slope", "inf"], "finite"),
        (["--qps", "abc", "--heap-slope", "1"], "Invalid value"),
        (["--heap-slope", "1"], "Missing option '--qps'"),
    ],
)
def test_bad_input_exits_2(args: list[str], message: str) -> None:
    r = invoke(*args)
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit)
    assert message in r.stderr


def test_real_console_script() -> None:
    proc = subprocess.run(
        [
            str(GC_TUNER),
            "recommend",
            "--qps",
            "200",
            "--heap-slope",
            "0.8",
            "--memory-limit",
            "1Gi",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert (doc["gogc"], doc["gomemlimit"]) == (99, "921MiB")
    bad = subprocess.run(
        [str(GC_TUNER), "recommend", "--qps", "1", "--heap-slope", "1", "--memory-limit", "1.5GiB"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "unknown suffix 'GiB'" in bad.stderr
