"""The guard's signals: per pod, per window, never cumulative since the process started.

A window runs from one GC edge of a pod to the next: a sample is an edge when the pod has finished a
GC cycle since the previous edge. The runtime refreshes /cpu/classes/* only at a GC, so a CPU delta
between two edges compares figures of the same kind, while one between arbitrary samples can divide a
fresh GC figure by a stale total (go-gc-facts.md, section 8).

Signals per window (names are the guard's rule names):
- gcCPU: Δ GC CPU (idle marking excluded) / Δ total CPU, 0..1;
- pauseP99: the longest stop-the-world pause in the window, seconds, from the gctrace cycles or the
  expvar pause ring read in it, else the agent's pause histogram (the highest bucket that grew). The
  window also keeps its pauses themselves (`WindowPoint.pauses`, at most MAX_PAUSES): the guard judges
  pauses pooled over the windows, because a window's maximum grows with the number of cycles in it,
  and a lower GOGC means more cycles per window with no pause any longer;
- memoryPercentOfLimit: the runtime's total memory (else the heap goal) at the window's end, in
  percent of the pod's container memory limit (no limit: no figure);
- latencyP99: the requests' p99 latency in the window, seconds, from the policy's latency histogram
  (the bucket counts' deltas, interpolated in the bucket as Prometheus's histogram_quantile does);
- allocBytesPerSecond: not guarded. The load the window carried, as the runtime's allocation rate: a
  before/after trial scales its GC CPU baseline by it (tuning/trial_judgement.py), since GC CPU follows the
  allocation rate whatever GOGC is (go-gc-facts.md, section 8).
- markCostSecondsPerByte: not guarded. The GC CPU seconds one cycle spent per byte of the live heap
  (plus stacks and globals, as the runtime reports them), the cost model's `c`: GC CPU/s ≈ cycles/s ×
  c·(L+S+G). GOGC and GOMEMLIMIT set how often the GC runs, not what a cycle costs per live byte;
  the application does, and it drifts: a cache built contiguous at start and churned since costs more
  to mark as its entries scatter (the reference workload's doubles over its first minute). A
  before/after trial scales its GC CPU baseline by it as by the allocation rate.

A window also keeps the setting in force through it (`WindowPoint.setting`: GOGC and GOMEMLIMIT as
the process reports them at both of its edges; None when they differ, so the values changed inside
it). A before/after trial's baseline reaches back only as far as the pods ran the values the change
replaces (`SignalLog.settled_since`): windows run under other values (before a leak hold, a rollback
or an unguarded change) say nothing about them.

A counter that went down (a restarted process) starts a new series: no window spans it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from gc_tuner.model.quantity import parse_quantity
from gc_tuner.model.sample import RuntimeSample
from gc_tuner.tuning.records import PodReading, PodTarget

__all__ = [
    "ALLOC_RATE",
    "GC_CPU",
    "LATENCY",
    "MARK_COST",
    "MEMORY",
    "PAUSE",
    "Setting",
    "SignalLog",
    "WindowPoint",
    "bucket_quantile",
    "is_edge",
    "limit_bytes",
    "mark_cost",
    "new_pauses",
    "thin",
    "window_pauses",
    "window_setting",
    "window_values",
]

GC_CPU = "gcCPU"
PAUSE = "pauseP99"
MEMORY = "memoryPercentOfLimit"
LATENCY = "latencyP99"
ALLOC_RATE = "allocBytesPerSecond"
MARK_COST = "markCostSecondsPerByte"

MAX_POINTS = 50_000  # per policy: 2,000 pods × 25 windows; a bound, not a target
MAX_PAUSES = 8  # per window: more are thinned evenly over their sorted values, the longest kept; the
# bound keeps a policy's MAX_POINTS windows within a few MB whatever a pod reports


Setting = tuple[int | None, int | None]  # (GOGC, GOMEMLIMIT bytes) as reported; None: off/none/unknown


@dataclass(frozen=True, slots=True)
class WindowPoint:
    start: float  # the window's first edge
    t: float  # the window's end
    pod: str
    values: Mapping[str, float]
    pauses: tuple[float, ...] = ()  # the window's stop-the-world pauses, seconds (at most MAX_PAUSES)
    setting: Setting | None = (None, None)  # in force through the window; None: changed inside it


def window_setting(edge: RuntimeSample, cur: RuntimeSample) -> Setting | None:
    """The setting in force through the window (edge, cur]: the one both edges report, else None."""
    a, b = (edge.gogc, edge.memory_limit_bytes), (cur.gogc, cur.memory_limit_bytes)
    return b if a == b else None


def is_edge(edge: RuntimeSample | None, cur: RuntimeSample) -> bool:
    """True when `cur` follows a GC cycle that `edge` had not seen (or there is no edge yet)."""
    if cur.gc_cycles is None:
        return False
    return edge is None or edge.gc_cycles is None or cur.gc_cycles != edge.gc_cycles


def _restarted(edge: RuntimeSample, cur: RuntimeSample) -> bool:
    pairs = ((edge.gc_cycles, cur.gc_cycles), (edge.total_cpu_seconds, cur.total_cpu_seconds))
    return any(a is not None and b is not None and b < a for a, b in pairs)


def window_values(
    edge: RuntimeSample,
    cur: RuntimeSample,
    *,
    limit_bytes: int | None,
    pauses_s: Sequence[float] | None = None,
) -> dict[str, float]:
    """The signals of the window (edge, cur]; a signal the sources cannot give is left out.
    `pauses_s`: the window's pauses (`window_pauses`); None: derived here from the edges."""
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
    pauses = window_pauses(edge, cur, ()) if pauses_s is None else pauses_s
    if pauses:
        out[PAUSE] = max(pauses)
    if edge.latency_buckets is not None and cur.latency_buckets is not None:
        p99 = bucket_quantile(0.99, edge.latency_buckets, cur.latency_buckets)
        if p99 is not None:
            out[LATENCY] = p99
    cost = mark_cost(edge, cur)
    if cost is not None:
        out[MARK_COST] = cost
    a0, a1 = edge.heap_allocs_bytes_total, cur.heap_allocs_bytes_total
    if a0 is not None and a1 is not None and cur.t > edge.t:
        allocated = a1 - a0
        if allocated >= 0:
            out[ALLOC_RATE] = allocated / (cur.t - edge.t)
    used = cur.total_memory_bytes if cur.total_memory_bytes is not None else cur.heap_goal_bytes
    if used is not None and limit_bytes:
        out[MEMORY] = 100.0 * used / limit_bytes
    return out


