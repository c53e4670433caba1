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
    Cost      the GOGC that minimises the priced sum of GC CPU and heap overhead over every pod
              (logic/cost_model.py), from each pod's history (logic/cost_fit.py); capped by Budget's
              GOGC when there is a memory limit, damped toward the current GOGC when the fit is poor.

Bounds are applied twice on purpose: the formula clamps to them (the article's own clamp, made a
policy field), and the decision step re-checks them, so no strategy can ever push a value outside.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from gc_tuner.logic.budget import BudgetParams, BudgetResult, budget_gogc
from gc_tuner.logic.cost_fit import (
    AllocFit,
    NotEnoughData,
    alloc_from_samples,
    base_from_samples,
    fit_cycles,
    mark_from_samples,
)
from gc_tuner.logic.cost_model import CostParams, CostResult, PodCost, cost_gogc
from gc_tuner.logic.formula import FormulaParams, formula_gogc
from gc_tuner.logic.memlimit import memory_limit_from, parse_quantity, render_gomemlimit
from gc_tuner.model.policy import GCPolicySpec
from gc_tuner.model.sample import GCCycle, MiB, RuntimeSample
from gc_tuner.tuning.discovery import WorkloadInfo
from gc_tuner.tuning.records import FALSE, TRUE, FitSummary, PodFit, PodTarget, Verdict

if TYPE_CHECKING:
    from gc_tuner.tuning.state import PodState

__all__ = [
    "STRATEGIES",
    "MemoryLimitTarget",
    "PodHistory",
    "Recommendation",
    "Strategy",
    "StrategyInput",
    "StrategyUnavailable",
    "WindowHistories",
    "budget_params",
    "cost_params",
    "desired_memory_limit",
    "formula_params",
    "memory_target",
    "non_heap_bytes",
    "recommend",
    "recommend_for",
]


_T = TypeVar("_T")


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
class PodHistory:
    """One pod's window since its process started: its samples and gctrace cycles, oldest first."""

    samples: Sequence[RuntimeSample] = ()
    cycles: Sequence[GCCycle] = ()


class WindowHistories(Mapping[str, PodHistory]):
    """Each pod's history read from its windows when a strategy asks (only Cost does), so the cycle
    hands every strategy the same input without copying every pod's window each cycle."""

    def __init__(self, pods: Mapping[str, PodState]) -> None:
        self._pods = pods

    def __getitem__(self, name: str) -> PodHistory:
        ps = self._pods[name]
        samples, cycles = ps.window.segments(), ps.trace.segments()
        # The newest segment only: rates and costs never cross a process restart.
        return PodHistory(tuple(samples[-1]) if samples else (), tuple(cycles[-1]) if cycles else ())

    def __iter__(self) -> Iterator[str]:
        return iter(self._pods)

    def __len__(self) -> int:
        return len(self._pods)


