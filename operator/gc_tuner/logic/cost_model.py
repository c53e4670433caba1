"""The `Cost` strategy's model: the GOGC that minimises what GC CPU and heap overhead cost together.

The Go GC guide's model, per process, with allocation rate `a`, live heap `L`, stacks `S` and
globals `G` (go-gc-facts.md section 8):

    cycles/s          ≈ a / ((L+S+G) × GOGC/100)
    mark CPU / cycle  ≈ c × (L+S+G)
    GC CPU            ≈ c × a × 100 / GOGC          (cores; sweep and fixed costs do not depend on GOGC)
    heap overhead     ≈ (L+S+G) × GOGC / 100        (bytes above the live heap at the goal)

With a price per core-hour and per GiB-hour the cost rate is
`p_cpu × c × a × 100/GOGC + p_mem × (L+S+G) × GOGC/100`, smallest at

    GOGC* = 100 × sqrt(p_cpu × c × a / (p_mem × (L+S+G)))

Several pods share one GOGC, so the sum of their costs is minimised: the same formula with Σ c·a and
Σ (L+S+G). Then, in this order:

1. the Budget cap: never a GOGC whose predicted peak exceeds the memory budget (logic/budget.py's
   GOGC for the pod with the least room), when the policy sets a memory limit;
2. the policy's bounds;
3. damping by the fit's quality: `err`, the relative standard error of GOGC* (half the relative
   error of Σ c·a, which is the fits' own), decides how far the step from the current GOGC goes.
   Up to `max_fit_error` the whole step is taken; beyond, a share `max_fit_error / err`. A fit twice
   as uncertain as tolerated moves half-way; a fit with no information stays where it is.

Units, so the figures read alike in status, `gc-tuner recommend` and `gc-tuner analyze`: `a` in
MiB/s, `c` in CPU-milliseconds per MiB of L+S+G, byte counts in bytes. The pacer counts at least
4 MiB of L+S+G (its minimum heap goal), and so does this model.

Pure: no clock, no I/O. Non-finite figures raise ValueError instead of being clamped to a bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gc_tuner.logic.params import require_positive_order
from gc_tuner.model.sample import MiB

__all__ = [
    "HOURS_PER_MONTH",
    "MIN_BASE_BYTES",
    "CostParams",
    "CostResult",
    "PodCost",
    "cost_gogc",
    "cost_per_hour",
    "damped_gogc",
    "gc_cpu_cores",
    "heap_overhead_bytes",
    "optimal_gogc",
]

GiB = 1 << 30
HOURS_PER_MONTH = 730.0  # 365 × 24 / 12, the month cloud price lists use
MIN_BASE_BYTES = 4 * MiB  # the pacer's minimum heap goal is 4 MiB × GOGC/100


@dataclass(frozen=True, slots=True)
class CostParams:
    """Prices (per core-hour and per GiB-hour, in `currency`), the bounds and the damping tolerance."""

    cpu_per_core_hour: float = 0.040
    memory_per_gib_hour: float = 0.004
    gogc_min: int = 25
    gogc_max: int = 200
    max_fit_error: float = 0.10  # relative standard error of GOGC* up to which the whole step is taken
    currency: str = "USD"

    def __post_init__(self) -> None:
        for name in ("cpu_per_core_hour", "memory_per_gib_hour", "max_fit_error"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"CostParams.{name} must be a finite number > 0, got {v!r}")
        require_positive_order(self, "gogc_min", "gogc_max")


@dataclass(frozen=True, slots=True)
class PodCost:
    """One pod's fitted figures: allocation rate and mark cost, each with its standard error."""

    alloc_mib_per_s: float  # a, at the forecast load
    alloc_se: float
    mark_ms_per_mib: float  # c: GC CPU-ms per cycle per MiB of L+S+G
    mark_se: float
    base_bytes: int  # L+S+G

    def __post_init__(self) -> None:
        for name in ("alloc_mib_per_s", "alloc_se", "mark_ms_per_mib", "mark_se"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"PodCost.{name} must be a finite number >= 0, got {v!r}")
        if isinstance(self.base_bytes, bool) or not isinstance(self.base_bytes, int) or self.base_bytes < 0:
            raise ValueError(f"PodCost.base_bytes must be an integer >= 0, got {self.base_bytes!r}")

    @property
    def cores_at_100(self) -> float:
        """c × a: the pod's GC CPU in cores at GOGC=100."""
        return self.mark_ms_per_mib / 1000 * self.alloc_mib_per_s

    @property
    def base(self) -> int:
        return max(self.base_bytes, MIN_BASE_BYTES)


