"""The operator's floor on sampling.intervalSeconds (`gc-tuner operator --min-interval-seconds`).

A policy may ask for a cycle every second: every matched pod scraped and the status written that
often. Whoever runs the operator can put a floor under that for every policy. Raising the interval
alone would break what depends on it, so the floor carries the spec's own rules along:

- `windowSeconds` stays at least 3 × the interval (a fit needs three samples);
- in Enforce/Endpoint, `leaseSeconds` stays above the interval (the lease is renewed once per
  interval); when it no longer is, it becomes two intervals, so one late cycle does not lapse it.

The spec itself is left as written: status.sampling shows the values in force, and a Warning Event
`IntervalRaised` says what the floor changed whenever that changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gc_tuner.model.policy import GCPolicySpec
from gc_tuner.tuning.records import LoopEvent

__all__ = [
    "FLOOR_EVENT_REASON",
    "MAX_MIN_INTERVAL_SECONDS",
    "Floored",
    "apply_interval_floor",
    "floor_event",
    "sampling_status",
]

FLOOR_EVENT_REASON = "IntervalRaised"
# The lease a floor may need is two intervals, and 1800 s is the CRD's (and by default the agent's)
# longest lease.
MAX_MIN_INTERVAL_SECONDS = 900


@dataclass(frozen=True, slots=True)
class Floored:
    spec: GCPolicySpec  # what the cycle runs with
    message: str | None  # what the floor changed; None when the spec stands as written


def _leased(spec: GCPolicySpec) -> bool:
    return spec.mode == "Enforce" and spec.rollout.method == "Endpoint"


def apply_interval_floor(spec: GCPolicySpec, min_interval_seconds: int) -> Floored:
    """`spec` with its interval raised to the floor (and window and lease with it), and why."""
    if not 1 <= min_interval_seconds <= MAX_MIN_INTERVAL_SECONDS:
        raise ValueError(f"min_interval_seconds must be in 1..{MAX_MIN_INTERVAL_SECONDS}")
    s = spec.sampling
    if s.interval_seconds >= min_interval_seconds:
        return Floored(spec, None)
    interval = min_interval_seconds
    window = max(s.window_seconds, 3 * interval)
    changes = [f"sampling.intervalSeconds {s.interval_seconds} -> {interval}"]
    if window != s.window_seconds:
        changes.append(f"sampling.windowSeconds {s.window_seconds} -> {window} (three samples)")
    rollout = spec.rollout
    if _leased(spec) and rollout.lease_seconds <= interval:
        lease = 2 * interval
        changes.append(f"rollout.leaseSeconds {rollout.lease_seconds} -> {lease} (two intervals)")
        rollout = rollout.model_copy(update={"lease_seconds": lease})
    sampling = s.model_copy(update={"interval_seconds": interval, "window_seconds": window})
    message = (
        f"the operator samples no more often than every {interval} s (--min-interval-seconds): "
        + ", ".join(changes)
    )
    return Floored(spec.model_copy(update={"sampling": sampling, "rollout": rollout}), message)


def sampling_status(f: Floored) -> dict[str, Any]:
    """status.sampling: the cadence in force, and what the floor changed if it did."""
    s = f.spec.sampling
    out: dict[str, Any] = {"intervalSeconds": s.interval_seconds, "windowSeconds": s.window_seconds}
    if _leased(f.spec):
        out["leaseSeconds"] = f.spec.rollout.lease_seconds
    if f.message is not None:
        out["message"] = f.message
    return out


def floor_event(f: Floored, previous_status: Mapping[str, Any] | None) -> LoopEvent | None:
    """A Warning when the floor starts to change the spec, or changes it differently; not every cycle
    (the previous status carries the last message, so an operator restart does not repeat it)."""
    if f.message is None:
        return None
    before = ((previous_status or {}).get("sampling") or {}).get("message")
    if before == f.message:
        return None
    return LoopEvent("Warning", FLOOR_EVENT_REASON, f.message)
