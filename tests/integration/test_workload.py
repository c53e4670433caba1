"""The reference workload read through all four sources, and tuned live through its agent.

Two real workload processes run on 127.0.0.2 and 127.0.0.3 with GODEBUG=gctrace=1 (the second
started with GOGC=120, GOMEMLIMIT=1GiB and a token file). Their built-in load is off, so after the
test drives /work externally the heap goes quiet and "the same moment" is well defined: no GC
cycle runs between the reads of the four sources (checked by reading the agent before and after).
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gc_tuner.actuation.agent_writer import apply, release
from gc_tuner.input.agent_doc import AgentSettings, AgentStatus, fetch_agent
from gc_tuner.input.expvar import fetch_expvar
from gc_tuner.input.prometheus import fetch_prometheus
from gc_tuner.model.sample import GCCycle, MiB, RuntimeSample
from gc_tuner.net.errors import AuthError, FetchTimeoutError, RejectedError, UnreachableError
from tests.integration.workload import Workload, workload_binary

pytestmark = [pytest.mark.go, pytest.mark.timeout(120)]

TOKEN_A = "token-for-a"
TOKEN_B = "token-for-b"
LIVE_MIB = 24


@pytest.fixture(scope="module")
def binary() -> Path:
    return workload_binary()


@dataclass
class Pair:
    a: Workload  # 127.0.0.2, runtime defaults, token from env
    b: Workload  # 127.0.0.3, GOGC=120 GOMEMLIMIT=1GiB, token from a file
    token_file: Path


@pytest.fixture(scope="module")
def pair(binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    token_file = tmp_path_factory.mktemp("agent") / "token"
    token_file.write_text(TOKEN_B + "\n")
    common = {"WORKLOAD_LIVE_MIB": str(LIVE_MIB), "GC_TUNER_MAX_LEASE": "60s"}
    with (
        Workload(binary, "127.0.0.2", {**common, "GC_TUNER_TOKEN": TOKEN_A}) as a,
        Workload(
            binary,
            "127.0.0.3",
            {**common, "GOGC": "120", "GOMEMLIMIT": "1GiB", "GC_TUNER_TOKEN_FILE": str(token_file)},
        ) as b,
    ):
        yield Pair(a, b, token_file)


async def drive_work(client: httpx.AsyncClient, w: Workload, *, requests: int, garbage: int) -> None:
    """External load on /work, four requests at a time."""
    sem = asyncio.Semaphore(4)

    async def one() -> None:
        async with sem:
            r = await client.get(f"{w.base_url}/work", params={"bytes": garbage}, timeout=10)
            r.raise_for_status()

    await asyncio.gather(*(one() for _ in range(requests)))


def gogc_from_trace(cycles: list[GCCycle], after: int = 0) -> float:
    """The GOGC the pacer used, from gctrace alone (median over consecutive cycles past `after`).

    A cycle's goal comes from the previous cycle's marked heap:
    goal[n+1] = live[n] + (live[n] + stacks[n] + globals[n]) * GOGC/100 (go-gc-facts.md section 2).
    One line's own goal and live do not fit that formula while load changes the live heap, so
    pairs are used. Small heaps are left out: the 4 MiB minimum goal and whole-MiB rounding
    dominate there.
    """
    estimates = sorted(
        (nxt.goal_mb - c.live_mb) / (c.live_mb + (c.stacks_mb or 0) + (c.globals_mb or 0)) * 100
        for c, nxt in itertools.pairwise(cycles)
        if nxt.n == c.n + 1 and c.n > after and c.live_mb >= 16 and not nxt.forced
    )
    assert estimates, f"no consecutive cycles with a live heap >= 16 MiB after cycle {after}"
    return estimates[len(estimates) // 2]


@dataclass
class Reading:
    agent: RuntimeSample
    status: AgentStatus
    prometheus: RuntimeSample
    expvar: RuntimeSample
    gctrace: GCCycle


async def quiet_reading(client: httpx.AsyncClient, w: Workload, token: str) -> Reading:
    """All four sources with no GC cycle between the first and the last read."""
    for _ in range(20):
        agent, status = await fetch_agent(client, w.base_url, token=token)
        now = time.time()
        prom = await fetch_prometheus(client, f"{w.base_url}/metrics", t=now)
        expv = await fetch_expvar(client, f"{w.base_url}/debug/vars", t=now, gogc=status.gogc)
        after, _ = await fetch_agent(client, w.base_url, token=token)
        await asyncio.sleep(0.1)  # let the stderr thread catch up with the last gc line
        last = w.last_cycle()
        if last is not None and agent.gc_cycles == after.gc_cycles == last.n:
            return Reading(agent, status, prom, expv, last)
        await asyncio.sleep(0.2)
    raise AssertionError(f"{w.addr}: GC never went quiet")


@pytest.mark.parametrize(("which", "gogc"), [("a", 100), ("b", 120)])
async def test_four_sources_agree(pair: Pair, which: str, gogc: int) -> None:
    w, token = (pair.a, TOKEN_A) if which == "a" else (pair.b, TOKEN_B)
    async with httpx.AsyncClient() as client:
        await drive_work(client, w, requests=80, garbage=2 * MiB)  # 160 MiB: several cycles
        r = await quiet_reading(client, w, token)

    cycles = r.agent.gc_cycles
    assert cycles is not None and cycles >= 3, "the external load must have caused GC cycles"
    for name, other in (
        ("prometheus", r.prometheus.gc_cycles),
        ("expvar", r.expvar.gc_cycles),
        ("gctrace", r.gctrace.n),
    ):
        assert other is not None and abs(other - cycles) <= 1, f"{name} cycles {other} vs agent {cycles}"

    live = r.agent.live_heap_bytes
    assert live is not None and live >= LIVE_MIB * MiB, "the live set is part of the live heap"
    assert r.prometheus.live_heap_bytes is not None and abs(r.prometheus.live_heap_bytes - live) <= MiB
    assert r.expvar.live_heap_estimated and r.expvar.live_heap_bytes is not None
    assert abs(r.expvar.live_heap_bytes - live) <= MiB
    assert 0 <= live - r.gctrace.live_mb * MiB < MiB  # gctrace floors to whole MiB

    assert r.agent.gogc == r.prometheus.gogc == r.status.startup.gogc == gogc
    eff = gogc_from_trace(w.cycles)
    assert abs(eff - gogc) <= 0.1 * gogc, f"gctrace says GOGC ~{eff:.0f}"


async def test_builtin_load_can_be_switched_on_and_off(pair: Pair) -> None:
    w = pair.a

    async def requests(client: httpx.AsyncClient) -> float | None:
        s = await fetch_prometheus(
            client,
            f"{w.base_url}/metrics",
            t=time.time(),
            counter="http_requests_total",
            matchers={"handler": "work"},
        )
        return s.requests_total

    async with httpx.AsyncClient(base_url=w.base_url) as client:
        before = await requests(client)
        (await client.post("/load", params={"schedule": "steady", "qps": 100})).raise_for_status()
        await asyncio.sleep(1.0)
        (await client.post("/load", params={"schedule": "off"})).raise_for_status()
        await asyncio.sleep(0.3)
        after = await requests(client)
        state = (await client.get("/load")).json()
    assert before is not None and after is not None
    sent = after - before
    assert 30 <= sent <= 150, f"{sent} requests in 1 s at 100 QPS"
    assert state["schedule"]["schedule"] == "off" and state["failed"] == 0


async def test_set_gogc_and_memory_limit_through_the_client(pair: Pair) -> None:
    w = pair.a
    async with httpx.AsyncClient() as client:
        res = await apply(
            client,
            w.base_url,
            gogc=300,
            memory_limit_bytes=512 * MiB,
            lease_seconds=30,
            owner="integration",
            token=TOKEN_A,
        )
        assert res.previous == AgentSettings(100, None)
        assert res.new == AgentSettings(300, 512 * MiB)
        assert res.lease is not None and res.lease.owner == "integration"
        assert 29 <= res.lease.remaining_seconds <= 30

        raw = (
            await client.get(f"{w.base_url}/debug/gctuner", headers={"Authorization": f"Bearer {TOKEN_A}"})
        ).json()
        assert raw["metrics"]["/gc/gogc:percent"] == 300
        assert raw["metrics"]["/gc/gomemlimit:bytes"] == 512 * MiB
        prom = await fetch_prometheus(client, f"{w.base_url}/metrics", t=time.time())
        assert (prom.gogc, prom.memory_limit_bytes) == (300, 512 * MiB)

        # The pacer follows: the goals of the next cycles are computed with GOGC=300.
        applied_at = w.last_cycle()
        await drive_work(client, w, requests=120, garbage=2 * MiB)
        await quiet_reading(client, w, TOKEN_A)
        eff = gogc_from_trace(w.cycles, after=applied_at.n if applied_at else 0)
        assert abs(eff - 300) <= 30, f"gctrace says GOGC ~{eff:.0f}"

        rel = await release(client, w.base_url, owner="integration", token=TOKEN_A)
        assert rel.released and rel.new == AgentSettings(100, None)
        prom = await fetch_prometheus(client, f"{w.base_url}/metrics", t=time.time())
        assert (prom.gogc, prom.memory_limit_bytes) == (100, None)


async def test_lease_expiry_restores_the_startup_values(pair: Pair) -> None:
    w = pair.b  # started with GOGC=120 GOMEMLIMIT=1GiB
    async with httpx.AsyncClient() as client:
        await apply(
            client,
            w.base_url,
            gogc=40,
            memory_limit_bytes=256 * MiB,
            lease_seconds=1,
            owner="short-lease",
            token=TOKEN_B,
        )
        _, status = await fetch_agent(client, w.base_url, token=TOKEN_B)
        assert status.current == AgentSettings(40, 256 * MiB)
        assert status.lease is not None and status.lease.owner == "short-lease"
        assert status.startup == AgentSettings(120, 1 << 30)

        deadline = time.monotonic() + 5
        while status.lease is not None:  # nobody renews: the agent's own timer must revert
            assert time.monotonic() < deadline, "lease never expired"
            await asyncio.sleep(0.1)
            _, status = await fetch_agent(client, w.base_url, token=TOKEN_B)
        assert status.current == AgentSettings(120, 1 << 30)
        prom = await fetch_prometheus(client, f"{w.base_url}/metrics", t=time.time())
        assert (prom.gogc, prom.memory_limit_bytes) == (120, 1 << 30)


async def test_auth_and_bounds_are_enforced(pair: Pair) -> None:
    w = pair.b
    async with httpx.AsyncClient() as client:
        with pytest.raises(AuthError) as e401:
            await fetch_agent(client, w.base_url)
        assert e401.value.status == 401
        with pytest.raises(AuthError) as e403:
            await fetch_agent(client, w.base_url, token="wrong")
        assert e403.value.status == 403
        with pytest.raises(AuthError):
            await apply(
                client,
                w.base_url,
                gogc=50,
                memory_limit_bytes=None,
                lease_seconds=5,
                owner="x",
                token="wrong",
            )

        for gogc, limit, lease, bound in [
            (5, None, 5, "minGOGC"),
            (5000, None, 5, "maxGOGC"),
            (None, MiB, 5, "minMemoryLimitBytes"),
            (100, None, 3600, "maxLeaseSeconds"),
        ]:
            with pytest.raises(RejectedError) as e422:
                await apply(
                    client,
                    w.base_url,
                    gogc=gogc,
                    memory_limit_bytes=limit,
                    lease_seconds=lease,
                    owner="x",
                    token=TOKEN_B,
                )
            assert e422.value.status == 422 and bound in e422.value.message

        await apply(
            client,
            w.base_url,
            gogc=90,
            memory_limit_bytes=None,
            lease_seconds=30,
            owner="first",
            token=TOKEN_B,
        )
        with pytest.raises(RejectedError) as e409:
            await apply(
                client,
                w.base_url,
                gogc=95,
                memory_limit_bytes=None,
                lease_seconds=30,
                owner="second",
                token=TOKEN_B,
            )
        assert e409.value.status == 409 and "first" in e409.value.message
        _, status = await fetch_agent(client, w.base_url, token=TOKEN_B)
        assert status.gogc == 90, "refused writes must change nothing"

        # A rotated token file takes effect on the next request.
        pair.token_file.write_text("rotated-token")
        with pytest.raises(AuthError):
            await fetch_agent(client, w.base_url, token=TOKEN_B)
        rel = await release(client, w.base_url, owner="first", token="rotated-token")
        assert rel.released and rel.new.gogc == 120
        pair.token_file.write_text(TOKEN_B)


async def test_killed_workload_is_unreachable_and_never_hangs(binary: Path) -> None:
    with Workload(binary, "127.0.0.4", {"GC_TUNER_TOKEN": "t", "WORKLOAD_LIVE_MIB": "1"}) as w:
        async with httpx.AsyncClient(timeout=None) as client:  # no client-wide timeout to lean on
            await fetch_agent(client, w.base_url, token="t")

            w.signal(signal.SIGSTOP)  # accepts connections (kernel backlog) but never answers
            start = time.monotonic()
            with pytest.raises(FetchTimeoutError):
                await fetch_agent(client, w.base_url, token="t", timeout=0.5)
            assert time.monotonic() - start < 3

            pending = asyncio.create_task(fetch_agent(client, w.base_url, token="t", timeout=30))
            await asyncio.sleep(0.3)  # the request is sent and waiting for its answer
            w.signal(signal.SIGKILL)
            killed = time.monotonic()
            with pytest.raises(UnreachableError):
                await pending
            assert time.monotonic() - killed < 3, "a dead peer must fail fast, not at the timeout"

            with pytest.raises(UnreachableError):
                await apply(
                    client,
                    w.base_url,
                    gogc=100,
                    memory_limit_bytes=None,
                    lease_seconds=5,
                    owner="x",
                    token="t",
                )


async def test_sigterm_prints_a_one_line_summary(binary: Path) -> None:
    w = Workload(
        binary, "127.0.0.5", {"WORKLOAD_LOAD": "steady", "WORKLOAD_QPS": "100", "WORKLOAD_LIVE_MIB": "4"}
    )
    try:
        async with httpx.AsyncClient() as client:
            await drive_work(client, w, requests=20, garbage=MiB)  # external load on top
        await asyncio.sleep(1.0)
        summary = w.terminate()
    finally:
        w.kill()
    assert summary["event"] == "summary"
    assert summary["requests"] == summary["load_sent"] + 20
    assert summary["load_failed"] == 0
    assert summary["requests"] >= 50
    assert summary["cycles"] >= 1 and summary["gc_cpu_seconds"] > 0
    assert summary["peak_rss_bytes"] >= 4 * MiB and summary["peak_go_memory_bytes"] >= 4 * MiB
    assert 0 < summary["p50_latency_ms"] <= summary["p99_latency_ms"]
    assert summary["gogc"] == 100 and summary["tuner"] == "none"
    assert len(w.stdout_lines) == 2  # the listening line and the summary, nothing else


async def test_sigterm_under_high_load_with_slow_clients_exits_cleanly(binary: Path) -> None:
    """Stopped at 2000 QPS of built-in load while external clients hold slow requests open, the
    workload drains its driver, gives open requests the shutdown timeout, closes what is left,
    and still exits 0 with its summary: a slow client is not a failure of the service."""
    env = {
        "WORKLOAD_LOAD": "steady",
        "WORKLOAD_QPS": "2000",
        "WORKLOAD_LIVE_MIB": "4",
        "WORKLOAD_SHUTDOWN_TIMEOUT": "1s",
    }
    for _ in range(3):
        w = Workload(binary, "127.0.0.6", env)
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                slow = [
                    asyncio.create_task(client.get(f"{w.base_url}/work", params={"delay_ms": 60_000}))
                    for _ in range(3)
                ]
                await asyncio.sleep(1.0)
                summary = await asyncio.to_thread(w.terminate, 15)
                outcomes = await asyncio.gather(*slow, return_exceptions=True)
        finally:
            w.kill()
        assert summary["event"] == "summary"
        assert (
            summary["load_sent"] >= 200
            and summary["requests"] >= summary["load_sent"] - summary["load_failed"]
        )
        assert len(w.stdout_lines) == 2
        # The slow requests were cut off by the server, not answered after their 60 s.
        assert all(isinstance(o, httpx.TransportError) for o in outcomes), outcomes
