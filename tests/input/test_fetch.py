"""The error mapping of gc_tuner.net.transport, through the readers, against real peers that misbehave.

Each fault is produced by a real socket or HTTP server: refused connections, a peer that accepts
and never answers, one that closes or resets mid-exchange, one that speaks no HTTP, and every
status class. (The agent's own 401/403/409/422 are exercised against the real Go agent in
tests/integration.)
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest

from gc_tuner.input.agent_doc import fetch_agent
from gc_tuner.input.promql import fetch_promql
from gc_tuner.net.errors import (
    AuthError,
    FetchError,
    FetchTimeoutError,
    ProtocolError,
    RejectedError,
    SourceFormatError,
    UnreachableError,
)
from tests.input.test_agent_parser import _doc


@contextmanager
def raw_peer(behaviour: str) -> Iterator[str]:
    """A TCP server on 127.0.0.1 that treats each connection per `behaviour`; yields its base URL."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.02)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if behaviour == "silent":
                held.append(conn)  # read nothing, answer nothing
                continue
            conn.recv(65536)
            if behaviour == "close":
                conn.close()
            elif behaviour == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
            elif behaviour == "garbage":
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
                conn.close()

    if behaviour == "silent":
        thread = None  # the kernel's backlog completes the handshake; nobody ever reads
    else:
        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        srv.close()
        if thread is not None:
            thread.join(2)
        for c in held:
            c.close()


class _Handler(BaseHTTPRequestHandler):
    status: ClassVar[int] = 200
    body: ClassVar[bytes] = b""
    seen_auth: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        type(self).seen_auth.append(self.headers.get("Authorization"))
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def http_peer(status: int, body: bytes) -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("H", (_Handler,), {"status": status, "body": body, "seen_auth": []})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", handler
    finally:
        srv.shutdown()
        srv.server_close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


async def test_connection_refused_is_unreachable() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(UnreachableError) as exc:
            await fetch_agent(client, f"http://127.0.0.1:{_closed_port()}")
    assert exc.value.url.endswith("/debug/gctuner")
    assert exc.value.reason == "Unreachable"


async def test_silent_peer_times_out_without_hanging() -> None:
    with raw_peer("silent") as url:
        async with httpx.AsyncClient(timeout=None) as client:  # the client itself would wait forever
            start = time.monotonic()
            with pytest.raises(FetchTimeoutError):
                await fetch_agent(client, url, timeout=0.3)
            assert time.monotonic() - start < 3


@pytest.mark.parametrize("behaviour", ["close", "reset"])
async def test_peer_gone_mid_exchange_is_unreachable(behaviour: str) -> None:
    with raw_peer(behaviour) as url:
        async with httpx.AsyncClient() as client:
            with pytest.raises(UnreachableError):
                await fetch_agent(client, url, timeout=2)


async def test_non_http_peer_is_a_protocol_error() -> None:
    with raw_peer("garbage") as url:
        async with httpx.AsyncClient() as client:
            with pytest.raises(ProtocolError) as exc:
                await fetch_agent(client, url, timeout=2)
    assert not isinstance(exc.value, UnreachableError)


async def test_unsupported_scheme_is_a_protocol_error() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(ProtocolError):
            await fetch_agent(client, "ftp://127.0.0.1:1")


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, AuthError),
        (403, AuthError),
        (400, RejectedError),
        (409, RejectedError),
        (413, RejectedError),
        (415, RejectedError),
        (422, RejectedError),
        (404, ProtocolError),
        (405, ProtocolError),
        (500, ProtocolError),
        (503, ProtocolError),
    ],
)
async def test_status_mapping_keeps_the_peer_message(status: int, error: type[FetchError]) -> None:
    body = json.dumps({"error": f"explained {status}"}).encode()
    with http_peer(status, body) as (url, _):
        async with httpx.AsyncClient() as client:
            with pytest.raises(error) as exc:
                await fetch_agent(client, url)
    assert type(exc.value) is error
    assert exc.value.status == status
    assert f"explained {status}" in exc.value.message


