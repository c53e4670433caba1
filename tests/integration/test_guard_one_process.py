"""Safe Enforce on one real Go process: every change is judged before/after, against the process's own
windows before it, and the loop keeps tuning.

One reference workload, tuned by Formula through its agent by the same run_cycle the operator runs.
Its first change (at 200 QPS, a 16 MiB live set: a GC about every second) waits until the process
has five windows to be judged against (AwaitingBaseline), is judged and decided; then the load steps
from 200 to 2000 QPS, Formula lowers GOGC, and that second change is judged with its GC CPU baseline
scaled by the allocation rate, so the load step itself is not blamed on it. Before the guard waited
for a baseline, the first trial of a young process could never reach a verdict and held every later
change. Every window keeps the setting the process reported through it, so a baseline never reaches
back past a change of the values it stands for.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from gc_tuner.loop.standalone import LocalLoop, parse_target
from gc_tuner.model.policy import parse_policy
from tests.integration.test_guard_loop import policy
from tests.integration.workload import Workload, workload_binary

pytestmark = [pytest.mark.go, pytest.mark.slow]

TOKEN = "guard-one-secret"
ENDED = ("Promoted", "RolledBack")


def one_process_policy() -> dict[str, Any]:
    doc = policy()  # the three-process guard test's, with the canary left at its default
    doc["sampling"]["windowSeconds"] = 10
    doc["rollout"]["canary"] = {"evaluationSeconds": 10}  # one process: every change is before/after
    return doc


async def test_one_process_is_judged_against_its_own_past_and_tuned_again() -> None:
    env = {
        "WORKLOAD_LOAD": "steady",
        "WORKLOAD_QPS": "200",
        "WORKLOAD_LIVE_MIB": "16",
        "GC_TUNER_TOKEN": TOKEN,
    }
    binary: Path = workload_binary()
    with Workload(binary, "127.0.0.31", env) as w:
        spec = parse_policy(one_process_policy())
        codes: list[str] = []
        ended: list[dict[str, Any]] = []
        started = 0
        stepped = False
        async with httpx.AsyncClient(trust_env=False) as http:
            loop = LocalLoop(spec, [parse_target(w.base_url)], http, token=TOKEN)
            for _ in range(120):
                outcome, status = await loop.step()
                d = outcome.decision
                codes += [d.code] if d is not None else []
                started += sum(e.reason == "CanaryStarted" for e in outcome.events)
                history = status.get("history") or []
                ended = [h for h in history if h["verdict"] in ENDED]
                if ended and not stepped:
                    # The first trial is decided: the day's peak arrives.
                    httpx.post(f"{w.base_url}/load", params={"qps": "2000"}, timeout=5).raise_for_status()
                    stepped = True
                if started >= 2 and len(ended) >= 2:
                    break
                await asyncio.sleep(1)
        assert "AwaitingBaseline" in codes, codes[:12]
        assert codes.index("AwaitingBaseline") < len(codes) - 1
        assert stepped, (codes[-5:], status.get("rollout"))
        assert started >= 2, (started, history)
        for h in ended:
            # A trial ends by a verdict on what was measured, never for want of windows.
            assert h["reason"] != "NoVerdict", history
        assert len(ended) >= 2, history
        rb = status.get("lastRollback")
        if rb is not None:
            # Load steps on a loaded machine are noisy: a rollback is allowed only as a verdict on a
            # named signal with its p-value, and never on GC CPU that only followed the load.
            assert rb["reason"] in ("gcCPU", "pauseP99") and (rb.get("pValue") or 1.0) < 0.05, rb
        _windows_carry_the_setting(loop)


def _windows_carry_the_setting(loop: LocalLoop) -> None:
    """Each window holds the setting the process reported through it: GOGC 100 from the start, and
    None for a window a change fell in, after which the baseline of a before/after trial starts."""
    points = list(loop.state.safety.log.points)
    settings = [p.setting for p in points]
    assert settings[0] is not None and settings[0][0] == 100, settings[:3]
    straddled = [i for i in range(1, len(points) - 1) if settings[i] is None and settings[i + 1] is not None]
    assert straddled, settings
    i = straddled[0]
    before, after = settings[i - 1], settings[i + 1]
    assert before is not None and after is not None and before != after, (before, after)
    pod = points[i].pod
    assert loop.state.safety.log.settled_since(pods={pod}, until=points[i + 1].t, floor=0.0) == points[i].t