@dataclass(frozen=True, slots=True)
class CostResult:
    gogc: int
    optimal_gogc: float | None  # GOGC* before the cap, the bounds and damping; None without allocation
    target_gogc: float  # GOGC* after the Budget cap and the bounds: where a confident fit goes
    current_gogc: int
    fit_error: float | None  # relative standard error of GOGC*; None without allocation
    step_share: float  # 0..1 of the step from the current GOGC that was taken
    budget_cap: float | None
    gc_cpu_cores: float  # predicted at `gogc`, all pods
    heap_overhead_bytes: float  # predicted at `gogc`, all pods
    monthly_saving: float  # against GOGC=100, in the params' currency; negative: costs more
    explanation: str
    clamps: tuple[str, ...] = ()  # budget, bounds, damping


def gc_cpu_cores(cores_at_100: float, gogc: float) -> float:
    """GC CPU in cores at `gogc`, for Σ c·a (cores at GOGC=100)."""
    return cores_at_100 * 100.0 / gogc


def heap_overhead_bytes(base_bytes: float, gogc: float) -> float:
    """Heap above the live heap at the goal: (L+S+G) × GOGC/100."""
    return base_bytes * gogc / 100.0


def cost_per_hour(cores_at_100: float, base_bytes: float, gogc: float, p: CostParams) -> float:
    """What the GC's CPU and the heap overhead cost per hour at `gogc`."""
    return (
        p.cpu_per_core_hour * gc_cpu_cores(cores_at_100, gogc)
        + p.memory_per_gib_hour * heap_overhead_bytes(base_bytes, gogc) / GiB
    )


def optimal_gogc(cores_at_100: float, base_bytes: float, p: CostParams) -> float:
    """GOGC* = 100 × sqrt(p_cpu × c·a / (p_mem × (L+S+G))), L+S+G in GiB."""
    if base_bytes <= 0:
        raise ValueError(f"L+S+G must be > 0 bytes, got {base_bytes!r}")
    g = 100.0 * math.sqrt(p.cpu_per_core_hour * cores_at_100 / (p.memory_per_gib_hour * base_bytes / GiB))
    if not math.isfinite(g):
        raise ValueError(f"GOGC* is not a finite number for c·a {cores_at_100!r} cores, L+S+G {base_bytes!r}")
    return g


def damped_gogc(
    current: float, target: float, fit_error: float | None, max_fit_error: float
) -> tuple[float, float]:
    """(GOGC, share of the step taken): the whole step up to `max_fit_error`, beyond it a share
    `max_fit_error / fit_error`; no step without an error figure (nothing was fitted)."""
    if fit_error is None or not math.isfinite(fit_error):
        return current, 0.0
    share = 1.0 if fit_error <= max_fit_error else max_fit_error / fit_error
    return current + share * (target - current), share


def _fit_error(pods: Sequence[PodCost], total: float) -> float:
    """Relative standard error of GOGC*: half that of Σ c·a (first-order error propagation)."""
    var = 0.0
    for pc in pods:
        ca = pc.cores_at_100
        if ca <= 0:
            continue
        ra = pc.alloc_se / pc.alloc_mib_per_s
        rc = pc.mark_se / pc.mark_ms_per_mib
        var += ca * ca * (ra * ra + rc * rc)
    return 0.5 * math.sqrt(var) / total


def _bounded(x: float, p: CostParams) -> float:
    return max(float(p.gogc_min), min(float(p.gogc_max), x))


