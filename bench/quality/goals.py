"""The goals, each with an explicit threshold, judged PASS / FAIL (or not judged, with the reason).

They are judged for Cost (the headline: at its defaults, its per-pod cost counted) and, with the
same thresholds, for Formula and Budget. All inputs are a ScenarioResult, so tests judge crafted
numbers and show every goal can fail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.quality.aggregate import ConfigResult, ScenarioResult
from bench.quality.intervals import estimate
from bench.quality.prices import Prices

__all__ = [
    "CONVERGE_WINDOWS_MAX",
    "DIURNAL_SAVING_MIN",
    "FRONT_EXCESS_MAX",
    "P99_INCREASE_MAX",
    "PRICE_FACTORS",
    "TUNERS",
    "Goal",
    "judge",
    "sanity",
]

FRONT_EXCESS_MAX = 0.05  # steady, burst, foreign: GC CPU at most 5 % above the front
CONVERGE_WINDOWS_MAX = 2  # steady, burst: GOGC settles within 2 fit windows
DIURNAL_SAVING_MIN = 0.10  # diurnal: price-weighted cost >= 10 % below the best static setting
PRICE_FACTORS = (1.0, 3.0, 1 / 3)  # the default price ratio, CPU 3× dearer, CPU 3× cheaper
P99_INCREASE_MAX = 0.05  # diurnal: p99 latency at most 5 % above GOGC=100's
LEAK_FLAG_WINDOWS_MAX = 2
TUNERS = ("cost", "budget", "formula")


@dataclass(frozen=True, slots=True)
class Goal:
    scenario: str
    tuner: str
    text: str
    met: bool | None  # None: not judged (detail says why)
    detail: str

    @property
    def mark(self) -> str:
        return {True: "PASS", False: "FAIL", None: "NOT JUDGED"}[self.met]


def _pct(x: float) -> str:
    return f"{100 * x:+.1f} %"


def _front_goal(sr: ScenarioResult, cr: ConfigResult) -> Goal:
    text = (
        f"GC CPU (tuner's per-pod cost included) within {FRONT_EXCESS_MAX:.0%} of the oracle "
        "front at the same time-averaged memory, after convergence"
    )
    d = cr.dist_after
    if d is None:
        why = "no front (memory not measured or no sweep point)" if not sr.front_avg else "no figures"
        return Goal(sr.name, cr.config.key, text, None, why)
    if d.excess is None:
        return Goal(sr.name, cr.config.key, text, None, d.where)
    detail = f"{_pct(d.excess)} vs the front ({d.where}; front {d.front_cpu:.4f} cores)"
    return Goal(sr.name, cr.config.key, text, d.excess <= FRONT_EXCESS_MAX, detail)


def _convergence_goal(sr: ScenarioResult, cr: ConfigResult) -> Goal:
    limit = CONVERGE_WINDOWS_MAX * sr.window_s
    text = (
        f"GOGC stays within 10 % of its final value from at most {CONVERGE_WINDOWS_MAX} fit "
        f"windows ({limit} s) on"
    )
    conv = cr.get("converged")
    if conv is None:
        return Goal(sr.name, cr.config.key, text, None, "no GOGC samples")
    return Goal(sr.name, cr.config.key, text, conv.median <= limit, f"converged at {conv.fmt(digits=0)} s")


def _viable_statics(sr: ScenarioResult) -> tuple[list[ConfigResult], list[str]]:
    """The sweep settings a user could have chosen for the day: every trial ran to the end. One that
    was OOM-killed is no candidate, however little it cost before it died."""
    sweep = [c for c in sr.configs.values() if c.config.sweep and c.trials]
    viable = [c for c in sweep if c.lived]
    return viable, [c.config.label for c in sweep if c not in viable]


def _diurnal_cost_goals(sr: ScenarioResult, cr: ConfigResult, prices: Prices) -> list[Goal]:
    goals = []
    viable, dead = _viable_statics(sr)
    left_off = f"; left off, killed before the end: {', '.join(dead)}" if dead else ""
    for f in PRICE_FACTORS:
        p = prices if f == 1.0 else prices.scaled(f)
        text = (
            f"price-weighted cost (GC CPU + memory-time, CPU:memory {p.ratio:.2f}:1) ≥ "
            f"{DIURNAL_SAVING_MIN:.0%} below the best static setting that lived the whole day"
        )
        mine = estimate([t.cost_per_hour(p) for t in cr.trials])
        statics = [(c.config.label, estimate([t.cost_per_hour(p) for t in c.trials])) for c in viable]
        statics_known = [(label, e) for label, e in statics if e is not None]
        if mine is None or not statics_known:
            goals.append(Goal(sr.name, cr.config.key, text, None, f"no memory or no sweep figures{left_off}"))
            continue
        label, best = min(statics_known, key=lambda x: x[1].median)
        saving = 1 - mine.median / best.median
        goals.append(
            Goal(
                sr.name,
                cr.config.key,
                text,
                saving >= DIURNAL_SAVING_MIN,
                f"{mine.median:.4g} vs {label} {best.median:.4g} per hour: {100 * saving:.1f} % lower"
                + left_off,
            )
        )
    return goals


def _diurnal_safety_goals(sr: ScenarioResult, cr: ConfigResult) -> list[Goal]:
    oom = Goal(
        sr.name,
        cr.config.key,
        "0 OOM kills",
        cr.oom_kills == 0 if cr.trials else None,
        f"{cr.oom_kills} in {len(cr.trials)} trials",
    )
    text = f"p99 latency ≤ GOGC=100's + {P99_INCREASE_MAX:.0%}"
    base = sr.configs.get("gogc100")
    mine, ref = cr.get("p99"), base.get("p99") if base else None
    if mine is None or ref is None:
        return [oom, Goal(sr.name, cr.config.key, text, None, "no latency figures")]
    ok = mine.median <= ref.median * (1 + P99_INCREASE_MAX)
    return [oom, Goal(sr.name, cr.config.key, text, ok, f"{mine.median:.2f} ms vs {ref.median:.2f} ms")]


def _leak_goals(sr: ScenarioResult, cr: ConfigResult) -> list[Goal]:
    base = sr.configs.get("gogc100")
    text = "never OOM-killed earlier than GOGC=100"
    deaths = [t.died_at_s for t in cr.trials if not t.lived]
    ref = base.get("died_at") if base else None
    if not cr.trials or base is None or not base.trials:
        kill = Goal(sr.name, cr.config.key, text, None, "runs missing")
    elif ref is None:
        kill = Goal(
            sr.name, cr.config.key, text, not deaths, f"GOGC=100 survived; killed {len(deaths)} times"
        )
    else:
        first = min((d for d in deaths if d is not None), default=None)
        ok = first is None or first >= ref.median
        kill = Goal(
            sr.name,
            cr.config.key,
            text,
            ok,
            f"earliest death {'none' if first is None else f'{first:.0f} s'} vs GOGC=100 at "
            f"{ref.median:.0f} s",
        )
    limit = LEAK_FLAG_WINDOWS_MAX * sr.window_s
    text = f"leak flagged within {LEAK_FLAG_WINDOWS_MAX} fit windows ({limit} s) at default parameters"
    flags = [t.leak_flagged_at_s for t in cr.trials]
    if not flags:
        return [kill, Goal(sr.name, cr.config.key, text, None, "runs missing")]
    ok = all(f is not None and f <= limit for f in flags)
    shown = ", ".join("never" if f is None else f"{f:.0f} s" for f in flags)
    return [kill, Goal(sr.name, cr.config.key, text, ok, f"flagged at {shown}")]


def judge(sr: ScenarioResult, prices: Prices, tuners: Sequence[str] = TUNERS) -> list[Goal]:
    goals: list[Goal] = []
    for key in tuners:
        cr = sr.configs.get(key)
        if cr is None:
            continue
        if cr.unavailable or not cr.trials:
            goals.append(Goal(sr.name, key, "all goals", None, cr.unavailable or "not run"))
            continue
        if sr.name in ("steady", "burst"):
            goals += [_front_goal(sr, cr), _convergence_goal(sr, cr)]
        elif sr.name == "foreign":
            goals.append(_front_goal(sr, cr))
        elif sr.name == "diurnal":
            goals += _diurnal_cost_goals(sr, cr, prices) + _diurnal_safety_goals(sr, cr)
        elif sr.name == "leak":
            goals += _leak_goals(sr, cr)
    return goals


def _cross_check(sr: ScenarioResult) -> list[Goal]:
    """GC CPU from gctrace is the runtime's estimate from the time its Ps spend marking; when other
    processes take the CPUs it reads high. It can never exceed the process's own utime+stime."""
    out = []
    for cr in sr.configs.values():
        bad = [
            t
            for t in cr.trials
            if t.whole.gc_cores is not None
            and t.whole.process_cores is not None
            and t.whole.gc_cores > t.whole.process_cores
        ]
        if cr.trials:
            out.append(
                Goal(
                    sr.name,
                    cr.config.key,
                    "GC CPU (gctrace) at most the process's utime+stime over the same window",
                    not bad,
                    f"{len(bad)} of {len(cr.trials)} trials above it (a loaded machine inflates the "
                    "runtime's estimate)"
                    if bad
                    else f"{len(cr.trials)} trials consistent",
                )
            )
    return out


def sanity(sr: ScenarioResult) -> list[Goal]:
    """Checks that the scenario tested what it claims and that its figures are consistent (not
    goals of any tuner)."""
    out = _cross_check(sr)
    if sr.name == "leak":
        for key in ("off50", "off70", "off90"):
            cr = sr.configs.get(key)
            if cr is None or not cr.trials:
                continue
            reached = [
                t.oom_kills > 0
                or (t.whole.mem_peak_bytes is not None and t.whole.mem_peak_bytes >= 0.95 * sr.limit_bytes)
                for t in cr.trials
            ]
            out.append(
                Goal(
                    sr.name,
                    key,
                    "the GOGC=off setting reached the memory limit before the end",
                    all(reached),
                    f"{sum(reached)} of {len(reached)} trials",
                )
            )
    return out
