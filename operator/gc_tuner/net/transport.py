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
so a peer that sends forever costs the operator that many bytes, then ResponseTooLargeError. The
limit counts decoded bytes, and a gzip/deflate body is inflated here a limit's worth at a time
(httpx inflates each network chunk whole: 64 KiB of gzip can be 64 MiB), so a compressed answer
that inflates a thousandfold costs no more than a plain one.

Nothing a peer sends escapes as another exception: headers are copied as bytes, a body's charset
is used only when Python knows it as a text encoding (`body_text`), and a JSON document too deep or
with too long an integer is a SourceFormatError like any other malformed one. Nor does it outlive
its exchange: the client keeps no cookies (httpx's client keeps every Set-Cookie of every pod by
default, sends it to every port of that host, and raised UnicodeEncodeError on every later request
to the host once one held a non-ASCII byte).
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import zlib
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
    "body_text",
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
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return str(doc["error"])
    text = body_text(response).strip()
    return text[:300] or response.reason_phrase


def body_text(response: httpx.Response) -> str:
    """The body as text: in its Content-Type charset when that names a text encoding Python knows,
    else UTF-8; bytes that do not decode are replaced. (httpx's `.text` raises on charsets such as
    utf-16 without a BOM, idna, base64 or rot13, which any peer may name.)"""
    charset = response.charset_encoding
    if charset:
        try:
            return response.content.decode(charset, errors="replace")
        except (LookupError, UnicodeError):  # unknown, not a text encoding, or no "replace" handler
            pass
    return response.content.decode("utf-8", errors="replace")


def json_body(response: httpx.Response, source: str) -> Any:
    try:
        return response.json()
    except (ValueError, RecursionError) as e:
        # ValueError: not JSON, not UTF-8, or an integer of more than sys.get_int_max_str_digits()
        # digits; RecursionError: nested deeper than the interpreter's recursion limit.
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
    sent = {"Accept-Encoding": _ACCEPT_ENCODING, **(headers or {}), **auth_headers(token)}
    client.cookies.jar.set_policy(_NO_COOKIES)  # the client is the caller's; every request makes sure
    with mapped_errors(url):
        async with client.stream(method, url, headers=sent, timeout=timeout, **kwargs) as streamed:
            body = await _read_capped(streamed, url, max_bytes)
    # The body is read (and decoded) already: the copy must not announce an encoding or a length.
    # Raw bytes: a header value with non-ASCII bytes (which httpx decodes as UTF-8 or Latin-1) could
    # not be encoded back from its str.
    kept = [(k, v) for k, v in streamed.headers.raw if k.lower() not in _BODY_HEADERS]
    response = httpx.Response(streamed.status_code, headers=kept, content=body, request=streamed.request)
    check_status(response)
    return response


_BODY_HEADERS = frozenset({b"content-encoding", b"content-length", b"transfer-encoding"})


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """No pod, agent or Prometheus needs a cookie: none is kept, none is sent."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False


_NO_COOKIES = _NoCookies()
# The content codings _Inflater reads (httpx would also offer br and zstd when their packages are
# installed, and inflate them unbounded).
_ACCEPT_ENCODING = "gzip, deflate"


class _Inflater:
    """gzip or deflate, inflated at most `room + 1` bytes per call, so a small compressed answer that
    inflates a thousandfold stops at the limit instead of being inflated whole first."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._first = True
        self._z = zlib.decompressobj(zlib.MAX_WBITS if coding == "deflate" else zlib.MAX_WBITS | 16)

    def inflate(self, data: bytes, room: int) -> bytes:
        try:
            out = self._z.decompress(data, room + 1)
        except zlib.error:
            if not (self._first and self.coding == "deflate"):
                raise
            # deflate without its zlib header, as some servers send it (httpx reads both, so do we)
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._z.decompress(data, room + 1)
        self._first = False
        # Output under room + 1 bytes means all of `data` was consumed: nothing waits in unconsumed_tail.
        return out

    def flush(self) -> bytes:
        return self._z.flush()


def _inflater(response: httpx.Response, url: str) -> _Inflater | None:
    codings = [
        c.strip().lower() for value in response.headers.get_list("content-encoding") for c in value.split(",")
    ]
    # identity and codings nobody asked for are passed through as they are, as httpx does.
    known = [c for c in codings if c in ("gzip", "deflate")]
    if len(known) > 1:
        raise ProtocolError(url, f"stacked content codings ({', '.join(codings)}) are not read")
    return _Inflater(known[0]) if known else None


async def _read_capped(response: httpx.Response, url: str, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ResponseTooLargeError(url, f"answer of {declared} bytes, more than the limit of {max_bytes}")
    too_long = f"answer longer than the limit of {max_bytes} bytes; reading stopped"
    if response.is_stream_consumed:
        # An answer built in memory and read whole already (httpx.MockTransport's): only the limit to check.
        if len(response.content) > max_bytes:
            raise ResponseTooLargeError(url, too_long)
        return response.content
    inflater = _inflater(response, url)
    chunks: list[bytes] = []
    size = 0

    def add(chunk: bytes) -> None:
        nonlocal size
        size += len(chunk)
        if size > max_bytes:
            raise ResponseTooLargeError(url, too_long)
        chunks.append(chunk)

    try:
        async for raw in response.aiter_raw():
            add(inflater.inflate(raw, max_bytes - size) if inflater is not None else raw)
        if inflater is not None:
            add(inflater.flush())
    except zlib.error as e:
        coding = inflater.coding if inflater is not None else "compressed"
        raise ProtocolError(url, f"could not inflate the {coding} body: {e}") from e
    return b"".join(chunks)
