"""The threads that watch a trial: cgroup memory at >= 10 Hz, and once a second the process's
CPU (utime+stime), the GOGC in force and the load driver's latency histogram.

Every reading is kept with its time (seconds since the workload listened); windows.py turns them
into a window's figures after the trial.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.quality.cgroup import MemoryCgroup

__all__ = ["MemorySampler", "SlowSampler", "proc_cpu_seconds"]

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of one process from /proc (the kernel's count); None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


class MemorySampler(threading.Thread):
    """Reads the cgroup's usage every 1/hz seconds: [(t, bytes)]."""

    def __init__(self, cg: MemoryCgroup, t0: float, hz: float) -> None:
        super().__init__(daemon=True)
        self.cg, self.t0, self.every = cg, t0, 1.0 / hz
        self.points: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.stop.is_set():
            v = self.cg.usage_bytes()
            now = time.monotonic()
            if v is not None:
                self.points.append((now - self.t0, v))
            next_at += self.every
            self.stop.wait(max(0.0, next_at - time.monotonic()))


class SlowSampler(threading.Thread):
    """Once every `every` s: the workload's CPU seconds; where it serves the agent (`base`) also its
    GOGC, and with `load_latency` the built-in load's cumulative latency histogram (GET /load)."""

    def __init__(
        self, pid: int, t0: float, every: float, base: str | None, token: str, *, load_latency: bool
    ) -> None:
        super().__init__(daemon=True)
        self.pid, self.t0, self.every, self.base, self.load_latency = pid, t0, every, base, load_latency
        self.headers = {"Authorization": f"Bearer {token}"}
        self.cpu: list[tuple[float, float]] = []
        self.gogc: list[tuple[float, int]] = []
        self.latency: list[tuple[float, dict[str, Any]]] = []
        self.errors = 0
        self.stop = threading.Event()

    def _http(self, http: httpx.Client, now: float) -> None:
        assert self.base is not None
        try:
            doc = http.get(self.base + "/debug/gctuner", headers=self.headers).json()
            self.gogc.append((now, int(doc["gogc"])))
            if self.load_latency:
                load = http.get(self.base + "/load").json()
                self.latency.append((now, load["latency"]))
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            self.errors += 1  # dying (OOM) or saturated: the gap shows in the timeline

    def run(self) -> None:
        with httpx.Client(timeout=2.0, trust_env=False) as http:
            next_at = time.monotonic()
            while not self.stop.is_set():
                now = time.monotonic() - self.t0
                cpu = proc_cpu_seconds(self.pid)
                if cpu is not None:
                    self.cpu.append((now, cpu))
                if self.base is not None:
                    self._http(http, now)
                next_at += self.every
                self.stop.wait(max(0.0, next_at - time.monotonic()))
