"""The fit step: per-pod QPS and live-heap slope, then the Deployment's median, and the leak verdict.

The median over pods (not the mean) keeps one odd pod - a fresh replica, one stuck in a slow
request - from moving the Deployment's recommendation.

Minimum data: three samples spanning 1.8 intervals, so a policy produces its first recommendation
in its third interval. Theil–Sen over three points is still a median of slopes, and a counter's
slope over two intervals is already the rate the formula wants.

A series whose numbers the fit's float64 arithmetic cannot hold (a counter near 1e308: logic/fit.py,
OutOfRange) is refused like too little data: the pod gets no QPS or no heap slope this cycle, its
note says why, and it is left out of the Deployment's median.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence

from gc_tuner.logic.analysis import analyze_cycles
from gc_tuner.logic.fit import InsufficientData, TrendFit, fit_heap_slopes, fit_qps_many, fit_segments
from gc_tuner.model.policy import GCPolicySpec
from gc_tuner.tuning.outcome import Fitted
from gc_tuner.tuning.records import (
    FALSE,
    TRUE,
    UNKNOWN,
    FitSummary,
    GCTraceSummary,
    PodFit,
    PodReading,
    Verdict,
)
from gc_tuner.tuning.screening import screen
from gc_tuner.tuning.state import PodState, PolicyState

__all__ = [
    "MIN_SAMPLES",
    "fit_deployment",
    "fit_pod",
    "fit_pods",
    "fit_step",
    "gctrace_summary",
    "leak_verdict",
    "min_span_s",
]

MIN_SAMPLES = 3


def min_span_s(spec: GCPolicySpec) -> float:
    return 1.8 * spec.sampling.interval_seconds


def _trace_slope(ps: PodState, min_span: float) -> TrendFit | InsufficientData:
    # gctrace's `@t` is seconds since process start: fine for a slope, useless as wall time.
    segs = [([c.t for c in seg], [float(c.live_mb) for c in seg]) for seg in ps.trace.segments()]
    return fit_segments(segs, min_samples=MIN_SAMPLES, min_span_s=min_span)


def fit_pod(name: str, ps: PodState, spec: GCPolicySpec) -> PodFit:
    return fit_pods([(name, ps)], spec)[0]


def fit_pods(pods: Sequence[tuple[str, PodState]], spec: GCPolicySpec) -> list[PodFit]:
    """Every pod's QPS and heap-slope fit; the windows are fitted together (logic/fit.py batches)."""
    span = min_span_s(spec)
    windows = [ps.window for _, ps in pods]
    heaps = fit_heap_slopes(windows, min_samples=MIN_SAMPLES, min_span_s=span)
    by_counter = spec.qps.promql is None
    counted = fit_qps_many(windows, min_samples=MIN_SAMPLES, min_span_s=span) if by_counter else []
    out = []
    for k, (name, ps) in enumerate(pods):
        notes: list[str] = []
        heap = heaps[k]
        if isinstance(heap, InsufficientData) and heap.code == "NoData" and len(ps.trace):
            heap = _trace_slope(ps, span)
        if isinstance(heap, InsufficientData):
            notes.append(f"heap slope: {heap.reason}")
        qps: float | None
        if by_counter:
            q = counted[k]
            qps = q.slope if isinstance(q, TrendFit) else None
            if isinstance(q, InsufficientData):
                notes.append(f"qps: {q.reason}")
        else:
            qps = ps.promql_qps
            if qps is None:
                notes.append("qps: no PromQL result for this pod")
        out.append(_pod_fit(name, ps, heap, qps, notes))
    return out


def _pod_fit(
    name: str, ps: PodState, heap: TrendFit | InsufficientData, qps: float | None, notes: list[str]
) -> PodFit:
    return PodFit(
        pod=name,
        qps=qps,
        heap_slope_mb_per_s=heap.slope if isinstance(heap, TrendFit) else None,
        r2=heap.r2 if isinstance(heap, TrendFit) else None,
        samples=heap.n if isinstance(heap, TrendFit) else len(ps.window),
        note="; ".join(notes),
        sample=ps.window.newest,
        heap_span_s=heap.span_s if isinstance(heap, TrendFit) else None,
    )


def fit_deployment(fits: Sequence[PodFit], spec: GCPolicySpec) -> FitSummary:
    source = "PromQL" if spec.qps.promql is not None else "Agent" if spec.qps.agent is not None else "Counter"
    usable = [f for f in fits if f.qps is not None and f.heap_slope_mb_per_s is not None]
    window = float(spec.sampling.window_seconds)
    if not usable:
        notes = sorted({f"{f.pod}: {f.note}" for f in fits if f.note})
        why = "; ".join(notes[:5]) if notes else "no pod sampled yet"
        return FitSummary(None, source, None, None, sum(f.samples for f in fits), 0, window, why)
    return FitSummary(
        qps=max(0.0, statistics.median(f.qps for f in usable if f.qps is not None)),
        qps_source=source,
        heap_slope_mb_per_s=statistics.median(
            f.heap_slope_mb_per_s for f in usable if f.heap_slope_mb_per_s is not None
        ),
        r2=statistics.median(f.r2 if f.r2 is not None else 0.0 for f in usable),
        samples=sum(f.samples for f in usable),
        pods=len(usable),
        window_s=window,
    )


def leak_verdict(fit: FitSummary | None, spec: GCPolicySpec) -> Verdict:
    ld = spec.leak_detection
    threshold = ld.min_heap_slope_milli_mb_per_second / 1000
    min_r2 = ld.min_r2_milli / 1000
    if fit is None or not fit.complete or fit.heap_slope_mb_per_s is None:
        return Verdict(UNKNOWN, "InsufficientData", "no live-heap fit yet")
    slope, r2 = fit.heap_slope_mb_per_s, fit.r2 or 0.0
    desc = f"live heap {slope:+.3f} MB/s (r² {r2:.2f}) over {fit.window_s:g}s across {fit.pods} pod(s)"
    if slope >= threshold and r2 >= min_r2:
        return Verdict(TRUE, "HeapGrowing", f"{desc}; threshold {threshold:g} MB/s at r² ≥ {min_r2:g}")
    return Verdict(FALSE, "HeapStable", desc)


def gctrace_summary(pods: Iterable[PodState]) -> GCTraceSummary | None:
    """The gctrace section: cycles in the windows, the worst pod's STW p99, the median effective GOGC."""
    p99s, medians, cycles, n = [], [], 0, 0
    for ps in pods:
        if not len(ps.trace):
            continue
        s = analyze_cycles(list(ps.trace)).summary
        n += 1
        cycles += s.cycles
        if s.stw_p99_ms is not None:
            p99s.append(s.stw_p99_ms)
        if s.effective_gogc_median is not None:
            medians.append(s.effective_gogc_median)
    if not n:
        return None
    return GCTraceSummary(
        cycles, max(p99s) if p99s else None, statistics.median(medians) if medians else None, n
    )


def fit_step(spec: GCPolicySpec, state: PolicyState, readings: Sequence[PodReading]) -> Fitted:
    """The fit step: each read pod's fit over its windows, screened (tuning/screening.py), the
    Deployment's median, the leak verdict."""
    fits = fit_pods([(r.pod.name, state.pods[r.pod.name]) for r in readings], spec)
    windows = {r.pod.name: state.pods[r.pod.name].window for r in readings}
    fits, screened = screen(fits, windows, {r.pod.name: r.pod.memory_limit for r in readings})
    summary = fit_deployment(fits, spec)
    leak = leak_verdict(summary, spec)
    return Fitted(tuple(fits), summary, leak, gctrace_summary(state.pods.values()), tuple(screened))
