"""Strategies: fitted inputs -> a recommended GOGC, and the policy -> GOMEMLIMIT.

A strategy is picked by `spec.strategy.type`; each is a pure function of the fit and its own
sub-object of the spec. Adding one (e.g. `Budget`) is a new function registered in STRATEGIES.
Bounds are applied twice on purpose: the formula clamps to them (the article's own clamp, made a
policy field), and the decision step re-checks them, so no strategy can ever push a value outside.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gc_tuner.logic.formula import FormulaParams, formula_gogc
from gc_tuner.logic.memlimit import memory_limit_from, parse_quantity, render_gomemlimit
from gc_tuner.model.policy import GCPolicySpec

__all__ = [
    "STRATEGIES",
    "MemoryLimitTarget",
    "Recommendation",
    "desired_memory_limit",
    "formula_params",
    "recommend",
]


@dataclass(frozen=True, slots=True)
class Recommendation:
    gogc: int
    explanation: str
    strategy: str
    inputs: dict[str, Any] = field(default_factory=dict)  # camelCase keys, as written to status


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


def _formula(spec: GCPolicySpec, qps: float, heap_slope_mb_per_s: float) -> Recommendation:
    r = formula_gogc(qps, heap_slope_mb_per_s, formula_params(spec))
    inputs = {
        "qps": round(qps, 3),
        "heapSlopeMBPerSec": round(heap_slope_mb_per_s, 4),
        "qpsFactor": round(r.qps_factor, 4),
        "slopeFactor": round(r.slope_factor, 4),
        "uncappedGOGC": round(float(r.inputs.get("raw_gogc", r.gogc)), 2),
    }
    return Recommendation(r.gogc, r.explanation, "Formula", inputs)


STRATEGIES: dict[str, Callable[[GCPolicySpec, float, float], Recommendation]] = {"Formula": _formula}


def recommend(spec: GCPolicySpec, qps: float, heap_slope_mb_per_s: float) -> Recommendation:
    return STRATEGIES[spec.strategy.type](spec, qps, heap_slope_mb_per_s)


@dataclass(frozen=True, slots=True)
class MemoryLimitTarget:
    """GOMEMLIMIT to set: bytes and the Go-valid rendering; both None means "leave it alone"."""

    bytes: int | None
    rendered: str | None
    note: str  # why, in one line


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
