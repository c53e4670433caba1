"""Running the loop without a cluster: processes given by URL, one policy, cycles on a timer.

`gc-tuner local` and `gc-tuner demo` use this; below it is the very same `run_cycle` the operator's
timer calls. What a cluster would provide is replaced by what a URL gives: each URL is one "pod"
whose every source is served on the URL's port, there is no Deployment (so no EnvPatch), and
credentials come from the command line.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from gc_tuner.loop.cycle import CycleInputs, run_cycle
from gc_tuner.loop.ports import CycleIO
from gc_tuner.model.policy import GCPolicySpec
from gc_tuner.tuning.conditions import build_status
from gc_tuner.tuning.outcome import CycleOutcome
from gc_tuner.tuning.records import PodTarget
from gc_tuner.tuning.state import PolicyState

__all__ = ["LocalLoop", "TargetError", "default_local_policy", "parse_target", "release_all"]

LOCAL_OWNER = "gc-tuner/local/local"


class TargetError(ValueError):
    pass


def parse_target(url: str, *, memory_limit: str | None = None) -> PodTarget:
    """`http://127.0.0.1:8080` -> a PodTarget named by host:port; the port serves every source."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https"):
        raise TargetError(f"target {url!r}: scheme must be http or https")
    if not parts.hostname:
        raise TargetError(f"target {url!r}: no host")
    try:
        port = parts.port
    except ValueError:
        raise TargetError(f"target {url!r}: the port is not a number in 1..65535") from None
    if parts.path not in ("", "/"):
        raise TargetError(f"target {url!r}: give the process's base URL; paths come from the policy")
    name = f"{parts.hostname}:{port}" if port else parts.hostname
    return PodTarget(
        name=name, host=parts.hostname, scheme=parts.scheme, port=port, memory_limit=memory_limit
    )


def default_local_policy(*, mode: str, port: int) -> dict[str, Any]:
    """The policy `local` uses without --policy: everything the reference agent serves, on one port."""
    return {
        "targetRef": {"name": "local"},
        "mode": mode,
        "rollout": {
            "method": "Endpoint",
            "endpoint": {"port": port},
            "cooldownSeconds": 60,
            "leaseSeconds": 60,
        },
        "sampling": {
            "intervalSeconds": 5,
            "windowSeconds": 60,
            "sources": {"agent": {"port": port}, "prometheus": {"port": port}},
        },
        "qps": {"counter": {"name": "http_requests_total"}},
    }


@dataclass
class LocalLoop:
    """One policy over a fixed set of targets. `step()` runs a cycle and returns it with its status."""

    spec: GCPolicySpec
    targets: Sequence[PodTarget]
    http: httpx.AsyncClient
    token: str | None = None

    def __post_init__(self) -> None:
        if self.spec.mode == "Enforce" and self.spec.rollout.method != "Endpoint":
            raise TargetError(
                "without a cluster gc-tuner can only enforce through the agent endpoint: "
                "set rollout.method: Endpoint (EnvPatch needs a Deployment)"
            )
        self.state = PolicyState(float(self.spec.sampling.window_seconds))
        self.status: dict[str, Any] = {}
        self.io = CycleIO(http=self.http)

    async def step(self) -> tuple[CycleOutcome, dict[str, Any]]:
        inputs = CycleInputs(
            pods=self.targets, owner=LOCAL_OWNER, agent_token=self.token, endpoint_token=self.token
        )
        outcome = await run_cycle(self.spec, self.state, inputs, self.io)
        self.status = build_status(outcome, self.status, generation=1)
        return outcome, self.status

    async def run(
        self,
        on_cycle: Callable[[CycleOutcome, dict[str, Any]], Awaitable[None] | None],
        *,
        stop: asyncio.Event,
        max_cycles: int | None = None,
    ) -> int:
        """Cycle every intervalSeconds until `stop` is set or `max_cycles` ran; returns cycles run."""
        n = 0
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set() and (max_cycles is None or n < max_cycles):
                started = loop.time()
                outcome, status = await self.step()
                n += 1
                res = on_cycle(outcome, status)
                if asyncio.iscoroutine(res):
                    await res
                if max_cycles is not None and n >= max_cycles:
                    break
                delay = max(0.0, self.spec.sampling.interval_seconds - (loop.time() - started))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        finally:
            self.state.reads.cancel()  # a read still running for a hung pod ends with the run
        return n

    async def release(self) -> list[str]:
        """Give the processes back their startup values now (instead of when the lease lapses)."""
        return await release_all(self.spec, self.targets, self.http, token=self.token)


async def release_all(
    spec: GCPolicySpec, targets: Sequence[PodTarget], http: httpx.AsyncClient, *, token: str | None
) -> list[str]:
    from gc_tuner.loop.execute import endpoint_release

    if spec.rollout.method != "Endpoint" or spec.mode != "Enforce":
        return []
    res = await endpoint_release(http, targets, spec, token=token, owner=LOCAL_OWNER)
    return [f"{f.pod}: {f.reason}: {f.message}" for f in res.failures]
