"""`gc-tuner demo`: the reference workload on 127.0.0.1 under a changing load, tuned live.

Three phases, repeated until Ctrl-C or --duration:

    steady  200 QPS from the workload's built-in load driver
    burst   a square wave, 200 <-> 1600 QPS (the driver's schedule is changed live through /load)
    leak    "a new release that leaks 3 MiB/s": the process is restarted with a leak

The loop is `gc-tuner local`'s (hence the operator's) run_cycle; with --enforce its decisions are
written to the process through the agent, and the view shows the process's own GOGC following.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gc_tuner.cli.demo_view import Screen, ViewState
from gc_tuner.cli.exits import CLIError
from gc_tuner.cli.interrupt import stop_event

if TYPE_CHECKING:
    import httpx

    from gc_tuner.loop.standalone import LocalLoop

__all__ = ["PHASES", "demo"]

MiB = 1 << 20


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it if the demo dies without stopping it (SIGKILL).

    The workload runs in its own session (Ctrl-C goes to the demo, which stops it with its summary),
    so nothing else would end it; a leaked workload keeps its port and a core of load.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG (Linux)


class Phase:
    def __init__(self, name: str, note: str, load: dict[str, str], leak: float = 0.0) -> None:
        self.name, self.note, self.load, self.leak = name, note, load, leak


PHASES = (
    Phase("steady", "load: steady 200 QPS", {"schedule": "steady", "qps": "200"}),
    Phase(
        "burst",
        "load: square wave 200 <-> 1600 QPS, 8 s period",
        {"schedule": "burst", "qps": "200", "burst_qps": "1600", "burst_period": "8s", "burst_duty": "0.5"},
    ),
    Phase(
        "leak",
        "a new release leaks 3 MiB/s (process restarted)",
        {"schedule": "steady", "qps": "400"},
        leak=3.0,
    ),
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DemoWorkload:
    """The reference workload as a child process we can restart on the same address."""

    def __init__(self, binary: Path, port: int, token: str) -> None:
        self.binary, self.port, self.token = binary, port, token
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid = 0
        self.summary: dict[str, Any] | None = None
        self.stderr: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, phase: Phase) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKLOAD_", "GC_TUNER_", "GO"))}
        env.update(
            {
                "WORKLOAD_LISTEN": f"127.0.0.1:{self.port}",
                "WORKLOAD_LIVE_MIB": "16",
                "WORKLOAD_LEAK_MIB_PER_SEC": str(phase.leak),
                "WORKLOAD_LEAK_MAX_MIB": "600",
                "WORKLOAD_LOAD": phase.load["schedule"],
                "WORKLOAD_QPS": phase.load["qps"],
                "GC_TUNER_TOKEN": self.token,
            }
        )
        # stderr to a file (never a pipe nobody drains), read back only to explain a failure.
        self._close_stderr()
        self.stderr = tempfile.NamedTemporaryFile(prefix="gc-tuner-demo-", suffix=".log")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(self.binary)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode(errors="replace")
        try:
            doc = json.loads(line)
            self.pid = int(doc["pid"])
        except (ValueError, KeyError):
            self.stop()
            raise CLIError(f"the workload did not start: {line.strip() or 'no output'}") from None

    def _close_stderr(self) -> None:
        if self.stderr is not None:
            self.stderr.close()  # a NamedTemporaryFile: closing deletes it
            self.stderr = None

    def stop(self, *, quiet: bool = False) -> dict[str, Any] | None:
        """SIGTERM and the workload's one-line JSON summary."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        # SIGTERM alone stops cleanly: the workload drains its own load, then the server.
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        for line in reversed(out.decode(errors="replace").splitlines()):
            with contextlib.suppress(ValueError):
                doc = json.loads(line)
                if isinstance(doc, dict) and doc.get("event") != "listening":
                    self.summary = doc
                    self._close_stderr()
                    return doc
        err: list[str] = []
        if self.stderr is not None:
            err = Path(self.stderr.name).read_text(errors="replace").strip().splitlines()[-3:]
        self._close_stderr()
        if not quiet:
            print(
                f"the workload (pid {self.pid}) exited with {proc.returncode} and no summary: "
                + " | ".join(err),
                file=sys.stderr,
            )
        return None


