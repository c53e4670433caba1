"""The apply step: carry out a rollout plan (tuning/rollout.py decides it), and take values back
when a policy goes away. Nothing here decides anything.

Endpoint: POST the plan's writes to the pods' agents, concurrently. The same write that sets a value
renews its lease; the plan leaves out the pods whose own GET shows our values under our lease with
enough time left (at fleet scale the renewals were a third of the requests). Pods fail one by one: a
failure is reported for that pod and the others are still tuned.

EnvPatch: a fresh read of the workload for the planner's gates (read_template), then one
server-side apply of its pod template through the injected EnvActuator; the rollout that follows
is the workload controller's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import httpx

from gc_tuner.actuation import agent_writer as agent_client
from gc_tuner.actuation.envpatch import EnvPatchError, EnvPlan
from gc_tuner.loop.ports import CycleIO, EnvActuator
from gc_tuner.model.policy import GCPolicySpec
from gc_tuner.net.errors import SourceError
from gc_tuner.tuning.discovery import WorkloadInfo
from gc_tuner.tuning.env_gate import TemplateFacts, template_facts
from gc_tuner.tuning.records import PodFailure, PodTarget
from gc_tuner.tuning.rollout import ApplyPlan, ApplyResult, PodWrite, WritesDone, settle

__all__ = [
    "EndpointResult",
    "carry_out",
    "endpoint_release",
    "execute_endpoint",
    "execute_envpatch",
    "read_template",
    "write_container",
]

T = TypeVar("T")


class EndpointResult:
    def __init__(self) -> None:
        self.acked: list[str] = []
        self.failures: list[PodFailure] = []


def _endpoint(spec: GCPolicySpec) -> tuple[int, str]:
    ep = spec.rollout.endpoint
    if ep is None or ep.port is None:  # the model's validator makes this unreachable for Endpoint
        raise ValueError("rollout.endpoint.port is required when rollout.method is Endpoint")
    return ep.port, ep.path


async def carry_out(
    io: CycleIO,
    spec: GCPolicySpec,
    plan: ApplyPlan,
    workload: WorkloadInfo | None,
    *,
    token: str | None,
    owner: str,
) -> ApplyResult:
    """The apply step: perform the plan's writes, then settle them into the result (tuning/rollout.py)."""
    if plan.method == "Endpoint":
        res = await execute_endpoint(io.http, spec, plan, token=token, owner=owner)
        done = WritesDone(acked=tuple(res.acked), failures=tuple(res.failures))
    else:
        patched, failure = await execute_envpatch(io.env, plan, workload.name if workload else "")
        done = WritesDone(patched=patched, failures=(failure,) if failure else ())
    return settle(plan, workload, done)


async def execute_endpoint(
    http: httpx.AsyncClient, spec: GCPolicySpec, plan: ApplyPlan, *, token: str | None, owner: str
) -> EndpointResult:
    """POST each write's GOGC (and the pod's memory limit) with a lease, concurrently; then release the
    leases the plan gives up."""
    if not plan.writes and not plan.releases:
        return EndpointResult()
    port, path = _endpoint(spec)

    async def apply(w: PodWrite) -> object:
        return await agent_client.apply(
            http,
            w.pod.base_url(port),
            path=path,
            gogc=w.gogc,
            memory_limit_bytes=w.memory_limit_bytes,
            lease_seconds=spec.rollout.lease_seconds,
            owner=owner,
            token=token,
            timeout=float(spec.sampling.timeout_seconds),
        )

    written = await _each_pod(plan.writes, spec, "apply", lambda w: w.pod.name, apply)
    if plan.releases:
        # A rolled-back canary whose good value is the startup one: giving up the lease restores it.
        released = await endpoint_release(http, plan.releases, spec, token=token, owner=owner)
        written.acked = sorted([*written.acked, *released.acked])
        written.failures.extend(released.failures)
    return written


def write_container(workload: WorkloadInfo) -> str:
    """The container whose env EnvPatch writes: the one discovery chose for the policy."""
    return workload.container


async def read_template(
    io: CycleIO, spec: GCPolicySpec, workload: WorkloadInfo | None
) -> tuple[TemplateFacts | None, PodFailure | None]:
    """EnvPatch: the target workload as the apiserver has it now (the planner's gates read it), or
    why it could not be read. (None, None) for any other method, or without a cluster."""
    if spec.rollout.method != "EnvPatch" or io.env is None or workload is None:
        return None, None
    try:
        obj = await io.env.read()
    except Exception as e:  # the API's errors (403, a timeout) come in many types
        return None, PodFailure(workload.name, "read", "TargetUnreadable", f"{type(e).__name__}: {e}"[:500])
    if obj is None:
        return None, PodFailure(workload.name, "read", "TargetNotFound", f"{workload.name} no longer exists")
    try:
        return template_facts(obj, write_container(workload)), None
    except EnvPatchError as e:
        return None, PodFailure(workload.name, "read", "ContainerNotFound", str(e))


async def execute_envpatch(
    env: EnvActuator | None, plan: ApplyPlan, workload: str
) -> tuple[EnvPlan | None, PodFailure | None]:
    """Patch the template as planned: (the patch made, None), (None, the failure), or (None, None)
    when the plan patches nothing."""
    if env is None or plan.env is None or plan.note is None:
        return None, None
    try:
        return await env.patch(plan.env, plan.note), None
    except (EnvPatchError, SourceError) as e:
        return None, PodFailure(workload, "apply", getattr(e, "reason", "EnvPatchFailed"), str(e))
    except Exception as e:  # the API's own errors (409 conflict, 403) come in many types
        return None, PodFailure(workload, "apply", "EnvPatchFailed", f"{type(e).__name__}: {e}")


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

    return await _each_pod(list(pods), spec, "release", lambda p: p.name, release)


async def _each_pod(
    items: Sequence[T],
    spec: GCPolicySpec,
    step: str,
    name: Callable[[T], str],
    call: Callable[[T], Awaitable[object]],
) -> EndpointResult:
    """Run `call` on every pod under the policy's concurrency cap and timeout; failures are per pod."""
    sem = asyncio.Semaphore(spec.sampling.max_concurrency)
    timeout = spec.sampling.timeout_seconds
    result = EndpointResult()

    async def one(item: T) -> None:
        pod = name(item)
        async with sem:
            try:
                async with asyncio.timeout(timeout):
                    await call(item)
            except TimeoutError:
                result.failures.append(PodFailure(pod, step, "Timeout", f"no answer in {timeout}s"))
            except SourceError as e:
                result.failures.append(PodFailure(pod, step, e.reason, _msg(e)))
            else:
                result.acked.append(pod)

    await asyncio.gather(*(one(p) for p in items))
    result.acked.sort()
    return result


def _msg(e: SourceError) -> str:
    return str(getattr(e, "message", None) or e)
