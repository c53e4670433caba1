"""The act step: put the decided values in force, and take them back when a policy goes away.

Endpoint: POST to every ready pod's agent, every cycle. The same write that sets a value renews its
lease, and a pod that appeared since the last cycle (scale-up, restart) gets the value in force on
the cycle of its first sample. Pods fail one by one: a failure is reported for that pod and the
others are still tuned.

EnvPatch: one patch of the Deployment's pod template through the injected EnvActuator; the rollout
that follows is the Deployment controller's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence

import httpx

from gc_tuner.actuation import agent as agent_client
from gc_tuner.input.errors import SourceError
from gc_tuner.loop.records import PodFailure, PodTarget
from gc_tuner.model.policy import GCPolicySpec

__all__ = ["EndpointResult", "endpoint_push", "endpoint_release"]


class EndpointResult:
    def __init__(self) -> None:
        self.acked: list[str] = []
        self.failures: list[PodFailure] = []


def _endpoint(spec: GCPolicySpec) -> tuple[int, str]:
    ep = spec.rollout.endpoint
    if ep is None or ep.port is None:  # the model's validator makes this unreachable for Endpoint
        raise ValueError("rollout.endpoint.port is required when rollout.method is Endpoint")
    return ep.port, ep.path


async def endpoint_push(
    http: httpx.AsyncClient,
    pods: Sequence[PodTarget],
    spec: GCPolicySpec,
    *,
    gogc: int | None,
    memory_limits: Mapping[str, int | None],
    token: str | None,
    owner: str,
) -> EndpointResult:
    """Write GOGC (and each pod's memory limit) with a lease to every ready pod, concurrently."""
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

    return await _each_pod([p for p in pods if p.ready], spec, "apply", apply)


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