def _policy(port: int, mode: str, interval: int) -> dict[str, Any]:
    return {
        "targetRef": {"name": "demo"},
        "mode": mode,
        "rollout": {
            "method": "Endpoint",
            "endpoint": {"port": port},
            "cooldownSeconds": 3 * interval,
            "minGOGCChange": 5,
            "leaseSeconds": max(30, 5 * interval),
            # One process: each change is judged against its own past, over the demo's time scale.
            "canary": {"evaluationSeconds": max(10, 5 * interval)},
        },
        "sampling": {
            "intervalSeconds": interval,
            "windowSeconds": max(30, 12 * interval),
            "sources": {"agent": {"port": port}, "prometheus": {"port": port}},
        },
        "qps": {"counter": {"name": "http_requests_total", "matchers": {"handler": "work"}}},
        "leakDetection": {"minHeapSlopeMilliMBPerSecond": 500},
    }


@click.command("demo")
@click.option("--enforce", is_flag=True, help="Write the decisions to the process (default: recommend only).")
@click.option(
    "--duration", type=click.FloatRange(min=1), default=None, help="Stop by itself after this many seconds."
)
@click.option(
    "--phase-seconds",
    type=click.FloatRange(min=2),
    default=45.0,
    show_default=True,
    help="Length of each phase (steady, burst, leak).",
)
@click.option(
    "--interval", type=click.IntRange(1, 60), default=2, show_default=True, help="Seconds between cycles."
)
@click.option("--plain", is_flag=True, help="Line output even on a terminal.")
def demo(enforce: bool, duration: float | None, phase_seconds: float, interval: int, plain: bool) -> None:
    """Watch gc-tuner tune a real Go service: samples, fits, recommendations, applied changes.

    \b
    Builds the reference workload (e2e/workload, once, cached), runs it on 127.0.0.1 and changes
    its load every --phase-seconds: steady -> burst -> leak -> steady ... The same loop as the
    operator fits request rate and live-heap growth and recommends GOGC; with --enforce it also
    sets it in the process through the gc-tuner agent (live, no restart).

    \b
    Examples:
      gc-tuner demo
      gc-tuner demo --enforce --phase-seconds 30
      gc-tuner demo --duration 60 --plain
    """
    from gc_tuner.cli.gobuild import GoBuildError, build_go, repo_root

    screen = Screen(force_plain=plain)
    src = repo_root() / "e2e" / "workload"
    if not (src / "go.mod").exists():
        raise CLIError(f"the reference workload's source is missing: {src}")
    print("building the reference workload (cached after the first run) ...", file=sys.stderr, flush=True)
    try:
        binary = build_go(src, "workload", depends_on=("../../agent",))
    except GoBuildError as e:
        raise CLIError(str(e)) from None
    workload = DemoWorkload(binary, _free_port(), secrets.token_hex(16))
    mode = "enforce" if enforce else "dry-run"
    try:
        asyncio.run(_run(workload, mode, interval, phase_seconds, duration, screen))
    finally:
        summary = workload.stop()
        screen.leave()
    if summary:
        print(_summary_line(summary))


def _summary_line(s: dict[str, Any]) -> str:
    parts = [
        f"GC CPU {s.get('gc_cpu_seconds', 0):.2f}s of {s.get('process_cpu_seconds', 0):.1f}s",
        f"{s.get('cycles', 0)} GC cycles",
        f"peak Go memory {s.get('peak_go_memory_bytes', 0) / MiB:.0f} MiB",
        f"{s.get('requests', 0)} requests",
        f"p99 latency {s.get('p99_latency_ms', 0):.2f} ms",
        f"final GOGC {s.get('gogc')}",
    ]
    return "workload summary: " + ", ".join(parts)


class _PhaseCycle:
    """Which phase runs and since when; moving on restarts the workload only when its leak changes."""

    def __init__(self, workload: DemoWorkload, view: ViewState, screen: Screen, seconds: float) -> None:
        self.workload, self.view, self.screen, self.seconds = workload, view, screen, seconds
        self.index = -1
        self.started = 0.0

    def over(self) -> bool:
        return time.monotonic() - self.started >= self.seconds

    def left_s(self) -> float:
        return max(0.0, self.seconds - (time.monotonic() - self.started))

    async def advance(self, http: httpx.AsyncClient) -> None:
        self.index = (self.index + 1) % len(PHASES)
        phase, prev = PHASES[self.index], PHASES[self.index - 1]
        self.started = time.monotonic()
        if self.workload.proc is None or phase.leak != prev.leak:
            # The leak rate is read from the environment at start; only the load changes live.
            self.view.note(self._restart(phase))
        else:
            await http.post(f"{self.workload.url}/load", params=phase.load, timeout=5)
            self.view.note(f"phase → {phase.name}: {phase.note}")
        self.view.phase, self.view.phase_note = phase.name, phase.note
        self.view.phase_index = self.index + 1
        self.screen.line(f"== phase {phase.name}: {phase.note}")

    def _restart(self, phase: Phase) -> str:
        """Restarts the workload in `phase`; the note for the view."""
        workload = self.workload
        old = workload.proc is not None
        workload.stop(quiet=True)
        workload.start(phase)
        if old:
            return f"phase → {phase.name}: {phase.note} (pid {workload.pid})"
        return f"started the workload on {workload.url} (pid {workload.pid}); phase → {phase.name}"


