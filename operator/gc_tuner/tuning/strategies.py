"""Strategies: fitted inputs -> a recommended GOGC, and the policy -> GOMEMLIMIT.

A strategy is picked by `spec.strategy.type` from STRATEGIES; each is a pure function of one
StrategyInput (the spec, the Deployment's fit, every pod's fit and the GOMEMLIMIT target) that
returns a Recommendation or raises StrategyUnavailable naming what it lacks. Adding one is a new
function registered in STRATEGIES (and a value of the CRD's strategy.type); the cycle never names
a strategy.

    Formula   the article's formula on the Deployment's median QPS and heap slope
    Budget    per pod, the GOGC whose heap goal fits the memory budget over the horizon; the lowest
              wins (one GOGC for every pod must fit the pod with the least room). Its leak verdict
              replaces the generic one: on a suspected leak it holds GOGC at the floor
              (`Recommendation.holds_for_leak`), and LeakSuspected must say why.

Bounds are applied twice on purpose: the formula clamps to them (the article's own clamp, made a
policy field), and the decision step re-checks them, so no strategy can ever push a value outside.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gc_tuner.logic.budget import BudgetParams, BudgetResult, budget_gogc
from gc_tuner.logic.formula import FormulaParams, formula_gogc
from gc_tuner.logic.memlimit import memory_limit_from, parse_quantity, render_gomemlimit
from gc_tuner.model.policy import GCPolicySpec
from gc_tuner.model.sample import MiB, RuntimeSample
from gc_tuner.tuning.discovery import WorkloadInfo
from gc_tuner.tuning.records import FALSE, TRUE, FitSummary, PodFit, PodTarget, Verdict

__all__ = [
    "STRATEGIES",
    "MemoryLimitTarget",
    "Recommendation",
    "Strategy",
    "StrategyInput",
    "StrategyUnavailable",
    "budget_params",
    "desired_memory_limit",
    "formula_params",
    "memory_target",
    "non_heap_bytes",
    "recommend",
    "recommend_for",
]


class StrategyUnavailable(Exception):
    """The strategy cannot recommend from what this cycle knows; the message says what is missing."""


@dataclass(frozen=True, slots=True)
class Recommendation:
    gogc: int
    explanation: str
    strategy: str
    inputs: dict[str, Any] = field(default_factory=dict)  # camelCase keys, as written to status
    leak: Verdict | None = None  # the strategy's own leak verdict (Budget); None: the generic one stands

    @property
    def holds_for_leak(self) -> bool:
        """The strategy holds GOGC at the floor for a suspected leak (the decision may skip the cooldown)."""
        return self.leak is not None and self.leak.true


@dataclass(frozen=True, slots=True)
class StrategyInput:
    """Everything a strategy may use; each takes what it needs."""

    spec: GCPolicySpec
    qps: float
    heap_slope_mb_per_s: float
    pod_fits: Sequence[PodFit] = ()
    memory: MemoryLimitTarget | None = None


class Strategy(Protocol):
    def __call__(self, inp: StrategyInput, /) -> Recommendation: ...


def formula_params(spec: GCPolicySpec) -> FormulaParams:
    """The spec's integer milli-unit constants as the formula's floats; bounds become its clamp."""
    f = spec.strategy.formula
    return FormulaParams(
        qps_pivot=f.qps_pivot_milli / 1000,
        qps_scale=f.qps_scale_milli / 1000,
        qps_factor_min=f.qps_factor_min_milli / 1000,
        qps_factor_max=f.qps_factor_max_milli / 1000,
        slope_coefficient=f.slope_coefficient_milli / 1000,
        slope_factor_min=f.slope_factor_min_milli / 1000,
        base_gogc=float(f.base_gogc),
        gogc_min=spec.bounds.min_gogc,
        gogc_max=spec.bounds.max_gogc,
    )


def _formula(inp: StrategyInput) -> Recommendation:
    qps, heap_slope_mb_per_s = inp.qps, inp.heap_slope_mb_per_s
    r = formula_gogc(qps, heap_slope_mb_per_s, formula_params(inp.spec))
    inputs = {
        "qps": round(qps, 3),
        "heapSlopeMBPerSec": round(heap_slope_mb_per_s, 4),
        "qpsFactor": round(r.qps_factor, 4),
        "slopeFactor": round(r.slope_factor, 4),
        "uncappedGOGC": round(float(r.inputs.get("raw_gogc", r.gogc)), 2),
    }
    return Recommendation(r.gogc, r.explanation, "Formula", inputs)


def budget_params(spec: GCPolicySpec) -> BudgetParams:
    """The Budget sub-object, the bounds and leakDetection as the strategy's parameters."""
    b, ld = spec.strategy.budget, spec.leak_detection
    horizon = b.horizon_seconds if b.horizon_seconds is not None else spec.rollout.cooldown_seconds
    return BudgetParams(
        gogc_min=spec.bounds.min_gogc,
        gogc_max=spec.bounds.max_gogc,
        horizon_s=float(horizon),
        leak_min_slope_mb_per_s=ld.min_heap_slope_milli_mb_per_second / 1000,
        leak_min_r2=ld.min_r2_milli / 1000,
        leak_min_span_s=float(b.leak_min_span_seconds),
        leak_max_time_to_budget_s=float(b.leak_max_time_to_budget_seconds),
    )


