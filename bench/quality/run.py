"""One benchmark run: the reference workload under one contender in one scenario, measured.

gc-tuner contenders: start the real `gc-tuner local` loop first, enforcing through the agent
   endpoint the workload is about to serve (an operator runs before a pod starts, too)
-> start the workload (in its own memory cgroup where possible) on its own 127.0.0.N
-> sample the agent's GET (GOGC, heap, GC CPU, pauses) and the cgroup's usage on a timer
-> SIGTERM the workload, read its one-line JSON summary, read the cgroup's peak and counters.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import yaml

from bench.quality.cgroup import MemoryCgroup, NoCgroup, create_memory_cgroup
from bench.quality.scenarios import Contender, Scale, Scenario, policy_for

__all__ = ["Point", "RunResult", "TunerEvent", "run_one"]

MiB = 1 << 20
_GC_TOTAL = "/cpu/classes/gc/total:cpu-seconds"
_GC_IDLE = "/cpu/classes/gc/mark/idle:cpu-seconds"
_CPU_TOTAL = "/cpu/classes/total:cpu-seconds"


@dataclass(frozen=True, slots=True)
class Point:
    """One timeline sample, t in seconds since the workload listened."""

    t: float
    gogc: int
    limit_bytes: int | None
    live_bytes: int
    goal_bytes: int
    go_total_bytes: int  # /memory/classes/total minus released: what the Go runtime holds
    gc_busy_s: float  # cumulative GC CPU, idle marking excluded
    cpu_total_s: float  # cumulative /cpu/classes/total (GOMAXPROCS × wall time)
    pause_p99_s: float | None
    mem_bytes: int | None  # cgroup usage, else the process's RSS


@dataclass(frozen=True, slots=True)
class TunerEvent:
    t: float
    recommended: int | None
    applied: int | None
    leak: bool
    reason: str


@dataclass
class RunResult:
    scenario: str
    contender: str
    limit_bytes: int
    limit_enforcement: str  # "cgroup v1 ..." or "none: peak above the limit counts as a breach"
    duration_s: float = 0.0
    exit: str = ""
    gc_cpu_s: float | None = None
    gc_cpu_fraction: float | None = None  # Δ busy GC CPU / Δ /cpu/classes/total over the run
    gc_cycles: int | None = None
    process_cpu_s: float | None = None  # the kernel's count (rusage), not an estimate
    peak_bytes: int | None = None
    peak_source: str = ""
    pause_p99_ms: float | None = None
    breaches: int = 0
    oom_kills: int = 0
    requests: int | None = None
    requests_per_s: float | None = None
    p99_latency_ms: float | None = None
    load_dropped: int | None = None
    leak_flagged_at_s: float | None = None  # gc-tuner contenders: first LeakSuspected=True
    longest_gc_over_50_s: float = 0.0  # longest stretch with windowed GC CPU above 50%
    load_1m: float = 0.0  # the machine's 1-min load average at the end of the run (others' work too)
    timeline: list[Point] = field(default_factory=list)
    tuner: list[TunerEvent] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def peak_fraction(self) -> float | None:
        return self.peak_bytes / self.limit_bytes if self.peak_bytes is not None else None


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _gc_tuner_cmd() -> list[str]:
    script = Path(sys.executable).with_name("gc-tuner")
    if script.exists():
        return [str(script)]
    found = shutil.which("gc-tuner")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from gc_tuner.cli.main import main; sys.exit(main())"]


def _reader(stream: IO[str], out: queue.Queue[tuple[float, str]]) -> None:
    for line in stream:
        out.put((time.monotonic(), line))


def _start_workload(
    binary: Path, args: Sequence[str], env: dict[str, str], cg: MemoryCgroup | None, log: IO[str]
) -> subprocess.Popen[str]:
    cmd = [str(binary), *args]
    if cg is not None:
        # The shell joins the cgroup and execs the workload: only the workload's pid is in it, and
        # every page it allocates is charged there (preexec_fn is unsafe with threads running).
        cmd = ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(cg.path / "cgroup.procs"), *cmd]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=log, text=True)


def _wait_listening(lines: queue.Queue[tuple[float, str]], proc: subprocess.Popen[str]) -> tuple[str, float]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            t, line = lines.get(timeout=0.2)
        except queue.Empty:
            if proc.poll() is not None:
                raise RuntimeError(f"workload exited with {proc.returncode} before listening") from None
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if doc.get("event") == "listening":
            return str(doc["addr"]), t
    raise RuntimeError("workload did not report listening within 30 s")


class _Sampler(threading.Thread):
    """GETs the agent every `every` seconds; keeps the timeline and the newest request count."""

    def __init__(
        self, base: str, t0: float, every: float, cg: MemoryCgroup | None, pid: int, token: str
    ) -> None:
        super().__init__(daemon=True)
        self.base, self.t0, self.every, self.cg, self.pid = base, t0, every, cg, pid
        self.headers = {"Authorization": f"Bearer {token}"}
        self.points: list[Point] = []
        self.requests: int | None = None
        self.errors = 0
        self.stop = threading.Event()

    def _mem(self) -> int | None:
        if self.cg is not None:
            return self.cg.usage_bytes()
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def _requests(self, http: httpx.Client) -> None:
        text = http.get(self.base + "/metrics").text
        total = 0.0
        for line in text.splitlines():
            if line.startswith("http_requests_total{") and 'handler="work"' in line:
                total += float(line.rsplit(" ", 1)[1])
        self.requests = int(total)

    def run(self) -> None:
        with httpx.Client(timeout=5.0, trust_env=False) as http:
            n = 0
            while not self.stop.is_set():
                tick = time.monotonic()
                try:
                    doc = http.get(self.base + "/debug/gctuner", headers=self.headers).json()
                    m = doc["metrics"]
                    limit = int(doc["memoryLimitBytes"])
                    self.points.append(
                        Point(
                            t=tick - self.t0,
                            gogc=int(doc["gogc"]),
                            limit_bytes=None if limit >= (1 << 63) - 1 else limit,
                            live_bytes=int(m["/gc/heap/live:bytes"]),
                            goal_bytes=int(m["/gc/heap/goal:bytes"]),
                            go_total_bytes=int(m["/memory/classes/total:bytes"])
                            - int(m["/memory/classes/heap/released:bytes"]),
                            gc_busy_s=float(m[_GC_TOTAL]) - float(m[_GC_IDLE]),
                            cpu_total_s=float(m[_CPU_TOTAL]),
                            pause_p99_s=doc["pauses"].get("p99Seconds"),
                            mem_bytes=self._mem(),
                        )
                    )
                    if n % 5 == 0:
                        self._requests(http)
                except (httpx.HTTPError, ValueError, KeyError):
                    self.errors += 1  # the process may be dying (OOM) or busy; the gap shows in the plot
                n += 1
                self.stop.wait(max(0.0, self.every - (time.monotonic() - tick)))


def _tuner_events(lines: queue.Queue[tuple[float, str]], t0: float, keep: Path) -> list[TunerEvent]:
    """The loop's status per cycle, reduced to what the report shows; every line is kept in `keep`."""
    events = []
    with keep.open("w") as out:
        while True:
            try:
                t, line = lines.get_nowait()
            except queue.Empty:
                return events
            out.write(line)
            event = _tuner_event(line, t - t0)
            if event is not None:
                events.append(event)


