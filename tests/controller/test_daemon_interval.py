"""The policy's kopf daemon starts a cycle every intervalSeconds, counted from the previous cycle's
start: the cycle's own duration is not added to the period (bench/operator_load measured +0.2 s
per 2 s cycle of 10 pods before, and the period grows with the pods sampled per cycle)."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

from gc_tuner.controller.handlers import tune

CYCLE_S = 0.3


class _Stopped:
    """kopf's DaemonStopped as the daemon uses it: falsy until `rounds` waits were asked for."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self.waits: list[float] = []

    def __bool__(self) -> bool:
        return len(self.waits) >= self.rounds

    async def wait(self, timeout: float) -> None:
        self.waits.append(timeout)


class _Runner:
    def __init__(self, interval: float) -> None:
        self.interval = interval

    async def once(self, *_: Any) -> float:
        await asyncio.sleep(CYCLE_S)  # the cycle's reads, fit and status write
        return self.interval


async def _waits(interval: float, rounds: int = 2) -> list[float]:
    runner = _Runner(interval)
    memo = SimpleNamespace(ctx=SimpleNamespace(runner=lambda uid, ns, name: runner))
    stopped = _Stopped(rounds)
    await tune(
        body={},
        uid="u",
        name="p",
        namespace="ns",
        stopped=stopped,  # type: ignore[arg-type]
        memo=memo,
        logger=logging.getLogger("test"),
        gctuner_pods={},
        gctuner_deployments={},
    )
    return stopped.waits


async def test_the_wait_after_a_cycle_is_the_interval_less_the_cycle() -> None:
    waits = await _waits(2.0)
    assert len(waits) == 2
    # At least the cycle's 0.3 s is taken off; a loaded machine may take a little more.
    assert all(1.0 <= w <= 2.0 - CYCLE_S + 0.01 for w in waits), waits


async def test_a_cycle_longer_than_the_interval_is_followed_at_once() -> None:
    assert await _waits(0.1) == [0.0, 0.0]
