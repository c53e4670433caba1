"""What a tuner could earn at best where the best setting moves: the hindsight per-phase oracle.

For a scenario with phases (diurnal), each phase's figures are taken from the static settings' own
trials, and the oracle holds, in every phase, the setting that was cheapest in it. Its cost against
the best single static setting bounds what any tuner switching between those settings can save:
when the bound is below the goal, the goal is out of reach on this scenario whatever the tuner does.

It is a bound, not a contender: switching is free and instant in it, and each phase's figures carry
the history that setting built before the phase (a heap grown under GOGC=off stays grown).
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from bench.common import markdown_table
from bench.quality.prices import Prices
from bench.quality.trial import TrialRecord
from bench.quality.windows import figures, lived_through

__all__ = ["PhaseBest", "PhaseOracle", "cuts_for", "phase_oracle", "report_lines"]

GiB = 1 << 30


@dataclass(frozen=True, slots=True)
class PhaseBest:
    start_s: float
    end_s: float
    key: str  # the cheapest setting in this phase
    rate: float  # its median cost per hour in the phase


@dataclass(frozen=True, slots=True)
class PhaseOracle:
    phases: list[PhaseBest]
    rate: float  # per hour, the phases weighted by their length
    static_key: str  # the best single setting over the whole window
    static_rate: float

    @property
    def saving(self) -> float:
        return 1 - self.rate / self.static_rate


def _rate(r: TrialRecord, a: float, b: float, prices: Prices) -> float | None:
    f = figures(r, a, b)
    if f.gc_cores is None or f.mem_avg_bytes is None or f.seconds <= 0:
        return None
    return prices.cost(f.gc_cores, f.mem_avg_bytes / GiB, 3600)


def _median_rate(trials: Sequence[TrialRecord], a: float, b: float, prices: Prices) -> float | None:
    """None unless every trial lived through [a, b]: a setting killed within the span is no choice
    for it (its figures would cover a shorter span); before it died it may well have been one."""
    if not trials or not all(lived_through(r.died_at_s, r.oom_kills, b) for r in trials):
        return None
    rates = [x for r in trials if (x := _rate(r, a, b, prices)) is not None]
    return statistics.median(rates) if len(rates) * 2 >= len(trials) and rates else None


def phase_oracle(
    statics: dict[str, Sequence[TrialRecord]], cuts: Sequence[float], prices: Prices
) -> PhaseOracle | None:
    """`statics`: each static setting's trials; `cuts`: the measured window's start, each phase
    change inside it, and its end. In each phase only settings whose every trial lived through it
    compete; the best single setting must have lived the whole window. None without figures."""
    spans = list(itertools.pairwise(cuts))
    if not statics or not spans:
        return None
    whole = {k: _median_rate(t, cuts[0], cuts[-1], prices) for k, t in statics.items()}
    known = {k: v for k, v in whole.items() if v is not None}
    if not known:
        return None
    best_key = min(known, key=lambda k: known[k])
    phases = []
    for a, b in spans:
        rates = {k: v for k, t in statics.items() if (v := _median_rate(t, a, b, prices)) is not None}
        if not rates:
            return None
        k = min(rates, key=lambda k: rates[k])
        phases.append(PhaseBest(a, b, k, rates[k]))
    total = sum((p.end_s - p.start_s) * p.rate for p in phases) / (cuts[-1] - cuts[0])
    return PhaseOracle(phases, total, best_key, known[best_key])


def cuts_for(phase_times: Sequence[float], warmup_s: float, run_s: float) -> list[float]:
    """The measured window's start, the phase changes inside it, and the run's end."""
    return [warmup_s, *(t for t in phase_times if warmup_s < t < run_s), run_s] if run_s > warmup_s else []


def report_lines(
    statics: dict[str, Sequence[TrialRecord]],
    labels: dict[str, str],
    cuts: Sequence[float],
    prices: Prices,
    factors: Sequence[float],
) -> list[str]:
    """The report's section: per phase the cheapest setting at each price ratio, and the bound."""
    if not cuts:
        return ["- not judged: no measured window"]
    priced = [prices if f == 1.0 else prices.scaled(f) for f in factors]
    found = [phase_oracle(statics, cuts, p) for p in priced]
    oracles = [o for o in found if o is not None]
    if len(oracles) != len(found) or not oracles:
        return [
            "- not judged: a phase, or the whole day, without figures from a setting that lived through it"
        ]
    header = ["phase", *(f"cheapest at CPU:memory {p.ratio:.2f}:1, per hour" for p in priced)]
    rows = [
        [
            f"{ph.start_s:.0f}-{ph.end_s:.0f} s",
            *(f"{labels[o.phases[i].key]} {o.phases[i].rate:.4g}" for o in oracles),
        ]
        for i, ph in enumerate(oracles[0].phases)
    ]
    rows.append(["switching at every phase change", *(f"{o.rate:.4g}" for o in oracles)])
    rows.append(["best single setting", *(f"{labels[o.static_key]} {o.static_rate:.4g}" for o in oracles)])
    rows.append(["bound on the saving", *(f"{100 * o.saving:.1f} %" for o in oracles)])
    return [markdown_table(header, rows)]
