"""The `Cost` strategy's fits: allocation rate `a`, mark cost `c`, L+S+G, and a QPS forecast, per pod.

Two sources give the same figures (docs/cost.md):

- **runtime samples** (agent, or Prometheus with runtime/metrics): `a` from the deltas of
  `/gc/heap/allocs:bytes` (or MemStats.TotalAlloc), fitted against QPS from the request counter;
  `c` from the GC CPU (`/cpu/classes/gc/total − mark/idle`) between two samples that saw different
  GC counts, per cycle and per MiB of L+S+G. The runtime refreshes `/cpu/classes` only at a GC
  (go-gc-facts.md section 8), so a delta between two such edges holds exactly the cycles between them.
- **gctrace cycles** (`fit_cycles`, also what `gc-tuner analyze` runs): `c` from each cycle's CPU
  (STW + assist + background mark; idle marking excluded, as above) per MiB of live + stacks +
  globals; `a` from the heap figures of consecutive cycles: what was allocated during cycle n's mark
  (end − start) plus after it (the next cycle's start − the live heap n marked), over the time
  between their starts. A log has no request rate, so there is no QPS fit there.

Both `c` and a constant `a` are ratio estimators (Σy / Σx, the least-squares line through the origin
when a point's variance grows with its x), with a standard error from their residuals, so a noisy
series reports a large error and the strategy damps its step (logic/cost_model.py).

`a` as a function of QPS is a least-squares line (scipy.stats.linregress), used when the window's
QPS varies by at least 10 % and the slope is significant (p < 0.05); otherwise the window's mean
rate. The QPS forecast one horizon ahead is the QPS trend's line (linregress over time), used when
significant (p < 0.05), at most twice the highest QPS seen and never below zero; otherwise the
window's mean QPS. `a` is then read off its line at the forecast QPS, and its standard error is the
line's at that point (which grows with the distance from the QPS the window saw).

Too little data raises NotEnoughData naming what is missing. Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from scipy.stats import linregress

from gc_tuner.model.sample import GCCycle, MiB, RuntimeSample

__all__ = [
    "MIN_ALLOC_POINTS",
    "MIN_MARK_POINTS",
    "AllocFit",
    "CycleAccumulator",
    "CycleFit",
    "Estimate",
    "NotEnoughData",
    "RatioFit",
    "SampleFit",
    "alloc_from_samples",
    "base_from_samples",
    "fit_cycles",
    "fit_samples",
    "mark_from_samples",
]

MIN_MARK_POINTS = 4  # cycles (gctrace) or GC-to-GC intervals (samples) to fit c
MIN_ALLOC_POINTS = 3  # intervals to fit a
_MIN_QPS_SPREAD = 0.10  # (max − min) / mean QPS for a line of a against QPS
_MAX_FORECAST_FACTOR = 2.0  # a forecast never exceeds twice the highest QPS seen
_SIGNIFICANT_P = 0.05


class NotEnoughData(Exception):
    """The window cannot give the figure; the message says what is missing."""


@dataclass(frozen=True, slots=True)
class Estimate:
    value: float
    se: float  # standard error
    n: int  # points fitted


class RatioFit:
    """y ≈ k·x with Var(y) ∝ x: k = Σy / Σx, its standard error from the residuals. Streams in O(1)."""

    __slots__ = ("n", "sx", "sy", "syy_x")

    def __init__(self) -> None:
        self.n = 0
        self.sx = self.sy = self.syy_x = 0.0

    def add(self, y: float, x: float) -> None:
        if not (math.isfinite(y) and math.isfinite(x)) or x <= 0 or y < 0:
            return
        self.n += 1
        self.sx += x
        self.sy += y
        self.syy_x += y * y / x

    def estimate(self) -> Estimate:
        if self.n == 0:
            raise NotEnoughData("no points")
        k = self.sy / self.sx
        if self.n < 2:
            return Estimate(k, math.inf, self.n)
        # Σ (y − kx)² / x = Σ y²/x − (Σy)² / Σx; never below 0 (rounding).
        sigma2 = max(0.0, self.syy_x - self.sy * self.sy / self.sx) / (self.n - 1)
        return Estimate(k, math.sqrt(sigma2 / self.sx), self.n)


@dataclass(frozen=True, slots=True)
class CycleFit:
    """Figures from gctrace cycles: `a` in MiB/s, `c` in CPU-ms per MiB, L+S+G in bytes (mean)."""

    alloc: Estimate
    mark: Estimate
    base_bytes: int
    cycles: int


def _cycle_cpu_ms(c: GCCycle) -> float:
    return c.cpu_stw1_ms + c.cpu_assist_ms + c.cpu_background_ms + c.cpu_stw2_ms


def _cycle_base_mib(c: GCCycle) -> float:
    return float(c.live_mb + (c.stacks_mb or 0) + (c.globals_mb or 0))


class CycleAccumulator:
    """`fit_cycles`, one cycle at a time, in constant memory (`gc-tuner analyze` reads millions)."""

    def __init__(self) -> None:
        self.mark = RatioFit()
        self.alloc = RatioFit()
        self.cycles = 0
        self._base_sum = 0.0
        self._prev: GCCycle | None = None

    def add(self, c: GCCycle) -> None:
        prev, self._prev = self._prev, c
        if c.leak_check:  # the goroutine-leak GC does extra work, not the allocation's
            return
        self.cycles += 1
        base = max(_cycle_base_mib(c), 4.0)  # the pacer's minimum, as in the cost model
        self._base_sum += base
        self.mark.add(_cycle_cpu_ms(c), base)
        if prev is not None and c.n == prev.n + 1 and c.t > prev.t:
            allocated = (prev.heap_end_mb - prev.heap_start_mb) + (c.heap_start_mb - prev.live_mb)
            self.alloc.add(float(max(0, allocated)), c.t - prev.t)

    def result(self) -> CycleFit:
        if self.mark.n < MIN_MARK_POINTS:
            raise NotEnoughData(f"{self.mark.n} GC cycle(s) to fit the mark cost c, need {MIN_MARK_POINTS}")
        if self.alloc.n < MIN_ALLOC_POINTS:
            raise NotEnoughData(
                f"{self.alloc.n} pair(s) of consecutive GC cycles to fit the allocation rate, "
                f"need {MIN_ALLOC_POINTS}"
            )
        base = round(self._base_sum / self.cycles * MiB)
        return CycleFit(self.alloc.estimate(), self.mark.estimate(), base, self.cycles)


def fit_cycles(cycles: Iterable[GCCycle]) -> CycleFit:
    """`a`, `c` and the mean L+S+G from gctrace cycles (one process, in order)."""
    acc = CycleAccumulator()
    for c in cycles:
        acc.add(c)
    return acc.result()


@dataclass(frozen=True, slots=True)
class SampleFit:
    """Figures from runtime samples: `a` at the forecast QPS (MiB/s), `c` (CPU-ms per MiB), the mean
    L+S+G (bytes), the QPS now and one horizon ahead (None without a request counter)."""

    alloc: Estimate
    mark: Estimate
    base_bytes: int
    qps: float | None
    qps_forecast: float | None
    alloc_model: str  # "linear in QPS" or "mean rate"
    trend: bool  # the QPS trend was significant and moved the forecast
    gc_cycles: int


def _base(s: RuntimeSample) -> float | None:
    if s.live_heap_bytes is None:
        return None
    return float(s.live_heap_bytes + (s.stacks_bytes or 0) + (s.globals_bytes or 0))


def mark_from_samples(samples: Sequence[RuntimeSample]) -> tuple[Estimate, int]:
    """c from deltas between GC edges: samples that saw a GC the previous edge had not seen."""
    fit = RatioFit()
    cycles = 0
    edge: RuntimeSample | None = None
    for s in samples:
        if s.gc_cycles is None or s.gc_cpu_seconds is None or _base(s) is None:
            continue
        if edge is None or edge.gc_cycles is None or edge.gc_cpu_seconds is None:
            edge = s
            continue
        k = s.gc_cycles - edge.gc_cycles
        if k <= 0:
            continue
        base_e, base_s = _base(edge), _base(s)
        assert base_e is not None and base_s is not None
        base_mib = max((base_e + base_s) / 2 / MiB, 4.0)
        fit.add((s.gc_cpu_seconds - edge.gc_cpu_seconds) * 1000, k * base_mib)
        cycles += k
        edge = s
    if fit.n < MIN_MARK_POINTS:
        raise NotEnoughData(
            f"{fit.n} interval(s) between samples that saw a new GC with GC CPU figures, need "
            f"{MIN_MARK_POINTS} to fit the mark cost c (a source with /cpu/classes/gc: the agent, or "
            "Prometheus with runtime/metrics)"
        )
    return fit.estimate(), cycles


@dataclass(frozen=True, slots=True)
class _Rates:
    t: list[float]  # interval midpoints
    alloc: list[float]  # MiB/s
    qps: list[float] | None  # None when some interval lacks the request counter
    total: RatioFit  # Σ allocated / Σ seconds


def _rates(samples: Sequence[RuntimeSample]) -> _Rates:
    t: list[float] = []
    alloc: list[float] = []
    qps: list[float] | None = []
    total = RatioFit()
    prev: RuntimeSample | None = None
    for s in samples:
        if s.heap_allocs_bytes_total is None:
            continue
        if prev is not None and prev.heap_allocs_bytes_total is not None and s.t > prev.t:
            dt = s.t - prev.t
            d = max(0, s.heap_allocs_bytes_total - prev.heap_allocs_bytes_total) / MiB
            t.append((s.t + prev.t) / 2)
            alloc.append(d / dt)
            total.add(d, dt)
            if qps is not None and s.requests_total is not None and prev.requests_total is not None:
                qps.append(max(0.0, s.requests_total - prev.requests_total) / dt)
            else:
                qps = None
        prev = s
    if len(alloc) < MIN_ALLOC_POINTS:
        raise NotEnoughData(
            f"{len(alloc)} interval(s) with the allocated-bytes counter (/gc/heap/allocs or "
            f"TotalAlloc), need {MIN_ALLOC_POINTS} to fit the allocation rate a"
        )
    return _Rates(t, alloc, qps, total)


def _forecast(t: list[float], qps: list[float], horizon_s: float) -> tuple[float, float, bool]:
    """(QPS now, QPS one horizon ahead, whether the trend was significant)."""
    mean = sum(qps) / len(qps)
    if len(qps) < 4 or max(t) == min(t) or max(qps) == min(qps):
        return mean, mean, False
    r = linregress(t, qps)
    if not (r.pvalue < _SIGNIFICANT_P):
        return mean, mean, False
    now = max(0.0, float(r.intercept + r.slope * t[-1]))
    ahead = float(r.intercept + r.slope * (t[-1] + horizon_s))
    return now, min(max(0.0, ahead), _MAX_FORECAST_FACTOR * max(qps)), True


def _alloc_at(qps: list[float], alloc: list[float], q: float) -> Estimate | None:
    """`a` on its line against QPS at `q`, with the line's standard error there; None when the
    window's QPS does not vary enough or the slope is not significant."""
    n = len(qps)
    mean_q = sum(qps) / n
    if n < 4 or mean_q <= 0 or (max(qps) - min(qps)) < _MIN_QPS_SPREAD * mean_q:
        return None
    r = linregress(qps, alloc)
    if not (r.pvalue < _SIGNIFICANT_P):
        return None
    resid = [y - (r.intercept + r.slope * x) for x, y in zip(qps, alloc, strict=True)]
    s = math.sqrt(sum(e * e for e in resid) / (n - 2))
    sxx = sum((x - mean_q) ** 2 for x in qps)
    value = max(0.0, float(r.intercept + r.slope * q))
    return Estimate(value, s * math.sqrt(1 / n + (q - mean_q) ** 2 / sxx), n)


