"""How the one-pod before/after guard judges GC CPU on a process whose marking drifts, replayed on a
committed run's static contenders (no change was made to them, so every "worse" is a false verdict).

Each trial's gctrace cycles become 1 s windows: GC CPU as a share of the CPU available to the
process (GOMAXPROCS × the window, as the guard divides by /cpu/classes/total; idle marking
excluded, as the guard counts it) and c, the GC CPU seconds per cycle per live MiB. A
pretend change at t0 is judged on the windows before and after it by three rules, each "worse" when
the rise is significant (one-sided, p < alpha) and above +25 % and 0.005 (the guard's defaults):
- plain: the guard's GC CPU rule (logic/verdict.py `judge_shift`), as it was before it scaled by c;
- scaled: the same with the baseline scaled by c after over c before (tuning/trial_judgement.py);
- trend: a segmented regression, GC CPU ~ level + slope·t + step·after, the step's t-test: the usual
  answer to a trend in a before/after comparison, for comparison.
With `--step F` the windows after t0 get F times their GC CPU, as more cycles would (c untouched):
the share found is the rule's power against a regression of that size.

`python -m bench.quality.drift_replay RESULTS.json [--config gogc100]` prints the counts.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import t as student_t

from gc_tuner.logic.verdict import ALPHA, judge_shift
from gc_tuner.model.policy import parse_policy
from gc_tuner.tuning.guard_signals import GC_CPU, MARK_COST
from gc_tuner.tuning.trial_judgement import guard_rules, median_ratio

__all__ = ["RULES", "Windows", "judge", "replay", "windows"]

RULES = ("plain", "scaled", "trend")
# The guard's own GC CPU rule at the policy's defaults.
_DEFAULTS = {
    "targetRef": {"name": "replay"},
    "sampling": {"sources": {"agent": {"port": 8080}}},
    "qps": {"agent": {}},
}
GC_RULE = next(r for r in guard_rules(parse_policy(_DEFAULTS)) if r.name == GC_CPU)


@dataclass(frozen=True, slots=True)
class Windows:
    """1 s windows from the workload's start: GC CPU fraction and c (NaN: no cycle ended in it)."""

    gc: np.ndarray
    cost: np.ndarray


def windows(trial: Mapping[str, Any], seconds: int, procs: int) -> Windows:
    """A trial record's first `seconds` 1 s windows, of a process run with GOMAXPROCS `procs`."""
    gc, cost = np.zeros(seconds), np.full(seconds, math.nan)
    per: list[list[float]] = [[] for _ in range(seconds)]
    for c in trial["cycles"]:
        k = math.floor(c["t_end"])
        if 0 <= k < seconds:
            gc[k] += c["busy_s"]
            if c["live_mib"] > 0:
                per[k].append(c["busy_s"] / c["live_mib"])
    for k, xs in enumerate(per):
        if xs:
            cost[k] = statistics.fmean(xs)
    return Windows(gc / procs, cost)


def _shift(after: np.ndarray, before: np.ndarray, expected: float) -> bool:
    """The guard's test of a rise beyond `expected` times the baseline (logic/verdict.py)."""
    return (
        judge_shift(GC_RULE, after.tolist(), before.tolist(), alpha=ALPHA, expected_factor=expected).outcome
        == "worse"
    )


def _trend(t_before: np.ndarray, before: np.ndarray, t_after: np.ndarray, after: np.ndarray) -> bool:
    t = np.r_[t_before, t_after]
    y = np.r_[before, after]
    x = np.c_[np.ones_like(t), t, np.r_[np.zeros(len(before)), np.ones(len(after))]]
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    resid = y - x @ beta
    df = len(y) - 3
    cov = (resid @ resid / df) * np.linalg.inv(x.T @ x)
    p = float(student_t.sf(beta[2] / math.sqrt(cov[2, 2]), df))
    level = float(beta[0] + beta[1] * t_after.mean())
    step = float(beta[2])
    # The guard's thresholds on the step: above +max_increase_percent of the level and the floor.
    threshold = GC_RULE.max_increase_percent or 0.0
    return p < ALPHA and level > 0 and step / level * 100 > threshold and step > GC_RULE.abs_floor


def judge(w: Windows, t0: int, n_before: int, n_after: int, step: float) -> dict[str, bool]:
    """Each rule's verdict ("worse" True) on a pretend change at t0."""
    idx_b, idx_a = np.arange(t0 - n_before, t0), np.arange(t0, t0 + n_after)
    before, after = w.gc[idx_b], w.gc[idx_a] * step
    # The guard's scaling: c's median after over before, windows without a cycle left out.
    drift = median_ratio({MARK_COST: w.cost[idx_a].tolist()}, {MARK_COST: w.cost[idx_b].tolist()}, MARK_COST)
    return {
        "plain": _shift(after, before, 1.0),
        "scaled": _shift(after, before, drift),
        "trend": _trend(idx_b.astype(float), before, idx_a.astype(float), after),
    }


def replay(
    trials: Sequence[Mapping[str, Any]],
    config: str,
    *,
    starts: Sequence[int],
    n_before: int,
    n_after: int,
    step: float,
    procs: int = 2,
) -> tuple[dict[str, int], int]:
    """How many pretend changes each rule called worse, and how many were judged."""
    counts = dict.fromkeys(RULES, 0)
    n = 0
    for trial in trials:
        if trial["config"] != config:
            continue
        w = windows(trial, max(starts) + n_after, procs)
        for t0 in starts:
            for rule, worse in judge(w, t0, n_before, n_after, step).items():
                counts[rule] += worse
            n += 1
    return counts, n


def main(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.quality.drift_replay", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("results", type=Path, help="a quality run's JSON (bench/results/quality_<scenario>.json)")
    ap.add_argument("--config", default="gogc100", help="the static contender to replay (default gogc100)")
    ap.add_argument(
        "--step",
        type=float,
        action="append",
        help="GC CPU factor after t0 (repeatable; default 1, 1.25, 1.5, 2)",
    )
    ap.add_argument(
        "--procs", type=int, default=2, help="GOMAXPROCS of the run (default 2: the benchmark machine's)"
    )
    args = ap.parse_args(argv)
    try:
        trials = json.loads(args.results.read_text())
    except (OSError, ValueError) as e:
        print(f"drift_replay: cannot read {args.results}: {e}", file=sys.stderr)
        return 2
    if not any(t.get("config") == args.config for t in trials):
        print(f"drift_replay: no trial of {args.config!r} in {args.results}", file=sys.stderr)
        return 2
    starts = range(12, 40, 2)
    print(f"{args.config}: a pretend change every 2 s from {starts[0]} to {starts[-1]} s; counts of 'worse'")
    print("windows before+after  step   plain  scaled  trend")
    for n_after in (10, 20):
        for step in args.step or (1.0, 1.25, 1.5, 2.0):
            counts, n = replay(
                trials, args.config, starts=starts, n_before=10, n_after=n_after, step=step, procs=args.procs
            )
            cells = "  ".join(f"{counts[r]:>3}/{n}" for r in RULES)
            print(f"10+{n_after:<18} x{step:<5.2f} {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
