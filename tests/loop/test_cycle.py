"""Whole cycles (run_cycle) sampling a real workload process, with the Deployment kept in memory.

The EnvActuator here applies envpatch's own apply configurations to a dict instead of sending them to
an apiserver (the real apiserver path is e2e/test_operator_envpatch.py); what is under test is the
loop: which values it decides, what it refuses to touch, what it reports, and the kill switch.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest

from gc_tuner.actuation.envpatch import EnvPlan, plan_env_patch, plan_env_restore
from gc_tuner.loop.cycle import CycleInputs, run_cycle
from gc_tuner.loop.ports import CycleIO
from gc_tuner.model.policy import parse_policy
from gc_tuner.tuning.conditions import build_status
from gc_tuner.tuning.discovery import workload_info
from gc_tuner.tuning.outcome import CycleOutcome
from gc_tuner.tuning.records import LoopEvent, PodTarget
from gc_tuner.tuning.state import PolicyState
from tests.integration.workload import Workload, workload_binary

pytestmark = [pytest.mark.go]


class MemoryDeployment:
    """EnvActuator over a Deployment dict: envpatch's apply configurations, merged the way server-side
    apply merges gc-tuner's part (entries by name; an entry or annotation it stops naming goes)."""

    def __init__(self, dep: dict[str, Any]) -> None:
        self.dep = dep
        self.patches = 0
        self.owned_env: set[str] = set()
        self.owned_annotations: set[str] = set()

    def _apply(self, plan: EnvPlan | None) -> None:
        if plan is None or plan.patch is None:
            return
        self.patches += 1
        ann = self.dep["metadata"].setdefault("annotations", {})
        named = plan.patch["metadata"].get("annotations", {})
        for k in self.owned_annotations - set(named):
            ann.pop(k, None)
        ann.update(named)
        self.owned_annotations = set(named)
        (pc,) = plan.patch["spec"]["template"]["spec"]["containers"]
        (c,) = [c for c in self.dep["spec"]["template"]["spec"]["containers"] if c["name"] == pc["name"]]
        env = c.setdefault("env", [])
        values = {e["name"]: e["value"] for e in pc.get("env", [])}
        env[:] = [e for e in env if e["name"] in values or e["name"] not in self.owned_env]
        for name, value in values.items():
            same = [e for e in env if e["name"] == name]
            if same:
                same[0].clear()
                same[0].update({"name": name, "value": value})
            else:
                env.append({"name": name, "value": value})
        self.owned_env = set(values)

    async def read(self) -> dict[str, Any]:
        return copy.deepcopy(self.dep)

    async def patch(self, desired: Mapping[str, str], note: Mapping[str, Any]) -> EnvPlan:
        plan = plan_env_patch(self.dep, None, desired, applied_note=note)
        self._apply(plan)
        return plan

    async def restore(self) -> EnvPlan | None:
        plan = plan_env_restore(self.dep)
        self._apply(plan)
        return plan


def deployment(limit: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "generation": 1, "resourceVersion": "1", "annotations": {}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "env": [
                                {"name": "PORT", "value": "8080"},
                                {
                                    "name": "GOGC",
                                    "valueFrom": {"configMapKeyRef": {"name": "tuning", "key": "gogc"}},
                                },
                            ],
                            "resources": {"limits": {"memory": limit}},
                        }
                    ]
                }
            },
        },
        "status": {
            "observedGeneration": 1,
            "replicas": 1,
            "updatedReplicas": 1,
            "readyReplicas": 1,
            "availableReplicas": 1,
        },
    }


@pytest.fixture(scope="module")
def proc() -> Iterator[Workload]:
    w = Workload(workload_binary(), "127.0.0.7", {"WORKLOAD_LOAD": "steady", "WORKLOAD_QPS": "1200"})
    try:
        yield w
    finally:
        w.kill()


def policy() -> Any:
    return parse_policy(
        {
            "targetRef": {"name": "web"},
            "mode": "Enforce",
            "rollout": {"method": "EnvPatch", "cooldownSeconds": 0},
            "sampling": {"intervalSeconds": 1, "windowSeconds": 10, "sources": {"agent": {"port": 8080}}},
            "qps": {
                "counter": {"name": "http_requests_total", "matchers": {"handler": "work"}, "port": 8080}
            },
            "memoryLimit": {"mode": "FromContainerLimit", "percent": 90},
        }
    )


async def cycles(
    n: int,
    spec: Any,
    state: PolicyState,
    mem: MemoryDeployment,
    target: PodTarget,
    *,
    kill_switch: bool = False,
) -> list[CycleOutcome]:
    out = []
    async with httpx.AsyncClient(trust_env=False) as http:
        io = CycleIO(http=http, env=mem)
        for _ in range(n):
            inputs = CycleInputs(
                pods=[target],
                owner="gc-tuner/ns/web",
                workload=workload_info(mem.dep, None),
                kill_switch=kill_switch,
            )
            out.append(await run_cycle(spec, state, inputs, io))
            await asyncio.sleep(0.7)
    return out


def env(mem: MemoryDeployment) -> dict[str, Any]:
    return {
        e["name"]: e.get("value", "valueFrom")
        for e in mem.dep["spec"]["template"]["spec"]["containers"][0]["env"]
    }


async def test_value_from_is_reported_not_overwritten_and_gomemlimit_follows_the_limit(
    proc: Workload,
) -> None:
    host, port = proc.addr.rsplit(":", 1)
    target = PodTarget("web-1", host, port=int(port))
    mem = MemoryDeployment(deployment("256Mi"))
    spec, state = policy(), PolicyState(10.0)
    outs = await cycles(6, spec, state, mem, target)
    assert env(mem) == {"PORT": "8080", "GOGC": "valueFrom", "GOMEMLIMIT": "230MiB"}
    last = outs[-1]
    assert last.apply_verdict is not None and last.apply_verdict.reason == "ValueFromConflict"
    conflict_events = [e for o in outs for e in o.events if e.reason == "ValueFromConflict"]
    assert conflict_events == [
        LoopEvent(
            "Warning",
            "ValueFromConflict",
            "web apply: GOGC of container app set through valueFrom; gc-tuner leaves it alone",
        )
    ]  # once, not per cycle
    status = build_status(last, None, generation=1)
    applied = next(c for c in status["conditions"] if c["type"] == "Applied")
    assert (applied["status"], applied["reason"]) == ("False", "ValueFromConflict")

    # The container's limit changes: GOMEMLIMIT follows on the next cycle.
    mem.dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = "512Mi"
    outs = await cycles(2, spec, state, mem, target)
    assert env(mem)["GOMEMLIMIT"] == "460MiB"
    patched = [e.message for o in outs for e in o.events if e.reason == "EnvPatched"]
    assert len(patched) == 1 and "GOMEMLIMIT 230MiB -> 460MiB" in patched[0]
    assert outs[-1].recommendation_inputs["memoryLimitBytes"] == 460 << 20


async def test_kill_switch_recommends_but_never_patches(proc: Workload) -> None:
    host, port = proc.addr.rsplit(":", 1)
    mem = MemoryDeployment(deployment("256Mi"))
    before = copy.deepcopy(mem.dep)
    outs = await cycles(
        5, policy(), PolicyState(10.0), mem, PodTarget("web-1", host, port=int(port)), kill_switch=True
    )
    assert outs[-1].recommendation_gogc is not None
    assert mem.patches == 0 and mem.dep == before
    status = build_status(outs[-1], None, generation=1)
    applied = next(c for c in status["conditions"] if c["type"] == "Applied")
    assert applied["reason"] == "OperatorDryRun"
