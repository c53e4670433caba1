"""A trial's figures over a window of time, from its raw readings (pure functions).

GC CPU comes from gctrace: each cycle's CPU (STW + assist + background marking; idle marking
apart) is counted in the window its cycle ended in, so the window's edges fall on cycle
boundaries (the runtime's /cpu/classes only move at a cycle's stop-the-world: a window edge
between two cycles would use a stale count). The process's own utime+stime over the same
window is the cross-check. Memory is the cgroup's usage sampled at >= 10 Hz: its time average
and its peak. Latency is the load driver's histogram, the difference of two cumulative snapshots.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.quality.trial import Cycle, TrialRecord

__all__ = ["Figures", "convergence_s", "figures", "histogram_quantile", "lived_through", "trial_end"]

LIVED_SLACK_S = 0.5  # a trial's death is seen at the sampler's tick, up to half a second late


@dataclass(frozen=True, slots=True)
class Figures:
    start_s: float
    end_s: float
    gc_cores: float | None  # GC CPU-seconds per second, idle marking excluded
    gc_idle_cores: float | None  # idle marking per second (real CPU on a shared node)
    process_cores: float | None  # utime+stime per second, the cross-check
    mem_avg_bytes: float | None
    mem_peak_bytes: int | None
    p50_ms: float | None
    p99_ms: float | None
    cycles: int

    @property
    def seconds(self) -> float:
        return self.end_s - self.start_s


def trial_end(r: TrialRecord) -> float:
    """The trial's last measured moment: the end of the run, or the workload's death."""
    end = min(r.run_s, r.duration_s) if r.duration_s else r.run_s
    return min(end, r.died_at_s) if r.died_at_s is not None else end


def lived_through(died_at_s: float | None, oom_kills: int, at_s: float | None = None) -> bool:
    """The one rule for "lived", for the static front, the goals and the per-phase oracle alike:
    not dead before `at_s` (None: the run's end). An OOM kill whose time was not seen counts as an
    early death, so a trial is never credited with a span it may not have lived."""
    if died_at_s is None:
        return not oom_kills
    return at_s is not None and died_at_s >= at_s - LIVED_SLACK_S


def gc_in_window(cycles: Sequence[Cycle], a: float, b: float) -> tuple[float, float, int]:
    busy = idle = 0.0
    n = 0
    for c in cycles:
        if a < c.t_end <= b:
            busy, idle, n = busy + c.busy_s, idle + c.idle_s, n + 1
    return busy, idle, n


def _at(points: Sequence[tuple[float, float]], t: float) -> float | None:
    """A cumulative counter at time t, interpolated between its samples."""
    prev = None
    for x, v in points:
        if x >= t:
            if prev is None:
                return v if x - t < 1.5 else None
            (x0, v0) = prev
            return v0 + (v - v0) * (t - x0) / (x - x0) if x > x0 else v
        prev = (x, v)
    if prev is not None and t - prev[0] < 1.5:
        return prev[1]
    return None


def _rate(points: Sequence[tuple[float, float]], a: float, b: float) -> float | None:
    va, vb = _at(points, a), _at(points, b)
    return None if va is None or vb is None or b <= a else (vb - va) / (b - a)


def _memory(points: Sequence[tuple[float, int]], a: float, b: float) -> tuple[float | None, int | None]:
    """Time average (each sample held until the next) and peak of the samples in [a, b]."""
    inside = [(t, v) for t, v in points if a <= t <= b]
    if len(inside) < 2:
        return None, None
    area = sum(v * (t1 - t) for (t, v), (t1, _) in itertools.pairwise(inside))
    span = inside[-1][0] - inside[0][0]
    return area / span, max(v for _, v in inside)


def histogram_quantile(counts: dict[str, int], q: float, min_s: float, growth: float) -> float | None:
    """The upper bound (ms) of the bucket holding the q-th observation, as the workload computes it."""
    total = sum(counts.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for k in sorted(counts, key=int):
        seen += counts[k]
        if seen >= rank:
            return min_s * growth ** int(k) * 1000
    return None


def _latency(
    snaps: Sequence[tuple[float, dict[str, Any]]], a: float, b: float
) -> tuple[float | None, float | None]:
    first = next((s for t, s in snaps if t >= a), None)
    last = next((s for t, s in reversed(snaps) if t <= b), None)
    if first is None or last is None or first is last:
        return None, None
    c0, c1 = first.get("counts", {}), last.get("counts", {})
    diff = {k: int(v) - int(c0.get(k, 0)) for k, v in c1.items() if int(v) - int(c0.get(k, 0)) > 0}
    min_s, growth = float(last.get("minSeconds", 1e-6)), float(last.get("growth", 1.05))
    return histogram_quantile(diff, 0.50, min_s, growth), histogram_quantile(diff, 0.99, min_s, growth)


def figures(r: TrialRecord, a: float, b: float | None = None) -> Figures:
    """Every figure of trial `r` over [a, b] (b: the trial's end)."""
    end = trial_end(r) if b is None else min(b, trial_end(r))
    busy, idle, n = gc_in_window(r.cycles, a, end)
    span = end - a
    ok = span > 0
    mem_avg, mem_peak = _memory(r.memory, a, end) if r.memory_source else (None, None)
    p50, p99 = _latency(r.latency, a, end)
    return Figures(
        start_s=a,
        end_s=end,
        gc_cores=busy / span if ok else None,
        gc_idle_cores=idle / span if ok else None,
        process_cores=_rate(r.cpu, a, end),
        mem_avg_bytes=mem_avg,
        mem_peak_bytes=mem_peak,
        p50_ms=p50,
        p99_ms=p99,
        cycles=n,
    )


def convergence_s(gogc: Sequence[tuple[float, int]], tolerance: float = 0.10) -> float | None:
    """Time (s since the workload listened) from which GOGC stays within `tolerance` of its final
    value; 0 when it never left; None without samples. GOGC off (-1) counts as a value like any."""
    if not gogc:
        return None
    final = gogc[-1][1]
    band = abs(final) * tolerance
    last_out = None
    for i, (_, v) in enumerate(gogc):
        if abs(v - final) > band:
            last_out = i
    if last_out is None:
        return 0.0
    return gogc[last_out + 1][0] if last_out + 1 < len(gogc) else gogc[-1][0]