async def test_plain_text_error_body_is_kept() -> None:
    with http_peer(502, b"upstream went away") as (url, _):
        async with httpx.AsyncClient() as client:
            with pytest.raises(ProtocolError, match="upstream went away"):
                await fetch_agent(client, url)


async def test_success_sends_the_token_and_parses() -> None:
    with http_peer(200, json.dumps(_doc()).encode()) as (url, handler):
        async with httpx.AsyncClient() as client:
            before = time.time()
            sample, status = await fetch_agent(client, url + "/", token="tok")
    assert handler.seen_auth == ["Bearer tok"]
    assert sample.source == "agent" and sample.gc_cycles == 42
    assert sample.t >= before
    assert status.bounds.max_gogc == 1000


async def test_no_token_sends_no_header() -> None:
    with http_peer(200, json.dumps(_doc()).encode()) as (url, handler):
        async with httpx.AsyncClient() as client:
            await fetch_agent(client, url)
    assert handler.seen_auth == [None]


async def test_non_json_success_is_a_format_error() -> None:
    with http_peer(200, b"<html>hello</html>") as (url, _):
        async with httpx.AsyncClient() as client:
            with pytest.raises(SourceFormatError) as exc:
                await fetch_agent(client, url)
    assert (exc.value.source, exc.value.field) == ("agent", "body")


@pytest.mark.parametrize(("status", "error"), [(401, AuthError), (400, RejectedError), (503, ProtocolError)])
async def test_promql_goes_through_the_same_mapping(status: int, error: type[FetchError]) -> None:
    body = json.dumps({"status": "error", "error": f"explained {status}"}).encode()
    with http_peer(status, body) as (url, _):
        async with httpx.AsyncClient() as client:
            with pytest.raises(error) as exc:
                await fetch_promql(client, url, "up")
    assert type(exc.value) is error and f"explained {status}" in exc.value.message


async def test_promql_refused_connection_is_unreachable() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(UnreachableError):
            await fetch_promql(client, f"http://127.0.0.1:{_closed_port()}", "up")


class _Endless(BaseHTTPRequestHandler):
    """Answers 200 and then sends forever (no length): a broken or hostile pod."""

    declared: ClassVar[int | None] = None

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        if self.declared is not None:
            self.send_header("Content-Length", str(self.declared))
        self.end_headers()
        chunk = b"go_memstats_alloc_bytes 1\n" * 4096
        try:
            while True:
                self.wfile.write(chunk)
        except OSError:
            pass  # the reader stopped reading: that is the point

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def endless_peer(declared: int | None = None) -> Iterator[str]:
    handler = type("E", (_Endless,), {"declared": declared})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize("declared", [None, 1 << 40])
async def test_an_endless_answer_is_cut_at_the_limit_with_bounded_memory(declared: int | None) -> None:
    import tracemalloc

    from gc_tuner.input.prometheus import fetch_prometheus
    from gc_tuner.net.errors import ResponseTooLargeError

    with endless_peer(declared) as base:
        async with httpx.AsyncClient() as client:
            tracemalloc.start()
            try:
                with pytest.raises(ResponseTooLargeError) as info:
                    await fetch_prometheus(client, base + "/metrics", t=0.0, timeout=3.0, max_bytes=256 << 10)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    assert info.value.reason == "ResponseTooLarge" and "262144" in str(info.value)
    assert peak < 16 << 20  # a 256 KiB limit, a few chunks in flight; never the stream


async def test_an_answer_within_the_limit_reads_whole() -> None:
    body = json.dumps(_doc()).encode()
    with http_peer(200, body) as (base, _):
        async with httpx.AsyncClient() as client:
            sample, _status = await fetch_agent(client, base, max_bytes=len(body))
            assert sample.source == "agent"
            with pytest.raises(FetchError, match="limit of"):
                await fetch_agent(client, base, max_bytes=len(body) - 1)
