"""The `Budget` strategy: the largest GOGC whose predicted peak stays inside a memory budget.

The Go pacer (1.18+) sets the heap goal to `live + (live + stacks + globals) × GOGC / 100`, and the
process's peak memory is about that goal plus what lives outside the heap (runtime metadata, OS
thread stacks, free spans not yet scavenged). Solving "goal + non_heap ≤ budget" for GOGC, with the
live heap predicted one horizon ahead (the next cooldown: the soonest the value can change again):

    live_pred = live + max(0, slope) × horizon
    GOGC      = 100 × (budget − live_pred − non_heap) / (live_pred + stacks + globals)

then clamped to the policy's bounds and truncated to an integer (rounding down errs toward less
memory). GOMEMLIMIT is set to the budget itself, a backstop for what the prediction misses: a burst
above the fitted slope, fragmentation, a pod whose live heap is larger than the others'.

**Leak suspicion.** A steadily growing live heap makes live_pred approach the budget, and the formula
would answer with an ever lower GOGC each cycle: more GC CPU for the same leak, a rollout per cycle,
and at the end a GC death spiral under the memory limit. So a suspected leak holds GOGC at the
bounds' floor at once and says so, instead of descending step by step. A leak is suspected when all
of these hold:

- the live-heap slope is at least `leak_min_slope_mb_per_s` (default 0.1 MB/s);
- the fit explains the data: r² ≥ `leak_min_r2` (default 0.8), so a noisy heap is not a leak;
- the growth is sustained: the fit spans at least `leak_min_span_s` seconds;
- at that slope the live heap reaches the budget (less non-heap memory) within
  `leak_max_time_to_budget_s` (default one hour). Slower growth is handled by the prediction alone.

Without an r² or a span (a caller that has no fit) no leak can be suspected; the explanation says so.
Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from gc_tuner.logic.memlimit import render_gomemlimit
from gc_tuner.model.sample import MiB

__all__ = ["DEFAULT_BUDGET_PARAMS", "BudgetParams", "BudgetResult", "budget_gogc", "time_to_budget_s"]


@dataclass(frozen=True, slots=True)
class BudgetParams:
    """The strategy's knobs; bounds are the policy's, the leak thresholds its leakDetection's."""

    gogc_min: int = 25
    gogc_max: int = 200
    horizon_s: float = 300.0  # how far ahead the live heap is predicted (the cooldown)
    leak_min_slope_mb_per_s: float = 0.1
    leak_min_r2: float = 0.8
    leak_min_span_s: float = 60.0
    leak_max_time_to_budget_s: float = 3600.0

    def __post_init__(self) -> None:
        for name in ("horizon_s", "leak_min_slope_mb_per_s", "leak_min_r2", "leak_min_span_s",
                     "leak_max_time_to_budget_s"):
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"BudgetParams.{name} must be a finite number >= 0, got {v!r}")
        if self.leak_min_r2 > 1:
            raise ValueError(f"BudgetParams.leak_min_r2 must be within 0..1, got {self.leak_min_r2}")
        if not 0 < self.gogc_min <= self.gogc_max:
            raise ValueError(
                f"BudgetParams needs 0 < gogc_min <= gogc_max, got {self.gogc_min} and {self.gogc_max}"
            )


DEFAULT_BUDGET_PARAMS = BudgetParams()


@dataclass(frozen=True, slots=True)
class BudgetResult:
    gogc: int
    gomemlimit_bytes: int  # the budget: GOMEMLIMIT as a backstop
    gomemlimit: str  # the same, rendered in Go's syntax
    explanation: str  # one line; names the clamp or the leak when either decided the value
    inputs: dict[str, Any] = field(default_factory=dict)
    leak_suspected: bool = False
    leak_reason: str = ""  # why a leak is (or is not) suspected, one line
    clamps: tuple[str, ...] = ()  # heap_slope, gogc
    raw_gogc: float | None = None  # before clamping; None when the heap is empty (no finite value)
    time_to_budget_s: float | None = None  # at the current slope; None when the heap does not grow


def _mib(n: float) -> str:
    return f"{n / MiB:.0f} MiB"


