"""The Cost strategy's fits on constructed series with known answers: c, a against QPS, the forecast."""

from __future__ import annotations

import math

import pytest

from gc_tuner.logic.cost_fit import (
    NotEnoughData,
    RatioFit,
    alloc_from_samples,
    fit_cycles,
    fit_samples,
    mark_from_samples,
)
from gc_tuner.model.sample import GCCycle, RuntimeSample

MiB = 1 << 20


def cycle(
    n: int,
    t: float,
    *,
    cpu_ms: float = 20.0,
    start: int = 60,
    end: int = 62,
    live: int = 30,
    stacks: int | None = 1,
    globals_: int | None = 1,
    leak_check: bool = False,
) -> GCCycle:
    # cpu split as gctrace prints it: STW1 + assist / background / idle + STW2; idle is not counted.
    return GCCycle(
        n=n,
        t=t,
        cpu_pct=1,
        clock_sweep_term_ms=0.01,
        clock_mark_ms=5,
        clock_mark_term_ms=0.01,
        cpu_stw1_ms=0.5,
        cpu_assist_ms=cpu_ms / 4 - 0.5,
        cpu_background_ms=cpu_ms * 3 / 4 - 0.5,
        cpu_idle_ms=7.0,
        cpu_stw2_ms=0.5,
        heap_start_mb=start,
        heap_end_mb=end,
        live_mb=live,
        goal_mb=64,
        stacks_mb=stacks,
        globals_mb=globals_,
        procs=2,
        forced=False,
        leak_check=leak_check,
    )


def test_ratio_fit_recovers_an_exact_ratio_with_no_error() -> None:
    f = RatioFit()
    for x in (1.0, 2.0, 5.0, 7.0):
        f.add(3 * x, x)
    e = f.estimate()
    assert e.value == pytest.approx(3.0) and e.se == pytest.approx(0.0, abs=1e-9) and e.n == 4


def test_ratio_fit_reports_the_residuals_as_standard_error() -> None:
    f = RatioFit()
    for y, x in ((2.0, 1.0), (4.0, 1.0), (2.0, 1.0), (4.0, 1.0)):
        f.add(y, x)
    e = f.estimate()
    # k = 12/4 = 3; σ² = Σ(y − 3)² / 3 = 4/3; se = sqrt(σ² / Σx) = sqrt(1/3)
    assert e.value == 3.0 and e.se == pytest.approx(math.sqrt(1 / 3))


def test_ratio_fit_skips_points_it_cannot_use() -> None:
    f = RatioFit()
    f.add(1.0, 0.0)
    f.add(math.nan, 1.0)
    f.add(-1.0, 1.0)
    with pytest.raises(NotEnoughData):
        f.estimate()


def test_fit_cycles_hand_computed() -> None:
    # 20 ms of GC CPU (idle excluded) per cycle over live 30 + stacks 1 + globals 1 = 32 MiB: c = 0.625.
    # Each cycle allocates (62 − 60) during its mark and (60 − 30) after it: 32 MiB per second.
    f = fit_cycles(cycle(n, float(n)) for n in range(1, 7))
    assert f.mark.value == pytest.approx(20 / 32) and f.mark.n == 6
    assert f.alloc.value == pytest.approx(32.0) and f.alloc.n == 5
    assert f.base_bytes == 32 * MiB and f.cycles == 6


def test_fit_cycles_counts_pre_118_lines_and_skips_leak_checks_and_restarts() -> None:
    cycles = [cycle(n, float(n), stacks=None, globals_=None) for n in range(1, 6)]
    cycles.insert(3, cycle(99, 3.5, cpu_ms=500.0, leak_check=True))
    f = fit_cycles(cycles)
    assert f.mark.value == pytest.approx(20 / 30) and f.cycles == 5  # base: live only
    # A restart (numbers start again) is no pair: no allocation across it.
    restarted = [cycle(1, 1.0), cycle(2, 2.0), cycle(3, 3.0), cycle(1, 0.5), cycle(2, 1.5)]
    assert fit_cycles(restarted).alloc.n == 3


def test_fit_cycles_names_what_it_lacks() -> None:
    with pytest.raises(NotEnoughData, match="3 GC cycle"):
        fit_cycles(cycle(n, float(n)) for n in range(1, 4))
    with pytest.raises(NotEnoughData, match="consecutive GC cycles"):
        fit_cycles(cycle(n, float(n)) for n in (1, 3, 5, 7, 9))


