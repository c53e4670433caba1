"""Who sets the GC in a trial: the contenders and the static sweep that draws the oracle front.

A configuration is either static (GOGC / GOMEMLIMIT in the environment), bytedance gctuner (the
workload's gctuner_bytedance build) or a gc-tuner strategy run by `gc-tuner local` through the
workload's agent endpoint. gc-tuner runs its documented defaults: the policy below sets only what
a policy must name (target, sources, QPS counter, Endpoint rollout), memoryLimit FromContainerLimit
(the trial has a container limit; Budget needs it) and the bench time scale (scenarios.Scale).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from bench.quality.scenarios import Scale

__all__ = [
    "CONFIGS",
    "Config",
    "by_key",
    "policy_for",
    "static_env",
    "strategy_available",
]

Kind = Literal["static", "bytedance", "gc-tuner"]


@dataclass(frozen=True, slots=True)
class Config:
    key: str
    label: str
    kind: Kind
    repeats: int
    gogc: str | None = None  # static: GOGC
    memlimit_percent: int | None = None  # static: GOMEMLIMIT as % of the limit
    strategy: str | None = None  # gc-tuner: strategy.type
    sweep: bool = False  # a point of the hindsight oracle
    contender: bool = False  # judged against the front
    note: str = ""


def _gogc(v: int, repeats: int = 3, contender: bool = False, note: str = "") -> Config:
    return Config(
        f"gogc{v}", f"GOGC={v}", "static", repeats, gogc=str(v), sweep=True, contender=contender, note=note
    )


def _off(p: int, repeats: int = 3, contender: bool = False) -> Config:
    return Config(
        f"off{p}",
        f"GOGC=off, GOMEMLIMIT {p}%",
        "static",
        repeats,
        gogc="off",
        memlimit_percent=p,
        sweep=True,
        contender=contender,
        note="the expert static setting" if contender else "",
    )


CONFIGS: list[Config] = [
    _gogc(100, repeats=5, contender=True, note="Go's default"),
    _off(70, repeats=5, contender=True),
    _off(90, contender=True),
    Config(
        "memlimit90",
        "GOGC=100, GOMEMLIMIT 90%",
        "static",
        3,
        gogc="100",
        memlimit_percent=90,
        contender=True,
        note="automemlimit's default",
    ),
    Config(
        "bytedance",
        "bytedance gctuner",
        "bytedance",
        3,
        contender=True,
        note="github.com/bytedance/gopkg/util/gctuner in-process, its default threshold 70% of the limit",
    ),
    Config("formula", "gc-tuner Formula", "gc-tuner", 5, strategy="Formula", contender=True),
    Config("budget", "gc-tuner Budget", "gc-tuner", 5, strategy="Budget", contender=True),
    Config("cost", "gc-tuner Cost", "gc-tuner", 5, strategy="Cost", contender=True),
    _gogc(50),
    _gogc(200),
    _gogc(400),
    _gogc(800),
    _off(50),
]


def by_key(key: str) -> Config:
    for c in CONFIGS:
        if c.key == key:
            return c
    raise KeyError(key)


def static_env(c: Config, limit_bytes: int) -> dict[str, str]:
    """GOGC / GOMEMLIMIT for a static configuration (rendered as gc-tuner renders GOMEMLIMIT)."""
    from gc_tuner.logic.memlimit import render_gomemlimit

    env: dict[str, str] = {}
    if c.gogc is not None:
        env["GOGC"] = c.gogc
    if c.memlimit_percent is not None:
        env["GOMEMLIMIT"] = render_gomemlimit(limit_bytes * c.memlimit_percent // 100)
    return env


def strategy_available(strategy: str) -> str | None:
    """None when gc-tuner knows `strategy`; otherwise why not (the contender is then reported as
    unavailable, never dropped)."""
    from pydantic import ValidationError

    from gc_tuner.model.policy import StrategySpec
    from gc_tuner.tuning.strategies import STRATEGIES

    if strategy not in STRATEGIES:
        return f"strategy {strategy} is not registered in gc_tuner.tuning.strategies.STRATEGIES"
    try:
        StrategySpec.model_validate({"type": strategy})
    except ValidationError as e:
        return f"the policy model refuses strategy.type {strategy}: {e.errors()[0]['msg']}"
    return None


def policy_for(
    c: Config, s: Scale, port: int, qps_counter: tuple[str, tuple[tuple[str, str], ...]] | None = None
) -> dict[str, Any]:
    """The GCPolicy `gc-tuner local` runs for a gc-tuner configuration. QPS comes from the agent's
    request counter, or from `qps_counter` (a Prometheus counter and its label matchers) on the
    same port."""
    assert c.strategy is not None
    qps: dict[str, Any] = {"agent": {}}
    if qps_counter is not None:
        qps = {"counter": {"name": qps_counter[0], "matchers": dict(qps_counter[1]), "port": port}}
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
                "canary": {"evaluationSeconds": s.evaluation_s},
            },
            "sampling": {
                "intervalSeconds": s.interval_s,
                "windowSeconds": s.window_s,
                "sources": {"agent": {"port": port}},
            },
            "qps": qps,
            "strategy": {"type": c.strategy},
            "memoryLimit": {"mode": "FromContainerLimit"},
        },
    }
