"""The Budget strategy in the loop: the spec's knobs, per-pod inputs, the lowest GOGC, the leak verdict."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gc_tuner.logic.budget import budget_gogc
from gc_tuner.model.policy import GCPolicySpec, parse_policy
from gc_tuner.model.sample import RuntimeSample
from gc_tuner.tuning.records import PodFit
from gc_tuner.tuning.strategies import (
    MemoryLimitTarget,
    StrategyUnavailable,
    budget_params,
    desired_memory_limit,
    non_heap_bytes,
    recommend,
)

MiB = 1 << 20

BASE: dict[str, Any] = {
    "targetRef": {"name": "web"},
    "sampling": {"sources": {"agent": {"port": 8080}, "prometheus": {"port": 8080}}},
    "qps": {"counter": {"name": "http_requests_total"}},
    "strategy": {"type": "Budget"},
    "memoryLimit": {"mode": "FromContainerLimit", "percent": 85},
    "bounds": {"minGOGC": 25, "maxGOGC": 1000},
    "rollout": {"cooldownSeconds": 30},
}


def spec(**patch: Any) -> GCPolicySpec:
    doc = copy.deepcopy(BASE)
    doc.update(patch)
    return parse_policy(doc)


def sample(live_mib: float, *, goal_mib: float | None = None, total_mib: float | None = None,
           released_mib: float = 0) -> RuntimeSample:
    goal = goal_mib if goal_mib is not None else 2 * live_mib
    return RuntimeSample(
        t=1000.0, source="agent", live_heap_bytes=int(live_mib * MiB), heap_goal_bytes=int(goal * MiB),
        total_memory_bytes=int((total_mib if total_mib is not None else goal + 20) * MiB),
        heap_released_bytes=int(released_mib * MiB), stacks_bytes=MiB, globals_bytes=MiB,
    )


def fit(pod: str, live_mib: float, slope: float = 0.0, r2: float | None = 0.1, span: float | None = 120,
        **kw: Any) -> PodFit:
    return PodFit(pod=pod, qps=100.0, heap_slope_mb_per_s=slope, r2=r2, samples=10,
                  sample=sample(live_mib, **kw), heap_span_s=span)


def memory(s: GCPolicySpec) -> MemoryLimitTarget:
    return desired_memory_limit(s, "1Gi")


def test_the_spec_becomes_the_strategys_parameters() -> None:
    p = budget_params(spec())
    assert (p.gogc_min, p.gogc_max) == (25, 1000)
    assert p.horizon_s == 30  # unset horizon: the cooldown
    assert (p.leak_min_slope_mb_per_s, p.leak_min_r2) == (0.1, 0.8)  # leakDetection's defaults
    assert (p.leak_min_span_s, p.leak_max_time_to_budget_s) == (60, 3600)
    knobs = {"horizonSeconds": 90, "leakMinSpanSeconds": 5, "leakMaxTimeToBudgetSeconds": 100}
    p = budget_params(spec(strategy={"type": "Budget", "budget": knobs},
                           leakDetection={"minHeapSlopeMilliMBPerSecond": 500, "minR2Milli": 900}))
    assert (p.horizon_s, p.leak_min_span_s, p.leak_max_time_to_budget_s) == (90, 5, 100)
    assert (p.leak_min_slope_mb_per_s, p.leak_min_r2) == (0.5, 0.9)


def test_a_window_shorter_than_the_leak_span_caps_the_span_instead_of_disabling_the_rule() -> None:
    sampling = {**BASE["sampling"], "intervalSeconds": 3, "windowSeconds": 30}
    s = spec(sampling=sampling)
    assert budget_params(s).leak_min_span_s == 24  # the window less two intervals, not 60
    # Growth over the whole 30 s window (a 27 s fit) is a leak; at 60 s it could never have been.
    leak = recommend(s, 100.0, 0.0, pod_fits=[fit("leaky", 150, slope=10.0, r2=0.99, span=27)],
                     memory=memory(s))
    assert leak.leak is not None and leak.leak.status == "True" and leak.gogc == 25
    short = recommend(s, 100.0, 0.0, pod_fits=[fit("leaky", 150, slope=10.0, r2=0.99, span=20)],
                      memory=memory(s))
    assert short.leak is not None and short.leak.status == "False"


def test_non_heap_is_measured_beyond_the_goal_with_a_floor() -> None:
    floor = 16 * MiB
    assert non_heap_bytes(sample(100, goal_mib=200, total_mib=260, released_mib=10), floor) == 50 * MiB
    assert non_heap_bytes(sample(100, goal_mib=200, total_mib=205), floor) == floor
    bare = RuntimeSample(t=0.0, source="expvar", live_heap_bytes=MiB)
    assert non_heap_bytes(bare, floor) == floor


def test_recommends_what_the_pure_strategy_computes_and_fills_status_inputs() -> None:
    s = spec()
    rec = recommend(s, 100.0, 0.0, pod_fits=[fit("a", 150, goal_mib=300, total_mib=340)], memory=memory(s))
    expected = budget_gogc(budget_bytes=870 * MiB, live_bytes=150 * MiB, heap_slope_mb_per_s=0.0,
                           stacks_bytes=MiB, globals_bytes=MiB, non_heap_bytes=40 * MiB, r2=0.1, span_s=120,
                           params=budget_params(s))
    assert rec.strategy == "Budget"
    assert rec.gogc == expected.gogc == 447  # 100 × (870 − 150 − 40) / (150 + 1 + 1) = 447.4
    assert rec.explanation == expected.explanation
    assert rec.inputs["budgetBytes"] == 870 * MiB and rec.inputs["nonHeapBytes"] == 40 * MiB
    assert rec.inputs["liveBytes"] == 150 * MiB and rec.inputs["horizonSeconds"] == 30
    assert rec.leak is not None and rec.leak.status == "False"


def test_the_pod_with_the_least_room_decides() -> None:
    s = spec()
    fits = [fit("small", 50), fit("big", 400), fit("mid", 200)]
    rec = recommend(s, 100.0, 0.0, pod_fits=fits, memory=memory(s))
    alone = recommend(s, 100.0, 0.0, pod_fits=[fit("big", 400)], memory=memory(s))
    assert rec.gogc == alone.gogc
    assert rec.explanation.startswith("pod big: ")
    assert not alone.explanation.startswith("pod ")


def test_a_leaking_pod_holds_every_pod_at_the_floor_and_sets_the_verdict() -> None:
    s = spec(strategy={"type": "Budget", "budget": {"leakMinSpanSeconds": 30}})
    fits = [fit("ok", 150), fit("leaky", 150, slope=3.0, r2=0.97, span=60)]
    rec = recommend(s, 100.0, 0.0, pod_fits=fits, memory=memory(s))
    assert rec.gogc == 25
    assert rec.leak is not None and rec.leak.status == "True" and rec.leak.reason == "HeapGrowing"
    assert "pod leaky" in rec.leak.message and "held at bounds.minGOGC 25" in rec.leak.message
    # The same growth seen for too short a time is not (yet) a leak.
    short = recommend(s, 100.0, 0.0, pod_fits=[fit("leaky", 150, slope=3.0, r2=0.97, span=10)],
                      memory=memory(s))
    assert short.leak is not None and short.leak.status == "False" and short.gogc > 25


def test_no_budget_or_no_heap_figures_means_no_recommendation() -> None:
    s = spec()
    with pytest.raises(StrategyUnavailable, match="needs a memory limit"):
        recommend(s, 100.0, 0.0, pod_fits=[fit("a", 100)], memory=desired_memory_limit(s, None))
    no_live = PodFit(pod="a", qps=1.0, heap_slope_mb_per_s=0.0, r2=0.5, samples=3,
                     sample=RuntimeSample(t=0.0, source="prometheus"))
    with pytest.raises(StrategyUnavailable, match="live-heap figure"):
        recommend(s, 100.0, 0.0, pod_fits=[no_live], memory=memory(s))


def test_formula_policies_are_unchanged() -> None:
    s = spec(strategy={"type": "Formula"}, memoryLimit={"mode": "Off"}, bounds={})
    rec = recommend(s, 200.0, 0.8, pod_fits=[fit("a", 100)], memory=None)
    assert (rec.strategy, rec.gogc, rec.leak) == ("Formula", 99, None)


def test_budget_needs_a_memory_limit_mode() -> None:
    with pytest.raises(ValueError, match=r"strategy\.type Budget needs memoryLimit\.mode"):
        spec(memoryLimit={"mode": "Off"})