@dataclass(frozen=True, slots=True)
class AllocFit:
    """`a` at the forecast QPS (MiB/s), the QPS now and one horizon ahead (None without a counter)."""

    alloc: Estimate
    qps: float | None
    qps_forecast: float | None
    model: str  # "linear in QPS" or "mean rate"
    trend: bool  # the QPS trend was significant and moved the forecast


def alloc_from_samples(samples: Sequence[RuntimeSample], horizon_s: float) -> AllocFit:
    """`a` at the QPS forecast `horizon_s` ahead, from one process's samples, oldest first."""
    rates = _rates(samples)
    if rates.qps is not None:
        qps_now, qps_ahead, trend = _forecast(rates.t, rates.qps, horizon_s)
        alloc = _alloc_at(rates.qps, rates.alloc, qps_ahead)
        if alloc is not None:
            return AllocFit(alloc, qps_now, qps_ahead, "linear in QPS", trend)
        return AllocFit(rates.total.estimate(), qps_now, qps_ahead, "mean rate", trend)
    return AllocFit(rates.total.estimate(), None, None, "mean rate", False)


def base_from_samples(samples: Sequence[RuntimeSample]) -> int:
    """The mean L+S+G (bytes) over the samples that carry a live heap."""
    bases = [b for b in map(_base, samples) if b is not None]
    if not bases:
        raise NotEnoughData("no sample with a live-heap figure (/gc/heap/live) for L+S+G")
    return round(sum(bases) / len(bases))


def fit_samples(samples: Sequence[RuntimeSample], horizon_s: float) -> SampleFit:
    """`a` (at the QPS forecast `horizon_s` ahead), `c` and the mean L+S+G from one process's samples,
    oldest first."""
    mark, cycles = mark_from_samples(samples)
    a = alloc_from_samples(samples, horizon_s)
    return SampleFit(
        a.alloc, mark, base_from_samples(samples), a.qps, a.qps_forecast, a.model, a.trend, cycles
    )
