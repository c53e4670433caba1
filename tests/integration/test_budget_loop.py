"""The Budget strategy through the real loop on real workload processes (127.0.0.71 and .72).

A steady process gets the GOGC that fills its budget and the budget as GOMEMLIMIT; a leaking one
gets LeakSuspected and GOGC held at the bounds' floor - set in the process through its agent.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from gc_tuner.loop.standalone import LocalLoop, parse_target
from gc_tuner.model.policy import parse_policy
from tests.integration.workload import Workload, workload_binary

pytestmark = [pytest.mark.go, pytest.mark.slow]

TOKEN = "budget-secret"
MiB = 1 << 20


@pytest.fixture(scope="module")
def binary() -> Path:
    return workload_binary()


def budget_policy(
    port: int, *, max_gogc: int, window: int, leak_span: int, cooldown: int = 0
) -> dict[str, Any]:
    return {
        "targetRef": {"name": "budget"},
        "mode": "Enforce",
        "guard": {"enabled": False},  # Budget's own moves, unjudged: the guard has its own tests
        "rollout": {
            "method": "Endpoint",
            "endpoint": {"port": port},
            "cooldownSeconds": cooldown,
            "leaseSeconds": 30,
        },
        "sampling": {
            "intervalSeconds": 1,
            "windowSeconds": window,
            "sources": {"agent": {"port": port}, "prometheus": {"port": port}},
        },
        "qps": {"counter": {"name": "http_requests_total", "matchers": {"handler": "work"}}},
        "strategy": {"type": "Budget", "budget": {"leakMinSpanSeconds": leak_span}},
        "bounds": {"minGOGC": 30, "maxGOGC": max_gogc},
        "memoryLimit": {"mode": "FromContainerLimit", "percent": 80},
    }


def agent(w: Workload) -> dict[str, Any]:
    r = httpx.get(f"{w.base_url}/debug/gctuner", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    r.raise_for_status()
    doc: dict[str, Any] = r.json()
    return doc


async def test_budget_fills_the_headroom_and_sets_the_budget_as_gomemlimit(binary: Path) -> None:
    env = {"WORKLOAD_LOAD": "steady", "WORKLOAD_QPS": "300", "WORKLOAD_LIVE_MIB": "24"}
    env["GC_TUNER_TOKEN"] = TOKEN
    with Workload(binary, "127.0.0.71", env) as w:
        port = int(w.addr.rsplit(":", 1)[1])
        spec = parse_policy(budget_policy(port, max_gogc=1000, window=10, leak_span=8))
        target = parse_target(w.base_url, memory_limit="512Mi")
        async with httpx.AsyncClient(trust_env=False) as http:
            loop = LocalLoop(spec, [target], http, token=TOKEN)
            for _ in range(6):
                outcome, status = await loop.step()
                await asyncio.sleep(1)
        rec = status["recommendation"]
        assert rec["strategy"] == "Budget", status
        budget = 409 * MiB  # 80% of 512 MiB, rounded down to a MiB
        assert rec["gomemlimit"] == "409MiB" and rec["inputs"]["budgetBytes"] == budget
        inputs = rec["inputs"]
        # The recommendation is the formula on the inputs it reports (within the integer truncation).
        base = inputs["predictedLiveBytes"] + inputs["stacksBytes"] + inputs["globalsBytes"]
        raw = 100 * (budget - inputs["predictedLiveBytes"] - inputs["nonHeapBytes"]) / base
        assert rec["gogc"] == min(1000, int(raw))  # 1000: the agent's own default ceiling
        assert rec["gogc"] > 300  # ~30 MiB live in a 409 MiB budget: far above the default 100
        state = agent(w)
        assert state["gogc"] == status["applied"]["gogc"] == outcome.applied.gogc  # type: ignore[union-attr]
        assert state["memoryLimitBytes"] == budget
        conds = {c["type"]: c for c in status["conditions"]}
        assert conds["LeakSuspected"]["status"] == "False"


async def test_a_leak_holds_gogc_at_the_floor_and_sets_leak_suspected(binary: Path) -> None:
    env = {
        "WORKLOAD_LOAD": "steady",
        "WORKLOAD_QPS": "200",
        "WORKLOAD_LIVE_MIB": "8",
        "WORKLOAD_LEAK_MIB_PER_SEC": "16",
        "GC_TUNER_TOKEN": TOKEN,
    }
    with Workload(binary, "127.0.0.72", env) as w:
        port = int(w.addr.rsplit(":", 1)[1])
        # A 30 s cooldown: after the first change only the leak hold may move GOGC. A 2 s horizon keeps
        # the first recommendation at the ceiling (8 + 16 × 2 MiB predicted live in an 819 MiB budget),
        # so the first change is a raise and the move to the floor has to skip the cooldown.
        pol = budget_policy(port, max_gogc=200, window=8, leak_span=4, cooldown=30)
        pol["strategy"]["budget"]["horizonSeconds"] = 2
        spec = parse_policy(pol)
        target = parse_target(w.base_url, memory_limit="1Gi")
        flagged: dict[str, Any] | None = None
        decided: list[tuple[str, int, str]] = []
        async with httpx.AsyncClient(trust_env=False) as http:
            loop = LocalLoop(spec, [target], http, token=TOKEN)
            for _ in range(20):
                outcome, status = await loop.step()
                d = outcome.decision
                decided += [(d.action, d.gogc, d.code)] if d is not None else []
                conds = {c["type"]: c for c in status["conditions"]}
                if conds["LeakSuspected"]["status"] == "True":
                    flagged = status
                    break
                await asyncio.sleep(1)
        assert flagged is not None, status
        assert decided[-1] == ("apply", 30, "LeakHold"), decided
        # The change that started the cooldown: a raise to the ceiling.
        assert ("apply", 200) in [(a, g) for a, g, _ in decided[:-1]], decided
        conds = {c["type"]: c for c in flagged["conditions"]}
        assert conds["LeakSuspected"]["reason"] == "HeapGrowing"
        assert "held at bounds.minGOGC 30" in conds["LeakSuspected"]["message"]
        assert flagged["recommendation"]["gogc"] == 30
        assert "leak suspected" in flagged["recommendation"]["explanation"]
        assert agent(w)["gogc"] == 30