def cost_gogc(
    pods: Sequence[PodCost],
    p: CostParams,
    *,
    current_gogc: int | None = None,
    budget_cap: float | None = None,
) -> CostResult:
    """One GOGC for `pods`: GOGC*, capped by the budget (`budget_cap`, a GOGC; None: no memory limit),
    bounded, then damped from `current_gogc` (None: Go's default 100) by the fit's quality."""
    if not pods:
        raise ValueError("the cost model needs at least one pod's figures")
    if budget_cap is not None and not math.isfinite(budget_cap):
        raise ValueError(f"the budget cap must be a finite GOGC, got {budget_cap!r}")
    current = 100 if current_gogc is None else current_gogc
    ca = sum(pc.cores_at_100 for pc in pods)
    base = float(sum(pc.base for pc in pods))
    clamps: list[str] = []
    if ca > 0:
        opt: float | None = optimal_gogc(ca, base, p)
        assert opt is not None
        err: float | None = _fit_error(pods, ca)
        target = opt
        if budget_cap is not None and budget_cap < target:
            target = budget_cap
            clamps.append("budget")
    else:  # nothing allocates: GC CPU is nil at any GOGC, so there is nothing to trade; stay
        opt, err, target = None, None, float(current)
    if _bounded(target, p) != target:
        clamps.append("bounds")
    target = _bounded(target, p)
    value, share = damped_gogc(float(current), target, err, p.max_fit_error)
    if share < 1.0 and value != target:
        clamps.append("damping")
    gogc = _integer(value, budget_cap, p)
    return _result(pods, p, gogc, opt, target, current, err, share, budget_cap, tuple(clamps), ca, base)


def _integer(value: float, budget_cap: float | None, p: CostParams) -> int:
    """Rounded to the nearest integer, but never above the budget cap; the bounds win over the cap
    (the policy forbids a lower GOGC; GOMEMLIMIT catches the rest, as with Budget)."""
    g = round(value)
    if budget_cap is not None:
        g = min(g, math.floor(budget_cap))
    return int(_bounded(g, p))


def _result(
    pods: Sequence[PodCost],
    p: CostParams,
    gogc: int,
    opt: float | None,
    target: float,
    current: int,
    err: float | None,
    share: float,
    cap: float | None,
    clamps: tuple[str, ...],
    ca: float,
    base: float,
) -> CostResult:
    saving = (cost_per_hour(ca, base, 100, p) - cost_per_hour(ca, base, gogc, p)) * HOURS_PER_MONTH
    a = sum(pc.alloc_mib_per_s for pc in pods)
    c = ca * 1000 / a if a > 0 else 0.0
    if opt is None:
        explanation = f"GOGC {gogc}: nothing allocates, so GC CPU does not depend on GOGC; kept at {current}"
    else:
        explanation = (
            f"GOGC {gogc} from GOGC* = 100 × sqrt({p.cpu_per_core_hour:g} {p.currency}/core-h"
            f" × c {c:.3g} ms/MiB × a {a:.3g} MiB/s / ({p.memory_per_gib_hour:g} {p.currency}/GiB-h"
            f" × L+S+G {base / MiB:.1f} MiB)) = {opt:.1f}"
        )
        notes = []
        if "budget" in clamps:
            notes.append(f"capped at {cap:.1f} by the memory budget")
        if "bounds" in clamps:
            notes.append(f"bounded to [{p.gogc_min}, {p.gogc_max}]")
        if "damping" in clamps:
            notes.append(
                f"fit error {err:.0%} > {p.max_fit_error:.0%}: {share:.0%} of the step from {current} "
                f"to {target:.1f}"
            )
        if notes:
            explanation += " (" + "; ".join(notes) + ")"
    explanation += (
        f"; predicted GC CPU {gc_cpu_cores(ca, gogc):.3g} cores, heap overhead "
        f"{heap_overhead_bytes(base, gogc) / MiB:.1f} MiB, {saving:+.2f} {p.currency}/month against GOGC=100"
    )
    return CostResult(
        gogc=gogc,
        optimal_gogc=opt,
        target_gogc=target,
        current_gogc=current,
        fit_error=err,
        step_share=share,
        budget_cap=cap,
        gc_cpu_cores=gc_cpu_cores(ca, gogc),
        heap_overhead_bytes=heap_overhead_bytes(base, gogc),
        monthly_saving=saving,
        explanation=explanation,
        clamps=clamps,
    )