def samples(
    qps: list[float],
    *,
    per_request_mib: float = 0.5,
    background_mib_s: float = 1.0,
    c_ms_per_mib: float = 0.625,
    base_mib: int = 32,
    gcs: list[int] | None = None,
) -> list[RuntimeSample]:
    """One sample per second: `qps[i]` requests in second i, `per_request_mib` each plus a background
    rate, one GC per second (or `gcs[i]`), each costing c × L+S+G of GC CPU."""
    out = []
    req = alloc = cpu = 0.0
    cycles = 0
    for i in range(len(qps) + 1):
        out.append(
            RuntimeSample(
                t=1000.0 + i,
                source="agent",
                gc_cycles=cycles,
                gc_cpu_seconds=cpu,
                requests_total=req,
                heap_allocs_bytes_total=round(alloc * MiB),
                live_heap_bytes=(base_mib - 2) * MiB,
                stacks_bytes=MiB,
                globals_bytes=MiB,
            )
        )
        if i < len(qps):
            req += qps[i]
            alloc += per_request_mib * qps[i] + background_mib_s
            k = 1 if gcs is None else gcs[i]
            cycles += k
            cpu += k * c_ms_per_mib * base_mib / 1000
    return out


def test_mark_cost_from_gc_edges() -> None:
    c, cycles = mark_from_samples(samples([100.0] * 6))
    assert c.value == pytest.approx(0.625) and c.n == 6 and cycles == 6


def test_samples_without_a_new_gc_are_no_edge() -> None:
    # /cpu/classes moves only at a GC: seconds without one add nothing, and the next edge spans both.
    s = samples([100.0] * 8, gcs=[1, 0, 2, 0, 0, 3, 1, 1])
    c, cycles = mark_from_samples(s)
    assert c.value == pytest.approx(0.625) and cycles == 8 and c.n == 5


def test_mark_cost_names_the_missing_source() -> None:
    bare = [RuntimeSample(t=float(i), source="expvar", gc_cycles=i, live_heap_bytes=MiB) for i in range(8)]
    with pytest.raises(NotEnoughData, match="/cpu/classes/gc"):
        mark_from_samples(bare)


def test_alloc_is_a_line_in_qps_when_the_load_varies() -> None:
    # a = 1 + 0.5 × QPS on a load that alternates 100 and 200 (no trend: the forecast is the mean).
    s = samples([100.0, 200.0] * 5)
    a = alloc_from_samples(s, horizon_s=60)
    assert a.model == "linear in QPS" and not a.trend
    assert a.qps == pytest.approx(150.0) and a.qps_forecast == pytest.approx(150.0)
    assert a.alloc.value == pytest.approx(1 + 0.5 * 150, rel=1e-6)


def test_a_rising_load_is_forecast_one_horizon_ahead() -> None:
    # QPS 100, 110, ... 190 over ten seconds: 10 QPS/s, so 60 s after the last interval's midpoint
    # (t 1009.5, QPS 190) the forecast is 790, capped at twice the highest QPS seen: 380.
    s = samples([100.0 + 10 * i for i in range(10)])
    short = alloc_from_samples(s, horizon_s=5)
    assert short.trend and short.qps == pytest.approx(190.0) and short.qps_forecast == pytest.approx(240.0)
    assert short.alloc.value == pytest.approx(1 + 0.5 * 240, rel=1e-6)
    far = alloc_from_samples(s, horizon_s=60)
    assert far.qps_forecast == pytest.approx(380.0)
    assert far.alloc.value == pytest.approx(1 + 0.5 * 380, rel=1e-6)


def test_a_steady_load_uses_the_mean_rate() -> None:
    a = alloc_from_samples(samples([100.0] * 6), horizon_s=60)
    assert a.model == "mean rate" and a.alloc.value == pytest.approx(51.0) and not a.trend


def test_without_a_request_counter_the_mean_rate_and_no_forecast() -> None:
    s = [RuntimeSample(t=float(i), source="expvar", heap_allocs_bytes_total=i * 10 * MiB) for i in range(5)]
    a = alloc_from_samples(s, horizon_s=60)
    assert a.qps is None and a.qps_forecast is None and a.alloc.value == pytest.approx(10.0)


def test_alloc_names_the_missing_counter() -> None:
    s = [RuntimeSample(t=float(i), source="agent", requests_total=float(i)) for i in range(5)]
    with pytest.raises(NotEnoughData, match="allocated-bytes counter"):
        alloc_from_samples(s, horizon_s=60)


def test_fit_samples_puts_it_together() -> None:
    f = fit_samples(samples([100.0, 200.0] * 5), horizon_s=60)
    assert f.mark.value == pytest.approx(0.625) and f.base_bytes == 32 * MiB and f.gc_cycles == 10
    assert f.alloc_model == "linear in QPS"
