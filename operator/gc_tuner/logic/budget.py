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

**Non-finite values.** A finite but absurd input (a heap slope of 1e308 MB/s) can overflow the
prediction to inf, and inf − inf is NaN. NaN compares false with everything, so `max(lo, min(hi, nan))`
returns a bound, and an infinite raw GOGC would be clamped to the ceiling: both would present an
artefact of float arithmetic as a decision. So a non-finite intermediate raises ValueError naming the
figures instead of being clamped.

Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from gc_tuner.logic.memlimit import render_gomemlimit
from gc_tuner.logic.params import require_positive_order
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
        require_positive_order(self, "gogc_min", "gogc_max")


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
    ttb = max(0.0, room / (heap_slope_mb_per_s * MiB))
    # A slope so small that the time overflows a float (1e-320 MB/s) is no growth for any purpose, and
    # an infinite time would reach the explanation and the JSON.
    return ttb if math.isfinite(ttb) else None


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
    if ttb is None:  # slope > 0, yet too small for the time to the budget to be a finite number
        return False, f"live heap grows {slope:.3g} MB/s: it never reaches the budget"
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
    f = _Figures(budget_bytes, live_bytes, heap_slope_mb_per_s, stacks_bytes, globals_bytes, non_heap_bytes)
    _check(f, r2, span_s)
    p = params
    gomemlimit = render_gomemlimit(budget_bytes)
    pred = _predict(f, p.horizon_s)
    clamps: list[str] = []
    if heap_slope_mb_per_s < 0:
        clamps.append("heap_slope")  # a shrinking heap is not counted on to keep shrinking
    ttb = time_to_budget_s(
        budget_bytes=budget_bytes, live_bytes=live_bytes, non_heap_bytes=non_heap_bytes,
        heap_slope_mb_per_s=heap_slope_mb_per_s,
    )
    leak, leak_reason = _leak(heap_slope_mb_per_s, r2, span_s, ttb, p)
    inputs = _inputs(f, p.horizon_s, pred, r2=r2, span_s=span_s, ttb=ttb)
    sizes = _sizes(f, pred, p.horizon_s)

    if leak:
        gogc = p.gogc_min
        explanation = (
            f"GOGC held at the floor {gogc}: leak suspected ({leak_reason}); lowering GOGC further would "
            f"only trade CPU for time; GOMEMLIMIT {gomemlimit} is the backstop ({sizes})"
        )
        return BudgetResult(gogc, budget_bytes, gomemlimit, explanation, inputs, True, leak_reason,
                            tuple(clamps), pred.raw, ttb)

    gogc, note = _bounded_gogc(pred, p)
    if note:
        clamps.append("gogc")
    raw_text = f"{pred.raw:.1f}" if pred.raw is not None else "∞"
    explanation = (
        f"GOGC {gogc} from 100 × (budget − live_pred − non-heap) / (live_pred + stacks + globals) "
        f"= {raw_text} ({sizes}); GOMEMLIMIT {gomemlimit}"
    )
    if note:
        explanation += f" ({note})"
    return BudgetResult(gogc, budget_bytes, gomemlimit, explanation, inputs, False, leak_reason,
                        tuple(clamps), pred.raw, ttb)


@dataclass(frozen=True, slots=True)
class _Figures:
    """The caller's memory figures, as given."""

    budget_bytes: int
    live_bytes: int
    heap_slope_mb_per_s: float
    stacks_bytes: int
    globals_bytes: int
    non_heap_bytes: int


@dataclass(frozen=True, slots=True)
class _Prediction:
    """The live heap one horizon ahead and the GOGC that just fits the budget around it."""

    slope_used: float
    live_pred: float
    room: float  # budget less the predicted live heap and non-heap memory; negative when over
    raw: float | None  # GOGC before the bounds; None when the heap is empty (no finite value)


