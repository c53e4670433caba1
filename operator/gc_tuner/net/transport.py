"""The HTTP transport under every read (input/) and write (actuation/) gc-tuner makes to a pod or a peer.

Every transport failure and unexpected status is mapped to the error tree of `net/errors.py` here, in
`mapped_errors` and `check_status`, the way httpx maps httpcore's exceptions in one place: callers
(the readers, the agent writer, the Kubernetes client) catch gc-tuner errors only, never httpx ones.

    httpx.TimeoutException                     -> FetchTimeoutError
    httpx.NetworkError (connect/read/write)    -> UnreachableError
    httpx.RemoteProtocolError, peer went away  -> UnreachableError
    any other httpx.HTTPError / InvalidURL     -> ProtocolError
    401, 403                                   -> AuthError
    400, 409, 413, 415, 422                    -> RejectedError (the agent's message kept)
    any other non-2xx                          -> ProtocolError

Each request carries its own timeout (default `DEFAULT_TIMEOUT`), so a peer that accepts a
connection and never answers (a stopped process) cannot hang a tuning cycle whatever the client's
own configuration. Each answer is read as a stream up to a byte limit (default `DEFAULT_MAX_BYTES`),
so a peer that sends forever costs the operator that many bytes, then ResponseTooLargeError.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx

from gc_tuner.net.errors import (
    AuthError,
    FetchTimeoutError,
    ProtocolError,
    RejectedError,
    ResponseTooLargeError,
    SourceFormatError,
    UnreachableError,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_TIMEOUT",
    "auth_headers",
    "check_status",
    "join_url",
    "json_body",
    "mapped_errors",
    "request",
    "time_bound",
]

DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_BYTES = 4 << 20  # a large /metrics is well under 1 MiB; an agent document a few KiB
_REJECTED = frozenset({400, 409, 413, 415, 422})
# httpcore's words for "the peer closed the connection": a process that died mid-exchange.
_PEER_GONE = ("disconnected", "connection closed", "peer closed", "connection reset")


@asynccontextmanager
async def time_bound(url: str, seconds: float) -> AsyncIterator[None]:
    """Bound a whole exchange, not only each phase: httpx's timeout restarts with every chunk, so a
    peer that drips its answer would otherwise hold the caller for as long as it likes."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise FetchTimeoutError(url, f"no answer within {seconds:g}s") from None


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


async def request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    timeout: float,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    **kwargs: Any,
) -> httpx.Response:
    """One HTTP exchange with a 2xx answer of at most `max_bytes` (decoded); anything else raises from
    the error tree. `timeout` bounds each phase (connect, each read); wrap the call in `time_bound`
    to bound it as a whole."""
    with mapped_errors(url):
        async with client.stream(
            method, url, headers={**(headers or {}), **auth_headers(token)}, timeout=timeout, **kwargs
        ) as streamed:
            body = await _read_capped(streamed, url, max_bytes)
    # The body is read (and decoded) already: the copy must not announce an encoding or a length.
    kept = [(k, v) for k, v in streamed.headers.multi_items() if k.lower() not in _BODY_HEADERS]
    response = httpx.Response(streamed.status_code, headers=kept, content=body, request=streamed.request)
    check_status(response)
    return response


_BODY_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


async def _read_capped(response: httpx.Response, url: str, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ResponseTooLargeError(url, f"answer of {declared} bytes, more than the limit of {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise ResponseTooLargeError(
                url, f"answer longer than the limit of {max_bytes} bytes; reading stopped"
            )
        chunks.append(chunk)
    return b"".join(chunks)
