"""The operator's cost at fleet scale: `gc-tuner local` (the operator's loop) against N fake pods.

    fleetsim -n N   one Go process, one listener per pod on 127.1.x.y, agent + /metrics + expvar
    gc-tuner local  --mode enforce --target <N URLs>: sample, fit, decide and renew every pod's lease
    /proc/<pid>     CPU seconds and RSS of the gc-tuner process, sampled every second

The decision time (fit + strategy) is measured in-process on the very functions the cycle calls,
over windows as full as a real policy's (windowSeconds / intervalSeconds samples per pod).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import yaml

from bench.common import proc_stat

__all__ = [
    "DecisionTiming",
    "FleetRun",
    "RolloutRun",
    "build_fleetsim",
    "decision_timing",
    "hot_frames",
    "pod_address",
    "profile_fleet",
    "run_fleet",
    "run_rollout",
]

FLEET_PORT = 9100


def build_fleetsim() -> Path:
    from gc_tuner.cli.gobuild import build_go, repo_root

    return build_go(repo_root() / "bench" / "fleet" / "sim", "fleetsim")


def _gc_tuner_cmd() -> list[str]:
    script = Path(sys.executable).with_name("gc-tuner")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from gc_tuner.cli.main import main; sys.exit(main())"]


def policy(
    *,
    interval_s: int,
    window_s: int,
    cooldown_s: int,
    concurrency: int,
    port: int = FLEET_PORT,
    qps_source: str = "agent",
) -> dict[str, Any]:
    """The fleet's GCPolicy. qps_source "agent": QPS from the agent's requestsTotal (one GET per pod);
    "counter": from http_requests_total{handler="work"} on /metrics (a second GET per pod)."""
    qps: dict[str, Any] = (
        {"agent": {}}
        if qps_source == "agent"
        else {"counter": {"name": "http_requests_total", "matchers": {"handler": "work"}, "port": port}}
    )
    return {
        "apiVersion": "gctuner.io/v1alpha1",
        "kind": "GCPolicy",
        "spec": {
            "targetRef": {"name": "fleet"},
            "mode": "Enforce",
            "rollout": {
                "method": "Endpoint",
                "endpoint": {"port": port},
                "cooldownSeconds": cooldown_s,
                "leaseSeconds": max(60, 4 * interval_s),
            },
            "sampling": {
                "intervalSeconds": interval_s,
                "windowSeconds": window_s,
                "timeoutSeconds": 5,
                "maxConcurrency": concurrency,
                "sources": {"agent": {"port": port}},
            },
            "qps": qps,
            # Every pod at once: the rollout figure is the write path's speed to the whole fleet. The
            # guard's windows are still kept every cycle (PolicyState.feed), so their cost is counted.
            "guard": {"enabled": False},
        },
    }


def pod_address(i: int) -> str:
    """Pod i's loopback address, as fleetsim's addr() assigns it: 127.1.0.1, 127.1.0.2, ..."""
    return f"127.{1 + i // (254 * 256)}.{(i // 254) % 256}.{i % 254 + 1}"


class _Fleet:
    # Every pod of a fleet listens on one port across its own addresses; another fleet (a parallel run)
    # may already hold that port, so try a few before giving up.
    PORTS = (FLEET_PORT, 19100, 29100, 39100, 49100)

    def __init__(self, binary: Path, n: int, log: IO[str]) -> None:
        errors = []
        for port in self.PORTS:
            start = log.tell() if log.seekable() else 0
            self.proc = subprocess.Popen(
                [str(binary), "-n", str(n), "-port", str(port)],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            if line:
                break
            code = self.proc.wait()
            log.flush()
            said = Path(log.name).read_text()[start:] if log.seekable() else ""
            errors.append(f"port {port}: exit {code}: {said.strip()[-200:]}")
            if "address already in use" not in said:
                break
        else:
            line = ""
        if not line:
            raise RuntimeError("fleetsim exited before listening: " + "; ".join(errors))
        doc = json.loads(line)
        self.control = f"http://{doc['control']}"
        self.n = n
        self.port = port

    def targets(self) -> list[str]:
        return [f"http://{pod_address(i)}:{self.port}" for i in range(self.n)]

    def stats(self, since: int = 0) -> dict[str, Any]:
        r = httpx.get(f"{self.control}/stats", params={"since": since}, timeout=10, trust_env=False)
        r.raise_for_status()
        doc: dict[str, Any] = r.json()
        return doc

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _reader(stream: IO[str], out: queue.Queue[tuple[float, str]]) -> None:
    for line in stream:
        out.put((time.time(), line))


@contextmanager
def _local_on_fleet(
    binary: Path, n: int, name: str, workdir: Path, **policy_kw: Any
) -> Iterator[tuple[_Fleet, subprocess.Popen[str]]]:
    """A fleetsim of N pods and `gc-tuner local --mode enforce` on all of them under `policy(**policy_kw)`;
    both are stopped on exit (gc-tuner with SIGTERM, so it releases its leases)."""
    flog = (workdir / f"{name}.fleetsim.log").open("w")
    fleet = _Fleet(binary, n, flog)
    proc: subprocess.Popen[str] | None = None
    try:
        pol = workdir / f"{name}.policy.yaml"
        pol.write_text(yaml.safe_dump(policy(port=fleet.port, **policy_kw), sort_keys=False))
        # One --target per pod, as a person would type it; Linux takes far more than 5,000 of them.
        args = [*_gc_tuner_cmd(), "local", "--mode", "enforce", "--policy", str(pol), "--format", "json"]
        args.append("--release")
        for t in fleet.targets():
            args += ["--target", t]
        err = (workdir / f"{name}.gc-tuner.log").open("w")
        env = {k: v for k, v in os.environ.items() if k != "GC_TUNER_TOKEN"}
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        yield fleet, proc
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        fleet.stop()
        flog.close()


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[tuple[float, str]]:
    """gc-tuner's stdout lines with the time each arrived, read on a thread."""
    assert proc.stdout is not None
    lines: queue.Queue[tuple[float, str]] = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
    return lines


