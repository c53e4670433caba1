"""How a trial is judged, pure: the guard's rules, the windows on each side of the change, and what
the change is expected to do to them (tuning/safety.py decides what follows from the verdict).

- A canary's windows against the untouched pods' over the same time; a before/after trial's against
  the same pods' windows over one evaluation before the change, from the last change of the values
  in force on, if that is later (`SignalLog.settled_since`): a baseline run partly at another GOGC
  (before a leak hold or a rollback) would expect the wrong GC CPU of the values the change replaces.
- GC CPU: the baseline is scaled by old/new GOGC (GC CPU ∝ 1/GOGC while the memory limit does not
  bind) and, before/after, by the allocation rate after over before (GC CPU ∝ the allocation rate)
  and by the cost of a cycle per live byte after over before (GC CPU ∝ that cost, which the
  application sets and GOGC does not): only a rise beyond what the change, the load and the
  application's own drift explain counts (go-gc-facts.md, section 8). What a change can do wrong,
  such as a memory limit that makes the GC run back to back, it does through the number of cycles,
  and that is what is left to judge. A canary and the others share load and drift, and need neither.
- Pauses are pooled over the windows (logic/verdict.py says why).
- Memory is not judged in a before/after trial of a change that can only lower it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

from gc_tuner.logic.memlimit import GoMemLimitError, parse_gomemlimit
from gc_tuner.logic.verdict import ALPHA, GuardVerdict, SignalRule, judge
from gc_tuner.model.policy import GCPolicySpec
from gc_tuner.tuning.guard_records import Trial
from gc_tuner.tuning.guard_signals import ALLOC_RATE, GC_CPU, LATENCY, MARK_COST, MEMORY, PAUSE, SignalLog

__all__ = [
    "MIN_WINDOWS",
    "baseline_since",
    "evaluation_s",
    "guard_rules",
    "judge_trial",
    "load_ratio",
    "lowers_memory_only",
    "median_ratio",
    "short_baseline",
]

MIN_WINDOWS = 5


def guard_rules(spec: GCPolicySpec) -> list[SignalRule]:
    g = spec.guard
    return [
        # Floors: half a percentage point of GC CPU, 100 µs of pause: shifts below them are noise
        # whatever their relative size.
        SignalRule(GC_CPU, max_increase_percent=g.max_gc_cpu_increase_percent, abs_floor=0.005),
        SignalRule(PAUSE, max_increase_percent=g.max_pause_p99_increase_percent, abs_floor=100e-6),
        SignalRule(MEMORY, limit_percent=g.max_memory_percent_of_limit),
        # Half a millisecond: a request p99 moving by less is not a regression worth a rollback.
        SignalRule(LATENCY, max_increase_percent=g.max_latency_p99_increase_percent, abs_floor=0.0005),
    ]


def lowers_memory_only(
    was_gogc: int | None, gogc: int | None, was_limit: int | None, limit: str | None
) -> bool:
    """The change can only lower memory use: GOGC not raised, GOMEMLIMIT not raised. A lower GOGC
    shrinks the heap goal; a GOMEMLIMIT only ever makes the GC collect sooner. `was_limit`: the
    pods' GOMEMLIMIT before, in bytes (None: none); `limit` None: the change leaves it alone.
    A GOGC before that is unknown or off could be anything: the change may raise memory."""
    if was_gogc is None or was_gogc <= 0 or gogc is None or gogc > was_gogc:
        return False
    if limit is None:
        return True
    try:
        new = parse_gomemlimit(limit)
    except GoMemLimitError:
        return False
    return was_limit is None or new <= was_limit


def evaluation_s(spec: GCPolicySpec) -> float:
    return float(max(spec.rollout.canary.evaluation_seconds, MIN_WINDOWS * spec.sampling.interval_seconds))


def load_ratio(changed: Mapping[str, Sequence[float]], baseline: Mapping[str, Sequence[float]]) -> float:
    """The allocation rate after the change over the one before (medians of the windows'); 1 when
    either side has no figure."""
    return median_ratio(changed, baseline, ALLOC_RATE)


def median_ratio(
    changed: Mapping[str, Sequence[float]], baseline: Mapping[str, Sequence[float]], signal: str
) -> float:
    """`signal`'s median over the windows after the change over its median before; 1 when either
    side has no finite figure."""
    after = [x for x in changed.get(signal, ()) if math.isfinite(x)]
    before = [x for x in baseline.get(signal, ()) if math.isfinite(x)]
    if not after or not before:
        return 1.0
    b = statistics.median(before)
    return statistics.median(after) / b if b > 0 else 1.0


def baseline_since(spec: GCPolicySpec, log: SignalLog, pods: set[str], at: float) -> float:
    """Where the baseline of a before/after trial starting at `at` begins: one evaluation before
    it, or the last change of the values in force on `pods`, whichever is later. One rule for the
    trial's judgement and for its wait (`short_baseline`)."""
    return log.settled_since(pods=pods, until=at, floor=at - evaluation_s(spec))


def short_baseline(spec: GCPolicySpec, log: SignalLog, pods: set[str], now: float) -> str | None:
    """Why a before/after trial started now could not be judged yet: a guarded signal the pods have
    windows of, with fewer than MIN_WINDOWS of them inside the baseline span (a young pod), or since
    the values in force last changed (a leak hold, a rollback). Started anyway, it would wait out
    twice the evaluation and roll back for want of a verdict (NoVerdict), then back off for an hour.
    None: enough windows, or the log spans the baseline already and the values held through it (a
    signal that is still short then is too sparse to wait for)."""
    floor = now - evaluation_s(spec)
    since = baseline_since(spec, log, pods, now)
    moved = since > floor  # the values in force changed inside the span
    if not moved and any(p.start <= floor for p in log.points if p.pod in pods):
        return None
    seen = log.collect(since=since, until=now, pods=pods)
    # Since a change of the values in force, every signal the pods had in the span counts, even
    # one with no window yet: the wait ends at the latest one span after the change.
    had = log.collect(since=floor, until=now, pods=pods) if moved else seen
    counts = [
        f"{r.name} {len(seen.get(r.name, ()))}"
        for r in guard_rules(spec)
        if r.max_increase_percent is not None and had.get(r.name) and len(seen.get(r.name, ())) < MIN_WINDOWS
    ]
    if not counts:
        return None
    changed = f"since the values in force changed {now - since:.0f}s ago, " if moved else ""
    return changed + ", ".join(counts)


def judge_trial(
    spec: GCPolicySpec, log: SignalLog, t: Trial, now: float, *, alpha: float = ALPHA
) -> GuardVerdict:
    """Trial `t` judged on its windows up to `now`, at the family's `alpha` (logic/verdict.py)."""
    canary = set(t.canary)
    changed = log.collect(since=t.started_at, until=now, pods=canary)
    pauses = log.collect_pauses(since=t.started_at, until=now, pods=canary)
    if t.before_after:
        since = baseline_since(spec, log, canary, t.started_at)
        baseline = log.collect(since=since, until=t.started_at, pods=canary)
        before = log.collect_pauses(since=since, until=t.started_at, pods=canary)
    else:
        baseline = log.collect(since=t.started_at, until=now, exclude=canary)
        before = log.collect_pauses(since=t.started_at, until=now, exclude=canary)
    expected: dict[str, float] = {}
    if t.was_gogc and t.candidate.gogc:
        # GC CPU ∝ 1/GOGC while the memory limit does not bind: the rise the change is meant to cause.
        expected[GC_CPU] = t.was_gogc / t.candidate.gogc
    if t.before_after:
        # GC CPU ∝ the allocation rate and the cost of a cycle per live byte too: a load that rose
        # since "before", or marking that got dearer as the application aged, is not the change's doing.
        drift = load_ratio(changed, baseline) * median_ratio(changed, baseline, MARK_COST)
        expected[GC_CPU] = expected.get(GC_CPU, 1.0) * drift
    rules = guard_rules(spec)
    if t.before_after and t.memory_safe:
        rules = [r for r in rules if r.name != MEMORY]
    # Pauses pooled, not each window's longest: a lower GOGC puts more cycles, so a longer maximum,
    # in every window (logic/verdict.py). Windows without their pauses keep the per-window rule.
    pooled = {PAUSE: (pauses, before)} if pauses and before else None
    return judge(rules, changed, baseline, alpha=alpha, expected=expected, pooled=pooled)
