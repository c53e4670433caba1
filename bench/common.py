"""What both benchmarks share: machine facts for the report, /proc readings, Markdown tables."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "RESULTS_DIR",
    "LoadSampler",
    "ProcStat",
    "machine_info",
    "markdown_table",
    "proc_stat",
    "text_table",
]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _first_line(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1 << 20)
    except OSError:
        pass
    return float("nan")


def machine_info() -> dict[str, str]:
    """Facts a reader needs to weigh the numbers: CPUs, memory, kernel, toolchains, load."""
    load = os.getloadavg()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu": f"{_cpu_model()} × {os.cpu_count()} logical CPUs",
        "memory": f"{_mem_total_gib():.1f} GiB",
        "kernel": f"{platform.system()} {platform.release()}",
        "go": _first_line(["go", "version"]),
        "python": sys.version.split()[0],
        "gc-tuner source": _first_line(
            ["git", "-C", str(RESULTS_DIR.parent.parent), "describe", "--always", "--dirty"]
        ),
        "load average at start (1/5/15 min)": f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}",
    }


@dataclass(frozen=True, slots=True)
class ProcStat:
    cpu_seconds: float  # user + system, this process only
    rss_bytes: int
    hwm_bytes: int  # peak RSS (VmHWM)


def proc_stat(pid: int) -> ProcStat | None:
    """CPU seconds and RSS of a live process from /proc; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / _CLK_TCK
    kib = {
        k: int(v.split()[0])
        for k, v in (ln.split(":", 1) for ln in status.splitlines() if ":" in ln)
        if k in ("VmRSS", "VmHWM")
    }
    return ProcStat(cpu, kib.get("VmRSS", 0) * 1024, kib.get("VmHWM", 0) * 1024)


class LoadSampler:
    """Load average over a benchmark: noted at start and at each `note()`, summarised at the end."""

    def __init__(self) -> None:
        self.samples: list[float] = [os.getloadavg()[0]]

    def note(self) -> None:
        self.samples.append(os.getloadavg()[0])

    def summary(self) -> str:
        s = self.samples
        return f"1-min load average min {min(s):.2f}, mean {sum(s) / len(s):.2f}, max {max(s):.2f}"


def _cells(rows: Sequence[Sequence[object]]) -> list[list[str]]:
    return [[str(c) for c in r] for r in rows]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    body = _cells(rows)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def text_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    body = [list(header), *_cells(rows)]
    widths = [max(len(r[i]) for r in body) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in body]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)
