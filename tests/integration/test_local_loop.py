"""`gc-tuner local` and the loop below it, against real workload processes on 127.0.0.N.

The same run_cycle the operator calls: here it samples real Go processes, fits their real request
rate and heap growth, and (enforce) writes GOGC through their agents. Faults come from real peers:
a closed port, a wrong token, and a small HTTP server that serves garbage as /metrics.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from gc_tuner.loop.standalone import LocalLoop, default_local_policy, parse_target
from gc_tuner.model.policy import parse_policy
from tests.integration.workload import Workload, workload_binary

pytestmark = [pytest.mark.go, pytest.mark.slow]

TOKEN = "local-secret"
GC_TUNER = str(Path(sys.executable).with_name("gc-tuner"))


@pytest.fixture(scope="module")
def binary() -> Path:
    return workload_binary()


@pytest.fixture
def pair(binary: Path) -> Iterator[list[Workload]]:
    env = {
        "WORKLOAD_LOAD": "steady",
        "WORKLOAD_QPS": "1200",
        "WORKLOAD_LIVE_MIB": "8",
        "GC_TUNER_TOKEN": TOKEN,
    }
    ws = [Workload(binary, "127.0.0.2", env), Workload(binary, "127.0.0.3", env)]
    try:
        yield ws
    finally:
        for w in ws:
            w.kill()


def agent(w: Workload) -> dict[str, Any]:
    r = httpx.get(f"{w.base_url}/debug/gctuner", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    r.raise_for_status()
    doc: dict[str, Any] = r.json()
    return doc


def run_local(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GC_TUNER, "local", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_local_enforce_sets_every_process_and_reports_status(pair: list[Workload]) -> None:
    targets = [a for w in pair for a in ("--target", w.base_url)]
    proc = run_local(
        *targets,
        "--mode",
        "enforce",
        "--no-guard",  # every process at once; the guard has its own tests
        "--interval",
        "1",
        "--cycles",
        "6",
        "--token",
        TOKEN,
        "--keep",
        "--format",
        "json",
    )
    assert proc.returncode == 0, proc.stderr
    statuses = [json.loads(line)["status"] for line in proc.stdout.splitlines()]
    assert len(statuses) == 6
    last = statuses[-1]
    conds = {c["type"]: c for c in last["conditions"]}
    assert conds["Ready"]["status"] == "True", conds
    assert conds["Applied"]["reason"] == "InSync"
    assert last["fit"]["qps"] == pytest.approx(1200, rel=0.15)
    applied = last["applied"]["gogc"]
    assert applied < 100  # 1200 QPS per process: the formula lowers GOGC
    for w in pair:
        state = agent(w)
        assert state["metrics"]["/gc/gogc:percent"] == applied
        assert state["lease"]["owner"] == "gc-tuner/local/local"


def test_local_dry_run_touches_nothing(pair: list[Workload]) -> None:
    proc = run_local("--target", pair[0].base_url, "--interval", "1", "--cycles", "4", "--token", TOKEN)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "recommend GOGC" in lines[-1]
    state = agent(pair[0])
    assert state["lease"] is None and state["gogc"] == 100


def test_release_on_exit_restores_startup_values(pair: list[Workload]) -> None:
    proc = run_local(
        "--target",
        pair[0].base_url,
        "--mode",
        "enforce",
        "--interval",
        "1",
        "--cycles",
        "4",
        "--token",
        TOKEN,
    )
    assert proc.returncode == 0, proc.stderr
    state = agent(pair[0])
    assert state["lease"] is None and state["gogc"] == state["startup"]["gogc"] == 100


class _Garbage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"go_memstats_heap_alloc_bytes{{{ not prometheus\n\x00\xff"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def garbage_server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.4", 0), _Garbage)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.4:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.5", 0))
        return f"http://127.0.0.5:{s.getsockname()[1]}"


async def test_faulty_targets_degrade_while_healthy_ones_are_tuned(
    binary: Path, pair: list[Workload], garbage_server: str
) -> None:
    wrong = Workload(
        binary,
        "127.0.0.6",
        {"WORKLOAD_LOAD": "steady", "WORKLOAD_QPS": "1200", "GC_TUNER_TOKEN": "another-token"},
    )
    try:
        urls = [pair[0].base_url, pair[1].base_url, _closed_port(), garbage_server, wrong.base_url]
        targets = [parse_target(u) for u in urls]
        # The policy reads each URL's own port: one "port" value is replaced per target.
        spec = parse_policy(
            {
                **default_local_policy(mode="Enforce", port=8080),
                "guard": {"enabled": False},  # every pod at once: the guard has its own tests
                "sampling": {
                    "intervalSeconds": 1,
                    "windowSeconds": 30,
                    "sources": {"agent": {"port": 8080}, "prometheus": {"port": 8080}},
                },
                "rollout": {
                    "method": "Endpoint",
                    "endpoint": {"port": 8080},
                    "cooldownSeconds": 0,
                    "leaseSeconds": 30,
                },
            }
        )
        async with httpx.AsyncClient(trust_env=False) as http:
            loop = LocalLoop(spec, targets, http, token=TOKEN)
            warnings: list[tuple[str, str, str]] = []  # (reason, pod, source)
            for _ in range(5):
                outcome, status = await loop.step()
                warnings += [
                    (e.reason, e.message.split()[0], e.message.split()[1])
                    for e in outcome.events
                    if e.type == "Warning"
                ]
                await asyncio.sleep(1)
            reasons = {(f.pod, f.reason) for f in outcome.failures}
            closed, garbage, auth = targets[2].name, targets[3].name, targets[4].name
            assert (closed, "Unreachable") in reasons
            assert (garbage, "MalformedData") in reasons
            assert (auth, "AuthFailed") in reasons
            conds = {c["type"]: c for c in status["conditions"]}
            assert conds["Degraded"]["status"] == "True"
            assert conds["Degraded"]["reason"] in {"Unreachable", "MalformedData", "AuthFailed"}
            assert status["pods"]["failing"] == 3 and status["pods"]["matched"] == 5
            # The healthy pair is still tuned.
            assert outcome.applied is not None and outcome.applied.pods == 2
            for w in pair:
                assert agent(w)["metrics"]["/gc/gogc:percent"] == outcome.applied.gogc
            # Events are posted once per new failure, not every cycle. (A screening verdict such as
            # OutlierExcluded can first appear late, once the fit has enough samples; once is the rule.)
            assert len(warnings) == len(set(warnings)), warnings
            assert {(r, p) for r, p, _ in warnings} >= {("Unreachable", closed), ("MalformedData", garbage)}
            await loop.release()
    finally:
        wrong.kill()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "ftp://127.0.0.1:1"], "scheme must be http or https"),
        (["--target", "http://127.0.0.1:8080/metrics"], "base URL"),
        (["--target", "http://127.0.0.1"], "needs an explicit port"),
        (["--target", "http://127.0.0.1:1", "--memory-limit", "1.5GB!"], "--memory-limit"),
    ],
)
def test_cli_errors_exit_2_without_traceback(args: list[str], message: str) -> None:
    proc = run_local(*args, timeout=30)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_invalid_policy_file_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text(
        "spec:\n  targetRef: {name: x}\n  bounds: {minGOGC: 300}\n  sampling: {sources: {agent: {port: 1}}}\n"
        "  qps: {counter: {name: r, port: 1}}\n"
    )
    proc = run_local("--target", "http://127.0.0.1:1", "--policy", str(bad), timeout=30)
    assert proc.returncode == 2 and "bounds.minGOGC must be <= bounds.maxGOGC" in proc.stderr
    envpatch = tmp_path / "e.yaml"
    envpatch.write_text(
        "targetRef: {name: x}\nrollout: {method: EnvPatch}\nsampling: {sources: {agent: {port: 1}}}\n"
        "qps: {counter: {name: r, port: 1}}\n"
    )
    proc = run_local(
        "--target", "http://127.0.0.1:1", "--policy", str(envpatch), "--mode", "enforce", timeout=30
    )
    assert proc.returncode == 2 and "EnvPatch needs a Deployment" in proc.stderr


async def test_leases_are_renewed_before_they_run_short_not_every_cycle(pair: list[Workload]) -> None:
    """A pod already running our values under our lease is not written again until the lease's
    remaining time nears 2 × (interval + timeout); the lease never lapses in between."""
    w = pair[0]
    spec = parse_policy(
        {
            **default_local_policy(mode="Enforce", port=8080),  # 8080 stands for each URL's own port
            "guard": {"enabled": False},  # every pod at once: the guard has its own tests
            "sampling": {
                "intervalSeconds": 1,
                "windowSeconds": 30,
                "timeoutSeconds": 1,
                "sources": {"agent": {"port": 8080}, "prometheus": {"port": 8080}},
            },
            "rollout": {
                "method": "Endpoint",
                "endpoint": {"port": 8080},
                "cooldownSeconds": 0,
                "leaseSeconds": 10,
            },
        }
    )
    async with httpx.AsyncClient(trust_env=False) as http:
        loop = LocalLoop(spec, [parse_target(w.base_url)], http, token=TOKEN)
        expiries: list[str] = []
        remaining: list[float] = []
        for _ in range(16):
            outcome, _ = await loop.step()
            lease = agent(w)["lease"]
            if outcome.applied is not None:
                assert lease is not None and lease["owner"] == "gc-tuner/local/local"
                assert outcome.applied.pods == 1  # a skipped renewal still counts the pod as in force
                expiries.append(lease["expiresAt"])
                remaining.append(lease["remainingSeconds"])
            await asyncio.sleep(1)
        await loop.release()
    writes = len(set(expiries))
    assert len(expiries) >= 10, expiries
    assert 2 <= writes < len(expiries) // 2, expiries  # renewed, but not on every cycle
    assert min(remaining) > 2, remaining  # renewed with time to spare (margin 4 s, 1 s cycles)


def _agent_qps_policy() -> dict[str, Any]:
    return {
        "targetRef": {"name": "agent-qps"},
        "mode": "DryRun",
        "sampling": {"intervalSeconds": 1, "windowSeconds": 30, "sources": {"agent": {"port": 8080}}},
        "qps": {"agent": {}},
    }


async def test_qps_from_the_agents_request_counter_in_one_request_per_pod(binary: Path) -> None:
    """qps.agent: the rate comes from the agent's own requestsTotal, no /metrics read; a process that
    registered no counter is reported by name while the others are fitted."""
    env = {"WORKLOAD_LOAD": "steady", "WORKLOAD_QPS": "800", "WORKLOAD_LIVE_MIB": "8"}
    env["GC_TUNER_TOKEN"] = TOKEN
    with (
        Workload(binary, "127.0.0.7", env) as counted,
        Workload(binary, "127.0.0.8", {**env, "GC_TUNER_REQUEST_COUNTER": "false"}) as uncounted,
    ):
        targets = [parse_target(counted.base_url), parse_target(uncounted.base_url)]
        async with httpx.AsyncClient(trust_env=False) as http:
            loop = LocalLoop(parse_policy(_agent_qps_policy()), targets, http, token=TOKEN)
            for _ in range(6):
                outcome, status = await loop.step()
                await asyncio.sleep(1)
        assert agent(counted)["requestsTotal"] > 0 and "requestsTotal" not in agent(uncounted)
    assert status["fit"]["qpsSource"] == "Agent"
    assert status["fit"]["qps"] == pytest.approx(800, rel=0.15)
    assert status["fit"]["pods"] == 1
    [failure] = [f for f in outcome.failures if f.source == "qps"]
    assert (failure.pod, failure.reason) == (targets[1].name, "MalformedData")
    assert "agent.WithRequestCounter" in failure.message


class _BrokenReads(BaseHTTPRequestHandler):
    """A pod whose every read fails (HTTP 500) but which would accept writes: it counts them."""

    writes: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        type(self).writes.append(self.path)
        body = b'{"error": "writes are counted here"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


async def test_enforce_never_writes_to_a_pod_it_could_not_read(pair: list[Workload]) -> None:
    handler = type("B", (_BrokenReads,), {"writes": []})
    srv = ThreadingHTTPServer(("127.0.0.8", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        broken = parse_target(f"http://127.0.0.8:{srv.server_address[1]}")
        targets = [parse_target(pair[0].base_url), parse_target(pair[1].base_url), broken]
        spec = parse_policy(
            {
                **default_local_policy(mode="Enforce", port=8080),
                "guard": {"enabled": False},  # every pod at once: the guard has its own tests
                "sampling": {"intervalSeconds": 1, "windowSeconds": 30, "sources": {"agent": {"port": 8080}}},
                "qps": {"agent": {}},
                "rollout": {"method": "Endpoint", "endpoint": {"port": 8080}, "cooldownSeconds": 0},
            }
        )
        async with httpx.AsyncClient(trust_env=False) as http:
            loop = LocalLoop(spec, targets, http, token=TOKEN)
            for _ in range(5):
                outcome, _status = await loop.step()
                await asyncio.sleep(1)
            await loop.release()
        assert outcome.applied is not None and outcome.applied.pods == 2  # the readable pair is tuned
        assert handler.writes == []  # and the pod that could not be read got no write at all
        assert outcome.apply_verdict is not None and outcome.apply_verdict.reason == "PartiallyApplied"
        assert broken.name in outcome.apply_verdict.message
    finally:
        srv.shutdown()
        srv.server_close()


def _hostile_agent(start: float) -> type[BaseHTTPRequestHandler]:
    """An agent whose well-formed answers claim a live heap growing 10 GB/s, with every counter made
    to agree (allocations and held memory grow as fast), so only the container's limit betrays it."""
    from tests.input.test_agent_parser import _doc

    class Hostile(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            dt = time.monotonic() - start
            doc = _doc()
            grown = int(10e9 * dt)
            m = doc["metrics"]
            m["/gc/heap/live:bytes"] = 40_000_000 + grown
            m["/gc/heap/allocs:bytes"] = 123_456_789_012 + 2 * grown
            m["/memory/classes/total:bytes"] = 90_000_000 + 2 * grown
            m["/gc/heap/goal:bytes"] = 80_000_000 + 2 * grown
            m["/gc/cycles/total:gc-cycles"] = 42 + int(dt * 10)
            doc["requestsTotal"] = int(1200 * dt)
            body = json.dumps(doc).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Hostile


async def test_one_pod_with_absurd_well_formed_data_does_not_steer_the_other(pair: list[Workload]) -> None:
    srv = ThreadingHTTPServer(("127.0.0.9", 0), _hostile_agent(time.monotonic()))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        hostile = parse_target(f"http://127.0.0.9:{srv.server_address[1]}", memory_limit="1Gi")
        targets = [parse_target(pair[0].base_url, memory_limit="1Gi"), hostile]
        spec = parse_policy(
            {
                **default_local_policy(mode="DryRun", port=8080),
                "sampling": {"intervalSeconds": 1, "windowSeconds": 30, "sources": {"agent": {"port": 8080}}},
                "qps": {"agent": {}},
            }
        )
        async with httpx.AsyncClient(trust_env=False) as http:
            loop = LocalLoop(spec, targets, http, token=TOKEN)
            for _ in range(6):
                outcome, status = await loop.step()
                await asyncio.sleep(1)
        screened = {(f.pod, f.reason) for f in outcome.failures if f.source == "fit"}
        assert screened == {(hostile.name, "ImplausibleData")}
        assert outcome.fit is not None and outcome.fit.pods == 1  # only the healthy pod's heap counts
        assert outcome.fit.heap_slope_mb_per_s is not None and abs(outcome.fit.heap_slope_mb_per_s) < 50
        # The median of two is their mean: unscreened, 10 GB/s would pin GOGC to the floor of 25.
        assert outcome.recommendation_gogc is not None and outcome.recommendation_gogc > 25
        assert any(f["name"] == hostile.name for f in status["pods"]["failures"])
    finally:
        srv.shutdown()
        srv.server_close()


async def test_a_hanging_pod_does_not_stretch_the_others_interval(pair: list[Workload]) -> None:
    from tests.input.test_fetch import raw_peer

    with raw_peer("silent") as hanging_url:  # accepts the connection, never answers
        hanging = parse_target(hanging_url)
        targets = [parse_target(pair[0].base_url), hanging]
        spec = parse_policy(
            {
                **default_local_policy(mode="DryRun", port=8080),
                "sampling": {
                    "intervalSeconds": 1,
                    "windowSeconds": 30,
                    "timeoutSeconds": 8,
                    "sources": {"agent": {"port": 8080}},
                },
                "qps": {"agent": {}},
            }
        )
        async with httpx.AsyncClient(trust_env=False) as http:
            loop = LocalLoop(spec, targets, http, token=TOKEN)
            durations, reasons = [], []
            for _ in range(4):
                t0 = time.monotonic()
                outcome, _status = await loop.step()
                durations.append(time.monotonic() - t0)
                reasons.append({f.reason for f in outcome.failures if f.pod == hanging.name})
            loop.state.reads.cancel()
    # Each cycle waits its budget (3 s here), not the 8 s timeout of the hanging pod's request.
    assert max(durations) < 6.0, durations
    # Late once is not a failure yet; late again while its read runs on is SlowRead; once the
    # request's own timeout ends the read, that failure is reported.
    assert reasons[0] == set() and reasons[1] == {"SlowRead"}, reasons
    assert all(r <= {"SlowRead", "Timeout"} for r in reasons), reasons
    assert outcome.pods_sampled == 1  # the healthy pod is read every cycle
