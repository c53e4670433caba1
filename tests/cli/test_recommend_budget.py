"""`gc-tuner recommend --strategy budget`: the Budget strategy from the command line."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner, Result

from gc_tuner.cli.main import main
from gc_tuner.logic.budget import BudgetParams, budget_gogc

MiB = 1 << 20


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, ["recommend", "--strategy", "budget", *args])


def as_json(*args: str) -> dict[str, Any]:
    r = invoke(*args, "--format", "json")
    assert r.exit_code == 0, r.output + r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def test_matches_the_strategy_on_the_same_inputs() -> None:
    doc = as_json("--live", "150Mi", "--stacks", "1Mi", "--globals", "2Mi", "--non-heap", "30Mi",
                  "--heap-slope", "0.5", "--horizon", "60", "--memory-limit", "1Gi", "--percent", "85",
                  "--max-gogc", "1000")
    expected = budget_gogc(budget_bytes=870 * MiB, live_bytes=150 * MiB, heap_slope_mb_per_s=0.5,
                           stacks_bytes=MiB, globals_bytes=2 * MiB, non_heap_bytes=30 * MiB,
                           params=BudgetParams(gogc_max=1000, horizon_s=60))
    assert doc["gogc"] == expected.gogc == 360  # 100 × (870 − 180 − 30) / (180 + 3) = 360.7
    assert doc["gomemlimit"] == "870MiB" and doc["gomemlimit_bytes"] == 870 * MiB
    assert doc["leak_suspected"] is False
    assert doc["explanation"] == expected.explanation


def test_default_bounds_clamp_and_percent_is_90() -> None:
    doc = as_json("--live", "150Mi", "--memory-limit", "1Gi")
    assert doc["gogc"] == 200 and doc["gomemlimit"] == "921MiB"
    assert "clamped to [25, 200]" in doc["explanation"]


def test_leak_holds_the_floor_and_says_so() -> None:
    doc = as_json("--live", "300Mi", "--heap-slope", "4", "--r2", "0.95", "--fit-span", "120",
                  "--memory-limit", "1Gi", "--min-gogc", "30", "--max-gogc", "1000", "--horizon", "30")
    assert doc["leak_suspected"] is True and doc["gogc"] == 30
    assert "leak suspected" in doc["explanation"]
    # Without fit quality there is no leak verdict: the formula's value stands.
    calm = as_json("--live", "300Mi", "--heap-slope", "4", "--memory-limit", "1Gi", "--min-gogc", "30",
                   "--max-gogc", "1000", "--horizon", "30")
    assert calm["leak_suspected"] is False and calm["gogc"] > 30


def test_table_output() -> None:
    r = invoke("--live", "150Mi", "--memory-limit", "1Gi", "--percent", "85", "--max-gogc", "1000")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["GOGC", "469"]
    assert lines[1].startswith("GOMEMLIMIT    870MiB")
    assert lines[2].startswith("leak          no")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--memory-limit", "1Gi"], "Missing option '--live'"),
        (["--live", "100Mi"], "Missing option '--memory-limit'"),
        (["--live", "100MB", "--memory-limit", "1Gi"], "--live: invalid memory quantity '100MB'"),
        (["--live", "100Mi", "--non-heap", "-1Mi", "--memory-limit", "1Gi"], "--non-heap: invalid memory"),
        (["--live", "100Mi", "--memory-limit", "1Gi", "--r2", "1.5"], "Invalid value for '--r2'"),
        (["--live", "100Mi", "--memory-limit", "1Gi", "--min-gogc", "300"], "--min-gogc 300 is above"),
        (["--live", "100Mi", "--memory-limit", "1Gi", "--heap-slope", "nan"], "finite"),
    ],
)
def test_bad_input_exits_2(args: list[str], message: str) -> None:
    r = invoke(*args)
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
    assert message in r.stderr


def test_formula_still_needs_qps_and_slope() -> None:
    r = CliRunner().invoke(main, ["recommend", "--strategy", "formula", "--qps", "10"])
    assert r.exit_code == 2 and "Missing option '--heap-slope'" in r.stderr


# -- non-finite values: refused at the option, never clamped to a bound --------------------------------
# Regressions: `--heap-slope 1e308` computed GOGC nan and "clamped" it to the ceiling 200; `--r2 nan` and
# `--fit-span nan` passed click.FloatRange (NaN compares false with both ends) and ended in a traceback.


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--r2", "nan", "--fit-span", "100"], "'--r2'"),
        (["--r2", "0.9", "--fit-span", "nan"], "'--fit-span'"),
        (["--heap-slope", "nan"], "'--heap-slope'"),
        (["--heap-slope", "inf"], "'--heap-slope'"),
        (["--heap-slope", "-inf"], "'--heap-slope'"),
        (["--qps", "nan"], "'--qps'"),
    ],
)
def test_non_finite_options_exit_2_naming_the_option(args: list[str], option: str) -> None:
    r = invoke("--live", "100Mi", "--memory-limit", "1Gi", *args)
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
    assert f"Invalid value for {option}" in r.stderr and "finite" in r.stderr


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_an_overflowing_heap_slope_is_refused_not_clamped_to_the_ceiling(fmt: str) -> None:
    r = invoke("--live", "100Mi", "--memory-limit", "1Gi", "--heap-slope", "1e308", "--format", fmt)
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
    assert "--heap-slope 1e+308" in r.stderr and "not a finite number" in r.stderr
    assert r.stdout == ""  # no GOGC 200 printed


def test_a_full_disk_exits_1_with_one_line() -> None:
    import subprocess
    import sys
    from pathlib import Path

    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    gc_tuner = Path(sys.executable).with_name("gc-tuner")
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [str(gc_tuner), "recommend", "--strategy", "budget", "--live", "100Mi", "--memory-limit", "1Gi"],
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr == "Error: cannot write output: No space left on device\n"