def _check(f: _Figures, r2: float | None, span_s: float | None) -> None:
    if isinstance(f.budget_bytes, bool) or not isinstance(f.budget_bytes, int):
        raise ValueError(f"budget must be an integer number of bytes, got {f.budget_bytes!r}")
    if f.budget_bytes <= 0:
        raise ValueError(f"budget must be > 0 bytes, got {f.budget_bytes}")
    for name, v in (("live heap", f.live_bytes), ("stacks", f.stacks_bytes), ("globals", f.globals_bytes),
                    ("non-heap memory", f.non_heap_bytes)):
        _check_bytes(name, v)
    if not math.isfinite(f.heap_slope_mb_per_s):
        raise ValueError(f"heap slope must be a finite number of MB/s, got {f.heap_slope_mb_per_s!r}")
    if r2 is not None and not (math.isfinite(r2) and 0 <= r2 <= 1):
        raise ValueError(f"r² must be within 0..1, got {r2!r}")
    if span_s is not None and not (math.isfinite(span_s) and span_s >= 0):
        raise ValueError(f"fit span must be a finite number of seconds >= 0, got {span_s!r}")


def _predict(f: _Figures, horizon_s: float) -> _Prediction:
    slope_used = max(0.0, f.heap_slope_mb_per_s)
    try:
        live_pred = f.live_bytes + slope_used * MiB * horizon_s
        room = f.budget_bytes - live_pred - f.non_heap_bytes
        base = live_pred + f.stacks_bytes + f.globals_bytes
        raw = 100.0 * room / base if base > 0 else None
    except OverflowError:  # a byte count beyond a float (over 1e308): int + float cannot convert it
        what = "a byte count of live heap, budget, stacks, globals or non-heap is too large for a float"
        raise ValueError(_not_finite(f, horizon_s, what)) from None
    if not (math.isfinite(live_pred) and math.isfinite(room) and (raw is None or math.isfinite(raw))):
        # Never clamp these: a NaN falls through max/min to a bound, an infinity becomes the ceiling.
        what = f"predicted live heap {live_pred:g} bytes, raw GOGC {raw}"
        raise ValueError(_not_finite(f, horizon_s, what))
    return _Prediction(slope_used, live_pred, room, raw)


def _not_finite(f: _Figures, horizon_s: float, what: str) -> str:
    return (
        f"budget GOGC is not a finite number ({what}) for heap slope {f.heap_slope_mb_per_s:g} MB/s "
        f"over a {horizon_s:g}s horizon; refusing to clamp it to a bound"
    )


def _inputs(
    f: _Figures, horizon_s: float, pred: _Prediction, *, r2: float | None, span_s: float | None,
    ttb: float | None,
) -> dict[str, Any]:
    return {
        "budget_bytes": f.budget_bytes,
        "live_bytes": f.live_bytes,
        "heap_slope_mb_per_s": f.heap_slope_mb_per_s,
        "stacks_bytes": f.stacks_bytes,
        "globals_bytes": f.globals_bytes,
        "non_heap_bytes": f.non_heap_bytes,
        "horizon_s": horizon_s,
        "live_pred_bytes": pred.live_pred,
        "raw_gogc": pred.raw,
        "r2": r2,
        "span_s": span_s,
        "time_to_budget_s": ttb,
    }


def _sizes(f: _Figures, pred: _Prediction, horizon_s: float) -> str:
    """The figures behind the value, for the explanation."""
    live = f"live {_mib(f.live_bytes)}"
    if pred.slope_used > 0:
        live += f" + {pred.slope_used:.3g} MB/s × {horizon_s:g}s = {_mib(pred.live_pred)}"
    return (
        f"budget {_mib(f.budget_bytes)}, {live}, non-heap {_mib(f.non_heap_bytes)}, "
        f"stacks+globals {_mib(f.stacks_bytes + f.globals_bytes)}"
    )


def _bounded_gogc(pred: _Prediction, p: BudgetParams) -> tuple[int, str]:
    """The raw GOGC within the bounds, and a note on the clamp ("" when the bounds did not act)."""
    if pred.raw is None:
        return p.gogc_max, f"empty heap: any GOGC fits, so the ceiling {p.gogc_max}"
    raw = pred.raw
    bounded = max(float(p.gogc_min), min(float(p.gogc_max), raw))
    if bounded == raw:
        return int(bounded), ""
    note = f"GOGC {raw:.1f} clamped to [{p.gogc_min}, {p.gogc_max}]"
    if raw < p.gogc_min:
        # The floor wins over the budget: the policy forbids a lower GOGC, the limit catches the rest.
        what = "no headroom left" if pred.room <= 0 else "little headroom"
        note += f"; {what}: the predicted peak exceeds the budget and GOMEMLIMIT must hold it"
    return int(bounded), note