def _check_bytes(name: str, v: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{name} must be an integer number of bytes, got {v!r}")
    if v < 0:
        raise ValueError(f"{name} must be >= 0 bytes, got {v}")


def time_to_budget_s(
    *, budget_bytes: int, live_bytes: int, non_heap_bytes: int, heap_slope_mb_per_s: float
) -> float | None:
    """Seconds until the live heap fills the budget less non-heap memory; None if it does not grow."""
    if heap_slope_mb_per_s <= 0:
        return None
    room = budget_bytes - non_heap_bytes - live_bytes
    return max(0.0, room / (heap_slope_mb_per_s * MiB))


def _leak(
    slope: float, r2: float | None, span_s: float | None, ttb: float | None, p: BudgetParams
) -> tuple[bool, str]:
    if slope < p.leak_min_slope_mb_per_s or slope <= 0:
        return False, f"live heap slope {slope:+.3g} MB/s is below {p.leak_min_slope_mb_per_s:g} MB/s"
    if r2 is None or span_s is None:
        return False, "no fit quality (r², span) given, so no leak can be suspected"
    if r2 < p.leak_min_r2:
        return False, f"live heap grows {slope:.3g} MB/s but r² {r2:.2f} < {p.leak_min_r2:g}: noisy, no leak"
    if span_s < p.leak_min_span_s:
        return False, f"growth seen over {span_s:.0f}s only, {p.leak_min_span_s:g}s make it sustained"
    assert ttb is not None  # slope > 0
    if ttb > p.leak_max_time_to_budget_s:
        return False, (
            f"live heap grows {slope:.3g} MB/s (r² {r2:.2f}) but reaches the budget only in {ttb:.0f}s "
            f"(> {p.leak_max_time_to_budget_s:g}s); the prediction covers it"
        )
    return True, (
        f"live heap grows {slope:.3g} MB/s with r² {r2:.2f} over {span_s:.0f}s and reaches the budget "
        f"in {ttb:.0f}s"
    )


def budget_gogc(
    *,
    budget_bytes: int,
    live_bytes: int,
    heap_slope_mb_per_s: float,
    stacks_bytes: int = 0,
    globals_bytes: int = 0,
    non_heap_bytes: int = 0,
    r2: float | None = None,
    span_s: float | None = None,
    params: BudgetParams = DEFAULT_BUDGET_PARAMS,
) -> BudgetResult:
    """GOGC and GOMEMLIMIT for a memory budget (bytes) and the process's current heap figures.

    `heap_slope_mb_per_s` is the fitted live-heap growth in MiB/s; `r2` and `span_s` are that fit's
    quality and time span (both needed for leak suspicion).
    """
    if isinstance(budget_bytes, bool) or not isinstance(budget_bytes, int):
        raise ValueError(f"budget must be an integer number of bytes, got {budget_bytes!r}")
    if budget_bytes <= 0:
        raise ValueError(f"budget must be > 0 bytes, got {budget_bytes}")
    for name, v in (("live heap", live_bytes), ("stacks", stacks_bytes), ("globals", globals_bytes),
                    ("non-heap memory", non_heap_bytes)):
        _check_bytes(name, v)
    if not math.isfinite(heap_slope_mb_per_s):
        raise ValueError(f"heap slope must be a finite number of MB/s, got {heap_slope_mb_per_s!r}")
    if r2 is not None and not (math.isfinite(r2) and 0 <= r2 <= 1):
        raise ValueError(f"r² must be within 0..1, got {r2!r}")
    if span_s is not None and not (math.isfinite(span_s) and span_s >= 0):
        raise ValueError(f"fit span must be a finite number of seconds >= 0, got {span_s!r}")
    p = params
    gomemlimit = render_gomemlimit(budget_bytes)
    clamps: list[str] = []

    slope_used = max(0.0, heap_slope_mb_per_s)
    if heap_slope_mb_per_s < 0:
        clamps.append("heap_slope")  # a shrinking heap is not counted on to keep shrinking
    live_pred = live_bytes + slope_used * MiB * p.horizon_s
    room = budget_bytes - live_pred - non_heap_bytes
    base = live_pred + stacks_bytes + globals_bytes
    raw: float | None = 100.0 * room / base if base > 0 else None
    ttb = time_to_budget_s(
        budget_bytes=budget_bytes, live_bytes=live_bytes, non_heap_bytes=non_heap_bytes,
        heap_slope_mb_per_s=heap_slope_mb_per_s,
    )
    leak, leak_reason = _leak(heap_slope_mb_per_s, r2, span_s, ttb, p)

    inputs: dict[str, Any] = {
        "budget_bytes": budget_bytes,
        "live_bytes": live_bytes,
        "heap_slope_mb_per_s": heap_slope_mb_per_s,
        "stacks_bytes": stacks_bytes,
        "globals_bytes": globals_bytes,
        "non_heap_bytes": non_heap_bytes,
        "horizon_s": p.horizon_s,
        "live_pred_bytes": live_pred,
        "raw_gogc": raw,
        "r2": r2,
        "span_s": span_s,
        "time_to_budget_s": ttb,
    }
    pred = f"live {_mib(live_bytes)}"
    if slope_used > 0:
        pred += f" + {slope_used:.3g} MB/s × {p.horizon_s:g}s = {_mib(live_pred)}"
    sizes = (
        f"budget {_mib(budget_bytes)}, {pred}, non-heap {_mib(non_heap_bytes)}, "
        f"stacks+globals {_mib(stacks_bytes + globals_bytes)}"
    )

    if leak:
        gogc = p.gogc_min
        explanation = (
            f"GOGC held at the floor {gogc}: leak suspected ({leak_reason}); lowering GOGC further would "
            f"only trade CPU for time; GOMEMLIMIT {gomemlimit} is the backstop ({sizes})"
        )
        return BudgetResult(gogc, budget_bytes, gomemlimit, explanation, inputs, True, leak_reason,
                            tuple(clamps), raw, ttb)

    if raw is None:
        bounded = float(p.gogc_max)  # an empty heap fits any GOGC
        clamps.append("gogc")
        note = f"empty heap: any GOGC fits, so the ceiling {p.gogc_max}"
    else:
        bounded = max(float(p.gogc_min), min(float(p.gogc_max), raw))
        note = ""
        if bounded != raw:
            clamps.append("gogc")
            note = f"GOGC {raw:.1f} clamped to [{p.gogc_min}, {p.gogc_max}]"
            if raw < p.gogc_min:
                # The floor wins over the budget: the policy forbids a lower GOGC, the limit catches the rest.
                what = "no headroom left" if room <= 0 else "little headroom"
                note += f"; {what}: the predicted peak exceeds the budget and GOMEMLIMIT must hold it"
    gogc = int(bounded)
    raw_text = f"{raw:.1f}" if raw is not None else "∞"
    explanation = (
        f"GOGC {gogc} from 100 × (budget − live_pred − non-heap) / (live_pred + stacks + globals) "
        f"= {raw_text} ({sizes}); GOMEMLIMIT {gomemlimit}"
    )
    if note:
        explanation += f" ({note})"
    return BudgetResult(gogc, budget_bytes, gomemlimit, explanation, inputs, False, leak_reason,
                        tuple(clamps), raw, ttb)
