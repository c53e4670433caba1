"""Screening pods' fits: physically impossible figures and outliers never reach the Deployment's fit."""

from __future__ import annotations

import math

import pytest

from gc_tuner.model.sample import MiB, RuntimeSample
from gc_tuner.model.window import PodWindow
from gc_tuner.tuning.records import PodFit
from gc_tuner.tuning.screening import allocation_rate, heap_outliers, implausible, screen

GiB = 1 << 30


def window(alloc_per_s: float | None = None, n: int = 5) -> PodWindow:
    w = PodWindow(60.0)
    for i in range(n):
        allocs = None if alloc_per_s is None else int(1e9 + alloc_per_s * i)
        w.add(
            RuntimeSample(
                t=float(i), source="agent", live_heap_bytes=100 * MiB, heap_allocs_bytes_total=allocs
            )
        )
    return w


def fit(
    pod: str, slope: float | None, *, live: int = 100 * MiB, total: int | None = None, span: float = 30.0
) -> PodFit:
    s = RuntimeSample(t=0.0, source="agent", live_heap_bytes=live, total_memory_bytes=total)
    return PodFit(pod, 100.0, slope, 0.9 if slope is not None else None, 10, sample=s, heap_span_s=span)


IMPLAUSIBLE = [
    # (case, fit, window's allocation rate B/s, container limit, expected words or None)
    ("healthy", fit("a", 0.5), 50 * MiB, GiB, None),
    ("not a number", fit("a", math.nan), None, None, "not a number"),
    ("negative live heap", fit("a", 0.0, live=-1), None, None, "negative live heap"),
    (
        "live heap above the limit",
        fit("a", 0.0, live=2 * GiB),
        None,
        GiB,
        "above the container's memory limit",
    ),
    (
        "growth beyond the limit over the span",
        fit("a", 10_000.0),
        None,
        GiB,
        "more than the container's memory",
    ),
    ("shrinking beyond the limit", fit("a", -10_000.0), None, GiB, "more than the container's memory"),
    ("faster than it allocates", fit("a", 500.0), 10 * MiB, None, "faster than the process allocates"),
    ("within twice the allocation rate", fit("a", 15.0), 10 * MiB, None, None),
    ("live heap above what the process holds", fit("a", 0.1, total=50 * MiB), None, None, "all the memory"),
    ("no limit and no allocation counter: nothing to hold it to", fit("a", 10_000.0), None, None, None),
]


@pytest.mark.parametrize(
    ("case", "pf", "alloc", "limit", "words"), IMPLAUSIBLE, ids=[r[0] for r in IMPLAUSIBLE]
)
def test_implausible(
    case: str, pf: PodFit, alloc: float | None, limit: int | None, words: str | None
) -> None:
    why = implausible(pf, window(alloc), limit)
    assert (why is None) if words is None else (why is not None and words in why)


def test_allocation_rate_comes_from_the_newest_segment() -> None:
    assert allocation_rate(window(10 * MiB)) == pytest.approx(10 * MiB)
    assert allocation_rate(window(None)) is None and allocation_rate(window(10 * MiB, n=1)) is None


OUTLIERS = [
    # (case, slopes, excluded)
    ("one far from three that agree", [0.1, 0.12, 0.11, 10_000.0], {"p3"}),
    ("exact agreement, one differing by more than the floor", [0.5, 0.5, 0.5, 2.0], {"p3"}),
    ("exact agreement, one differing by noise", [0.5, 0.5, 0.5, 0.9], set()),
    ("two pods: nobody can tell which is wrong", [0.1, 10_000.0], set()),
    ("a spread fleet keeps its spread", [0.1, 1.5, 3.0, 4.2, 6.0], set()),
]


@pytest.mark.parametrize(("case", "slopes", "excluded"), OUTLIERS, ids=[r[0] for r in OUTLIERS])
def test_heap_outliers(case: str, slopes: list[float], excluded: set[str]) -> None:
    fits = [fit(f"p{i}", s) for i, s in enumerate(slopes)]
    assert set(heap_outliers(fits)) == excluded


def test_screen_drops_the_heap_figures_and_names_the_pods() -> None:
    fits = [fit("a", 0.2), fit("b", 0.25), fit("c", 0.22), fit("liar", 10_000.0), fit("far", 50.0)]
    windows = {f.pod: window(None) for f in fits}
    kept, failures = screen(fits, windows, {"liar": "1Gi"})
    assert {(f.pod, f.reason) for f in failures} == {("liar", "ImplausibleData"), ("far", "OutlierExcluded")}
    by_pod = {f.pod: f for f in kept}
    assert by_pod["liar"].heap_slope_mb_per_s is None and "implausible" in by_pod["liar"].note
    assert by_pod["far"].heap_slope_mb_per_s is None and "outlier" in by_pod["far"].note
    assert by_pod["far"].qps == 100.0  # the pod's QPS and sample stay: only its heap figures go
    assert [by_pod[p].heap_slope_mb_per_s for p in "abc"] == [0.2, 0.25, 0.22]