@dataclass(frozen=True, slots=True)
class StrategyInput:
    """Everything a strategy may use; each takes what it needs."""

    spec: GCPolicySpec
    qps: float
    heap_slope_mb_per_s: float
    pod_fits: Sequence[PodFit] = ()
    memory: MemoryLimitTarget | None = None
    histories: Mapping[str, PodHistory] = field(default_factory=dict)  # by pod name


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
    # A fit never spans more than its window (less a sample or two that may be missing): a longer
    # required span would switch leak suspicion off without a word.
    w = spec.sampling
    span = min(b.leak_min_span_seconds, w.window_seconds - 2 * w.interval_seconds)
    return BudgetParams(
        gogc_min=spec.bounds.min_gogc,
        gogc_max=spec.bounds.max_gogc,
        horizon_s=float(horizon),
        leak_min_slope_mb_per_s=ld.min_heap_slope_milli_mb_per_second / 1000,
        leak_min_r2=ld.min_r2_milli / 1000,
        leak_min_span_s=float(span),
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


def cost_params(spec: GCPolicySpec) -> CostParams:
    """The Cost sub-object's integer milli-unit prices as the model's floats; bounds as its clamp."""
    c = spec.strategy.cost
    return CostParams(
        cpu_per_core_hour=c.cpu_per_core_hour_milli / 1000,
        memory_per_gib_hour=c.memory_per_gib_hour_milli / 1000,
        gogc_min=spec.bounds.min_gogc,
        gogc_max=spec.bounds.max_gogc,
        max_fit_error=c.max_fit_error_percent / 100,
        currency=c.currency,
    )


def cost_horizon_s(spec: GCPolicySpec) -> float:
    """How far ahead the QPS is forecast (and the live heap, for the budget cap): unset, the cooldown."""
    h = spec.strategy.cost.horizon_seconds
    return float(h if h is not None else spec.rollout.cooldown_seconds)


def _pod_cost(h: PodHistory, horizon_s: float) -> tuple[PodCost, AllocFit | None]:
    """One pod's a, c and L+S+G from its runtime samples where they carry them, else from its gctrace;
    with the sample fit of `a` (QPS, forecast) when there is one."""
    why: list[str] = []

    def attempt(f: Callable[[], _T]) -> _T | None:
        try:
            return f()
        except NotEnoughData as e:
            why.append(str(e))
            return None

    mark = attempt(lambda: mark_from_samples(h.samples)[0])
    alloc = attempt(lambda: alloc_from_samples(h.samples, horizon_s))
    base = attempt(lambda: base_from_samples(h.samples))
    a = alloc.alloc if alloc is not None else None
    if mark is None or a is None or base is None:
        if not h.cycles:
            raise NotEnoughData("; ".join(why) + "; no gctrace cycles either")
        try:
            trace = fit_cycles(h.cycles)
        except NotEnoughData as e:
            raise NotEnoughData("; ".join(why) + f"; gctrace: {e}") from None
        mark = mark if mark is not None else trace.mark
        a = a if a is not None else trace.alloc
        base = base if base is not None else trace.base_bytes
    return PodCost(a.value, a.se, mark.value, mark.se, base), alloc


def _budget_cap(inp: StrategyInput, horizon_s: float) -> tuple[float | None, str | None]:
    """The lowest Budget GOGC (before bounds) over the pods, and the pod it comes from; (None, None)
    without a memory limit or live-heap figures."""
    memory, spec = inp.memory, inp.spec
    if memory is None or memory.bytes is None:
        return None, None
    floor = spec.strategy.budget.min_non_heap_mib * MiB
    params = BudgetParams(gogc_min=spec.bounds.min_gogc, gogc_max=spec.bounds.max_gogc, horizon_s=horizon_s)
    best: tuple[float, str] | None = None
    for pf in inp.pod_fits:
        s, limit = pf.sample, memory.for_pod(pf.pod)
        if s is None or s.live_heap_bytes is None or limit is None:
            continue
        r = budget_gogc(
            budget_bytes=limit,
            live_bytes=s.live_heap_bytes,
            heap_slope_mb_per_s=pf.heap_slope_mb_per_s or 0.0,
            stacks_bytes=s.stacks_bytes or 0,
            globals_bytes=s.globals_bytes or 0,
            non_heap_bytes=non_heap_bytes(s, floor),
            params=params,
        )
        if r.raw_gogc is not None and (best is None or r.raw_gogc < best[0]):
            best = (max(0.0, r.raw_gogc), pf.pod)
    return best if best is not None else (None, None)


def _current_gogc(pod_fits: Sequence[PodFit]) -> int | None:
    """The GOGC the pods run (median); None when no source says (Go's default 100 is then assumed)."""
    values = sorted(pf.sample.gogc for pf in pod_fits if pf.sample is not None and pf.sample.gogc is not None)
    return values[len(values) // 2] if values else None


def _cost(inp: StrategyInput) -> Recommendation:
    spec = inp.spec
    params, horizon = cost_params(spec), cost_horizon_s(spec)
    pods: list[PodCost] = []
    fits: list[AllocFit] = []
    missing: list[str] = []
    for pf in inp.pod_fits:
        try:
            pc, af = _pod_cost(inp.histories.get(pf.pod, PodHistory()), horizon)
        except NotEnoughData as e:
            missing.append(f"{pf.pod}: {e}")
            continue
        pods.append(pc)
        fits += [af] if af is not None else []
    if not pods:
        why = "; ".join(missing[:3]) if missing else "no pod sampled"
        raise StrategyUnavailable(f"the Cost strategy cannot fit a and c yet: {why}")
    cap, cap_pod = _budget_cap(inp, horizon)
    r = cost_gogc(pods, params, current_gogc=_current_gogc(inp.pod_fits), budget_cap=cap)
    explanation = r.explanation
    if "budget" in r.clamps and cap_pod is not None and len(inp.pod_fits) > 1:
        explanation += f" (budget of pod {cap_pod})"
    if len(pods) < len(inp.pod_fits):
        explanation += f"; {len(pods)} of {len(inp.pod_fits)} pods fitted"
    return Recommendation(r.gogc, explanation, "Cost", _cost_inputs(inp.qps, pods, fits, r, params, horizon))


def _cost_inputs(
    qps: float,
    pods: Sequence[PodCost],
    fits: Sequence[AllocFit],
    r: CostResult,
    p: CostParams,
    horizon: float,
) -> dict[str, Any]:
    """The status inputs: Deployment totals (a, L+S+G, predictions), c weighted by allocation."""
    a = sum(p.alloc_mib_per_s for p in pods)
    inputs: dict[str, Any] = {
        "qps": round(qps, 3),
        "allocMiBPerSec": round(a, 4),
        "markCPUMsPerMiB": round(sum(p.cores_at_100 for p in pods) * 1000 / a, 6) if a > 0 else 0.0,
        "liveStacksGlobalsBytes": sum(p.base for p in pods),
        "horizonSeconds": horizon,
        "currentGOGC": r.current_gogc,
        "stepShare": round(r.step_share, 4),
        "predictedGCCPUCores": round(r.gc_cpu_cores, 6),
        "predictedHeapOverheadBytes": round(r.heap_overhead_bytes),
        "predictedMonthlySaving": round(r.monthly_saving, 4),
        "currency": p.currency,
    }
    forecasts = [f.qps_forecast for f in fits if f.qps_forecast is not None]
    if forecasts:
        inputs["forecastQPS"] = round(sum(forecasts), 3)
    if r.optimal_gogc is not None:
        inputs["uncappedGOGC"] = round(r.optimal_gogc, 2)
    if r.fit_error is not None:
        inputs["fitRelativeError"] = round(r.fit_error, 4)
    if r.budget_cap is not None:
        inputs["budgetCapGOGC"] = round(r.budget_cap, 2)
    return inputs


def recommend(
    spec: GCPolicySpec,
    qps: float,
    heap_slope_mb_per_s: float,
    *,
    pod_fits: Sequence[PodFit] = (),
    memory: MemoryLimitTarget | None = None,
    histories: Mapping[str, PodHistory] | None = None,
) -> Recommendation:
    """The policy's strategy on this cycle's fit; StrategyUnavailable when it lacks an input."""
    strategy = STRATEGIES[spec.strategy.type]
    return strategy(StrategyInput(spec, qps, heap_slope_mb_per_s, tuple(pod_fits), memory, histories or {}))


STRATEGIES: dict[str, Strategy] = {"Formula": _formula, "Budget": _budget, "Cost": _cost}


def recommend_for(
    spec: GCPolicySpec,
    fit: FitSummary,
    pod_fits: Sequence[PodFit],
    memory: MemoryLimitTarget,
    histories: Mapping[str, PodHistory] | None = None,
) -> tuple[Recommendation | None, str | None]:
    """The recommend step: the policy's strategy on the Deployment's fit, with the memory limit it was
    made for among its inputs; (None, why) when the strategy lacks an input, (None, None) while the
    fit is incomplete (the fit says why)."""
    if fit.qps is None or fit.heap_slope_mb_per_s is None:
        return None, None
    try:
        rec = recommend(
            spec, fit.qps, fit.heap_slope_mb_per_s, pod_fits=pod_fits, memory=memory, histories=histories
        )
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
