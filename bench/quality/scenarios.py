"""The scenarios (what load the reference workload drives) and the contenders (who sets its GC).

Every run uses the same workload source; contenders differ only in environment, build tag, or the
gc-tuner loop attached to the workload's agent endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["CONTENDERS", "Contender", "Scale", "Scenario", "policy_for", "scale", "scenarios"]

MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True, slots=True)
class Scale:
    """Everything that differs between the full run and the smoke run."""

    duration_s: float
    limit_bytes: int
    live_mib: int  # -live-mib; the measured live heap is about 1.18 × this (entry overhead)
    qps: int
    garbage_bytes: int
    leak_mib_per_s: float
    interval_s: int  # gc-tuner's sampling interval
    window_s: int
    cooldown_s: int
    tuner_lead_s: float  # gc-tuner starts this long before the workload, as an operator runs before a pod
    sample_every_s: float  # the harness's own timeline sampling


FULL = Scale(
    duration_s=65,
    limit_bytes=GiB,
    live_mib=110,
    qps=1000,
    garbage_bytes=128 << 10,
    leak_mib_per_s=6.0,
    interval_s=3,
    window_s=30,
    cooldown_s=15,
    tuner_lead_s=3,
    sample_every_s=1,
)
SMOKE = Scale(
    duration_s=3,
    limit_bytes=256 * MiB,
    live_mib=16,
    qps=200,
    garbage_bytes=32 << 10,
    leak_mib_per_s=2.0,
    interval_s=1,
    window_s=4,
    cooldown_s=2,
    tuner_lead_s=1,
    sample_every_s=0.5,
)


def scale(smoke: bool) -> Scale:
    return SMOKE if smoke else FULL


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    args: tuple[str, ...]  # workload flags beyond the common ones


def scenarios(s: Scale) -> list[Scenario]:
    common = ("-live-mib", str(s.live_mib), "-garbage-bytes", str(s.garbage_bytes))
    return [
        Scenario("steady", f"constant {s.qps} QPS", (*common, "-load", "steady", "-qps", str(s.qps))),
        Scenario(
            "burst",
            f"square wave {s.qps // 3} ↔ {5 * (s.qps // 3)} QPS (5×), 20 s period",
            (
                *common,
                "-load",
                "burst",
                "-qps",
                str(s.qps // 3),
                "-burst-qps",
                str(5 * (s.qps // 3)),
                "-burst-period",
                "20s",
                "-burst-duty",
                "0.5",
            ),
        ),
        Scenario(
            "leak",
            f"constant {s.qps} QPS and a leak of {s.leak_mib_per_s:g} MiB/s",
            (*common, "-load", "steady", "-qps", str(s.qps), "-leak-mib-per-sec", str(s.leak_mib_per_s)),
        ),
    ]


@dataclass(frozen=True, slots=True)
class Contender:
    key: str
    label: str
    kind: Literal["static", "bytedance", "gc-tuner"]
    strategy: str | None = None  # gc-tuner's strategy.type
    budget_percent: int = 90  # gc-tuner: memoryLimit.percent (the Budget strategy's budget)
    note: str = ""
    env: dict[str, str] = field(default_factory=dict)


CONTENDERS = [
    Contender("gogc100", "static GOGC=100", "static", note="the default"),
    Contender("memlimit90", "GOMEMLIMIT=90%", "static", note="automemlimit's behaviour, GOGC stays 100"),
    Contender(
        "bytedance",
        "bytedance gctuner",
        "bytedance",
        note="github.com/bytedance/gopkg/util/gctuner in-process, threshold 70% of the limit",
    ),
    Contender(
        "formula",
        "gc-tuner Formula",
        "gc-tuner",
        strategy="Formula",
        budget_percent=90,
        note="the article's formula through the agent endpoint, GOMEMLIMIT 90%",
    ),
    Contender(
        "budget",
        "gc-tuner Budget",
        "gc-tuner",
        strategy="Budget",
        # The same memory target as bytedance gctuner's threshold, so the two adaptive tuners are
        # compared at equal memory intent.
        budget_percent=70,
        note="Budget strategy through the agent endpoint, budget and GOMEMLIMIT 70% (bytedance's threshold)",
    ),
]


def policy_for(c: Contender, s: Scale, port: int) -> dict[str, Any]:
    """The GCPolicy `gc-tuner local` runs for a gc-tuner contender."""
    assert c.strategy is not None
    strategy: dict[str, Any] = {"type": c.strategy}
    if c.strategy == "Budget":
        # "Sustained" = growth across the whole window (the fit spans one interval less than it).
        strategy["budget"] = {"leakMinSpanSeconds": s.window_s - s.interval_s}
    return {
        "apiVersion": "gctuner.io/v1alpha1",
        "kind": "GCPolicy",
        "metadata": {"name": f"bench-{c.key}"},
        "spec": {
            "targetRef": {"name": "bench-workload"},
            "mode": "Enforce",
            "rollout": {
                "method": "Endpoint",
                "endpoint": {"port": port},
                "cooldownSeconds": s.cooldown_s,
                "minGOGCChange": 10,
                "leaseSeconds": max(30, 4 * s.interval_s),
            },
            "sampling": {
                "intervalSeconds": s.interval_s,
                "windowSeconds": s.window_s,
                "sources": {"agent": {"port": port}, "prometheus": {"port": port}},
            },
            "qps": {"counter": {"name": "http_requests_total", "matchers": {"handler": "work"}}},
            "strategy": strategy,
            "bounds": {"minGOGC": 25, "maxGOGC": 1000},
            "memoryLimit": {"mode": "FromContainerLimit", "percent": c.budget_percent},
        },
    }
