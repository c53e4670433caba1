"""The act step: put the decided values in force, and take them back when a policy goes away.

Endpoint: POST to every ready pod's agent whose values are not in force or whose lease would run
short. The same write that sets a value renews its lease, and a pod that appeared since the last
cycle (scale-up, restart) gets the value in force on the cycle of its first sample. A pod whose GET
this cycle already shows our values under our lease, with more than `renew_margin_s` left, is
counted as in force without a write: at fleet scale the renewals were a third of the requests.
Pods fail one by one: a failure is reported for that pod and the others are still tuned.

EnvPatch: one patch of the Deployment's pod template through the injected EnvActuator; the rollout
that follows is the Deployment controller's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence

import httpx

from gc_tuner.actuation import agent_writer as agent_client
from gc_tuner.input.agent_doc import AgentStatus
from gc_tuner.model.policy import GCPolicySpec
from gc_tuner.net.errors import SourceError
from gc_tuner.tuning.records import PodFailure, PodTarget

__all__ = ["EndpointResult", "endpoint_push", "endpoint_release", "lease_in_force", "renew_margin_s"]


class EndpointResult:
    def __init__(self) -> None:
        self.acked: list[str] = []
        self.failures: list[PodFailure] = []


def _endpoint(spec: GCPolicySpec) -> tuple[int, str]:
    ep = spec.rollout.endpoint
    if ep is None or ep.port is None:  # the model's validator makes this unreachable for Endpoint
        raise ValueError("rollout.endpoint.port is required when rollout.method is Endpoint")
    return ep.port, ep.path


def renew_margin_s(spec: GCPolicySpec) -> float:
    """Lease time a pod must have left to skip its renewal this cycle.

    Two intervals and two timeouts: the next cycle may start late (a long cycle runs past its
    interval) and its write may take a full timeout, and the lease must still hold until then.
    """
    return 2.0 * spec.sampling.interval_seconds + 2.0 * spec.sampling.timeout_seconds


def lease_in_force(
    status: AgentStatus | None,
    *,
    owner: str,
    gogc: int | None,
    memory_limit_bytes: int | None,
    read_at: float,
    now: float,
    margin_s: float,
) -> bool:
    """True when the agent (as read at `read_at`) runs these values under `owner`'s lease and the
    lease still has more than `margin_s` seconds at `now`. A None knob is one the write leaves as it is."""
    if status is None or status.lease is None or status.lease.owner != owner:
        return False
    if status.current.gogc != gogc:
        return False
    if memory_limit_bytes is not None and status.current.memory_limit_bytes != memory_limit_bytes:
        return False
    return status.lease.remaining_seconds - max(0.0, now - read_at) > margin_s


async def endpoint_push(
    http: httpx.AsyncClient,
    pods: Sequence[PodTarget],
    spec: GCPolicySpec,
    *,
    gogc: int | None,
    memory_limits: Mapping[str, int | None],
    token: str | None,
    owner: str,
    in_force: Collection[str] = (),
) -> EndpointResult:
    """Write GOGC (and each pod's memory limit) with a lease to every ready pod, concurrently; pods
    named in `in_force` (see `lease_in_force`) are counted as acked without a write."""
    port, path = _endpoint(spec)

    async def apply(pod: PodTarget) -> object:
        return await agent_client.apply(
            http,
            pod.base_url(port),
            path=path,
            gogc=gogc,
            memory_limit_bytes=memory_limits.get(pod.name),
            lease_seconds=spec.rollout.lease_seconds,
            owner=owner,
            token=token,
            timeout=float(spec.sampling.timeout_seconds),
        )

    ready = [p for p in pods if p.ready]
    result = await _each_pod([p for p in ready if p.name not in in_force], spec, "apply", apply)
    result.acked = sorted(result.acked + [p.name for p in ready if p.name in in_force])
    return result


async def endpoint_release(
    http: httpx.AsyncClient, pods: Sequence[PodTarget], spec: GCPolicySpec, *, token: str | None, owner: str
) -> EndpointResult:
    """Release the lease on every pod now, so each process goes back to its startup values."""
    port, path = _endpoint(spec)

    async def release(pod: PodTarget) -> object:
        return await agent_client.release(
            http,
            pod.base_url(port),
            path=path,
            owner=owner,
            token=token,
            timeout=float(spec.sampling.timeout_seconds),
        )

    return await _each_pod(list(pods), spec, "release", release)


async def _each_pod(
    pods: Sequence[PodTarget],
    spec: GCPolicySpec,
    step: str,
    call: Callable[[PodTarget], Awaitable[object]],
) -> EndpointResult:
    """Run `call` on every pod under the policy's concurrency cap and timeout; failures are per pod."""
    sem = asyncio.Semaphore(spec.sampling.max_concurrency)
    timeout = spec.sampling.timeout_seconds
    result = EndpointResult()

    async def one(pod: PodTarget) -> None:
        async with sem:
            try:
                async with asyncio.timeout(timeout):
                    await call(pod)
            except TimeoutError:
                result.failures.append(PodFailure(pod.name, step, "Timeout", f"no answer in {timeout}s"))
            except SourceError as e:
                result.failures.append(PodFailure(pod.name, step, e.reason, _msg(e)))
            else:
                result.acked.append(pod.name)

    await asyncio.gather(*(one(p) for p in pods))
    result.acked.sort()
    return result


def _msg(e: SourceError) -> str:
    return str(getattr(e, "message", None) or e)
