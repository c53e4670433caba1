"""bench/operator_load: the pure parts (Prometheus text, cycle gaps, the goal verdicts) on crafted
figures, so a verdict is known to fail when a figure is over its goal. The benchmark itself needs the
control plane and minutes; it is run by hand (`python -m bench.operator_load --smoke`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from bench.operator_load.measure import (
    LoadResult,
    PolicyTiming,
    counter_delta,
    cycle_start,
    gap_limit,
    goals,
    parse_series,
    policy_timing,
    request_breakdown,
)


def _exposition(patch: int, secrets: int, configmaps: int, flow: int, events: int | None) -> str:
    """Prometheus text as the apiserver writes it (fewer labels: the parser needs only these)."""
    req = "apiserver_request_total"
    lines = [
        "# HELP apiserver_request_total [STABLE] Counter of apiserver requests",
        "# TYPE apiserver_request_total counter",
        f'{req}{{code="200",resource="gcpolicies",subresource="status",verb="PATCH"}} {patch}',
        f'{req}{{code="200",resource="secrets",subresource="",verb="GET"}} {secrets}',
        f'{req}{{code="200",resource="configmaps",subresource="",verb="GET"}} {configmaps}',
        "apiserver_flowcontrol_dispatched_requests_total"
        f'{{flow_schema="gc-tuner-operator-load",priority_level="exempt"}} {flow}',
        'apiserver_flowcontrol_dispatched_requests_total{flow_schema="exempt",priority_level="exempt"} 5000',
        "apiserver_request_total_not_this 1",
    ]
    if events is not None:
        lines.append(f'{req}{{code="201",resource="events",subresource="",verb="POST"}} {events}')
    return "\n".join(lines) + "\n"


BEFORE = _exposition(10, 4, 99, 100, None)
AFTER = _exposition(40, 4, 150, 160, 3)
NAMES = ("apiserver_request_total", "apiserver_flowcontrol_dispatched_requests_total")


def test_only_the_named_metrics_are_read_with_their_labels() -> None:
    series = parse_series(BEFORE, NAMES)
    assert len(series) == 5  # comments, another metric and a longer name with the same prefix are skipped
    assert series[0].label("resource") == "gcpolicies" and series[0].label("subresource") == "status"
    assert series[0].value == 10


def test_the_operator_flow_and_the_breakdown_count_growth_only() -> None:
    before, after = parse_series(BEFORE, NAMES), parse_series(AFTER, NAMES)
    flow = {"flow_schema": "gc-tuner-operator-load"}
    assert counter_delta(before, after, "apiserver_flowcontrol_dispatched_requests_total", flow) == 60
    rows = request_breakdown(before, after, ["gcpolicies", "secrets", "events"])
    # Largest first; the unchanged secrets GET and the configmaps (not asked for) are left out, and a
    # series that appeared during the window counts from zero.
    assert rows == [("PATCH", "gcpolicies/status", 30.0), ("POST", "events", 3.0)]


T0 = 1_800_000_000.0  # a whole second: status timestamps have no fraction


def _stamp(t: float) -> str:
    return dt.datetime.fromtimestamp(int(t), tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _writes(
    cycles: list[tuple[float, float]], sampled: int = 100, failing: int = 0
) -> list[tuple[float, dict[str, Any]]]:
    """A status write per (start, duration) cycle, s after T0, arriving at its end."""
    failures = [{"name": f"pod-{i}", "reason": "OutlierExcluded"} for i in range(failing)]
    pods = {"sampled": sampled, "failing": failing, "failures": failures}
    return [
        (
            T0 + b + d,
            {"pods": pods, "recommendation": {"time": _stamp(T0 + b)}, "decision": {"time": _stamp(T0 + b)}},
        )
        for b, d in cycles
    ]


def test_a_cycle_starts_at_its_recommendation_or_decision_time() -> None:
    assert (
        cycle_start({"recommendation": {"time": _stamp(T0)}, "decision": {"time": _stamp(T0 + 15)}})
        == T0 + 15
    )
    assert cycle_start({"recommendation": {"time": _stamp(T0)}}) == T0
    assert cycle_start({"pods": {"sampled": 3}}) is None


def test_a_policy_that_starts_a_cycle_every_interval_keeps_it_however_long_each_runs() -> None:
    # Every other cycle also renews the leases and takes longer: the starts stay 15 s apart.
    t = policy_timing("p", 100, _writes([(5, 1), (20, 8), (35, 1), (50, 8), (65, 1)]), T0, T0 + 70)
    assert (t.cycles, t.gaps_s, t.open_s, t.durations_s) == (5, [15, 15, 15, 15], 5, [1, 8, 1, 8, 1])
    assert t.kept(15, 0.1) and t.late(15, 0.1) == 0 and t.sampled_min == 100
    assert t.timeline[1] == (20, 8, 100, "")
    # A cycle started in the window counts even though it reported after the window's end.
    assert policy_timing("p", 100, _writes([(5, 1), (20, 8)]), T0, T0 + 21).cycles == 2


def test_a_late_start_or_a_silent_end_loses_the_interval() -> None:
    late = policy_timing("late", 100, _writes([(1, 1), (16, 1), (34, 1), (49, 1)], failing=1), T0, T0 + 50)
    assert late.failing_max == 1 and late.reasons == {"OutlierExcluded": 4}
    assert not late.kept(15, 0.1) and late.late(15, 0.1) == 1 and late.worst_gap_s == 18
    # No cycle for the last 30 s of the window: the open edge counts as a gap at least that long.
    silent = policy_timing("silent", 100, _writes([(1, 1), (16, 1), (31, 1)]), T0, T0 + 61)
    assert silent.gaps_s == [15, 15] and not silent.kept(15, 0.1)
    assert not policy_timing("none", 100, [], T0, T0 + 60).kept(15, 0.1)


def test_the_tolerance_is_never_finer_than_the_timestamps() -> None:
    assert gap_limit(15, 0.1) == 16.5 and gap_limit(2, 0.1) == 3
    jitter = policy_timing("p", 10, _writes([(0.95, 0.1), (2.9, 0.1), (5.01, 0.1)]), T0, T0 + 6)
    assert jitter.gaps_s == [2, 3] and jitter.kept(2, 0.1)  # 1.95 s and 2.11 s apart in truth


def test_only_writes_of_new_cycles_started_in_the_window_count() -> None:
    writes = _writes([(-3, 1), (12, 1), (27, 1)])
    writes.insert(2, (T0 + 20, dict(writes[1][1])))  # the same cycle's status rewritten: not a cycle
    writes.append((T0 + 30, {"pods": {"sampled": 0}}))  # no recommendation or decision yet: no start
    t = policy_timing("p", 100, writes, T0, T0 + 30)
    assert (t.cycles, t.gaps_s) == (2, [15])


def _result(**kw: object) -> LoadResult:
    r = LoadResult(20, 100, 15, steady_s=300, cpu_cores=0.3, rss_mb=120, peak_rss_mb=130)
    r.timings = [PolicyTiming(f"p{i}", 100, 20, [15.0] * 19, 8.0, [2.0] * 20, 100, 0) for i in range(20)]
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def _verdicts(r: LoadResult) -> list[bool | None]:
    return [met for _, met, _ in goals(r)]


def test_every_goal_is_met_by_a_fleet_within_them() -> None:
    assert _verdicts(_result()) == [True, True, True, True]
    text = " ".join(d for _, _, d in goals(_result()))
    assert "0.60 × the goal" in text and "0.65 × the goal" in text


@pytest.mark.parametrize(
    ("over", "failed"),
    [
        ({"cpu_cores": 0.51}, 0),
        ({"peak_rss_mb": 201.0}, 1),
        ({"rss_mb": 250.0}, 1),  # the steady RSS is judged too, should it exceed the peak read earlier
    ],
)
def test_a_figure_over_its_goal_fails_that_goal_only(over: dict[str, float], failed: int) -> None:
    verdicts = _verdicts(_result(**over))
    assert verdicts[failed] is False
    assert all(v for i, v in enumerate(verdicts) if i != failed)


def test_one_late_policy_or_one_short_cycle_fails_the_fleet() -> None:
    r = _result()
    r.timings[7] = PolicyTiming("p7", 100, 19, [15.0] * 17 + [19.0], 8.0, [2.0] * 19, 100, 0)
    assert _verdicts(r) == [True, True, False, True]
    assert "19/20 policies; worst gap 19.00 s (p7, lag +4.00 s)" in goals(r)[2][2]
    r = _result()
    r.timings[3] = PolicyTiming("p3", 100, 20, [15.0] * 19, 8.0, [2.0] * 20, 97, 3)
    assert _verdicts(r) == [True, True, True, False]
    # Every pod read, one screened out of the fit: sampling kept up.
    r.timings[3] = PolicyTiming("p3", 100, 20, [15.0] * 19, 8.0, [2.0] * 20, 100, 1, {"OutlierExcluded": 20})
    assert _verdicts(r) == [True, True, True, True]


def test_no_window_is_not_judged_rather_than_met() -> None:
    assert _verdicts(_result(steady_s=0.0)) == [None]
    assert _verdicts(_result(timings=[]))[2:] == [None]
