"""The operator's shared pod client caps the exchanges in flight before httpcore's pool, so requests
cancelled while they wait for a slot (a cycle's time bound) never wedge it.

With the client as it was (httpx.Limits(max_connections=N), the surplus queued inside httpcore),
80 requests cut short at 0.3 s left every later request failing with PoolTimeout: at 2,000 pods in
20 policies no pod was read again after the first cycle (bench/operator_load)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from gc_tuner.controller.handlers import pod_client
from gc_tuner.controller.runner import OperatorConfig
from gc_tuner.net.bounded import BoundedTransport

CAP = 10


class _Pods:
    """40 slow HTTP servers on loopback (one origin each, like pods), counting exchanges at once."""

    def __init__(self) -> None:
        self.ports: list[int] = []
        self.now = 0
        self.most = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(0.2)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}")
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass  # the client gave up
        finally:
            self.now -= 1
            writer.close()


@pytest.fixture
async def pods() -> AsyncIterator[_Pods]:
    p = _Pods()
    servers = [await asyncio.start_server(p.handle, "127.0.0.1", 0) for _ in range(40)]
    p.ports = [s.sockets[0].getsockname()[1] for s in servers]
    try:
        yield p
    finally:
        for s in servers:
            s.close()


async def _get(client: httpx.AsyncClient, port: int, within: float) -> int | str:
    try:
        async with asyncio.timeout(within):
            return (await client.get(f"http://127.0.0.1:{port}/")).status_code
    except (TimeoutError, httpx.HTTPError) as e:
        return type(e).__name__


async def test_requests_cancelled_while_waiting_leave_the_client_usable(pods: _Pods) -> None:
    client = pod_client(OperatorConfig(max_connections=CAP, http_timeout_s=5))
    try:
        cut = await asyncio.gather(*(_get(client, pods.ports[i % 40], 0.3) for i in range(80)))
        assert cut.count("TimeoutError") > 50  # most were cancelled while waiting for a slot
        after = await asyncio.gather(*(_get(client, pods.ports[i % 40], 8) for i in range(20)))
        assert after == [200] * 20
    finally:
        await client.aclose()


async def test_no_more_exchanges_than_the_cap_reach_the_pods(pods: _Pods) -> None:
    client = pod_client(OperatorConfig(max_connections=CAP, http_timeout_s=5))
    try:
        got = await asyncio.gather(*(_get(client, pods.ports[i % 40], 20) for i in range(60)))
    finally:
        await client.aclose()
    assert got == [200] * 60
    assert pods.most == CAP


async def _body() -> AsyncIterator[bytes]:
    yield b"{}"


async def test_a_slot_is_held_until_the_body_is_closed_and_freed_by_a_failure() -> None:
    async def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/fail":
            raise httpx.ConnectError("refused", request=request)
        if request.url.path == "/read":
            return httpx.Response(200, content=b"{}")  # in memory, read whole already
        return httpx.Response(200, content=_body())  # streamed, as from a socket

    client = httpx.AsyncClient(transport=BoundedTransport(httpx.MockTransport(answer), 1))
    async with client.stream("GET", "http://a/") as open_body:
        assert open_body.status_code == 200
        with pytest.raises(TimeoutError):  # the one slot is the open body's
            async with asyncio.timeout(0.2):
                await client.get("http://b/")
    with pytest.raises(httpx.ConnectError):
        await client.get("http://b/fail")
    assert (await client.get("http://b/")).status_code == 200  # neither the body nor the failure kept it
    assert (await client.get("http://b/read")).status_code == 200
    assert (await client.get("http://b/")).status_code == 200
    await client.aclose()
