"""The guard's verdict on a change: is the changed group worse than the unchanged one, beyond the
policy's thresholds, on any guarded signal? Pure; the samples are per-window values (tuning/guard_signals.py).

One signal is judged with a one-sided Mann-Whitney U test (is the changed group's distribution shifted
up?) and two effect-size floors, all of which must hold for "worse":
- p < alpha: the shift is not noise;
- the changed group's median exceeds the baseline's by more than the policy's percentage: a shift
  that is real but small is not a regression the user asked to be protected from;
- and by more than an absolute floor per signal: +50 % of a 0.1 % GC CPU share is a real shift of
  nothing, and the relative threshold alone would call it a regression.

The family's alpha is shared: with k signals tested, each is tested at alpha / k (Bonferroni), so a
trial judged on four signals is not four chances for noise to roll it back. The guard looks at a
trial every cycle; it passes a stricter alpha (EARLY_ALPHA) for the looks before the evaluation ends
and ALPHA at the end, as a group-sequential test does (Haybittle-Peto): repeated looks at 0.05 would
roll back a harmless change in a large share of trials (tests/logic/test_verdict_looks.py measures it).

Mann-Whitney needs no distribution (GC CPU per window is bounded and skewed; pauses are heavy-tailed)
and one slow window moves a rank sum little, so one window is never a verdict. With fewer than
`min_samples` windows on either side a signal has no verdict yet.

Pauses are judged pooled, not per window (`judge_tail`): a window's longest pause grows with the
number of cycles in it, so a lower GOGC (more cycles per window) would look worse with pauses no
longer. The pooled pauses of each side are compared with the same test, and their effect by the same
quantile on both sides: p99, or the highest quantile the smaller pool can estimate (1 - 0.5/n), so
the side with more pauses is not judged by a higher quantile.

The memory signal is judged against the limit, not only against the baseline: the changed group is
worse when its median share of the memory limit is above `maxMemoryPercentOfLimit` and above the
baseline's (pods that sit near their limit anyway are not made worse by the change).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from scipy.stats import mannwhitneyu

__all__ = [
    "ALPHA",
    "EARLY_ALPHA",
    "MIN_SAMPLES",
    "GuardVerdict",
    "SignalRule",
    "SignalVerdict",
    "judge",
    "judge_limit",
    "judge_shift",
    "judge_tail",
]

ALPHA = 0.05
EARLY_ALPHA = 0.01  # the looks before the evaluation ends: only a clear regression stops a trial early
MIN_SAMPLES = 5  # per side: with 5 and 5 fully separated windows, the one-sided p is 1/252 ≈ 0.004

Outcome = Literal["worse", "ok", "pending"]


@dataclass(frozen=True, slots=True)
class SignalRule:
    """How one signal is judged. `max_increase_percent` None: against the limit (`limit_percent`)."""

    name: str
    max_increase_percent: float | None = None
    abs_floor: float = 0.0  # the smallest increase that counts, in the signal's unit
    limit_percent: float | None = None  # memory: the most the changed group may use, % of the limit


@dataclass(frozen=True, slots=True)
class SignalVerdict:
    signal: str
    outcome: Outcome
    changed_median: float | None = None
    baseline_median: float | None = None
    increase_percent: float | None = None
    p_value: float | None = None
    samples: tuple[int, int] = (0, 0)  # (changed, baseline)

    def describe(self) -> str:
        if self.outcome == "pending":
            return f"{self.signal}: {self.samples[0]}/{self.samples[1]} windows, need {MIN_SAMPLES} each"
        inc = f" ({self.increase_percent:+.0f} %)" if self.increase_percent is not None else ""
        p = f", p={self.p_value:.3g}" if self.p_value is not None else ""
        return f"{self.signal}: {_num(self.baseline_median)} -> {_num(self.changed_median)}{inc}{p}"


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    """`worse`: the first signal found worse (the lowest p-value); `pending`: signals without enough
    windows yet; `ok`: every signal with data is no worse."""

    outcome: Outcome
    signals: tuple[SignalVerdict, ...]

    @property
    def worst(self) -> SignalVerdict | None:
        worse = [s for s in self.signals if s.outcome == "worse"]
        return min(worse, key=lambda s: s.p_value if s.p_value is not None else 0.0) if worse else None


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def _clean(xs: Sequence[float]) -> list[float]:
    return [float(x) for x in xs if math.isfinite(x)]


def judge_shift(
    rule: SignalRule,
    changed: Sequence[float],
    baseline: Sequence[float],
    *,
    alpha: float = ALPHA,
    min_samples: int = MIN_SAMPLES,
    expected_factor: float = 1.0,
) -> SignalVerdict:
    """One signal, changed group against baseline: worse, ok, or pending (too few windows).

    `expected_factor` scales the baseline to what the change is expected to do by design (GC CPU
    after GOGC 100 -> 50 is expected to double), so only a rise beyond the expectation counts."""
    a, b = _clean(changed), [x * expected_factor for x in _clean(baseline)]
    if len(a) < min_samples or len(b) < min_samples:
        return SignalVerdict(rule.name, "pending", samples=(len(a), len(b)))
    ma, mb = statistics.median(a), statistics.median(b)
    increase = (ma - mb) / mb * 100.0 if mb > 0 else (math.inf if ma > mb else 0.0)
    p = _p_greater(a, b)
    threshold = rule.max_increase_percent if rule.max_increase_percent is not None else 0.0
    worse = p < alpha and increase > threshold and ma - mb > rule.abs_floor
    shown = increase if math.isfinite(increase) else None
    return SignalVerdict(rule.name, "worse" if worse else "ok", ma, mb, shown, p, (len(a), len(b)))


def judge_tail(
    rule: SignalRule,
    changed: Sequence[float],
    baseline: Sequence[float],
    *,
    windows: tuple[int, int],
    alpha: float = ALPHA,
    min_samples: int = MIN_SAMPLES,
    q: float = 0.99,
) -> SignalVerdict:
    """Pauses pooled over each side's windows (`windows`: how many windows each pool came from):
    worse when the changed pool is shifted up (Mann-Whitney) and its q-quantile exceeds the
    baseline's by the rule's percentage and floor. The quantile is the same on both sides, at most
    what the smaller pool can estimate."""
    a, b = _clean(changed), _clean(baseline)
    if min(windows) < min_samples or not a or not b:
        return SignalVerdict(rule.name, "pending", samples=windows)
    level = min(q, 1.0 - 0.5 / min(len(a), len(b)))
    ma, mb = _quantile(a, level), _quantile(b, level)
    increase = (ma - mb) / mb * 100.0 if mb > 0 else (math.inf if ma > mb else 0.0)
    p = _p_greater(a, b)
    threshold = rule.max_increase_percent if rule.max_increase_percent is not None else 0.0
    worse = p < alpha and increase > threshold and ma - mb > rule.abs_floor
    shown = increase if math.isfinite(increase) else None
    return SignalVerdict(rule.name, "worse" if worse else "ok", ma, mb, shown, p, windows)


def _quantile(xs: Sequence[float], q: float) -> float:
    """The q-quantile by linear interpolation between order statistics (numpy's default)."""
    ys = sorted(xs)
    pos = q * (len(ys) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ys) - 1)
    return ys[lo] + (ys[hi] - ys[lo]) * (pos - lo)


