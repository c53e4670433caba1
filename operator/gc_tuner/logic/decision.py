"""The decision step: turn a strategy's recommended GOGC into apply or hold. Pure; no clock, no I/O.

Order matters and is fixed: bounds first (the result is never outside [min_gogc, max_gogc]), then
hysteresis (ignore changes smaller than min_change), then cooldown (at most one change per cooldown_s).
A current value outside the bounds is corrected at once, skipping hysteresis and cooldown, because
the policy forbids it.

Reason codes (CamelCase, for GCPolicy conditions and Events):

    Applied           apply: the recommendation, unchanged
    ClampedToBounds   apply: the recommendation clamped to the bounds
    OutOfBounds       apply: the current value is outside the bounds; corrected immediately
    AtTarget          hold:  the current value already equals the (clamped) target
    WithinHysteresis  hold:  the change is smaller than min_change
    CoolingDown       hold:  the last change was less than cooldown_s ago
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["Decision", "decide"]


@dataclass(frozen=True, slots=True)
class Decision:
    action: Literal["apply", "hold"]
    gogc: int  # apply: the value to set; hold: the value that stays in force (the target if unknown)
    reason: str  # one human line
    code: str  # CamelCase reason code, see the module docstring
    target: int | None = None  # the recommendation after clamping to the bounds
    clamped: bool = False  # True when the bounds changed the recommendation


def decide(
    recommended: int,
    *,
    current: int | None,
    min_gogc: int,
    max_gogc: int,
    min_change: int,
    cooldown_s: float,
    last_applied_at: float | None,
    now: float,
) -> Decision:
    """Apply or hold. `last_applied_at` and `now` are seconds on the same clock (monotonic is best)."""
    if min_gogc > max_gogc:
        raise ValueError(f"min_gogc {min_gogc} is above max_gogc {max_gogc}")
    if min_change < 0:
        raise ValueError(f"min_change must be >= 0, got {min_change}")
    if not math.isfinite(cooldown_s) or cooldown_s < 0:
        raise ValueError(f"cooldown_s must be a finite number >= 0, got {cooldown_s}")

    target = max(min_gogc, min(max_gogc, recommended))
    clamped = target != recommended
    clamp_note = f" (recommended {recommended} clamped to [{min_gogc}, {max_gogc}])" if clamped else ""

    def hold(gogc: int, reason: str, code: str) -> Decision:
        return Decision("hold", gogc, reason + clamp_note, code, target, clamped)

    if current is not None and not min_gogc <= current <= max_gogc:
        return Decision(
            "apply", target,
            f"current GOGC {current} is outside [{min_gogc}, {max_gogc}]; setting {target}{clamp_note}",
            "OutOfBounds", target, clamped,
        )
    if current == target:
        return hold(target, f"GOGC is already {target}", "AtTarget")
    if current is not None and abs(target - current) < min_change:
        return hold(
            current, f"change {current} -> {target} is smaller than the minimum change {min_change}",
            "WithinHysteresis",
        )
    if last_applied_at is not None:
        elapsed = now - last_applied_at
        if elapsed < cooldown_s:
            return hold(
                current if current is not None else target,
                f"last change was {elapsed:.0f}s ago, cooldown is {cooldown_s:.0f}s; {target} waits",
                "CoolingDown",
            )
    if clamped:
        reason = f"setting GOGC {target}{clamp_note}"
        return Decision("apply", target, reason, "ClampedToBounds", target, True)
    was = f" (was {current})" if current is not None else ""
    return Decision("apply", target, f"setting GOGC {target}{was}", "Applied", target, False)
