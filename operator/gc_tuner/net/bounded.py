"""A cap on the HTTP exchanges in flight, kept before httpcore's connection pool rather than in it.

The operator shares one client among every policy's samplers, which together may want more
exchanges at once than its connection cap (20 policies × maxConcurrency 16 = 320 against 100).
Left to httpcore, the surplus waits in the pool's own queue, where each request added or finished
rescans every queued request against every connection, and where a request cancelled while it
waits (a cycle's time bound) can leave its half-made connection holding a slot for good: at 2,000
pods the pool wedged after its first 100 to 263 exchanges and no pod was read again
(bench/operator_load). Here the surplus waits on a semaphore instead, which is FIFO, cheap and
cancellation-safe, and the pool never has more requests than connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx

__all__ = ["BoundedTransport"]


class _Releasing(httpx.AsyncByteStream):
    """The response body; closing it (always done: httpx closes every response) frees the slot."""

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream, self._release = stream, release
        self._released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            if not self._released:
                self._released = True
                self._release()


class BoundedTransport(httpx.AsyncBaseTransport):
    """At most `limit` exchanges through `inner` at once, from the request until its body is closed."""

    def __init__(self, inner: httpx.AsyncBaseTransport, limit: int) -> None:
        self._inner = inner
        self._slots = asyncio.Semaphore(limit)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self._slots.acquire()
        try:
            response = await self._inner.handle_async_request(request)
        except BaseException:  # cancelled or failed before a body existed: nothing else will free it
            self._slots.release()
            raise
        if response.is_closed:  # an answer built in memory, read whole already: no body to wait for
            self._slots.release()
            return response
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Releasing(response.stream, self._slots.release)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()