def mark_cost(edge: RuntimeSample, cur: RuntimeSample) -> float | None:
    """GC CPU seconds per cycle per byte of live heap, stacks and globals over the window (edge, cur]:
    None without the cycles, the GC CPU or a measured live heap, or without a cycle in it. A live
    heap estimated from the heap goal and GOGC (expvar) is left out: across a change of GOGC it
    would move with the value judged, not with the application."""
    if edge.gc_cycles is None or cur.gc_cycles is None or cur.gc_cycles <= edge.gc_cycles:
        return None
    if edge.gc_cpu_seconds is None or cur.gc_cpu_seconds is None or not cur.live_heap_bytes:
        return None
    if edge.live_heap_estimated or cur.live_heap_estimated:
        return None
    d_gc = cur.gc_cpu_seconds - edge.gc_cpu_seconds
    if not (d_gc >= 0 and math.isfinite(d_gc)):
        return None
    # The cycles of the window marked the live heap of their time; the edges' mean stands for it.
    live = [
        s.live_heap_bytes + (s.stacks_bytes or 0) + (s.globals_bytes or 0)
        for s in (edge, cur)
        if s.live_heap_bytes
    ]
    return d_gc / (cur.gc_cycles - edge.gc_cycles) / (sum(live) / len(live))


def limit_bytes(pod: PodTarget) -> int | None:
    """The pod's container memory limit in bytes (None: none, or not a quantity gc-tuner can read)."""
    try:
        return parse_quantity(pod.memory_limit) if pod.memory_limit else None
    except ValueError:
        return None


MIN_REQUESTS = 20  # a window with fewer requests has no p99 worth the name


def window_pauses(edge: RuntimeSample, cur: RuntimeSample, read: Sequence[float]) -> tuple[float, ...]:
    """The window's pauses: those read exactly (gctrace, expvar), else the new ones in the agent's
    pause histogram, each at its bucket's bound (the buckets walked once per window)."""
    if read:
        return tuple(read)
    if edge.pause_buckets is not None and cur.pause_buckets is not None:
        return new_pauses(edge.pause_buckets, cur.pause_buckets)
    return ()


