"""The operator's floor on sampling.intervalSeconds (loop/floor.py): what it raises, what it carries
along so the policy still works, and how it is reported."""

from __future__ import annotations

from typing import Any

import pytest

from gc_tuner.model.policy import GCPolicySpec, parse_policy
from gc_tuner.tuning.floor import (
    MAX_MIN_INTERVAL_SECONDS,
    apply_interval_floor,
    floor_event,
    sampling_status,
)


def spec(interval: int = 1, window: int = 3, **over: Any) -> GCPolicySpec:
    doc: dict[str, Any] = {
        "targetRef": {"name": "web"},
        "sampling": {
            "intervalSeconds": interval,
            "windowSeconds": window,
            "sources": {"agent": {"port": 8080}},
        },
        "qps": {"counter": {"name": "http_requests_total", "port": 8080}},
    }
    doc.update(over)
    return parse_policy(doc)


def endpoint(lease: int, mode: str = "Enforce") -> dict[str, Any]:
    return {
        "mode": mode,
        "rollout": {"method": "Endpoint", "endpoint": {"port": 8080}, "leaseSeconds": lease},
    }


@pytest.mark.parametrize(("interval", "floor"), [(1, 1), (15, 10), (10, 10)])
def test_a_spec_at_or_above_the_floor_stands_as_written(interval: int, floor: int) -> None:
    s = spec(interval, 3 * interval)
    f = apply_interval_floor(s, floor)
    assert f.spec is s and f.message is None
    assert floor_event(f, None) is None
    assert sampling_status(f) == {"intervalSeconds": interval, "windowSeconds": 3 * interval}


def test_the_floor_raises_the_interval_and_keeps_three_samples_in_the_window() -> None:
    f = apply_interval_floor(spec(1, 3), 10)
    assert (f.spec.sampling.interval_seconds, f.spec.sampling.window_seconds) == (10, 30)
    assert f.message is not None
    assert "sampling.intervalSeconds 1 -> 10" in f.message
    assert "sampling.windowSeconds 3 -> 30" in f.message
    assert "--min-interval-seconds" in f.message


def test_a_window_that_already_holds_three_samples_is_kept() -> None:
    f = apply_interval_floor(spec(2, 300), 10)
    assert (f.spec.sampling.interval_seconds, f.spec.sampling.window_seconds) == (10, 300)
    assert f.message is not None and "windowSeconds" not in f.message


def test_an_endpoint_lease_that_would_lapse_between_renewals_becomes_two_intervals() -> None:
    f = apply_interval_floor(spec(2, 30, **endpoint(lease=5)), 10)
    assert f.spec.rollout.lease_seconds == 20
    assert f.message is not None and "rollout.leaseSeconds 5 -> 20" in f.message
    assert sampling_status(f)["leaseSeconds"] == 20


@pytest.mark.parametrize(
    ("over", "lease"),
    [
        (endpoint(lease=60), 60),  # still longer than the raised interval
        (endpoint(lease=5, mode="DryRun"), 5),  # nothing is leased in DryRun
        ({"mode": "Enforce", "rollout": {"method": "EnvPatch", "leaseSeconds": 5}}, 5),
    ],
)
def test_other_leases_are_left_alone(over: dict[str, Any], lease: int) -> None:
    f = apply_interval_floor(spec(2, 30, **over), 10)
    assert f.spec.rollout.lease_seconds == lease
    assert f.message is not None and "leaseSeconds" not in f.message


@pytest.mark.parametrize("floor", [2, 7, 60, 601, MAX_MIN_INTERVAL_SECONDS])
@pytest.mark.parametrize(
    "over",
    [{}, endpoint(lease=2), endpoint(lease=1800), {"sampling": None}],
    ids=["dryrun", "short-lease", "max-lease", "defaults"],
)
def test_the_spec_in_force_obeys_every_rule_of_the_policy_model(floor: int, over: dict[str, Any]) -> None:
    if over.get("sampling", "") is None:  # the CRD's defaults: 15 s / 300 s
        s = parse_policy(
            {
                "targetRef": {"name": "web"},
                "sampling": {"sources": {"agent": {"port": 8080}}},
                "qps": {"counter": {"name": "http_requests_total", "port": 8080}},
            }
        )
    else:
        s = spec(1, 3, **over)
    f = apply_interval_floor(s, floor)
    # Re-validated from scratch: bounds, windowSeconds >= 3 x interval, leaseSeconds > interval.
    again = parse_policy(f.spec.to_crd())
    assert again.sampling.interval_seconds == max(floor, s.sampling.interval_seconds)
    assert again == f.spec


def test_the_event_is_posted_when_the_override_starts_or_changes_not_every_cycle() -> None:
    f = apply_interval_floor(spec(1, 3), 10)
    ev = floor_event(f, {"conditions": []})
    assert ev is not None and (ev.type, ev.reason, ev.message) == ("Warning", "IntervalRaised", f.message)
    # The status written after that cycle carries the message: the next cycles stay quiet...
    assert floor_event(f, {"sampling": sampling_status(f)}) is None
    # ...until the floor changes something else (here: the policy's own interval was edited).
    g = apply_interval_floor(spec(5, 15), 10)
    assert floor_event(g, {"sampling": sampling_status(f)}) is not None


def test_status_shows_the_values_in_force_and_why() -> None:
    f = apply_interval_floor(spec(1, 3, **endpoint(lease=2)), 4)
    assert sampling_status(f) == {
        "intervalSeconds": 4,
        "windowSeconds": 12,
        "leaseSeconds": 8,
        "message": f.message,
    }


@pytest.mark.parametrize("floor", [0, -1, MAX_MIN_INTERVAL_SECONDS + 1])
def test_a_floor_out_of_range_is_refused(floor: int) -> None:
    with pytest.raises(ValueError, match="min_interval_seconds"):
        apply_interval_floor(spec(), floor)
