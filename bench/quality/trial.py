"""One trial: one configuration on one scenario's program, measured, and nothing else running.

gc-tuner configurations: start the real `gc-tuner local` loop first, enforcing through the agent
   endpoint the workload is about to serve (an operator runs before a pod starts, too)
-> start the workload with GODEBUG=gctrace=1 in its own memory cgroup on its own 127.0.1.N
-> (foreign programs: wait for the port, then start the load command)
-> sample memory, CPU, GOGC and latency (samplers.py); apply the scenario's phases on time
-> SIGTERM at the end (or note the OOM kill), read the cgroup's counters, parse gctrace.
The raw readings are kept in a TrialRecord; windows.py derives every figure from them.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
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
from bench.quality.contenders import Config, policy_for, static_env
from bench.quality.guard_trail import GuardEvent, from_status_lines
from bench.quality.samplers import MemorySampler, SlowSampler, proc_cpu_seconds
from bench.quality.scenarios import Scale, Scenario

__all__ = ["Cycle", "Programs", "TrialRecord", "run_trial"]

MiB = 1 << 20


@dataclass(frozen=True, slots=True)
class Programs:
    workload: Path | None  # the reference workload
    bytedance: Path | None  # its gctuner_bytedance build


@dataclass(frozen=True, slots=True)
class Cycle:
    """One gctrace cycle: its end (s since listening), GC CPU without and with idle marking (s)."""

    t_end: float
    busy_s: float
    idle_s: float
    live_mib: int
    goal_mib: int


@dataclass
class TrialRecord:
    scenario: str
    config: str
    repeat: int
    order: int
    run_s: float
    warmup_s: float
    limit_bytes: int
    memory_source: str  # "" when memory was not measured (no cgroup)
    duration_s: float = 0.0
    exit: str = ""
    oom_kills: int = 0
    died_at_s: float | None = None
    peak_bytes: int | None = None  # cgroup max_usage over the whole trial
    load_1m: float = 0.0
    tuner_cpu_s: float | None = None  # the `gc-tuner local` process, utime+stime
    memory: list[tuple[float, int]] = field(default_factory=list)
    cpu: list[tuple[float, float]] = field(default_factory=list)
    gogc: list[tuple[float, int]] = field(default_factory=list)
    latency: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    cycles: list[Cycle] = field(default_factory=list)
    leak_flagged_at_s: float | None = None
    guard: list[GuardEvent] | None = None  # changes applied and verdicts; None: not recorded
    summary: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _gc_tuner_cmd() -> list[str]:
    script = Path(sys.executable).with_name("gc-tuner")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from gc_tuner.cli.main import main; sys.exit(main())"]


def _reader(stream: IO[str], out: queue.Queue[tuple[float, str]]) -> None:
    for line in stream:
        out.put((time.monotonic(), line))


def _drain(q: queue.Queue[tuple[float, str]]) -> list[tuple[float, str]]:
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out


def _spawn(
    cmd: Sequence[str], env: dict[str, str], cg: MemoryCgroup | None, stderr: IO[str]
) -> subprocess.Popen[str]:
    if cg is not None:
        # The shell joins the cgroup and execs the program: only its pid is in it, and every page
        # it allocates is charged there (preexec_fn is unsafe with threads running).
        cmd = ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(cg.path / "cgroup.procs"), *cmd]
    return subprocess.Popen(list(cmd), env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)


def _wait_listening(
    lines: queue.Queue[tuple[float, str]], proc: subprocess.Popen[str], sc: Scenario, host: str, port: int
) -> float:
    """When the workload listens: its `listening` line, or (foreign) the port accepting."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the workload exited with {proc.returncode} before listening")
        if sc.foreign:
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    return time.monotonic()
            except OSError:
                time.sleep(0.1)
                continue
        try:
            t, line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        try:
            if json.loads(line).get("event") == "listening":
                return t
        except (ValueError, AttributeError):
            continue
    raise RuntimeError("the workload did not listen within 60 s")


