"""The order of a scenario's trials and what it costs in time.

Trials run one at a time (never two measured workloads at once) in rounds: round r holds every
configuration that wants more than r repeats, shuffled with a seeded generator, so no setting
always runs first or last and slow drift of the machine spreads over all of them."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from bench.quality.contenders import Config
from bench.quality.scenarios import Scale

__all__ = ["OVERHEAD_S", "Planned", "budget_s", "plan"]

# Per trial beyond its run (and gc-tuner's lead): start (the live set is built), SIGTERM and drain,
# cgroup removal, parsing. Check trials of 110 s took 111 s (static) and 115-116 s (gc-tuner, 3 s
# lead included) on a busy machine; 5 s is counted so the budget errs long.
OVERHEAD_S = 5.0


@dataclass(frozen=True, slots=True)
class Planned:
    config: Config
    repeat: int


def plan(configs: Sequence[Config], seed: int, repeats: int | None = None) -> list[Planned]:
    """Every trial in its run order; `repeats` overrides each configuration's own count."""
    rng = random.Random(seed)
    want = {c.key: repeats if repeats is not None else c.repeats for c in configs}
    out: list[Planned] = []
    for r in range(max(want.values(), default=0)):
        batch = [c for c in configs if want[c.key] > r]
        rng.shuffle(batch)
        out += [Planned(c, r) for c in batch]
    return out


def budget_s(trials: Sequence[Planned], s: Scale) -> float:
    """Wall time of the trials on an idle machine (builds not counted)."""
    return sum(
        s.run_s + OVERHEAD_S + (s.tuner_lead_s if t.config.kind == "gc-tuner" else 0.0) for t in trials
    )
