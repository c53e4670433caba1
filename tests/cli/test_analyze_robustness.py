"""`gc-tuner analyze` on numbers no runtime prints and on closed or failing standard streams.

Regressions: a heap value of 2^63 MB or more crashed with an OverflowError traceback; a number of more
than 308 digits printed `inf` in the table and crashed `--format json`; closed stdin/stdout and a full
disk gave tracebacks. The rule: bad input exits 2 naming what was wrong, an output failure exits 1 with
one line on stderr, never a traceback.
"""

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
LINE = (
    "gc {n} @{t}s 0%: 0.1+0.2+{stw} ms clock, 0.1+0.2/0.3/0.4+0.5 ms cpu, {heap}->5->4 MB, 5 MB goal, "
    "0 MB stacks, 0 MB globals, 8 P"
)
GOOD = [LINE.format(n=i, t=f"{i / 10:.3f}", stw="0.3", heap=5) for i in range(1, 4)]
HUGE_HEAP = LINE.format(n=4, t="0.400", stw="0.3", heap="99999999999999999999")  # the reported line
INF_MS = LINE.format(n=4, t="0.400", stw="9" * 400, heap=5)  # float() gives inf


def invoke(*args: str, input: bytes | None = None) -> Result:
    return CliRunner().invoke(main, ["analyze", *args], input=input)


def write(tmp_path: Path, *lines: str) -> Path:
    f = tmp_path / "gc.log"
    f.write_text("\n".join(lines) + "\n")
    return f


def run(*args: str, stdout: Any = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GC_TUNER), *args], stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("line", [HUGE_HEAP, INF_MS], ids=["heap-2^66", "ms-inf"])
def test_a_log_of_only_out_of_range_lines_exits_2_naming_the_line(tmp_path: Path, line: str) -> None:
    f = write(tmp_path, "app starting", line)
    proc = run("analyze", str(f))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "1 garbled" in proc.stderr and "the first garbled gc line is line 2" in proc.stderr


@pytest.mark.parametrize("line", [HUGE_HEAP, INF_MS], ids=["heap-2^66", "ms-inf"])
def test_out_of_range_lines_are_skipped_and_counted(tmp_path: Path, line: str) -> None:
    f = write(tmp_path, *GOOD, line)
    r = invoke(str(f), "--format", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["summary"]["cycles"] == 3 and doc["summary"]["skipped_lines"] == 1
    table = invoke(str(f))
    assert table.exit_code == 0, table.output
    assert "inf" not in table.stdout and "nan" not in table.stdout
    assert "1 other lines skipped" in table.stdout


def test_closed_stdin_exits_2() -> None:
    proc = subprocess.run(
        ["sh", "-c", '"$0" analyze - <&-', str(GC_TUNER)], capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "stdin: standard input is closed" in proc.stderr and "Traceback" not in proc.stderr


def test_closed_stdout_exits_1_with_one_line(tmp_path: Path) -> None:
    f = write(tmp_path, *GOOD)
    proc = subprocess.run(
        ["sh", "-c", '"$0" analyze "$1" >&-', str(GC_TUNER), str(f)], capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == "Error: cannot write output: standard output is closed\n"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("fmt", ["table", "json"])
def test_a_full_disk_exits_1_with_one_line(tmp_path: Path, fmt: str) -> None:
    f = write(tmp_path, *GOOD)
    with open("/dev/full", "w") as full:
        proc = run("analyze", str(f), "--format", fmt, stdout=full)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == "Error: cannot write output: No space left on device\n"  # no "Exception ignored"


def test_a_reader_that_stops_early_ends_the_run_quietly(tmp_path: Path) -> None:
    # `gc-tuner analyze big.log | head`: EPIPE is the normal end of a pipeline, not an error to report.
    f = write(tmp_path, *(LINE.format(n=i, t=f"{i / 10:.3f}", stw="0.3", heap=5) for i in range(1, 20001)))
    proc = subprocess.run(
        ["sh", "-c", '"$0" analyze "$1" | head -c 100 >/dev/null', str(GC_TUNER), str(f)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.stderr == ""
