"""The scenarios: what load and live set the workload sees over a trial, and how long it runs.

Every trial of a scenario runs the same program with the same flags and the same phase changes;
contenders differ only in how the GC is set (contenders.py). Times are seconds from the moment the
workload listens. A trial's measured window is [warmup_s, run_s]: the figures of the report come
from it, never from the start-up that builds the live set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["FULL", "SCENARIO_NAMES", "SMOKE", "Phase", "Scale", "Scenario", "foreign_scenario", "scenarios"]

MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True, slots=True)
class Scale:
    """The bench's time scale and sizes: the one thing that differs between a full and a smoke run.

    interval/window/cooldown/evaluation are the bench time scale, set alike for every tuner and
    scenario (gc-tuner's documented defaults are 15 s / 300 s / 300 s / 300 s: a production pod
    lives for days, a trial for two minutes). Nothing else of any tuner is changed.
    """

    run_s: float  # trial length, from listening to SIGTERM
    warmup_s: float  # excluded from every figure
    limit_bytes: int
    interval_s: int
    window_s: int
    cooldown_s: int
    # rollout.canary.evaluationSeconds: how long a change is judged. Scaled by the interval, not the
    # window: the guard's verdict needs samples (at least five windows each side), and the defaults
    # give it 20 intervals (300 s at 15 s). A check trial at 30 s (10 intervals) rolled back every
    # change for want of a verdict.
    evaluation_s: int
    tuner_lead_s: float  # gc-tuner starts this long before the workload, as an operator runs before a pod
    agent_every_s: float  # GOGC, load latency and process CPU sampling
    memory_hz: float  # cgroup memory sampling rate (>= 10)
    sizes: float  # multiplies live sets, leak rate and QPS (smoke runs shrink the workload)


FULL = Scale(
    run_s=110,
    warmup_s=20,
    limit_bytes=GiB,
    interval_s=3,
    window_s=30,
    cooldown_s=15,
    evaluation_s=60,
    tuner_lead_s=3,
    agent_every_s=1,
    memory_hz=20,
    sizes=1.0,
)
SMOKE = Scale(
    run_s=4,
    warmup_s=1,
    limit_bytes=256 * MiB,
    interval_s=1,
    window_s=3,
    cooldown_s=1,
    evaluation_s=10,
    tuner_lead_s=1,
    agent_every_s=0.5,
    memory_hz=20,
    sizes=0.15,
)


@dataclass(frozen=True, slots=True)
class Phase:
    """At `at_s`, POST these query strings to the workload's /load and /cache (empty: no change)."""

    at_s: float
    load: str = ""
    cache: str = ""
    label: str = ""


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    args: tuple[str, ...] = ()  # reference workload flags beyond -listen
    phases: tuple[Phase, ...] = ()
    # foreign programs: command lines (and environment) with placeholders {host} {port} {peer_port}
    # {agent_port} {dir}; `agent`: the program serves the gc-tuner agent at {agent_port} (and, with
    # `tuner_qps`, the Prometheus counter gc-tuner reads QPS from on the same port)
    workload_cmd: tuple[str, ...] = ()
    load_cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    agent: bool = False
    tuner_qps: tuple[str, tuple[tuple[str, str], ...]] | None = None  # counter name, matchers
    notes: tuple[str, ...] = field(default_factory=tuple)
    warmup_s: float | None = None  # None: the scale's

    @property
    def foreign(self) -> bool:
        return bool(self.workload_cmd)

    def warmup(self, s: Scale) -> float:
        return s.warmup_s if self.warmup_s is None else self.warmup_s


SCENARIO_NAMES = ("steady", "burst", "leak", "diurnal", "foreign")


def _i(v: float) -> str:
    return str(max(1, round(v)))


_COMMON = ("-garbage-bytes", str(128 << 10), "-load-concurrency", "32")


def _burst(k: float) -> Scenario:
    qps = 1000 * k
    return Scenario(
        "burst",
        f"square wave {qps / 3:.0f} ↔ {5 * qps / 3:.0f} QPS, 20 s period; {50 * k:.0f} MiB cache plus "
        "16 KiB of session state per request kept 5 s, so the live set follows QPS",
        (
            *_COMMON,
            *("-live-mib", _i(50 * k), "-session-bytes", str(16 << 10), "-session-ttl", "5s"),
            *("-load", "burst", "-qps", _i(qps / 3), "-burst-qps", _i(5 * qps / 3)),
            *("-burst-period", "20s", "-burst-duty", "0.5"),
        ),
    )


def _diurnal(k: float, t: float) -> Scenario:
    """`t` stretches the phase times with the run length (smoke runs)."""
    return Scenario(
        "diurnal",
        f"QPS {200 * k:.0f} → {2000 * k:.0f} → {200 * k:.0f} while the cache grows "
        f"{50 * k:.0f} → {400 * k:.0f} MiB in one phase and is dropped back in another "
        "(QPS and live heap change independently); 64 KiB garbage per request",
        (
            *("-garbage-bytes", str(64 << 10), "-load-concurrency", "32"),
            *("-live-mib", _i(50 * k), "-load", "steady", "-qps", _i(200 * k)),
        ),
        warmup_s=10 * t,  # the measured window is the whole day after the first phase
        phases=(
            Phase(10 * t, load=f"qps={_i(2000 * k)}", label="QPS up"),
            Phase(35 * t, cache=f"live_mib={_i(400 * k)}&over={25 * t:.1f}s", label="cache grows"),
            Phase(60 * t, load=f"qps={_i(200 * k)}", label="QPS down"),
            Phase(85 * t, cache=f"live_mib={_i(50 * k)}", label="cache dropped"),
        ),
    )


def scenarios(s: Scale) -> list[Scenario]:
    """The four reference-workload scenarios at scale `s` (foreign is built from its commands)."""
    k = s.sizes
    qps = 1000 * k
    steady = (*_COMMON, "-live-mib", _i(110 * k), "-load", "steady", "-qps", _i(qps))
    return [
        Scenario("steady", f"constant {qps:.0f} QPS, {110 * k:.0f} MiB cache", steady),
        _burst(k),
        Scenario(
            "leak",
            f"constant {qps:.0f} QPS, {110 * k:.0f} MiB cache, leaking {10 * k:g} MiB/s from the start "
            "(GOGC=off settings reach the limit before the end)",
            (*steady, "-leak-mib-per-sec", f"{10 * k:g}"),
        ),
        _diurnal(k, s.run_s / FULL.run_s),
    ]


def foreign_scenario(
    workload_cmd: tuple[str, ...],
    load_cmd: tuple[str, ...],
    description: str,
    *,
    env: tuple[tuple[str, str], ...] = (),
    agent: bool = False,
    tuner_qps: tuple[str, tuple[tuple[str, str], ...]] | None = None,
) -> Scenario:
    return Scenario(
        "foreign",
        description,
        workload_cmd=workload_cmd,
        load_cmd=load_cmd,
        env=env,
        agent=agent,
        tuner_qps=tuner_qps,
    )