async def _run(
    workload: DemoWorkload,
    mode: str,
    interval: int,
    phase_seconds: float,
    duration: float | None,
    screen: Screen,
) -> None:
    import httpx

    from gc_tuner.loop.standalone import LocalLoop, parse_target
    from gc_tuner.model.policy import parse_policy

    # SIGHUP too: closing the terminal must stop the demo as cleanly as Ctrl-C does.
    stop = stop_event(signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    loop = asyncio.get_running_loop()
    spec = parse_policy(_policy(workload.port, "Enforce" if mode == "enforce" else "DryRun", interval))
    view = ViewState(target=workload.url, mode=mode, phases=len(PHASES), phase_len_s=phase_seconds)
    phases = _PhaseCycle(workload, view, screen, phase_seconds)
    started = time.monotonic()
    screen.enter()
    async with httpx.AsyncClient(trust_env=False) as http:
        await phases.advance(http)
        runner = LocalLoop(spec, [parse_target(workload.url)], http, token=workload.token)
        while not stop.is_set():
            if duration is not None and time.monotonic() - started >= duration:
                break
            if phases.over():
                await phases.advance(http)
            t0 = loop.time()
            await _cycle(runner, view, screen, phases)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, interval - (loop.time() - t0)))
        if mode == "enforce":
            await runner.release()


async def _cycle(runner: LocalLoop, view: ViewState, screen: Screen, phases: _PhaseCycle) -> None:
    """One step of the loop, shown: the panel on a terminal, the cycle's lines elsewhere."""
    from gc_tuner.cli.local import format_cycle

    outcome, status = await runner.step()
    _update(view, outcome, status)
    view.phase_left_s = phases.left_s()
    screen.draw(view)
    for line in format_cycle(outcome, status):
        screen.line(line)


def _update(view: ViewState, outcome: Any, status: dict[str, Any]) -> None:
    d: dict[str, Any] = {}
    fit = outcome.fit
    pf = outcome.pod_fits[0] if outcome.pod_fits else None
    sample = pf.sample if pf is not None else None
    if fit is not None and fit.complete:
        d.update(qps=fit.qps, slope=fit.heap_slope_mb_per_s, r2=fit.r2 or 0.0)
        view.qps.append(float(fit.qps))
    elif fit is not None:
        d["why"] = "collecting samples ..."
    if sample is not None:
        if sample.live_heap_bytes is not None:
            view.heap_mib.append(sample.live_heap_bytes / MiB)
        cpu = sample.gc_cpu_fraction * 100 if sample.gc_cpu_fraction is not None else None
        p99 = sample.pause_p99_s * 1000 if sample.pause_p99_s is not None else None
        d["gc"] = {"cycles": sample.gc_cycles, "cpu_pct": cpu, "p99_ms": p99}
        d["gogc_now"] = sample.gogc
        if sample.gogc is not None:
            view.gogc_hist.append(float(sample.gogc))
    rec = outcome.recommendation_gogc
    if rec is not None:
        d["recommended"] = rec
        inp = outcome.recommendation_inputs
        d["factors"] = (
            f"(qps factor {inp.get('qpsFactor', 0):.2f} × slope factor {inp.get('slopeFactor', 0):.2f})"
        )
        if view.noted_rec is None or abs(rec - view.noted_rec) >= 3:
            view.noted_rec = rec
            view.note(f"recommend GOGC {rec} for {fit.qps:.0f} QPS, heap {fit.heap_slope_mb_per_s:+.2f} MB/s")
    if outcome.decision is not None:
        dec = outcome.decision
        d["decision"] = f"{dec.action} GOGC {dec.gogc}: {dec.reason}"
        if dec.action == "apply":
            view.note(f"applied GOGC {dec.gogc} live through the agent ({dec.code})")
    if outcome.applied is not None and outcome.enforcing:
        a = outcome.applied
        d["applied"] = f"GOGC {a.gogc} held on {a.pods} process(es), lease renewed every cycle"
    conds = {c["type"]: c["status"] for c in status.get("conditions", [])}
    if (
        conds.get("LeakSuspected") == "True"
        and view.last.get("conditions", {}).get("LeakSuspected") != "True"
    ):
        view.note("LeakSuspected: the live heap keeps growing")
    d["conditions"] = conds
    d["failures"] = [f"{f.pod} {f.source}: {f.reason}: {f.message}" for f in outcome.failures][:3]
    view.last = d