@dataclass
class FleetRun:
    pods: int
    interval_s: int
    qps_source: str = "agent"
    cycles: int = 0
    wall_s: float = 0.0  # from the first cycle's output to the end
    pods_sampled: int = 0  # summed over the measured cycles
    pods_per_s: float = 0.0  # sustained: pods sampled per cycle / time between cycle starts
    cycle_s: list[float] = field(default_factory=list)  # wall time of each cycle (start to output)
    cpu_cores: float = 0.0  # gc-tuner's CPU seconds / wall seconds over the measured cycles
    rss_mib: float = 0.0  # newest RSS
    peak_rss_mib: float = 0.0  # VmHWM, including startup
    startup_s: float = 0.0  # process start to the first cycle's output (imports, first sampling)
    failures: int = 0  # pod failures reported over the measured cycles
    fleet_gets: int = 0
    notes: list[str] = field(default_factory=list)


def run_fleet(
    binary: Path,
    n: int,
    *,
    interval_s: int,
    cycles: int,
    workdir: Path,
    concurrency: int,
    qps_source: str = "agent",
) -> FleetRun:
    run = FleetRun(n, interval_s, qps_source)
    started = time.time()
    with _local_on_fleet(
        binary,
        n,
        f"fleet-{n}-{qps_source}",
        workdir,
        interval_s=interval_s,
        window_s=max(3 * interval_s, 20 * interval_s),
        cooldown_s=300,
        concurrency=concurrency,
        qps_source=qps_source,
    ) as (fleet, proc):
        lines = _lines(proc)
        outputs: list[tuple[float, dict[str, Any]]] = []
        cpu_marks: list[tuple[float, float]] = []
        deadline = started + 120 + interval_s * (cycles + 2)
        while len(outputs) < cycles + 1 and time.time() < deadline and proc.poll() is None:
            try:
                t, line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            st = proc_stat(proc.pid)
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            outputs.append((t, doc))
            if st is not None:
                cpu_marks.append((t, st.cpu_seconds))
                run.rss_mib, run.peak_rss_mib = st.rss_bytes / (1 << 20), st.hwm_bytes / (1 << 20)
        if proc.poll() is not None:
            run.notes.append(f"gc-tuner local exited with {proc.returncode}; see its log in the workdir")
        if len(outputs) < 2 or len(cpu_marks) < 2:
            run.notes.append(f"only {len(outputs)} cycles finished in time")
            return run
        _measure(run, started, outputs, cpu_marks)
        run.fleet_gets = int(fleet.stats(since=10**9)["gets"])
    return run


