"""A policy's signals for the operator's per-policy gauges (and so the chart's dashboard and alerts):
the fitted QPS and live-heap slope, the STW pause p99 and the GC's CPU share, from one cycle's outcome.

The pause and the CPU share are the worst pod's: an SLO on pauses is broken by the slowest replica,
not by the median one. The pause p99 comes from the pods' gctrace lines over the sampling window when
the policy reads them (the same figure as in status), else from the runtime's own pause histogram.
The CPU share is cumulative since each process started (runtime/metrics /cpu/classes/gc/total minus
idle marking over /cpu/classes/total, or MemStats.GCCPUFraction): the one figure every source gives.
"""

from __future__ import annotations

from dataclasses import dataclass

from gc_tuner.model.sample import RuntimeSample
from gc_tuner.tuning.outcome import CycleOutcome

__all__ = ["PolicySignals", "gc_cpu_share", "policy_signals"]


@dataclass(frozen=True, slots=True)
class PolicySignals:
    qps: float | None
    heap_slope_mb_per_s: float | None
    stw_pause_p99_s: float | None
    gc_cpu_fraction: float | None
    gc_cpu_window_fraction: float | None = None


def gc_cpu_share(s: RuntimeSample) -> float | None:
    """The GC's share of the process's CPU since it started, 0..1; None if the sample cannot say."""
    if s.gc_cpu_seconds is not None and s.total_cpu_seconds:
        return max(0.0, min(1.0, s.gc_cpu_seconds / s.total_cpu_seconds))
    if s.gc_cpu_fraction is not None:
        return max(0.0, min(1.0, s.gc_cpu_fraction))
    return None


def policy_signals(o: CycleOutcome) -> PolicySignals:
    samples = [pf.sample for pf in o.pod_fits if pf.sample is not None]
    pauses = [s.pause_p99_s for s in samples if s.pause_p99_s is not None]
    if o.gctrace is not None and o.gctrace.stw_p99_ms is not None:
        stw: float | None = o.gctrace.stw_p99_ms / 1000.0
    else:
        stw = max(pauses) if pauses else None
    shares = [c for c in (gc_cpu_share(s) for s in samples) if c is not None]
    return PolicySignals(
        qps=o.fit.qps if o.fit is not None else None,
        heap_slope_mb_per_s=o.fit.heap_slope_mb_per_s if o.fit is not None else None,
        stw_pause_p99_s=stw,
        gc_cpu_fraction=max(shares) if shares else None,
        gc_cpu_window_fraction=o.gc_cpu_window,
    )
