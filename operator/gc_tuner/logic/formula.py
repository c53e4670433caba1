"""The article's GOGC formula (strategy `Formula`), exactly as specified, every constant a parameter.

    qpsFactor   = max(0.5, min(2.0, 1.0 - (qps - 500) / 2000))
    slopeFactor = max(0.3, 1.0 / (1.0 + 0.2 * heapSlopeMBPerSec))
    GOGC        = int(max(25, min(200, 100 * qpsFactor * slopeFactor)))

Two input clamps are gc-tuner's own (docs/formula.md): a negative heap slope is treated as 0, because
slopeFactor divides by zero at -5 MB/s and exceeds 1 for any shrinking heap, and a negative QPS is
treated as 0. The product is computed in the order written (`base * qpsFactor * slopeFactor`) so the
truncation by int() lands where the formula puts it.

NaN is never clamped: `max(lo, min(hi, nan))` returns a bound, so a NaN input or a NaN intermediate
(0 × inf in `slope_coefficient × slope`) raises ValueError, and so does a raw GOGC that is not finite,
which the clamp would turn into the ceiling. An infinite QPS or slope still reaches the factor clamps
(docs/formula.md): the factor's limit is exact there, and the raw GOGC stays finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from gc_tuner.logic.params import require_positive_order

__all__ = ["DEFAULT_FORMULA_PARAMS", "FormulaParams", "FormulaResult", "formula_gogc"]


@dataclass(frozen=True, slots=True)
class FormulaParams:
    """The formula's constants; the defaults are the article's."""

    qps_pivot: float = 500.0  # QPS at which qpsFactor is 1.0
    qps_scale: float = 2000.0  # QPS change that moves qpsFactor by 1.0
    qps_factor_min: float = 0.5
    qps_factor_max: float = 2.0
    slope_coefficient: float = 0.2  # per MB/s of live-heap growth
    slope_factor_min: float = 0.3
    base_gogc: float = 100.0
    gogc_min: int = 25
    gogc_max: int = 200

    def __post_init__(self) -> None:
        for name in ("qps_pivot", "qps_scale", "qps_factor_min", "qps_factor_max", "slope_coefficient",
                     "slope_factor_min", "base_gogc"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"FormulaParams.{name} must be finite, got {getattr(self, name)!r}")
        if self.qps_scale <= 0:
            raise ValueError(f"FormulaParams.qps_scale must be > 0, got {self.qps_scale}")
        require_positive_order(self, "qps_factor_min", "qps_factor_max")
        if self.slope_coefficient < 0:
            raise ValueError(f"FormulaParams.slope_coefficient must be >= 0, got {self.slope_coefficient}")
        if not 0 < self.slope_factor_min <= 1:
            raise ValueError(f"FormulaParams.slope_factor_min must be in (0, 1], got {self.slope_factor_min}")
        if self.base_gogc <= 0:
            raise ValueError(f"FormulaParams.base_gogc must be > 0, got {self.base_gogc}")
        require_positive_order(self, "gogc_min", "gogc_max")


DEFAULT_FORMULA_PARAMS = FormulaParams()


@dataclass(frozen=True, slots=True)
class FormulaResult:
    gogc: int
    qps_factor: float
    slope_factor: float
    explanation: str  # one line, names every clamp that changed the result
    inputs: dict[str, Any] = field(default_factory=dict)
    clamps: tuple[str, ...] = ()  # which clamps applied: qps, heap_slope, qps_factor, slope_factor, gogc


def _short(v: float, decimals: int = 3) -> str:
    """Fixed decimals for the usual magnitudes; an extreme input (QPS 1e300) must not print 300 digits."""
    return f"{v:.{decimals}f}" if abs(v) < 1e6 else f"{v:.3g}"


def _require_finite(raw: float, qps_raw: float, slope_raw: float, qps: float, slope: float) -> None:
    """Refuse what the clamps would hide: a NaN factor, or a raw GOGC that is NaN or infinite."""
    bad = [f"{name} {v}" for name, v, ok in (
        ("qps_factor", qps_raw, not math.isnan(qps_raw)),
        ("slope_factor", slope_raw, not math.isnan(slope_raw)),
        ("raw GOGC", raw, math.isfinite(raw)),
    ) if not ok]  # fmt: skip
    if bad:
        raise ValueError(
            f"formula GOGC is not a finite number ({', '.join(bad)}) for qps={qps!r}, "
            f"heap slope={slope!r}; refusing to clamp it to a bound"
        )


def formula_gogc(
    qps: float, heap_slope_mb_per_s: float, params: FormulaParams = DEFAULT_FORMULA_PARAMS
) -> FormulaResult:
    """GOGC for a request rate (QPS) and a live-heap growth rate (MB/s, MiB-based)."""
    if math.isnan(qps) or math.isnan(heap_slope_mb_per_s):
        raise ValueError(
            f"formula inputs must be numbers, got qps={qps!r}, heap slope={heap_slope_mb_per_s!r}"
        )
    p = params
    clamps: list[str] = []
    notes: list[str] = []

    qps_used = qps
    if qps < 0:
        qps_used = 0.0
        clamps.append("qps")
        notes.append(f"QPS {qps:g} clamped to 0")
    slope_used = heap_slope_mb_per_s
    if heap_slope_mb_per_s < 0:
        # A shrinking heap must not raise GOGC above base, and -1/coefficient would divide by zero.
        slope_used = 0.0
        clamps.append("heap_slope")
        notes.append(f"heap slope {heap_slope_mb_per_s:g} MB/s clamped to 0")

    qps_raw = 1.0 - (qps_used - p.qps_pivot) / p.qps_scale
    qps_factor = max(p.qps_factor_min, min(p.qps_factor_max, qps_raw))
    if qps_factor != qps_raw:
        clamps.append("qps_factor")
        notes.append(f"qps_factor {_short(qps_raw)} clamped to {qps_factor:g}")

    slope_raw = 1.0 / (1.0 + p.slope_coefficient * slope_used)
    slope_factor = max(p.slope_factor_min, slope_raw)
    if slope_factor != slope_raw:
        clamps.append("slope_factor")
        notes.append(f"slope_factor {_short(slope_raw)} clamped to {slope_factor:g}")

    raw = p.base_gogc * qps_factor * slope_factor  # the formula's order: 100 * qpsFactor * slopeFactor
    _require_finite(raw, qps_raw, slope_raw, qps, heap_slope_mb_per_s)
    bounded = max(p.gogc_min, min(p.gogc_max, raw))
    if bounded != raw:
        clamps.append("gogc")
        notes.append(f"GOGC {_short(raw, 1)} clamped to [{p.gogc_min}, {p.gogc_max}]")
    gogc = int(bounded)

    explanation = (
        f"GOGC {gogc} = int({p.base_gogc:g} × qps_factor {qps_factor:.3f} × slope_factor {slope_factor:.3f})"
        f" for {qps_used:g} QPS and live heap growing {slope_used:.3g} MB/s"
    )
    if notes:
        explanation += " (" + "; ".join(notes) + ")"
    inputs: dict[str, Any] = {
        "qps": qps,
        "heap_slope_mb_per_s": heap_slope_mb_per_s,
        "qps_used": qps_used,
        "heap_slope_used_mb_per_s": slope_used,
        "raw_gogc": raw,
    }
    return FormulaResult(gogc, qps_factor, slope_factor, explanation, inputs, tuple(clamps))