def _measure(
    run: FleetRun,
    started: float,
    outputs: list[tuple[float, dict[str, Any]]],
    cpu_marks: list[tuple[float, float]],
) -> None:
    run.startup_s = outputs[0][0] - started
    # The first cycle includes the imports and the first connections: measure from its end.
    measured = outputs[1:]
    run.cycles = len(measured)
    run.wall_s = cpu_marks[-1][0] - cpu_marks[0][0]
    run.cpu_cores = (cpu_marks[-1][1] - cpu_marks[0][1]) / run.wall_s
    run.pods_sampled = sum(int(d["status"].get("pods", {}).get("sampled", 0)) for _, d in measured)
    # A cycle starts every max(interval, previous cycle's duration): the sustained rate is the pods
    # sampled per cycle over the time between cycle starts (the status "time" of each cycle).
    starts = [float(d["time"]) for _, d in outputs]
    sampled = [int(d["status"].get("pods", {}).get("sampled", 0)) for _, d in outputs[:-1]]
    run.pods_per_s = sum(sampled) / (starts[-1] - starts[0])
    run.cycle_s = [t - float(d["time"]) for t, d in outputs]
    run.failures = sum(int(d["status"].get("pods", {}).get("failing", 0) or 0) for _, d in measured)


@dataclass
class RolloutRun:
    pods: int
    gogc: int | None = None
    acked: int = 0
    post_span_s: float | None = None  # first to last POST of the change, as the pods saw them
    cycle_to_last_s: float | None = None  # the deciding cycle's start to the last POST
    notes: list[str] = field(default_factory=list)


def run_rollout(binary: Path, n: int, *, interval_s: int, workdir: Path, concurrency: int) -> RolloutRun:
    """Time one GOGC change reaching every one of N pods through their agents."""
    run = RolloutRun(n)
    with _local_on_fleet(
        binary,
        n,
        f"rollout-{n}",
        workdir,
        interval_s=interval_s,
        window_s=3 * interval_s,
        cooldown_s=300,
        concurrency=concurrency,
    ) as (fleet, proc):
        lines = _lines(proc)
        deadline = time.time() + 120
        applied_cycle: float | None = None
        while time.time() < deadline and proc.poll() is None:
            try:
                _, line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                status = json.loads(line)
            except ValueError:
                continue
            applied = status["status"].get("applied") or {}
            if applied.get("gogc") is not None and int(applied.get("pods", 0)) >= n:
                applied_cycle = float(status["time"])
                run.gogc = int(applied["gogc"])
                break
        if applied_cycle is None:
            run.notes.append("no change reached every pod within 120 s")
            return run
        writes = [w for w in fleet.stats()["writes"] if w["method"] == "POST" and w["gogc"] == run.gogc]
        first_wave: dict[int, int] = {}
        for w in sorted(writes, key=lambda w: int(w["unixNano"])):
            first_wave.setdefault(int(w["pod"]), int(w["unixNano"]))
        run.acked = len(first_wave)
        if first_wave:
            times = sorted(first_wave.values())
            run.post_span_s = (times[-1] - times[0]) / 1e9
            run.cycle_to_last_s = times[-1] / 1e9 - applied_cycle
    return run


@dataclass(frozen=True, slots=True)
class DecisionTiming:
    pods: int
    samples_per_pod: int
    median_ms: float
    p90_ms: float
    per_pod_ms: float


