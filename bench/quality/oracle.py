"""The hindsight oracle: the Pareto front of the static sweep, and a contender's distance to it.

Each sweep point (GOGC 50..800, GOGC=off with GOMEMLIMIT 50..90 %) is one (memory, GC CPU) point
of a scenario: the median over its repeats. The front keeps the points no other point beats on
both axes. Between two front points GC CPU is interpolated in log-log space (the GC cost model
makes GC CPU about proportional to 1/heap headroom, a straight line there). A contender's
distance is the front's GC CPU at the contender's memory and the contender's excess over it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Distance", "FrontPoint", "distance", "front", "front_cpu_at"]


@dataclass(frozen=True, slots=True)
class FrontPoint:
    key: str
    memory: float  # bytes (time-averaged or peak)
    cpu: float  # GC CPU cores


@dataclass(frozen=True, slots=True)
class Distance:
    front_cpu: float | None  # the front's GC CPU at the contender's memory; None: left of the front
    excess: float | None  # (contender − front) / front; negative = below the front
    where: str  # "on/above/below the front", "uses less memory than any static setting", ...


def front(points: Sequence[FrontPoint]) -> list[FrontPoint]:
    """The non-dominated points, by increasing memory (and so decreasing GC CPU)."""
    out: list[FrontPoint] = []
    for p in sorted(points, key=lambda p: (p.memory, p.cpu)):
        if not out or p.cpu < out[-1].cpu:
            out.append(p)
    return out


def front_cpu_at(fr: Sequence[FrontPoint], memory: float) -> float | None:
    """The front's GC CPU at `memory`: None left of its first point; its last point's CPU right of
    its last point (more memory buys no less GC CPU than the best static setting measured)."""
    if not fr or memory < fr[0].memory:
        return None
    for lo, hi in itertools.pairwise(fr):
        if lo.memory <= memory <= hi.memory:
            if lo.cpu <= 0 or hi.cpu <= 0 or lo.memory <= 0:
                f = (memory - lo.memory) / (hi.memory - lo.memory)
                return lo.cpu + f * (hi.cpu - lo.cpu)
            f = (math.log(memory) - math.log(lo.memory)) / (math.log(hi.memory) - math.log(lo.memory))
            return math.exp(math.log(lo.cpu) + f * (math.log(hi.cpu) - math.log(lo.cpu)))
    return fr[-1].cpu


def distance(fr: Sequence[FrontPoint], memory: float, cpu: float) -> Distance:
    fc = front_cpu_at(fr, memory)
    if fc is None:
        return Distance(None, None, "uses less memory than every static setting: left of the front")
    if fc <= 0:
        return Distance(fc, None if cpu > 0 else 0.0, "the front is at zero GC CPU here")
    excess = (cpu - fc) / fc
    where = (
        "below the front" if excess < -0.005 else ("on the front" if excess <= 0.005 else "above the front")
    )
    return Distance(fc, excess, where)
