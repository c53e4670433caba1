"""Async readers of the HTTP sources (agent, expvar, Prometheus) on a shared `httpx.AsyncClient`.

Each GETs one document through the transport (`gc_tuner.net.transport`, which maps every failure to
the error tree) and hands it to its parser.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import httpx

from gc_tuner.input.agent_doc import AGENT_PATH, AgentStatus, parse_agent
from gc_tuner.input.expvar import parse_expvar
from gc_tuner.input.prometheus import parse_counter, parse_prometheus
from gc_tuner.model.sample import RuntimeSample
from gc_tuner.net.transport import (
    DEFAULT_TIMEOUT,
    auth_headers,
    check_status,
    join_url,
    json_body,
    mapped_errors,
)

__all__ = ["fetch_agent", "fetch_counter", "fetch_expvar", "fetch_prometheus"]


async def fetch_agent(
    client: httpx.AsyncClient,
    base_url: str,
    path: str = AGENT_PATH,
    token: str | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> tuple[RuntimeSample, AgentStatus]:
    """GET the agent's state: one `RuntimeSample` (source "agent") and the `AgentStatus`."""
    url = join_url(base_url, path)
    with mapped_errors(url):
        response = await client.get(url, headers=auth_headers(token), timeout=timeout)
    t = time.time()
    check_status(response)
    return parse_agent(json_body(response, "agent"), t=t)


async def fetch_expvar(
    client: httpx.AsyncClient,
    url: str,
    *,
    t: float,
    previous: RuntimeSample | None = None,
    gogc: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> RuntimeSample:
    """GET /debug/vars and parse it (see gc_tuner.input.expvar for what is estimated)."""
    with mapped_errors(url):
        response = await client.get(url, timeout=timeout)
    check_status(response)
    return parse_expvar(response.content, t=t, previous=previous, gogc=gogc)


async def fetch_prometheus(
    client: httpx.AsyncClient,
    url: str,
    *,
    t: float,
    counter: str | None = None,
    matchers: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> RuntimeSample:
    """GET a Prometheus text exposition (/metrics) and parse it."""
    response = await _get_exposition(client, url, timeout)
    return parse_prometheus(response.text, t=t, counter=counter, matchers=matchers)


async def _get_exposition(client: httpx.AsyncClient, url: str, timeout: float) -> httpx.Response:
    with mapped_errors(url):
        response = await client.get(url, headers={"Accept": "text/plain"}, timeout=timeout)
    check_status(response)
    return response


async def fetch_counter(
    client: httpx.AsyncClient,
    url: str,
    counter: str,
    *,
    matchers: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> float:
    """GET a Prometheus text exposition and read only the request counter (see `parse_counter`)."""
    response = await _get_exposition(client, url, timeout)
    return parse_counter(response.content, counter, matchers)