def non_heap_bytes(sample: RuntimeSample, floor: int) -> int:
    """Memory the process holds beyond its heap goal: total − released − goal, at least `floor`.

    In a steady state this is runtime metadata, stacks, fragmentation and free spans the scavenger
    has not returned: what the peak adds on top of the goal. Just after GOGC went down it is too
    high until the scavenger catches up, which errs toward a lower GOGC.
    """
    if sample.total_memory_bytes is None or sample.heap_goal_bytes is None:
        return floor
    held = sample.total_memory_bytes - (sample.heap_released_bytes or 0)
    return max(floor, held - sample.heap_goal_bytes)


def _budget(inp: StrategyInput) -> Recommendation:
    spec, qps, pod_fits, memory = inp.spec, inp.qps, inp.pod_fits, inp.memory
    if memory is None or memory.bytes is None:
        why = memory.note if memory is not None else "no memory limit given"
        raise StrategyUnavailable(f"the Budget strategy needs a memory limit to take the budget from: {why}")
    params = budget_params(spec)
    floor = spec.strategy.budget.min_non_heap_mib * MiB
    best: tuple[str, BudgetResult] | None = None
    usable = 0
    for pf in pod_fits:
        s = pf.sample
        if pf.heap_slope_mb_per_s is None or s is None or s.live_heap_bytes is None:
            continue
        usable += 1
        r = budget_gogc(
            budget_bytes=memory.bytes,
            live_bytes=s.live_heap_bytes,
            heap_slope_mb_per_s=pf.heap_slope_mb_per_s,
            stacks_bytes=s.stacks_bytes or 0,
            globals_bytes=s.globals_bytes or 0,
            non_heap_bytes=non_heap_bytes(s, floor),
            r2=pf.r2,
            span_s=pf.heap_span_s,
            params=params,
        )
        # The pod with the least room decides; at equal GOGC a leak verdict wins, so it is reported.
        if best is None or (r.gogc, not r.leak_suspected) < (best[1].gogc, not best[1].leak_suspected):
            best = (pf.pod, r)
    if best is None:
        raise StrategyUnavailable("the Budget strategy needs a pod with a live-heap figure and a heap slope")
    pod, r = best
    i = r.inputs
    inputs: dict[str, Any] = {
        "qps": round(qps, 3),
        "heapSlopeMBPerSec": round(float(i["heap_slope_mb_per_s"]), 4),
        "liveBytes": int(i["live_bytes"]),
        "predictedLiveBytes": int(i["live_pred_bytes"]),
        "stacksBytes": int(i["stacks_bytes"]),
        "globalsBytes": int(i["globals_bytes"]),
        "nonHeapBytes": int(i["non_heap_bytes"]),
        "budgetBytes": r.gomemlimit_bytes,
        "horizonSeconds": params.horizon_s,
    }
    if r.raw_gogc is not None:
        inputs["uncappedGOGC"] = round(r.raw_gogc, 2)
    if r.time_to_budget_s is not None:
        inputs["timeToBudgetSeconds"] = round(r.time_to_budget_s, 1)
    where = f"pod {pod}: " if usable > 1 else ""
    leak = (
        Verdict(TRUE, "HeapGrowing", f"{where}{r.leak_reason}; GOGC held at bounds.minGOGC {r.gogc}")
        if r.leak_suspected
        else Verdict(FALSE, "NoLeak", f"{where}{r.leak_reason}")
    )
    return Recommendation(r.gogc, where + r.explanation, "Budget", inputs, leak)


