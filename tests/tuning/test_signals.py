"""Per-policy signals behind the operator's gauges (and the chart's dashboard and alerts)."""

from __future__ import annotations

import dataclasses

from gc_tuner.model.sample import RuntimeSample
from gc_tuner.tuning.outcome import CycleOutcome, Fitted
from gc_tuner.tuning.records import FitSummary, GCTraceSummary, PodFit, Verdict
from gc_tuner.tuning.signals import gc_cpu_share, policy_signals


def _fit(pod: str, **sample: float) -> PodFit:
    s = RuntimeSample(t=0.0, source="agent", **sample)
    return PodFit(pod, qps=None, heap_slope_mb_per_s=None, r2=None, samples=3, sample=s)


def _outcome(*fits: PodFit, gctrace: GCTraceSummary | None = None) -> CycleOutcome:
    summary = FitSummary(
        qps=120.0, qps_source="Counter", heap_slope_mb_per_s=0.5, r2=0.9, samples=10, pods=2, window_s=300
    )
    fitted = Fitted(tuple(fits), summary, Verdict("Unknown", "InsufficientData"), gctrace)
    return CycleOutcome(time=0.0, mode="DryRun", method="EnvPatch", fitted=fitted)


def test_signals_take_the_fit_and_the_worst_pod() -> None:
    o = _outcome(
        _fit("a", pause_p99_s=0.00005, gc_cpu_seconds=1.0, total_cpu_seconds=20.0),
        _fit("b", pause_p99_s=0.00020, gc_cpu_seconds=3.0, total_cpu_seconds=10.0),
    )
    s = policy_signals(o)
    assert (s.qps, s.heap_slope_mb_per_s) == (120.0, 0.5)
    assert s.stw_pause_p99_s == 0.0002  # the slowest replica breaks the SLO
    assert s.gc_cpu_fraction == 0.3


def test_gctrace_pause_wins_over_the_runtime_histogram() -> None:
    trace = GCTraceSummary(cycles=40, stw_p99_ms=0.25, effective_gogc_median=100.0, pods=2)
    s = policy_signals(_outcome(_fit("a", pause_p99_s=0.00001), gctrace=trace))
    assert s.stw_pause_p99_s == 0.00025


def test_unknown_signals_stay_unknown() -> None:
    o = dataclasses.replace(_outcome(_fit("a")), fitted=None)
    s = policy_signals(o)
    assert s == type(s)(qps=None, heap_slope_mb_per_s=None, stw_pause_p99_s=None, gc_cpu_fraction=None)


def test_gc_cpu_share_prefers_cpu_seconds_and_clamps() -> None:
    assert gc_cpu_share(RuntimeSample(t=0, source="expvar", gc_cpu_fraction=0.07)) == 0.07
    both = RuntimeSample(t=0, source="agent", gc_cpu_seconds=2.0, total_cpu_seconds=8.0, gc_cpu_fraction=0.9)
    assert gc_cpu_share(both) == 0.25
    assert gc_cpu_share(RuntimeSample(t=0, source="agent", gc_cpu_seconds=5.0, total_cpu_seconds=0.0)) is None
    assert gc_cpu_share(RuntimeSample(t=0, source="expvar", gc_cpu_fraction=1.5)) == 1.0
