"""Async fetchers for the HTTP sources (agent, expvar, Prometheus) on a shared `httpx.AsyncClient`.

Every transport failure and unexpected status is mapped to the error tree of `errors.py` here, in
`mapped_errors` and `check_status`, the way httpx maps httpcore's exceptions in one place: callers
(the loop, the agent writer in actuation/) catch gc-tuner errors only, never httpx ones.

    httpx.TimeoutException                     -> FetchTimeoutError
    httpx.NetworkError (connect/read/write)    -> UnreachableError
    httpx.RemoteProtocolError, peer went away  -> UnreachableError
    any other httpx.HTTPError / InvalidURL     -> ProtocolError
    401, 403                                   -> AuthError
    400, 409, 413, 415, 422                    -> RejectedError (the agent's message kept)
    any other non-2xx                          -> ProtocolError

Each request carries its own timeout (default `DEFAULT_TIMEOUT`), so a peer that accepts a
connection and never answers (a stopped process) cannot hang a tuning cycle whatever the client's
own configuration.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx

from gc_tuner.input.agent import AgentStatus, parse_agent
from gc_tuner.input.errors import (
    AuthError,
    FetchTimeoutError,
    ProtocolError,
    RejectedError,
    SourceFormatError,
    UnreachableError,
)
from gc_tuner.input.expvar import parse_expvar
from gc_tuner.input.prometheus import parse_counter, parse_prometheus
from gc_tuner.input.sample import RuntimeSample

__all__ = [
    "AGENT_PATH",
    "DEFAULT_TIMEOUT",
    "auth_headers",
    "check_status",
    "fetch_agent",
    "fetch_counter",
    "fetch_expvar",
    "fetch_prometheus",
    "join_url",
    "json_body",
    "mapped_errors",
]

AGENT_PATH = "/debug/gctuner"
DEFAULT_TIMEOUT = 5.0
_REJECTED = frozenset({400, 409, 413, 415, 422})
# httpcore's words for "the peer closed the connection": a process that died mid-exchange.
_PEER_GONE = ("disconnected", "connection closed", "peer closed", "connection reset")


@contextmanager
def mapped_errors(url: str) -> Iterator[None]:
    """Translate httpx exceptions raised inside the block into the gc-tuner error tree."""
    try:
        yield
    except httpx.TimeoutException as e:
        raise FetchTimeoutError(url, f"timed out ({type(e).__name__}): {e or 'no answer'}") from e
    except httpx.NetworkError as e:
        raise UnreachableError(url, f"{type(e).__name__}: {e or 'connection failed'}") from e
    except httpx.RemoteProtocolError as e:
        text = str(e)
        if any(w in text.lower() for w in _PEER_GONE):
            raise UnreachableError(url, f"peer went away: {text}") from e
        raise ProtocolError(url, f"broken HTTP exchange: {text}") from e
    except httpx.InvalidURL as e:
        raise ProtocolError(url, f"invalid URL: {e}") from e
    except httpx.HTTPError as e:
        raise ProtocolError(url, f"{type(e).__name__}: {e}") from e


def check_status(response: httpx.Response) -> None:
    """Raise the error a non-2xx response means; the peer's message (JSON `error` or text) is kept."""
    status = response.status_code
    if 200 <= status < 300:
        return
    url = str(response.request.url)
    message = f"HTTP {status}: {_peer_message(response)}"
    if status in (401, 403):
        raise AuthError(url, message, status=status)
    if status in _REJECTED:
        raise RejectedError(url, message, status=status)
    raise ProtocolError(url, message, status=status)


def _peer_message(response: httpx.Response) -> str:
    try:
        doc = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return str(doc["error"])
    text = response.text.strip()
    return text[:300] or response.reason_phrase


def json_body(response: httpx.Response, source: str) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SourceFormatError(source, "body", f"not JSON: {e}") from e


def auth_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def join_url(base_url: str, path: str) -> str:
    """base_url + path with exactly one slash between them, whichever side has one."""
    return base_url.rstrip("/") + "/" + path.lstrip("/")


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
