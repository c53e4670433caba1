"""The pure parts of the operator load benchmark: Prometheus text, cycle gaps per policy, the goals.

Nothing here talks to a process or a cluster, so the verdicts can be tested on crafted numbers.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CPU_GOAL_CORES",
    "RSS_GOAL_MB",
    "Goal",
    "LoadResult",
    "PolicyTiming",
    "Series",
    "counter_delta",
    "cycle_start",
    "gap_limit",
    "goals",
    "parse_series",
    "policy_timing",
    "request_breakdown",
]

CPU_GOAL_CORES = 0.5
RSS_GOAL_MB = 200.0

# name{label="value",...} value  (the apiserver writes no timestamps)
_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float

    def label(self, key: str) -> str:
        return dict(self.labels).get(key, "")


def parse_series(text: str, names: Iterable[str]) -> list[Series]:
    """The samples of the named metrics in a Prometheus text exposition; every other line is skipped
    (the apiserver's /metrics is megabytes, almost none of it wanted)."""
    wanted = tuple(names)
    out = []
    for line in text.splitlines():
        if not line.startswith(wanted):
            continue
        m = _LINE.match(line)
        if m is None or m.group(1) not in wanted:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        labels = tuple(sorted(_LABEL.findall(m.group(2) or "")))
        out.append(Series(m.group(1), labels, value))
    return out


def _matching(series: Sequence[Series], name: str, match: Mapping[str, str]) -> dict[tuple[Any, ...], float]:
    return {
        s.labels: s.value for s in series if s.name == name and all(s.label(k) == v for k, v in match.items())
    }


def counter_delta(
    before: Sequence[Series], after: Sequence[Series], name: str, match: Mapping[str, str] | None = None
) -> float:
    """How much the counter `name` (summed over the series whose labels include `match`) grew.
    A series absent before counts from zero: it appears with its first increment."""
    old = _matching(before, name, match or {})
    new = _matching(after, name, match or {})
    return sum(v - old.get(k, 0.0) for k, v in new.items())


def request_breakdown(
    before: Sequence[Series], after: Sequence[Series], resources: Iterable[str]
) -> list[tuple[str, str, float]]:
    """(verb, resource[/subresource], requests) from apiserver_request_total for these resources,
    largest first; every client's requests, not only the operator's (the metric has no user label)."""
    wanted = set(resources)
    old = _matching(before, "apiserver_request_total", {})
    grown: dict[tuple[str, str], float] = {}
    for s in after:
        if s.name != "apiserver_request_total" or s.label("resource") not in wanted:
            continue
        res = s.label("resource") + (f"/{s.label('subresource')}" if s.label("subresource") else "")
        key = (s.label("verb"), res)
        grown[key] = grown.get(key, 0.0) + s.value - old.get(s.labels, 0.0)
    rows = [(verb, res, n) for (verb, res), n in grown.items() if n > 0]
    return sorted(rows, key=lambda r: (-r[2], r[0], r[1]))


@dataclass
class PolicyTiming:
    """One policy's cycles that started inside the steady window, from its status writes."""

    name: str
    pods: int  # pods the policy targets
    cycles: int  # cycles that started inside the window
    gaps_s: list[float]  # between consecutive cycle starts (whole seconds: the status's timestamps)
    open_s: float  # the longest edge: window start to the first start, or the last start to window end
    durations_s: list[float]  # each cycle's start to its status arriving here (+0..1 s: whole-second starts)
    sampled_min: int | None  # fewest pods sampled by a cycle of the window (status.pods.sampled)
    failing_max: int  # most pods failing in one cycle (status.pods.failing): unread, screened out...
    reasons: dict[str, int] = field(default_factory=dict)  # status.pods.failures reasons, over the cycles
    # (start s from the window's start, duration s, pods sampled, rollout phase) of each cycle
    timeline: list[tuple[float, float, int, str]] = field(default_factory=list)

    @property
    def worst_gap_s(self) -> float:
        # An edge is a lower bound on a gap that straddles the window's start or end.
        return max([*self.gaps_s, self.open_s])

    @property
    def median_gap_s(self) -> float | None:
        return statistics.median(self.gaps_s) if self.gaps_s else None

    def kept(self, interval_s: float, tolerance: float) -> bool:
        return self.cycles >= 2 and self.worst_gap_s <= gap_limit(interval_s, tolerance)

    def late(self, interval_s: float, tolerance: float) -> int:
        return sum(1 for g in self.gaps_s if g > gap_limit(interval_s, tolerance))


def gap_limit(interval_s: float, tolerance: float) -> float:
    """The longest gap between two cycle starts that still keeps the interval: the interval plus the
    tolerance, or plus the 1 s resolution of status timestamps, whichever is more (two starts 2.0 s
    apart may read 3 s apart once truncated to whole seconds)."""
    return max(interval_s * (1 + tolerance), interval_s + 1.0)


def cycle_start(status: Mapping[str, Any]) -> float | None:
    """When the cycle that wrote `status` started: its recommendation's or decision's time (both are
    the cycle's start, in whole seconds); None when it wrote neither (no data for one yet)."""
    out = None
    for section in ("recommendation", "decision"):
        stamp = (status.get(section) or {}).get("time")
        try:
            t = dt.datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()
        except ValueError:
            continue
        out = t if out is None else max(out, t)
    return out


def policy_timing(
    name: str, pods: int, writes: Sequence[tuple[float, Mapping[str, Any]]], start: float, end: float
) -> PolicyTiming:
    """The cycles of one policy that started within [start, end], from its status writes
    [(arrival time, status)]: the caller keeps watching a while after `end`, so that a cycle started
    just before the end has reported. A write whose start is the previous one's started no cycle."""
    cycles: list[tuple[float, float, Mapping[str, Any]]] = []  # (start, arrival, status)
    for t, st in sorted(writes, key=lambda w: w[0]):
        began = cycle_start(st)
        if began is None or (cycles and began <= cycles[-1][0]) or not start <= began <= end:
            continue
        cycles.append((began, t, st))
    starts = [c[0] for c in cycles]
    counts = [(c[2].get("pods") or {}) for c in cycles]
    sampled = [int(c.get("sampled") or 0) for c in counts]
    reasons: dict[str, int] = {}
    for c in counts:
        for f in c.get("failures") or []:
            reasons[str(f.get("reason"))] = reasons.get(str(f.get("reason")), 0) + 1
    return PolicyTiming(
        name=name,
        pods=pods,
        cycles=len(cycles),
        gaps_s=[b - a for a, b in itertools.pairwise(starts)],
        open_s=max(starts[0] - start, end - starts[-1]) if starts else end - start,
        durations_s=[round(t - began, 2) for began, t, _ in cycles],
        sampled_min=min(sampled) if sampled else None,
        failing_max=max((int(c.get("failing") or 0) for c in counts), default=0),
        reasons=reasons,
        timeline=[
            (
                round(began - start, 1),
                round(t - began, 2),
                n,
                str((st.get("rollout") or {}).get("phase") or ""),
            )
            for (began, t, st), n in zip(cycles, sampled, strict=True)
        ],
    )


@dataclass
class LoadResult:
    """Everything one run measured; the goals are judged from this alone."""

    policies: int
    pods_per_policy: int
    interval_s: int
    steady_s: float = 0.0  # length of the measured window
    cpu_cores: float = 0.0  # the operator's CPU seconds / wall seconds over the window
    rss_mb: float = 0.0  # largest VmRSS seen in the window (MB = 10^6 bytes, as the goal)
    peak_rss_mb: float = 0.0  # VmHWM at the end: includes startup and the first listing
    startup_s: float = 0.0  # operator start to every policy's first status
    apiserver_rps: float | None = None  # the operator's requests/s, from its APF flow schema
    apiserver_requests: float | None = None
    breakdown: list[tuple[str, str, float]] = field(default_factory=list)  # every client's
    samples_per_s: float | None = None  # successful agent reads/s, from the operator's metrics
    sample_errors: float | None = None
    timings: list[PolicyTiming] = field(default_factory=list)
    control_plane_cores: dict[str, float] = field(default_factory=dict)
    profile: list[tuple[float, str]] = field(default_factory=list)  # (inclusive %, frame), with --profile
    tolerance: float = 0.1
    notes: list[str] = field(default_factory=list)

    @property
    def pods(self) -> int:
        return self.policies * self.pods_per_policy


# (what is judged, met / not met / not judged (None), the figures behind it)
Goal = tuple[str, bool | None, str]


def goals(r: LoadResult, *, cpu_goal: float = CPU_GOAL_CORES, rss_goal_mb: float = RSS_GOAL_MB) -> list[Goal]:
    scale = f"{r.pods:,} pods in {r.policies} policies every {r.interval_s} s"
    if r.steady_s <= 0:
        return [(f"{scale}: CPU, RSS and intervals", None, "no steady window was measured")]
    out: list[Goal] = [
        (
            f"{scale} on ≤ {cpu_goal:g} core",
            r.cpu_cores <= cpu_goal,
            f"{r.cpu_cores:.3f} cores over {r.steady_s:.0f} s ({r.cpu_cores / cpu_goal:.2f} × the goal)",
        ),
        (
            f"{scale} in ≤ {rss_goal_mb:g} MB RSS",
            max(r.peak_rss_mb, r.rss_mb) <= rss_goal_mb,
            f"peak {r.peak_rss_mb:.0f} MB ({r.peak_rss_mb / rss_goal_mb:.2f} × the goal), "
            f"steady {r.rss_mb:.0f} MB",
        ),
    ]
    limit = gap_limit(r.interval_s, r.tolerance)
    if not r.timings:
        out.append(("every policy keeps its interval", None, "no policy status was seen"))
        return out
    kept = [t for t in r.timings if t.kept(r.interval_s, r.tolerance)]
    worst = max(r.timings, key=lambda t: t.worst_gap_s)
    out.append(
        (
            f"every policy keeps its {r.interval_s} s interval (no gap between cycles over {limit:.1f} s)",
            len(kept) == len(r.timings),
            f"{len(kept)}/{len(r.timings)} policies; worst gap {worst.worst_gap_s:.2f} s "
            f"({worst.name}, lag {worst.worst_gap_s - r.interval_s:+.2f} s)",
        )
    )
    # Sampled, not "not failing": a pod read fine but screened out of the fit (fleetsim's leaking
    # pods) is a verdict on its data, not a cost of the operator.
    full = [t for t in r.timings if t.sampled_min == t.pods]
    out.append(
        (
            "every cycle sampled every pod of its policy",
            len(full) == len(r.timings),
            f"{len(full)}/{len(r.timings)} policies; fewest sampled in a cycle "
            f"{min((t.sampled_min or 0) for t in r.timings)}/{r.pods_per_policy}",
        )
    )
    return out