def decision_timing(pods: int, samples_per_pod: int, *, repeat: int = 5) -> DecisionTiming:
    """Fit (every pod's QPS and heap slope, the Deployment median, the leak verdict) + strategy,
    timed on full windows of plausible samples."""
    import random

    from gc_tuner.model.policy import parse_policy
    from gc_tuner.model.sample import RuntimeSample
    from gc_tuner.tuning.fitting import fit_deployment, fit_pods, leak_verdict
    from gc_tuner.tuning.state import PolicyState
    from gc_tuner.tuning.strategies import recommend

    spec = parse_policy(policy(interval_s=15, window_s=15 * samples_per_pod, cooldown_s=300, concurrency=64))
    rng = random.Random(1)
    state = PolicyState(float(spec.sampling.window_seconds))
    now = time.time()
    for p in range(pods):
        ps = state.pod(f"pod-{p}", now=now)
        qps, live, slope = rng.uniform(20, 1500), rng.uniform(30, 300) * 2**20, rng.choice([0.0] * 19 + [1.5])
        for k in range(samples_per_pod):
            t = now - (samples_per_pod - k) * 15
            ps.window.add(
                RuntimeSample(
                    t=t,
                    source="agent",
                    gc_cycles=100 + k * 7,
                    live_heap_bytes=int(live + slope * 2**20 * k * 15 + rng.gauss(0, 2**20)),
                    heap_goal_bytes=int(2 * live),
                    gogc=100,
                    requests_total=qps * (t - now + 10**6),
                    gc_cpu_seconds=1.0 + k,
                    total_cpu_seconds=10.0 + 30 * k,
                )
            )
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fits = fit_pods(list(state.pods.items()), spec)
        summary = fit_deployment(fits, spec)
        leak_verdict(summary, spec)
        if summary.complete:
            assert summary.qps is not None and summary.heap_slope_mb_per_s is not None
            recommend(spec, summary.qps, summary.heap_slope_mb_per_s)
        times.append((time.perf_counter() - t0) * 1000)
    med = statistics.median(times)
    p90 = sorted(times)[min(len(times) - 1, int(0.9 * len(times)))]
    return DecisionTiming(pods, samples_per_pod, med, p90, med / pods)


def _py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def hot_frames(raw: Path, *, top: int = 25) -> list[tuple[float, str]]:
    """Inclusive share of samples per frame from a py-spy raw (collapsed stacks) file."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        for frame in set(stack.split(";")):
            inclusive[frame] += n
    if not total:
        return []
    return [(100 * n / total, f) for f, n in inclusive.most_common() if not _frame_is_plumbing(f)][:top]


# Frames every sample passes through (the entry point, click, the event loop) say nothing.
_PLUMBING = ("asyncio/", "click/", "runpy", "<module>", "gc_tuner/cli/local.py", "threading.py")


def _frame_is_plumbing(frame: str) -> bool:
    return any(p in frame for p in _PLUMBING)


def profile_fleet(
    binary: Path, n: int, *, interval_s: int, seconds: int, workdir: Path, concurrency: int
) -> tuple[list[tuple[float, str]], str]:
    """py-spy on `gc-tuner local` sampling N pods: the hot frames, or why there are none."""
    spy = _py_spy()
    if spy is None:
        return [], "py-spy is not installed (pip install py-spy)"
    raw = workdir / f"profile-{n}.raw"
    with _local_on_fleet(
        binary,
        n,
        f"profile-{n}",
        workdir,
        interval_s=interval_s,
        window_s=20 * interval_s,
        cooldown_s=300,
        concurrency=concurrency,
    ) as (_, proc):
        assert proc.stdout is not None
        proc.stdout.readline()  # the first cycle is done: imports are behind us
        record = ["record", "--pid", str(proc.pid), "--duration", str(seconds), "--rate", "100"]
        spied = subprocess.run(
            [spy, *record, "--format", "raw", "--output", str(raw), "--nonblocking"],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=False,
        )
    if spied.returncode != 0 or not raw.exists():
        return [], f"py-spy failed: {spied.stderr.strip()[-300:]}"
    return hot_frames(raw), f"py-spy record --pid, {seconds} s at 100 Hz, {n} pods, {interval_s} s interval"