def recommend(
    spec: GCPolicySpec,
    qps: float,
    heap_slope_mb_per_s: float,
    *,
    pod_fits: Sequence[PodFit] = (),
    memory: MemoryLimitTarget | None = None,
) -> Recommendation:
    """The policy's strategy on this cycle's fit; StrategyUnavailable when it lacks an input."""
    strategy = STRATEGIES[spec.strategy.type]
    return strategy(StrategyInput(spec, qps, heap_slope_mb_per_s, tuple(pod_fits), memory))


STRATEGIES: dict[str, Strategy] = {"Formula": _formula, "Budget": _budget}


def recommend_for(
    spec: GCPolicySpec, fit: FitSummary, pod_fits: Sequence[PodFit], memory: MemoryLimitTarget
) -> tuple[Recommendation | None, str | None]:
    """The recommend step: the policy's strategy on the Deployment's fit, with the memory limit it was
    made for among its inputs; (None, why) when the strategy lacks an input, (None, None) while the
    fit is incomplete (the fit says why)."""
    if fit.qps is None or fit.heap_slope_mb_per_s is None:
        return None, None
    try:
        rec = recommend(spec, fit.qps, fit.heap_slope_mb_per_s, pod_fits=pod_fits, memory=memory)
    except StrategyUnavailable as e:
        return None, str(e)
    if memory.bytes is not None:
        rec = dataclasses.replace(rec, inputs={**rec.inputs, "memoryLimitBytes": memory.bytes})
    return rec, None


@dataclass(frozen=True, slots=True)
class MemoryLimitTarget:
    """GOMEMLIMIT to set: bytes and the Go-valid rendering; both None means "leave it alone"."""

    bytes: int | None
    rendered: str | None
    note: str  # why, in one line
    # Each pod's own limit in bytes where it differs by pod: during a rollout old and new pods may
    # have different container limits (FromContainerLimit). A pod not named here takes `bytes`.
    per_pod: Mapping[str, int | None] = field(default_factory=dict)

    def for_pod(self, name: str) -> int | None:
        return self.per_pod.get(name, self.bytes)


def desired_memory_limit(spec: GCPolicySpec, container_limit: str | int | None) -> MemoryLimitTarget:
    """GOMEMLIMIT for the policy and the container's resources.limits.memory (a quantity or bytes)."""
    ml = spec.memory_limit
    if ml.mode == "Off":
        return MemoryLimitTarget(None, None, "memoryLimit.mode is Off")
    if ml.mode == "Fixed":
        assert ml.fixed is not None  # the model guarantees it
        n = parse_quantity(ml.fixed)
        return MemoryLimitTarget(n, render_gomemlimit(n), f"fixed {ml.fixed}")
    if container_limit is None:
        return MemoryLimitTarget(None, None, "the container has no memory limit; GOMEMLIMIT left alone")
    limit = container_limit if isinstance(container_limit, int) else parse_quantity(container_limit)
    n = memory_limit_from(limit, ml.percent)
    return MemoryLimitTarget(
        n, render_gomemlimit(n), f"{ml.percent}% of the container limit {container_limit}"
    )


def memory_target(
    spec: GCPolicySpec, workload: WorkloadInfo | None, pods: Sequence[PodTarget]
) -> MemoryLimitTarget:
    """The Deployment's GOMEMLIMIT target: from its container's limit, or without a Deployment
    (`gc-tuner local`) from the lowest limit given with the targets."""
    if spec.memory_limit.mode != "FromContainerLimit":
        return desired_memory_limit(spec, None)
    if workload is not None:
        target = desired_memory_limit(spec, workload.memory_limit)
    else:
        limits = sorted({p.memory_limit for p in pods if p.memory_limit is not None})
        target = desired_memory_limit(spec, limits[0] if limits else None)
    per_pod = {p.name: desired_memory_limit(spec, p.memory_limit).bytes for p in pods}
    return dataclasses.replace(target, per_pod=per_pod)
