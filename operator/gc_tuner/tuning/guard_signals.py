"""The guard's signals: per pod, per window, never cumulative since the process started.

A window runs from one GC edge of a pod to the next: a sample is an edge when the pod has finished a
GC cycle since the previous edge. The runtime refreshes /cpu/classes/* only at a GC, so a CPU delta
between two edges compares figures of the same kind, while one between arbitrary samples can divide a
fresh GC figure by a stale total (go-gc-facts.md, section 8).

Signals per window (names are the guard's rule names):
- gcCPU: Δ GC CPU (idle marking excluded) / Δ total CPU, 0..1;
- pauseP99: the longest stop-the-world pause in the window, seconds, from the gctrace cycles or the
  expvar pause ring read in it (a window holds few pauses, so its p99 is its maximum). The agent's
  pause histogram is cumulative, so an agent-only pod has no windowed pause figure;
- memoryPercentOfLimit: the runtime's total memory (else the heap goal) at the window's end, in
  percent of the pod's container memory limit (no limit: no figure).

A counter that went down (a restarted process) starts a new series: no window spans it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gc_tuner.model.quantity import parse_quantity
from gc_tuner.model.sample import RuntimeSample
from gc_tuner.tuning.records import PodReading, PodTarget

__all__ = [
    "GC_CPU",
    "MEMORY",
    "PAUSE",
    "SignalLog",
    "WindowPoint",
    "is_edge",
    "limit_bytes",
    "window_values",
]

GC_CPU = "gcCPU"
PAUSE = "pauseP99"
MEMORY = "memoryPercentOfLimit"

MAX_POINTS = 50_000  # per policy: 2,000 pods × 25 windows; a bound, not a target


@dataclass(frozen=True, slots=True)
class WindowPoint:
    start: float  # the window's first edge
    t: float  # the window's end
    pod: str
    values: Mapping[str, float]


def is_edge(edge: RuntimeSample | None, cur: RuntimeSample) -> bool:
    """True when `cur` follows a GC cycle that `edge` had not seen (or there is no edge yet)."""
    if cur.gc_cycles is None:
        return False
    return edge is None or edge.gc_cycles is None or cur.gc_cycles != edge.gc_cycles


def _restarted(edge: RuntimeSample, cur: RuntimeSample) -> bool:
    pairs = ((edge.gc_cycles, cur.gc_cycles), (edge.total_cpu_seconds, cur.total_cpu_seconds))
    return any(a is not None and b is not None and b < a for a, b in pairs)


def window_values(
    edge: RuntimeSample, cur: RuntimeSample, *, limit_bytes: int | None, pauses_s: Sequence[float] = ()
) -> dict[str, float]:
    """The signals of the window (edge, cur]; a signal the sources cannot give is left out."""
    out: dict[str, float] = {}
    if (
        edge.gc_cpu_seconds is not None
        and cur.gc_cpu_seconds is not None
        and edge.total_cpu_seconds is not None
        and cur.total_cpu_seconds is not None
    ):
        d_total = cur.total_cpu_seconds - edge.total_cpu_seconds
        d_gc = cur.gc_cpu_seconds - edge.gc_cpu_seconds
        if d_total > 0 and d_gc >= 0:
            out[GC_CPU] = min(1.0, d_gc / d_total)
    if pauses_s:
        out[PAUSE] = max(pauses_s)
    used = cur.total_memory_bytes if cur.total_memory_bytes is not None else cur.heap_goal_bytes
    if used is not None and limit_bytes:
        out[MEMORY] = 100.0 * used / limit_bytes
    return out


def limit_bytes(pod: PodTarget) -> int | None:
    """The pod's container memory limit in bytes (None: none, or not a quantity gc-tuner can read)."""
    try:
        return parse_quantity(pod.memory_limit) if pod.memory_limit else None
    except ValueError:
        return None


@dataclass(slots=True)
class SignalLog:
    """Every pod's windows over the last `keep_s` seconds, and each pod's current edge."""

    keep_s: float
    points: deque[WindowPoint] = field(default_factory=lambda: deque(maxlen=MAX_POINTS))
    edges: dict[str, RuntimeSample] = field(default_factory=dict)

    def observe(self, readings: Iterable[PodReading], now: float) -> None:
        """One cycle's readings: a window for every pod past a new GC edge."""
        for r in readings:
            s = r.sample
            if s is None:
                continue
            edge = self.edges.get(r.pod.name)
            if edge is not None and _restarted(edge, s):
                self.edges[r.pod.name] = s
                continue
            if not is_edge(edge, s):
                continue
            if edge is not None:
                pauses = [c.stw_ms / 1000.0 for c in r.cycles] + list(s.new_pauses_s)
                values = window_values(edge, s, limit_bytes=limit_bytes(r.pod), pauses_s=pauses)
                if values:
                    self.points.append(WindowPoint(edge.t, s.t, r.pod.name, values))
            self.edges[r.pod.name] = s
        while self.points and self.points[0].t < now - self.keep_s:
            self.points.popleft()

    def latest(self, signal: str) -> dict[str, float]:
        """Each pod's newest window of `signal` (for the per-policy gauge)."""
        out: dict[str, float] = {}
        for p in self.points:
            if signal in p.values:
                out[p.pod] = p.values[signal]
        return out

    def forget(self, alive: Iterable[str]) -> None:
        keep = set(alive)
        for name in [n for n in self.edges if n not in keep]:
            del self.edges[name]

    def collect(
        self, *, since: float, until: float, pods: set[str] | None = None, exclude: set[str] | None = None
    ) -> dict[str, list[float]]:
        """Every signal's windows wholly inside [since, until], of `pods` (None: all) minus `exclude`.
        A window that straddles `since` (a change) mixes before and after, and is left out."""
        out: dict[str, list[float]] = {}
        for p in self.points:
            if p.start < since or p.t > until:
                continue
            if (pods is not None and p.pod not in pods) or (exclude is not None and p.pod in exclude):
                continue
            for k, v in p.values.items():
                out.setdefault(k, []).append(v)
        return out
