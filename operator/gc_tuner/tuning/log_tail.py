"""What a pods/log read of gctrace lines says beyond its cycles: whether `tailLines` cut cycles off.

Each cycle reads the last `tailLines` lines of the last few intervals. An application that logs
more than that between two reads pushes gctrace lines out of the tail, and those cycles are never
seen. That is known for certain only when the read came back full and its first cycle is not the
one after the newest seen before: the numbers in between were in the log but not in the answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from gc_tuner.model.sample import GCCycle

__all__ = ["tail_overflow"]


def tail_overflow(
    last_seen: int, cycles: Sequence[GCCycle], lines: int, tail_lines: int, since_s: int
) -> str | None:
    """The message when cycles were lost to the tail, else None. `last_seen` is the newest cycle
    number read before (0: nothing read yet from this process, so nothing is known to be lost)."""
    if last_seen <= 0 or lines < tail_lines or not cycles or cycles[0].n <= last_seen + 1:
        return None
    lost = cycles[0].n - last_seen - 1
    return (
        f"{lost} gctrace cycle(s) ({last_seen + 1}..{cycles[0].n - 1}) were cut off: the container "
        f"logged more than tailLines={tail_lines} lines in {since_s}s; raise "
        "sampling.sources.gctrace.tailLines"
    )
