"""Which pods' fits may steer the Deployment: physics first, then agreement with the others. Pure.

A pod reports its own runtime, and a broken or hostile one can report anything well-formed. Before
a fit reaches the median (and Budget's per-pod minimum), each pod's heap slope is screened:

1. **Physically impossible** (reason `ImplausibleData`): not a finite number (logic/fit.py already
   refuses a series its arithmetic overflows: such a pod arrives with no slope); a live heap above
   the container's memory limit (the kubelet's figure, not the pod's); growth over the fit's span
   larger than that limit; growth faster than the process allocates (every live byte was allocated:
   the live heap cannot outgrow the allocation counter, given a factor 2 and 1 MiB/s for the lag of
   a GC-end figure); a live heap larger than all the memory the process holds.
2. **Far from the others** (reason `OutlierExcluded`): with three or more pods, a slope whose
   distance from the median exceeds `OUTLIER_Z` robust standard deviations (1.4826 × MAD) and
   `OUTLIER_FLOOR_MB_S`. The floor keeps pods that all agree (MAD 0) from excluding one that differs
   by noise. With two pods nobody can tell which one is wrong, so only physics applies.

A screened pod keeps its QPS and its sample; its heap slope is dropped from this cycle's fit, and a
failure names it and says why (Degraded, a Warning Event when it starts).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Mapping, Sequence

from gc_tuner.logic.memlimit import parse_quantity
from gc_tuner.model.sample import MiB
from gc_tuner.model.window import PodWindow
from gc_tuner.tuning.records import PodFailure, PodFit

__all__ = ["OUTLIER_FLOOR_MB_S", "OUTLIER_Z", "heap_outliers", "implausible", "screen"]

OUTLIER_Z = 5.0
OUTLIER_FLOOR_MB_S = 1.0
_ALLOC_FACTOR, _ALLOC_SLACK = 2.0, float(MiB)
_LIMIT_SLACK = 1.1  # the cgroup counts pages, the runtime bytes; a live heap at the limit is possible


def allocation_rate(window: PodWindow) -> float | None:
    """Bytes per second the process allocated over the newest segment of its window."""
    segments = window.segments()
    points = [s for s in (segments[-1] if segments else []) if s.heap_allocs_bytes_total is not None]
    if len(points) < 2 or points[-1].t <= points[0].t:
        return None
    first, last = points[0].heap_allocs_bytes_total, points[-1].heap_allocs_bytes_total
    assert first is not None and last is not None
    return max(0.0, (last - first) / (points[-1].t - points[0].t))


def implausible(pf: PodFit, window: PodWindow, limit_bytes: int | None) -> str | None:
    """Why this pod's heap figures cannot be true, or None."""
    slope, s = pf.heap_slope_mb_per_s, pf.sample
    if slope is not None and not math.isfinite(slope):
        return f"heap slope {slope!r} is not a number"
    live = s.live_heap_bytes if s is not None else None
    if live is not None and live < 0:
        return f"negative live heap ({live} bytes)"
    if limit_bytes is not None and live is not None and live > _LIMIT_SLACK * limit_bytes:
        return (
            f"live heap {live / MiB:.0f} MiB above the container's memory limit {limit_bytes / MiB:.0f} MiB"
        )
    if slope is None:
        return None
    span = pf.heap_span_s or 0.0
    if limit_bytes is not None and abs(slope) * MiB * span > limit_bytes:
        return (
            f"live heap changing {slope:+.1f} MB/s over {span:.0f}s, more than the container's memory "
            f"limit {limit_bytes / MiB:.0f} MiB"
        )
    alloc = allocation_rate(window)
    if alloc is not None and slope * MiB > _ALLOC_FACTOR * alloc + _ALLOC_SLACK:
        return (
            f"live heap growing {slope:+.1f} MB/s, faster than the process allocates ({alloc / MiB:.1f} MB/s)"
        )
    if (
        s is not None
        and live is not None
        and s.total_memory_bytes is not None
        and live > s.total_memory_bytes
    ):
        return f"live heap {live / MiB:.0f} MiB above all the memory the process holds"
    return None


def heap_outliers(fits: Sequence[PodFit]) -> dict[str, str]:
    """Pods whose heap slope is far from the others' (three or more pods), with why."""
    slopes = {f.pod: f.heap_slope_mb_per_s for f in fits if f.heap_slope_mb_per_s is not None}
    if len(slopes) < 3:
        return {}
    values = list(slopes.values())
    med = statistics.median(values)
    scale = 1.4826 * statistics.median(abs(v - med) for v in values)
    out = {}
    for pod, v in slopes.items():
        dev = abs(v - med)
        if dev > OUTLIER_FLOOR_MB_S and (scale == 0 or dev / scale > OUTLIER_Z):
            z = f"robust z {dev / scale:.0f}" if scale else "the others agree exactly"
            out[pod] = f"heap slope {v:+.3f} MB/s, far from the other pods' median {med:+.3f} MB/s ({z})"
    return out


def _bytes(quantity: str | None) -> int | None:
    try:
        return parse_quantity(quantity) if quantity else None
    except ValueError:
        return None  # the apiserver validated it; an unreadable limit only loses this check


def _drop_heap(pf: PodFit, why: str) -> PodFit:
    note = f"{pf.note}; " if pf.note else ""
    return dataclasses.replace(pf, heap_slope_mb_per_s=None, r2=None, heap_span_s=None, note=note + why)


def screen(
    fits: Sequence[PodFit], windows: Mapping[str, PodWindow], limits: Mapping[str, str | None]
) -> tuple[list[PodFit], list[PodFailure]]:
    """The fits with screened pods' heap slopes dropped, and one failure per screened pod."""
    kept, failures = [], []
    for pf in fits:
        why = implausible(pf, windows[pf.pod], _bytes(limits.get(pf.pod)))
        if why is not None:
            failures.append(PodFailure(pf.pod, "fit", "ImplausibleData", why + "; left out of the fit"))
            pf = _drop_heap(pf, f"implausible: {why}")
        kept.append(pf)
    far = heap_outliers(kept)
    for pod, why in far.items():
        failures.append(PodFailure(pod, "fit", "OutlierExcluded", why + "; left out of the fit"))
    return [_drop_heap(pf, f"outlier: {far[pf.pod]}") if pf.pod in far else pf for pf in kept], failures
