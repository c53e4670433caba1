"""Run the reference workload (e2e/workload) as a real process on a loopback address.

The process prints `{"event":"listening","addr":...}` on stdout when bound; its stderr (gctrace)
is parsed by a thread into GCCycle records as it arrives, and stdout's last line (the summary it
prints on SIGTERM) is kept.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from gc_tuner.cli.gobuild import build_go, repo_root
from gc_tuner.input.gctrace import GCTraceParser, iter_lines
from gc_tuner.model.sample import GCCycle

__all__ = ["Workload", "workload_binary"]

# Variables of the test runner's environment that would change the workload's GC behaviour.
_SCRUB = ("GOGC", "GOMEMLIMIT", "GODEBUG", "GOMAXPROCS", "GC_TUNER_TOKEN", "GC_TUNER_TOKEN_FILE")


def workload_binary() -> Path:
    return build_go(repo_root() / "e2e" / "workload", "workload", depends_on=("../../agent",))


class Workload:
    """One workload process. Use as a context manager, or call `terminate`/`kill` yourself."""

    def __init__(self, binary: Path, ip: str, env: Mapping[str, str] | None = None) -> None:
        full = {k: v for k, v in os.environ.items() if k not in _SCRUB and not k.startswith("WORKLOAD_")}
        full.update({"WORKLOAD_LISTEN": f"{ip}:0", "GODEBUG": "gctrace=1", "WORKLOAD_LOAD": "off"})
        full.update(env or {})
        self.proc = subprocess.Popen(
            [str(binary)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full, start_new_session=True
        )
        self.cycles: list[GCCycle] = []
        self.parser = GCTraceParser()
        self.stdout_lines: list[str] = []
        self._lock = threading.Lock()
        self._first: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._threads = [
            threading.Thread(target=self._read_stdout, args=(self.proc.stdout,), daemon=True),
            threading.Thread(target=self._read_stderr, args=(self.proc.stderr,), daemon=True),
        ]
        for t in self._threads:
            t.start()
        try:
            line = self._first.get(timeout=30)
        except queue.Empty:
            self.kill()
            raise RuntimeError("workload printed no listening line within 30 s") from None
        doc = json.loads(line)
        if doc.get("event") != "listening":
            self.kill()
            raise RuntimeError(f"unexpected first line from the workload: {line!r}")
        self.addr: str = doc["addr"]
        self.base_url = f"http://{self.addr}"

    def _read_stdout(self, stream: BinaryIO) -> None:
        for raw in iter_lines(stream):
            line = raw.decode()
            with self._lock:
                self.stdout_lines.append(line)
            if len(self.stdout_lines) == 1:
                self._first.put(line)

    def _read_stderr(self, stream: BinaryIO) -> None:
        for raw in iter_lines(stream):
            rec = self.parser.feed(raw)
            if rec is not None:
                with self._lock:
                    self.cycles.append(rec)

    def last_cycle(self) -> GCCycle | None:
        with self._lock:
            return self.cycles[-1] if self.cycles else None

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def terminate(self, timeout: float = 10) -> dict[str, Any]:
        """SIGTERM, wait for the exit, and return the one-line JSON summary."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        for t in self._threads:
            t.join(5)
        if code != 0:
            raise RuntimeError(f"workload exited {code} on SIGTERM")
        summary: dict[str, Any] = json.loads(self.stdout_lines[-1])
        return summary

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for t in self._threads:
            t.join(5)

    def __enter__(self) -> Workload:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
