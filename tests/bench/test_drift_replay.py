"""bench.quality.drift_replay on crafted processes: the replay's rules can tell a drift in what a
cycle costs from a change that adds cycles, and each can fail."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.quality.drift_replay import judge, replay, windows


def _trial(cost: Any, cycles_per_s: Any, seconds: int = 40) -> dict[str, Any]:
    """`cycles_per_s(t)` cycles a second of a 100 MiB live heap; busy = cost(t) ms per MiB per cycle."""
    rng = np.random.default_rng(7)
    cycles = []
    for k in range(seconds):
        n = cycles_per_s(k)
        for i in range(n):
            busy = cost(k) * 1e-3 * 100 * rng.uniform(0.9, 1.1)
            cycles.append(
                {"t_end": k + (i + 0.5) / n, "busy_s": busy, "idle_s": 0.0, "live_mib": 100, "goal_mib": 200}
            )
    return {"config": "gogc100", "cycles": cycles}


def test_a_drift_in_the_cost_of_a_cycle_fools_only_the_plain_rule() -> None:
    drifting = _trial(lambda k: 0.2 + 0.005 * k, lambda k: 2)  # c up 2.5 % a second, the same cycles
    verdicts = judge(windows(drifting, 40, 2), 20, 10, 20, 1.0)
    assert verdicts == {"plain": True, "scaled": False, "trend": False}


def test_more_cycles_at_the_same_cost_are_found_by_the_scaled_rule() -> None:
    flat = _trial(lambda k: 0.3, lambda k: 2 if k < 20 else 4)  # a change at 20 s doubles the cycles
    assert judge(windows(flat, 40, 2), 20, 10, 20, 1.0)["scaled"] is True
    steady = _trial(lambda k: 0.3, lambda k: 2)
    assert judge(windows(steady, 40, 2), 20, 10, 20, 1.0) == dict.fromkeys(
        ("plain", "scaled", "trend"), False
    )
    # The pretend regression: GC CPU × 2 after t0, c untouched.
    assert judge(windows(steady, 40, 2), 20, 10, 20, 2.0)["scaled"] is True


def test_replay_counts_only_the_named_contender() -> None:
    trials = [_trial(lambda k: 0.3, lambda k: 2), {**_trial(lambda k: 0.3, lambda k: 2), "config": "gogc200"}]
    counts, n = replay(trials, "gogc100", starts=[12, 14], n_before=10, n_after=10, step=1.0)
    assert n == 2 and counts == {"plain": 0, "scaled": 0, "trend": 0}
