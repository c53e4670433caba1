"""Sample windows: time bounds, bounded memory, counter resets split the series."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gc_tuner.model.sample import GCCycle, RuntimeSample
from gc_tuner.model.window import GCCycleWindow, PodWindow


def s(t: float, **kw: object) -> RuntimeSample:
    return RuntimeSample(t=t, source="agent", **kw)  # type: ignore[arg-type]


def test_drops_samples_older_than_the_window() -> None:
    w = PodWindow(60)
    for t in range(0, 200, 15):
        w.add(s(float(t)))
    ts = [x.t for x in w]
    assert ts == [135.0, 150.0, 165.0, 180.0, 195.0]
    assert w.span_s == 60.0
    assert w.newest is not None and w.newest.t == 195.0


def test_sample_exactly_at_the_horizon_is_kept() -> None:
    w = PodWindow(30)
    for t in (0.0, 10.0, 30.0):
        w.add(s(t))
    assert [x.t for x in w] == [0.0, 10.0, 30.0]


def test_memory_is_bounded_by_max_samples() -> None:
    w = PodWindow(1e9, max_samples=100)
    for i in range(10_000):
        w.add(s(float(i)))
    assert len(w) == 100
    assert next(iter(w)).t == 9900.0


def test_out_of_order_and_duplicate_samples_are_ignored_and_counted() -> None:
    w = PodWindow(60)
    assert w.add(s(10.0))
    assert not w.add(s(10.0))
    assert not w.add(s(5.0))
    assert w.add(s(11.0))
    assert w.out_of_order == 2 and len(w) == 2


def test_counter_reset_splits_segments() -> None:
    w = PodWindow(300)
    for t, req in [(0, 100), (15, 250), (30, 400), (45, 20), (60, 170), (75, 320)]:
        w.add(s(float(t), requests_total=float(req)))
    segs = w.segments()
    assert [[x.t for x in seg] for seg in segs] == [[0, 15, 30], [45, 60, 75]]
    assert w.resets == 1


def test_gc_cycles_reset_splits_and_none_values_do_not() -> None:
    w = PodWindow(300)
    w.add(s(0.0, gc_cycles=50))
    w.add(s(15.0))  # the source could not say: not a reset
    w.add(s(30.0, gc_cycles=60))
    w.add(s(45.0, gc_cycles=3))  # restart
    w.add(s(60.0, gc_cycles=9))
    assert [len(seg) for seg in w.segments()] == [3, 2]


def test_a_reset_is_compared_with_the_last_known_value_of_the_segment() -> None:
    w = PodWindow(300)
    w.add(s(0.0, requests_total=1000.0))
    w.add(s(15.0, gc_cycles=5))
    w.add(s(30.0, requests_total=10.0))  # below 1000 two samples back: a restart
    assert [len(seg) for seg in w.segments()] == [2, 1]


def test_evicting_the_old_segment_leaves_one() -> None:
    w = PodWindow(30)
    w.add(s(0.0, gc_cycles=10))
    w.add(s(15.0, gc_cycles=1))
    w.add(s(50.0, gc_cycles=4))
    assert [len(seg) for seg in w.segments()] == [1]


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf])
def test_invalid_window(bad: float) -> None:
    with pytest.raises(ValueError, match="window_s"):
        PodWindow(bad)


def test_non_finite_sample_time_is_rejected() -> None:
    with pytest.raises(ValueError, match="finite"):
        PodWindow(60).add(s(math.nan))


def cycle(n: int, t: float, live: int = 10) -> GCCycle:
    return GCCycle(
        n=n,
        t=t,
        cpu_pct=1,
        clock_sweep_term_ms=0.1,
        clock_mark_ms=1.0,
        clock_mark_term_ms=0.05,
        cpu_stw1_ms=0.2,
        cpu_assist_ms=0.0,
        cpu_background_ms=1.0,
        cpu_idle_ms=0.5,
        cpu_stw2_ms=0.1,
        heap_start_mb=20,
        heap_end_mb=21,
        live_mb=live,
        goal_mb=22,
        stacks_mb=0,
        globals_mb=0,
        procs=2,
        forced=False,
    )


def test_gc_cycle_window_bounds_and_restarts() -> None:
    w = GCCycleWindow(10)
    for i in range(1, 21):
        w.add(cycle(i, float(i)))
    assert [c.n for c in w] == list(range(10, 21))
    w.add(cycle(1, 0.5))  # a new process: its clock starts again
    w.add(cycle(2, 1.5))
    segs = w.segments()
    assert [[c.n for c in seg] for seg in segs] == [list(range(12, 21)), [1, 2]]
    assert w.resets == 1


def test_series_columns_follow_segments_eviction_and_missing_values() -> None:
    w = PodWindow(60)
    rows = [(0, 100, 1), (15, 250, None), (30, 400, 3), (45, 20, 4), (60, 170, 5), (75, 320, 6)]
    for t, req, live in rows:
        w.add(s(float(t), requests_total=float(req), live_heap_bytes=None if live is None else live * 2**20))
    # t=0 is evicted (older than 60 s before 75); the reset at 45 splits what is left.
    req = [(list(t), list(y)) for t, y in w.series("requests")]
    assert req == [([15.0, 30.0], [250.0, 400.0]), ([45.0, 60.0, 75.0], [20.0, 170.0, 320.0])]
    (_, live1), (_, live2) = w.series("live_mib")
    assert math.isnan(live1[0]) and live1[1] == 3.0 and list(live2) == [4.0, 5.0, 6.0]
    with pytest.raises(ValueError, match="unknown series 'gogc'"):
        w.series("gogc")


def test_estimated_live_heap_is_tracked_through_eviction() -> None:
    w = PodWindow(30)
    w.add(RuntimeSample(t=0.0, source="expvar", live_heap_bytes=2**20, live_heap_estimated=True))
    w.add(s(10.0, live_heap_bytes=2**20))
    assert w.live_heap_estimated
    w.add(s(40.0, live_heap_bytes=2**20))  # the estimate at t=0 leaves the window
    assert not w.live_heap_estimated


def _column(x: RuntimeSample, name: str) -> float | None:
    if name == "live_mib":
        return None if x.live_heap_bytes is None else x.live_heap_bytes / 2**20
    return x.requests_total


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0.1, 20),  # time step
            st.one_of(st.none(), st.integers(0, 10**9)),  # live heap bytes
            st.one_of(st.none(), st.floats(0, 1e6)),  # request counter (a drop is a reset)
        ),
        max_size=120,
    ),
    st.floats(5, 200),
    st.integers(2, 40),
)
def test_series_mirror_the_samples_through_growth_and_eviction(
    rows: list[tuple[float, int | None, float | None]], window_s: float, max_samples: int
) -> None:
    w = PodWindow(window_s, max_samples=max_samples)
    t = 0.0
    for step, live, req in rows:
        t += step
        w.add(s(t, live_heap_bytes=live, requests_total=req))
        for name in ("live_mib", "requests"):
            got = [(list(ts), [None if math.isnan(v) else v for v in ys]) for ts, ys in w.series(name)]
            want = [([x.t for x in seg], [_column(x, name) for x in seg]) for seg in w.segments()]
            assert got == want