def _tuner_event(line: str, t: float) -> TunerEvent | None:
    try:
        status = json.loads(line)["status"]
    except (ValueError, KeyError, TypeError):
        return None
    conds = {c.get("type"): c for c in status.get("conditions", [])}
    leak = conds.get("LeakSuspected", {})
    return TunerEvent(
        t=t,
        recommended=(status.get("recommendation") or {}).get("gogc"),
        applied=(status.get("applied") or {}).get("gogc"),
        leak=leak.get("status") == "True",
        reason=str(leak.get("message", ""))[:300],
    )


def _longest_above(points: Sequence[Point], threshold: float, window_s: float = 5.0) -> float:
    """Longest time the GC CPU share, over trailing `window_s` windows, stayed above `threshold`."""
    longest, start = 0.0, None
    j = 0
    for i, p in enumerate(points):
        while j < i and p.t - points[j].t > window_s:
            j += 1
        q = points[j]
        if p.cpu_total_s - q.cpu_total_s <= 0:
            continue
        share = (p.gc_busy_s - q.gc_busy_s) / (p.cpu_total_s - q.cpu_total_s)
        if share > threshold:
            start = q.t if start is None else start
            longest = max(longest, p.t - start)
        else:
            start = None
    return longest


def _stop(proc: subprocess.Popen[str], timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_one(
    scenario: Scenario,
    contender: Contender,
    s: Scale,
    *,
    binary: Path,
    host: str,
    use_cgroup: bool,
    workdir: Path,
) -> RunResult:
    token = secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOGC", "GOMEMLIMIT", "GODEBUG"))}
    env["GC_TUNER_TOKEN"] = token
    env.update(contender.env)
    if contender.key == "gogc100":
        env["GOGC"] = "100"
    elif contender.key == "memlimit90":
        from gc_tuner.logic.memlimit import render_gomemlimit

        env["GOMEMLIMIT"] = render_gomemlimit(s.limit_bytes * 9 // 10)
    elif contender.kind == "bytedance":
        from gc_tuner.logic.memlimit import render_gomemlimit

        env["WORKLOAD_BYTEDANCE_LIMIT"] = render_gomemlimit(s.limit_bytes)

    cg: MemoryCgroup | None = None
    enforcement = "none: the workload runs unlimited and peak memory above the limit counts as a breach"
    result = RunResult(scenario.name, contender.key, s.limit_bytes, enforcement)
    if use_cgroup:
        try:
            cg = create_memory_cgroup(
                f"gctuner-bench-{os.getpid()}-{scenario.name}-{contender.key}", s.limit_bytes
            )
            result.limit_enforcement = cg.description
        except NoCgroup as e:
            result.notes.append(f"no memory cgroup ({e}); peak above the limit counts as a breach")

    log = (workdir / f"{scenario.name}-{contender.key}.workload.log").open("w")
    tuner_log = (workdir / f"{scenario.name}-{contender.key}.gc-tuner.log").open("w")
    tuner: subprocess.Popen[str] | None = None
    proc: subprocess.Popen[str] | None = None
    try:
        port = _free_port(host)
        base = f"http://{host}:{port}"
        tuner_lines: queue.Queue[tuple[float, str]] = queue.Queue()
        if contender.kind == "gc-tuner":
            policy = workdir / f"{scenario.name}-{contender.key}.policy.yaml"
            policy.write_text(yaml.safe_dump(policy_for(contender, s, port), sort_keys=False))
            cmd = [
                *_gc_tuner_cmd(),
                "local",
                "--target",
                base,
                "--mode",
                "enforce",
                "--policy",
                str(policy),
                "--memory-limit",
                f"{s.limit_bytes // MiB}Mi",
                "--keep",
                "--format",
                "json",
            ]
            tuner = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=tuner_log, text=True)
            assert tuner.stdout is not None
            threading.Thread(target=_reader, args=(tuner.stdout, tuner_lines), daemon=True).start()
            time.sleep(s.tuner_lead_s)  # its imports; its first cycles then find no process yet

        args = ["-listen", f"{host}:{port}", *scenario.args]
        proc = _start_workload(binary, args, env, cg, log)
        assert proc.stdout is not None
        out: queue.Queue[tuple[float, str]] = queue.Queue()
        threading.Thread(target=_reader, args=(proc.stdout, out), daemon=True).start()
        _, t0 = _wait_listening(out, proc)
        sampler = _Sampler(base, t0, s.sample_every_s, cg, proc.pid, token)
        sampler.start()

        deadline = t0 + s.duration_s
        while time.monotonic() < deadline and proc.poll() is None:
            if tuner is not None and tuner.poll() is not None:
                result.notes.append(f"gc-tuner local exited early with {tuner.returncode}; see its log")
                tuner = None
            time.sleep(0.2)
        killed = proc.poll() is not None
        _stop(proc)
        result.duration_s = time.monotonic() - t0
        sampler.stop.set()
        sampler.join(5)
        if tuner is not None:
            _stop(tuner)
        result.tuner = _tuner_events(
            tuner_lines, t0, workdir / f"{scenario.name}-{contender.key}.status.jsonl"
        )
        result.timeline = sampler.points
        if sampler.errors:
            result.notes.append(f"{sampler.errors} timeline samples failed")
        summary = None
        while not out.empty():
            _, line = out.get_nowait()
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if doc.get("event") == "summary":
                summary = doc
        _fill(result, summary, proc.returncode, killed, sampler)
    finally:
        for p in (tuner, proc):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        log.close()
        tuner_log.close()
        if cg is not None:
            reading = cg.read()
            result.peak_bytes, result.peak_source = reading.peak_bytes, "cgroup max usage"
            result.breaches, result.oom_kills = reading.limit_hits, reading.oom_kills
            cg.remove()
    if cg is None and result.peak_bytes is not None and result.peak_bytes > s.limit_bytes:
        result.breaches = 1
    result.load_1m = os.getloadavg()[0]
    leaks = [e.t for e in result.tuner if e.leak]
    result.leak_flagged_at_s = leaks[0] if leaks else None
    result.longest_gc_over_50_s = _longest_above(result.timeline, 0.5)
    return result


def _fill(
    r: RunResult, summary: dict[str, Any] | None, code: int | None, killed: bool, sampler: _Sampler
) -> None:
    pts = sampler.points
    if len(pts) >= 2 and pts[-1].cpu_total_s > pts[0].cpu_total_s:
        r.gc_cpu_fraction = (pts[-1].gc_busy_s - pts[0].gc_busy_s) / (
            pts[-1].cpu_total_s - pts[0].cpu_total_s
        )
    if pts and pts[-1].pause_p99_s is not None:
        r.pause_p99_ms = pts[-1].pause_p99_s * 1000
    if summary is not None:
        r.exit = "clean (SIGTERM summary)"
        r.gc_cpu_s = float(summary["gc_cpu_seconds"])
        r.gc_cycles = int(summary["cycles"])
        r.process_cpu_s = float(summary["process_cpu_seconds"])
        r.requests = int(summary["requests"])
        r.requests_per_s = r.requests / float(summary["uptime_seconds"])
        r.p99_latency_ms = float(summary["p99_latency_ms"])
        r.load_dropped = int(summary.get("load_dropped", 0))
        rss = summary.get("peak_rss_bytes")
        if rss is not None:
            r.peak_bytes, r.peak_source = int(rss), "VmHWM"
        return
    r.exit = f"died before the end (exit {code})" if killed else f"no summary (exit {code})"
    if pts:
        r.gc_cpu_s = pts[-1].gc_busy_s
    if sampler.requests is not None:
        r.requests = sampler.requests
        r.requests_per_s = sampler.requests / max(1e-9, r.duration_s)
    mems = [p.mem_bytes for p in pts if p.mem_bytes is not None]
    if mems:
        r.peak_bytes, r.peak_source = max(mems), "sampled RSS"


def make_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="gctuner-bench-"))
