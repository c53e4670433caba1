"""Writes to a pod's gc-tuner agent: set GOGC / the memory limit under a lease, or release it.

The agent (agent/README.md) applies both knobs atomically and answers with the values before and
after. A lease that is not renewed makes the agent restore its startup values by itself, so a
dead operator leaves no pod tuned for longer than one lease. Errors come from the same mapping as
the readers (`gc_tuner.net.transport`): 401/403 AuthError, 409 (another owner's lease) and 422
(outside the agent's bounds) RejectedError, and so on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from gc_tuner.input.agent_doc import AGENT_PATH, AgentLease, AgentSettings, parse_lease, parse_settings
from gc_tuner.net.errors import SourceFormatError
from gc_tuner.net.transport import DEFAULT_TIMEOUT, join_url, json_body, request

__all__ = ["AgentWriteResult", "apply", "release"]


@dataclass(frozen=True, slots=True)
class AgentWriteResult:
    previous: AgentSettings
    new: AgentSettings
    lease: AgentLease | None  # the lease now held (apply); None after release
    released: bool = False  # release only: whether a lease was held


async def apply(
    client: httpx.AsyncClient,
    base_url: str,
    *,
    gogc: int | None,
    memory_limit_bytes: int | None,
    lease_seconds: int,
    owner: str,
    token: str | None,
    path: str = AGENT_PATH,
    timeout: float = DEFAULT_TIMEOUT,
) -> AgentWriteResult:
    """POST the values with a lease of `lease_seconds`; None leaves that knob as it is.

    The same call renews the lease. The caller keeps GOGC within its policy's bounds; the agent
    refuses (RejectedError, 422) anything outside its own.
    """
    if lease_seconds < 1:
        raise ValueError(f"lease_seconds must be >= 1, got {lease_seconds}")
    body = {
        "gogc": gogc,
        "memoryLimitBytes": memory_limit_bytes,
        "leaseSeconds": lease_seconds,
        "owner": owner,
    }
    url = join_url(base_url, path)
    response = await request(client, "POST", url, json=body, token=token, timeout=timeout)
    return _result(json_body(response, "agent"))


async def release(
    client: httpx.AsyncClient,
    base_url: str,
    *,
    owner: str | None,
    token: str | None,
    path: str = AGENT_PATH,
    timeout: float = DEFAULT_TIMEOUT,
) -> AgentWriteResult:
    """DELETE the lease now: the agent restores the startup value of every knob the lease set.

    With `owner`, another owner's lease is left alone (RejectedError, 409). Without a lease the
    call succeeds and changes nothing (`released` is False).
    """
    url = join_url(base_url, path)
    params = {"owner": owner} if owner else None
    response = await request(client, "DELETE", url, params=params, token=token, timeout=timeout)
    return _result(json_body(response, "agent"))


def _result(doc: Any) -> AgentWriteResult:
    if not isinstance(doc, dict):
        raise SourceFormatError("agent", "body", f"expected an object, got {type(doc).__name__}")
    released = doc.get("released", False)
    if not isinstance(released, bool):
        raise SourceFormatError("agent", "released", f"expected true or false, got {released!r}")
    return AgentWriteResult(
        previous=parse_settings(doc.get("previous"), "previous"),
        new=parse_settings(doc.get("new"), "new"),
        lease=parse_lease(doc.get("lease"), "lease"),
        released=released,
    )