def _stop(proc: subprocess.Popen[str] | None, timeout: float = 15) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True, slots=True)
class _Ports:
    host: str
    port: int  # the program's (or the reference workload's) port
    agent_port: int  # where the gc-tuner agent is: the same port for the reference workload

    @property
    def agent_base(self) -> str:
        return f"http://{self.host}:{self.agent_port}"


def _fill(cmd: Sequence[str], ports: _Ports, peer: int, workdir: Path) -> list[str]:
    return [
        a.format(
            host=ports.host, port=ports.port, peer_port=peer, agent_port=ports.agent_port, dir=str(workdir)
        )
        for a in cmd
    ]


@dataclass
class _Running:
    """The processes and readers of a trial in progress."""

    workload: subprocess.Popen[str] | None = None
    tuner: subprocess.Popen[str] | None = None
    load: subprocess.Popen[str] | None = None
    out: queue.Queue[tuple[float, str]] = field(default_factory=queue.Queue)
    tuner_out: queue.Queue[tuple[float, str]] = field(default_factory=queue.Queue)
    load_out: queue.Queue[tuple[float, str]] = field(default_factory=queue.Queue)
    spawned: float = 0.0


def _environment(c: Config, s: Scale, token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOGC", "GOMEMLIMIT", "GODEBUG"))}
    env["GC_TUNER_TOKEN"] = token
    env["GODEBUG"] = "gctrace=1"  # GC CPU per cycle, with its time: the window's GC CPU
    if c.kind == "static":
        env.update(static_env(c, s.limit_bytes))
    elif c.kind == "bytedance":
        from gc_tuner.logic.memlimit import render_gomemlimit

        env["WORKLOAD_BYTEDANCE_LIMIT"] = render_gomemlimit(s.limit_bytes)
    return env


def _start_tuner(
    run: _Running,
    c: Config,
    s: Scale,
    sc: Scenario,
    ports: _Ports,
    env: dict[str, str],
    tag: str,
    workdir: Path,
) -> None:
    base = ports.agent_base
    policy = workdir / f"{tag}.policy.yaml"
    policy.write_text(yaml.safe_dump(policy_for(c, s, ports.agent_port, sc.tuner_qps), sort_keys=False))
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
    log = (workdir / f"{tag}.gc-tuner.log").open("w")
    run.tuner = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    assert run.tuner.stdout is not None
    threading.Thread(target=_reader, args=(run.tuner.stdout, run.tuner_out), daemon=True).start()
    time.sleep(s.tuner_lead_s)  # its imports; its first cycles then find no process yet


def _apply_phases(sc: Scenario, base: str, t0: float, done: set[int], notes: list[str]) -> None:
    now = time.monotonic() - t0
    for i, ph in enumerate(sc.phases):
        if i in done or now < ph.at_s:
            continue
        done.add(i)
        for path, query in (("/load", ph.load), ("/cache", ph.cache)):
            if not query:
                continue
            try:
                r = httpx.post(f"{base}{path}?{query}", timeout=5.0, trust_env=False)
                if r.status_code != 200:
                    notes.append(f"phase {ph.label!r}: POST {path}?{query} answered {r.status_code}")
            except httpx.HTTPError as e:
                notes.append(f"phase {ph.label!r}: POST {path}?{query} failed ({e})")


def _cycles(stderr_log: Path, offset: float) -> list[Cycle]:
    """The workload's gctrace cycles, times moved to 'seconds since listening'."""
    from gc_tuner.input.gctrace import parse_gctrace

    out = []
    with stderr_log.open("rb") as f:
        for c in parse_gctrace(f):
            clock_s = (c.clock_sweep_term_ms + c.clock_mark_ms + c.clock_mark_term_ms) / 1000
            busy = (c.cpu_stw1_ms + c.cpu_assist_ms + c.cpu_background_ms + c.cpu_stw2_ms) / 1000
            out.append(Cycle(c.t + clock_s - offset, busy, c.cpu_idle_ms / 1000, c.live_mb, c.goal_mb))
    return out


def _tuner_events(r: TrialRecord, lines: list[tuple[float, str]], t0: float, keep: Path) -> None:
    """The first LeakSuspected=True of the tuner's status (one JSON document per cycle) and the
    guard's trail; every line is kept in `keep`. The GOGC in force comes from the agent, not from
    the tuner's word."""
    r.guard = from_status_lines(lines, t0)
    with keep.open("w") as out:
        for t, line in lines:
            out.write(line)
            try:
                conds = {c.get("type"): c for c in json.loads(line)["status"].get("conditions", [])}
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            if conds.get("LeakSuspected", {}).get("status") == "True" and r.leak_flagged_at_s is None:
                r.leak_flagged_at_s = t - t0


def _latency_lines(lines: list[tuple[float, str]], t0: float) -> list[tuple[float, dict[str, Any]]]:
    """A foreign load command's cumulative latency histograms ({"event":"latency"|"summary",...})."""
    out = []
    for t, line in lines:
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("event") in ("latency", "summary") and "counts" in doc:
            out.append((t - t0, doc))
    return out


def _summary(lines: list[tuple[float, str]]) -> dict[str, Any] | None:
    for _, line in lines:
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("event") == "summary":
            return doc
    return None


def _make_cgroup(r: TrialRecord, tag: str, use_cgroup: bool) -> MemoryCgroup | None:
    if not use_cgroup:
        r.notes.append("no cgroup (--no-cgroup): memory not measured")
        return None
    try:
        cg = create_memory_cgroup(f"gctuner-bench-{os.getpid()}-{tag}", r.limit_bytes)
    except NoCgroup as e:
        r.notes.append(f"no memory cgroup ({e}): memory not measured, the limit not enforced")
        return None
    r.memory_source = f"{cg.description}; usage sampled"
    return cg


def _start_workload(
    run: _Running,
    sc: Scenario,
    c: Config,
    programs: Programs,
    ports: _Ports,
    env: dict[str, str],
    cg: MemoryCgroup | None,
    err: IO[str],
    workdir: Path,
) -> float:
    """Start the program; the time (monotonic) it listened."""
    host, port = ports.host, ports.port
    if sc.foreign:
        data = Path(tempfile.mkdtemp(prefix="data-", dir=workdir))
        peer = _free_port(host)
        cmd = _fill(sc.workload_cmd, ports, peer, data)
        env = {**env, **{k: _fill([v], ports, peer, data)[0] for k, v in sc.env}}
    else:
        binary = programs.bytedance if c.kind == "bytedance" else programs.workload
        assert binary is not None
        cmd = [str(binary), "-listen", f"{host}:{port}", *sc.args]
    run.spawned = time.monotonic()
    run.workload = _spawn(cmd, env, cg, err)
    assert run.workload.stdout is not None
    threading.Thread(target=_reader, args=(run.workload.stdout, run.out), daemon=True).start()
    t0 = _wait_listening(run.out, run.workload, sc, host, port)
    if sc.load_cmd:
        load_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("GOGC", "GOMEMLIMIT", "GODEBUG"))
        }
        run.load = subprocess.Popen(
            _fill(sc.load_cmd, ports, 0, workdir),
            env=load_env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
        assert run.load.stdout is not None
        threading.Thread(target=_reader, args=(run.load.stdout, run.load_out), daemon=True).start()
    return t0


def _watch(run: _Running, r: TrialRecord, sc: Scenario, base: str, t0: float, run_s: float) -> None:
    """Until the end of the run or the workload's death: phases on time, the tuner alive."""
    assert run.workload is not None
    done: set[int] = set()
    while time.monotonic() < t0 + run_s:
        if run.workload.poll() is not None:
            r.died_at_s = time.monotonic() - t0
            return
        if run.tuner is not None and run.tuner.poll() is not None:
            r.notes.append(f"gc-tuner local exited early with {run.tuner.returncode}; see its log")
            run.tuner = None
        if run.load is not None and run.load.poll() is not None:
            r.notes.append(f"the load command exited early with {run.load.returncode}")
            run.load = None
        _apply_phases(sc, base, t0, done, r.notes)
        time.sleep(0.05)


def run_trial(
    sc: Scenario,
    c: Config,
    s: Scale,
    *,
    programs: Programs,
    host: str,
    workdir: Path,
    use_cgroup: bool,
    repeat: int,
    order: int,
) -> TrialRecord:
    tag = f"{sc.name}-{c.key}-{repeat}"
    r = TrialRecord(sc.name, c.key, repeat, order, s.run_s, sc.warmup(s), s.limit_bytes, "")
    token = secrets.token_hex(16)
    env = _environment(c, s, token)
    cg = _make_cgroup(r, tag, use_cgroup)
    run = _Running()
    err_path = workdir / f"{tag}.stderr.log"
    t0 = 0.0
    with err_path.open("w") as err:
        try:
            port = _free_port(host)
            ports = _Ports(host, port, _free_port(host) if sc.agent else port)
            base = f"http://{host}:{port}"
            if c.kind == "gc-tuner":
                _start_tuner(run, c, s, sc, ports, env, tag, workdir)
            t0 = _start_workload(run, sc, c, programs, ports, env, cg, err, workdir)
            assert run.workload is not None
            mem = MemorySampler(cg, t0, s.memory_hz) if cg is not None else None
            agent = ports.agent_base if (sc.agent or not sc.foreign) else None
            slow = SlowSampler(
                run.workload.pid, t0, s.agent_every_s, agent, token, load_latency=not sc.foreign
            )
            for th in (mem, slow):
                if th is not None:
                    th.start()
            _watch(run, r, sc, base, t0, s.run_s)
            _finish(run, r, t0, mem, slow, workdir / f"{tag}.status.jsonl", foreign=sc.foreign)
        finally:
            for p in (run.load, run.tuner, run.workload):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.wait()
            if cg is not None:
                reading = cg.read()
                r.peak_bytes, r.oom_kills = reading.peak_bytes, reading.oom_kills
                cg.remove()
    if t0:
        r.cycles = _cycles(err_path, t0 - run.spawned)
    r.load_1m = os.getloadavg()[0]
    return r


def _finish(
    run: _Running,
    r: TrialRecord,
    t0: float,
    mem: MemorySampler | None,
    slow: SlowSampler,
    status_log: Path,
    *,
    foreign: bool,
) -> None:
    assert run.workload is not None
    _stop(run.load)
    if run.tuner is not None:
        r.tuner_cpu_s = proc_cpu_seconds(run.tuner.pid)
    code = run.workload.poll()
    _stop(run.workload)
    r.duration_s = time.monotonic() - t0
    for th in (mem, slow):
        if th is not None:
            th.stop.set()
            th.join(5)
    if mem is not None:
        r.memory = mem.points
    r.cpu, r.gogc = slow.cpu, slow.gogc
    if slow.errors:
        r.notes.append(f"{slow.errors} agent/load samples failed")
    _stop(run.tuner)
    _tuner_events(r, _drain(run.tuner_out), t0, status_log)
    out = _drain(run.out)
    r.summary = _summary(out)
    if r.summary is not None:
        sent, dropped = int(r.summary.get("load_sent", 0)), int(r.summary.get("load_dropped", 0))
        if dropped > 0.01 * (sent + dropped):
            r.notes.append(f"the load driver dropped {dropped} of {sent + dropped} requests (saturated)")
    r.latency = _latency_lines(_drain(run.load_out), t0) if foreign else slow.latency
    if code is None:
        r.exit = (
            "clean"
            if run.workload.returncode in (0, -signal.SIGTERM)
            else f"exit {run.workload.returncode} on SIGTERM"
        )
    else:
        r.exit = f"died (exit {code}{', SIGKILL' if code == -signal.SIGKILL else ''})"