def new_pauses(
    before: Sequence[tuple[float, float]], after: Sequence[tuple[float, float]]
) -> tuple[float, ...]:
    """The pauses between two reads of a pause histogram's non-empty buckets, each at its bucket's
    bound (at most MAX_PAUSES per bucket); none when a count went down (another process)."""
    seen = dict(before)
    if any(c < seen.get(b, 0.0) for b, c in after):
        return ()
    out: list[float] = []
    for bound, count in after:
        out.extend([bound] * min(MAX_PAUSES, int(count - seen.get(bound, 0.0))))
    return tuple(out)


def thin(pauses: Sequence[float]) -> tuple[float, ...]:
    """At most MAX_PAUSES of `pauses`, evenly spaced over their sorted values, the largest kept."""
    xs = sorted(x for x in pauses if math.isfinite(x))
    if len(xs) <= MAX_PAUSES:
        return tuple(xs)
    step = (len(xs) - 1) / (MAX_PAUSES - 1)
    return tuple(xs[round(i * step)] for i in range(MAX_PAUSES))


def bucket_quantile(
    q: float, before: Sequence[tuple[float, float]], after: Sequence[tuple[float, float]]
) -> float | None:
    """The q-quantile of the observations between two cumulative histograms of the same buckets;
    None with fewer than MIN_REQUESTS of them, different buckets, or a counter that went down."""
    if [b for b, _ in before] != [b for b, _ in after]:
        return None
    deltas = [(b, a - c) for (b, c), (_, a) in zip(before, after, strict=True)]
    total = deltas[-1][1] if deltas else 0.0
    if total < MIN_REQUESTS or any(d < 0 for _, d in deltas):
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for bound, count in deltas:
        if count >= rank:
            if math.isinf(bound):
                return lower  # in the +Inf bucket: its lower bound, as histogram_quantile answers
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside > 0 else 1.0)
        lower, below = bound, count
    return lower


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
                read = [c.stw_ms / 1000.0 for c in r.cycles] + list(s.new_pauses_s)
                pauses = window_pauses(edge, s, read)
                values = window_values(edge, s, limit_bytes=limit_bytes(r.pod), pauses_s=pauses)
                if values:
                    setting = window_setting(edge, s)
                    self.points.append(WindowPoint(edge.t, s.t, r.pod.name, values, thin(pauses), setting))
            self.edges[r.pod.name] = s
        while self.points and self.points[0].t < now - self.keep_s:
            self.points.popleft()

    def collect_pauses(
        self, *, since: float, until: float, pods: set[str] | None = None, exclude: set[str] | None = None
    ) -> list[float]:
        """The pauses of the windows `collect` would take, pooled."""
        return [x for p in self._inside(since, until, pods, exclude) for x in p.pauses]

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
        """Every signal's windows inside [since, until] (`_inside`), per signal."""
        out: dict[str, list[float]] = {}
        for p in self._inside(since, until, pods, exclude):
            for k, v in p.values.items():
                out.setdefault(k, []).append(v)
        return out

    def settled_since(self, *, pods: set[str], until: float, floor: float) -> float:
        """The earliest time, `floor` or later, from which each of `pods` ran one setting through
        every window up to `until`: the end of the newest window (from `floor` on) that ran another
        setting than the pod's latest one, or straddled a change."""
        since = floor
        latest: dict[str, Setting | None] = {}
        for p in reversed(self.points):
            if p.pod not in pods or p.t > until or p.start < floor:
                continue
            want = latest.setdefault(p.pod, p.setting)
            if p.setting is None or p.setting != want:
                since = max(since, p.t)
        return since

    def _inside(
        self, since: float, until: float, pods: set[str] | None, exclude: set[str] | None
    ) -> Iterator[WindowPoint]:
        """The windows wholly inside [since, until], of `pods` (None: all) minus `exclude`. A window
        that straddles `since` (a change) mixes before and after, and is left out."""
        for p in self.points:
            if p.start < since or p.t > until:
                continue
            if (pods is not None and p.pod not in pods) or (exclude is not None and p.pod in exclude):
                continue
            yield p