def judge_limit(
    rule: SignalRule,
    changed: Sequence[float],
    baseline: Sequence[float],
    *,
    min_samples: int = MIN_SAMPLES,
) -> SignalVerdict:
    """The memory signal (percent of the limit per window): worse when the changed group's median is
    above the rule's limit and above the baseline's median (or there is no baseline)."""
    a, b = _clean(changed), _clean(baseline)
    if len(a) < min_samples:
        return SignalVerdict(rule.name, "pending", samples=(len(a), len(b)))
    ma = statistics.median(a)
    mb = statistics.median(b) if b else None
    limit = rule.limit_percent if rule.limit_percent is not None else math.inf
    worse = ma > limit and (mb is None or ma > mb)
    p = _p_greater(a, b) if len(b) >= min_samples else None
    return SignalVerdict(rule.name, "worse" if worse else "ok", ma, mb, None, p, (len(a), len(b)))


def _p_greater(a: Sequence[float], b: Sequence[float]) -> float:
    if max(a) == min(a) == max(b) == min(b):
        return 1.0  # all equal: scipy would warn and return nan; there is no shift
    return float(mannwhitneyu(a, b, alternative="greater", method="auto").pvalue)


def judge(
    rules: Sequence[SignalRule],
    changed: Mapping[str, Sequence[float]],
    baseline: Mapping[str, Sequence[float]],
    *,
    alpha: float = ALPHA,
    min_samples: int = MIN_SAMPLES,
    expected: Mapping[str, float] | None = None,
    pooled: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
) -> GuardVerdict:
    """Every rule whose signal has data on the changed side; a signal no source provides is skipped
    (it is not guarded, and says so in status), not held forever. `pooled`: per signal, the (changed,
    baseline) samples to judge by `judge_tail` instead of the per-window values."""
    out: list[SignalVerdict] = []
    tested = [
        r
        for r in rules
        if r.max_increase_percent is not None and (changed.get(r.name) or baseline.get(r.name))
    ]
    alpha = alpha / max(1, len(tested))  # Bonferroni over the signals tested for a shift
    for rule in rules:
        a, b = changed.get(rule.name, ()), baseline.get(rule.name, ())
        if not a and not b:
            continue
        if pooled is not None and rule.name in pooled:
            pa, pb = pooled[rule.name]
            windows = (len(a), len(b))
            out.append(judge_tail(rule, pa, pb, windows=windows, alpha=alpha, min_samples=min_samples))
        elif rule.max_increase_percent is None:
            out.append(judge_limit(rule, a, b, min_samples=min_samples))
        else:
            factor = (expected or {}).get(rule.name, 1.0)
            out.append(judge_shift(rule, a, b, alpha=alpha, min_samples=min_samples, expected_factor=factor))
    if any(s.outcome == "worse" for s in out):
        return GuardVerdict("worse", tuple(out))
    if not out or any(s.outcome == "pending" for s in out):
        return GuardVerdict("pending", tuple(out))
    return GuardVerdict("ok", tuple(out))
