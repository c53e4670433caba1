"""The guard's pause signal from the agent's pause histogram (tuning/guard_signals.py): the pauses
between two reads are the buckets whose counts grew, the longest the highest of them."""

from __future__ import annotations

import pytest

from gc_tuner.model.sample import RuntimeSample
from gc_tuner.tuning.guard_signals import PAUSE, window_pauses, window_values

B = ((0.0001, 5.0), (0.0005, 2.0), (0.002, 1.0))


@pytest.mark.parametrize(
    ("after", "want"),
    [
        (B, None),  # nothing new
        (((0.0001, 7.0), (0.0005, 2.0), (0.002, 1.0)), 0.0001),
        (((0.0001, 7.0), (0.0005, 3.0), (0.002, 1.0)), 0.0005),
        (((0.0001, 5.0), (0.0005, 2.0), (0.001, 1.0), (0.002, 1.0)), 0.001),  # a bucket new since then
        (((0.0001, 5.0), (0.0005, 2.0), (0.002, 1.0), (0.05, 1.0)), 0.05),
        (((0.0001, 4.0), (0.0005, 3.0), (0.002, 1.0)), None),  # a count went down: another process
    ],
)
def test_the_longest_new_pause(after: tuple[tuple[float, float], ...], want: float | None) -> None:
    edge = RuntimeSample(t=0.0, source="agent", pause_buckets=B)
    cur = RuntimeSample(t=2.0, source="agent", pause_buckets=after)
    pauses = window_pauses(edge, cur, ())
    assert (max(pauses) if pauses else None) == want
    assert window_pauses(edge, cur, (0.0003,)) == (0.0003,)  # pauses read exactly win


def test_the_window_takes_its_pause_from_the_buckets_when_no_pause_list_is_read() -> None:
    edge = RuntimeSample(t=0.0, source="agent", gc_cycles=10, pause_buckets=B)
    cur = RuntimeSample(
        t=2.0, source="agent", gc_cycles=12, pause_buckets=((0.0001, 6.0), (0.0005, 3.0), (0.002, 1.0))
    )
    assert window_values(edge, cur, limit_bytes=None)[PAUSE] == 0.0005
    # gctrace's or expvar's exact pauses win over the buckets' resolution.
    assert window_values(edge, cur, limit_bytes=None, pauses_s=(0.0003,))[PAUSE] == 0.0003
    assert PAUSE not in window_values(edge, dataclass_copy(edge, t=2.0), limit_bytes=None)


def dataclass_copy(s: RuntimeSample, **over: float) -> RuntimeSample:
    import dataclasses

    return dataclasses.replace(s, **over)
