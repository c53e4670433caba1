"""The Cost strategy: the spec's prices, per-pod histories, the budget cap, the status it writes."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from gc_tuner.logic.cost_model import CostParams, PodCost, cost_gogc
from gc_tuner.model.policy import GCPolicySpec, parse_policy
from gc_tuner.model.policy_status import RecommendationSection
from gc_tuner.model.sample import GCCycle, RuntimeSample
from gc_tuner.tuning.records import PodFit
from gc_tuner.tuning.state import PolicyState
from gc_tuner.tuning.strategies import (
    STRATEGIES,
    PodHistory,
    StrategyUnavailable,
    WindowHistories,
    cost_horizon_s,
    cost_params,
    desired_memory_limit,
    recommend,
)

MiB = 1 << 20

BASE: dict[str, Any] = {
    "targetRef": {"name": "web"},
    "sampling": {"sources": {"agent": {"port": 8080}, "gctrace": {}}},
    "qps": {"agent": {}},
    "strategy": {"type": "Cost"},
    "bounds": {"minGOGC": 25, "maxGOGC": 1000},
    "rollout": {"cooldownSeconds": 30},
}


def spec(**patch: Any) -> GCPolicySpec:
    doc = copy.deepcopy(BASE)
    doc.update(patch)
    return parse_policy(doc)


def history(
    qps: float,
    *,
    per_request_mib: float = 0.5,
    c_ms_per_mib: float = 0.625,
    live_mib: int = 30,
    gogc: int | None = 100,
    n: int = 8,
) -> PodHistory:
    """A steady pod: one sample a second, one GC a second costing c × L+S+G (L+S+G = live + 2 MiB)."""
    out = []
    base = live_mib + 2
    for i in range(n):
        out.append(
            RuntimeSample(
                t=1000.0 + i,
                source="agent",
                gc_cycles=i,
                gc_cpu_seconds=i * c_ms_per_mib * base / 1000,
                requests_total=qps * i,
                heap_allocs_bytes_total=round(i * qps * per_request_mib * MiB),
                live_heap_bytes=live_mib * MiB,
                stacks_bytes=MiB,
                globals_bytes=MiB,
                gogc=gogc,
                heap_goal_bytes=2 * live_mib * MiB,
                total_memory_bytes=(2 * live_mib + 20) * MiB,
            )
        )
    return PodHistory(samples=tuple(out))


def fit_of(pod: str, h: PodHistory, qps: float = 100.0) -> PodFit:
    return PodFit(
        pod=pod,
        qps=qps,
        heap_slope_mb_per_s=0.0,
        r2=0.1,
        samples=len(h.samples),
        sample=h.samples[-1] if h.samples else None,
        heap_span_s=10.0,
    )


def run(s: GCPolicySpec, histories: dict[str, PodHistory], memory: str | None = None) -> Any:
    fits = [fit_of(name, h) for name, h in histories.items()]
    mem = desired_memory_limit(s, memory) if memory is not None else None
    return recommend(s, 100.0, 0.0, pod_fits=fits, memory=mem, histories=histories)


def test_cost_is_registered_and_formula_stays_the_default() -> None:
    assert "Cost" in STRATEGIES
    doc = copy.deepcopy(BASE)
    del doc["strategy"]
    assert parse_policy(doc).strategy.type == "Formula"


def test_the_spec_becomes_the_models_parameters() -> None:
    p = cost_params(spec())
    assert (p.cpu_per_core_hour, p.memory_per_gib_hour, p.currency) == (0.040, 0.004, "USD")
    assert (p.gogc_min, p.gogc_max, p.max_fit_error) == (25, 1000, 0.10)
    assert cost_horizon_s(spec()) == 30  # unset: the cooldown
    knobs = {
        "cpuPerCoreHourMilli": 31611,
        "memoryPerGiBHourMilli": 4237,
        "currency": "EUR",
        "horizonSeconds": 120,
        "maxFitErrorPercent": 25,
    }
    s = spec(strategy={"type": "Cost", "cost": knobs})
    p = cost_params(s)
    assert (p.cpu_per_core_hour, p.memory_per_gib_hour, p.currency, p.max_fit_error) == (
        31.611,
        4.237,
        "EUR",
        0.25,
    )
    assert cost_horizon_s(s) == 120


def test_one_pod_gets_the_models_gogc_and_the_status_says_why() -> None:
    # a = 0.5 MiB × 100 QPS = 50 MiB/s, c = 0.625 ms/MiB, L+S+G = 32 MiB: GOGC* = 100 × sqrt(0.04 ×
    # 0.03125 / (0.004 × 1/32)) = 100 × sqrt(10) = 316.2; the fit is exact, so no damping.
    rec = run(spec(), {"a": history(100.0)})
    assert rec.strategy == "Cost" and rec.gogc == 316
    i = rec.inputs
    assert i["allocMiBPerSec"] == pytest.approx(50.0) and i["markCPUMsPerMiB"] == pytest.approx(0.625)
    assert i["liveStacksGlobalsBytes"] == 32 * MiB and i["uncappedGOGC"] == pytest.approx(316.23, abs=0.01)
    assert i["predictedGCCPUCores"] == pytest.approx(0.03125 * 100 / 316, rel=1e-4)
    assert i["predictedHeapOverheadBytes"] == round(32 * MiB * 316 / 100)
    assert i["currency"] == "USD" and i["currentGOGC"] == 100 and i["stepShare"] == 1.0
    assert "GOGC* = 100 × sqrt(" in rec.explanation and "/month against GOGC=100" in rec.explanation
    # Every input is a declared status field: the status model (= the CRD's schema) accepts them all.
    section = RecommendationSection(
        gogc=rec.gogc,
        strategy="Cost",
        explanation=rec.explanation,
        inputs=rec.inputs,
        time="2026-12-06T10:00:00Z",
    )
    assert section.doc()["inputs"] == rec.inputs


def test_pods_are_summed_into_one_cost() -> None:
    hs = {"a": history(100.0), "b": history(400.0, live_mib=62)}
    rec = run(spec(), hs)
    pods = [PodCost(50.0, 0.0, 0.625, 0.0, 32 * MiB), PodCost(200.0, 0.0, 0.625, 0.0, 64 * MiB)]
    assert rec.gogc == cost_gogc(pods, cost_params(spec()), current_gogc=100).gogc
    assert rec.inputs["allocMiBPerSec"] == pytest.approx(250.0)


def test_a_higher_allocation_rate_raises_gogc() -> None:
    low, high = run(spec(), {"a": history(50.0)}), run(spec(), {"a": history(400.0)})
    assert high.gogc > low.gogc


def test_the_memory_budget_caps_it() -> None:
    s = spec(memoryLimit={"mode": "Fixed", "fixed": "128Mi"}, bounds={"minGOGC": 25, "maxGOGC": 1000})
    rec = run(s, {"a": history(100.0)}, memory="128Mi")
    # Budget: 100 × (128 − 30 − max(16, 80 − 60 = 20)) / 32 = 243.75, below GOGC* 316.
    assert rec.gogc == 243 and rec.inputs["budgetCapGOGC"] == pytest.approx(243.75)
    assert "capped at 243.8 by the memory budget" in rec.explanation


def test_a_pod_with_only_gctrace_is_fitted_from_its_cycles() -> None:
    cycles = [
        GCCycle(
            n=k,
            t=float(k),
            cpu_pct=1,
            clock_sweep_term_ms=0.01,
            clock_mark_ms=5,
            clock_mark_term_ms=0.01,
            cpu_stw1_ms=0.5,
            cpu_assist_ms=4.5,
            cpu_background_ms=14.5,
            cpu_idle_ms=3,
            cpu_stw2_ms=0.5,
            heap_start_mb=60,
            heap_end_mb=62,
            live_mb=30,
            goal_mb=64,
            stacks_mb=1,
            globals_mb=1,
            procs=2,
            forced=False,
        )
        for k in range(1, 8)
    ]
    rec = run(spec(), {"a": PodHistory(cycles=tuple(cycles))})
    # c = 20 ms / 32 MiB, a = 32 MiB/s: GOGC* = 100 × sqrt(0.04 × 0.02 / (0.004 / 32)) = 100 × sqrt(6.4)
    assert rec.gogc == 253 and rec.inputs["allocMiBPerSec"] == pytest.approx(32.0)
    assert "forecastQPS" not in rec.inputs  # a log has no request rate


def test_a_noisy_pod_moves_only_part_of_the_way() -> None:
    # The GC CPU per interval alternates 0.2× and 1.8× of c × L+S+G: the same mean c, a wide error.
    h = history(100.0)
    cpu, noisy = 0.0, []
    for k, s in enumerate(h.samples):
        noisy.append(dataclasses.replace(s, gc_cpu_seconds=cpu))
        cpu += (1.8 if k % 2 else 0.2) * 0.625 * 32 / 1000
    rec = run(spec(), {"a": PodHistory(samples=tuple(noisy))})
    assert rec.inputs["fitRelativeError"] > 0.10
    assert 0 < rec.inputs["stepShare"] < 1
    assert 100 < rec.gogc < round(rec.inputs["uncappedGOGC"])
    assert "of the step from 100" in rec.explanation


def test_too_little_data_is_unavailable_naming_what_is_missing() -> None:
    with pytest.raises(StrategyUnavailable, match="a: 2 interval"):
        run(spec(), {"a": history(100.0, n=3)})
    bare = PodHistory(samples=tuple(RuntimeSample(t=float(i), source="expvar") for i in range(5)))
    with pytest.raises(StrategyUnavailable, match="no gctrace cycles either"):
        run(spec(), {"a": bare})
    with pytest.raises(StrategyUnavailable, match="no pod sampled"):
        recommend(spec(), 100.0, 0.0)


def test_an_unfitted_pod_is_left_out_and_said() -> None:
    rec = run(spec(), {"a": history(100.0), "b": history(100.0, n=2)})
    assert rec.gogc == run(spec(), {"a": history(100.0)}).gogc
    assert "1 of 2 pods fitted" in rec.explanation


def test_model_params_match_cost_params_defaults() -> None:
    assert cost_params(spec()) == CostParams(gogc_min=25, gogc_max=1000)


def test_window_histories_hand_out_each_pods_newest_segment() -> None:
    state = PolicyState(window_s=300.0)
    ps = state.pod("a", now=0.0)
    old = history(100.0).samples
    for s in old:
        ps.window.add(s)
    restarted = [
        dataclasses.replace(s, t=s.t + 100, gc_cycles=s.gc_cycles) for s in history(100.0, n=4).samples
    ]
    for s in restarted:  # its counters start again from 0: a new process
        ps.window.add(s)
    h = WindowHistories(state.pods)
    assert list(h) == ["a"] and len(h) == 1
    assert h["a"].samples == tuple(restarted) and h["a"].cycles == ()
