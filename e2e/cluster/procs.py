"""Child processes of the harness, stopped by PID on every way out: a normal exit (atexit), SIGTERM/SIGHUP
(signal handler), Ctrl-C (pytest's own teardown plus atexit), and the parent being killed outright
(PR_SET_PDEATHSIG, Linux): a leaked kube-apiserver would hold ports and memory on a shared machine.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

__all__ = ["Proc", "kill_pid", "live_procs", "pid_alive", "respawn", "spawn", "stop_all"]

_PR_SET_PDEATHSIG = 1
_live: list[Proc] = []
_lock = threading.Lock()
_installed = False


class Proc:
    def __init__(
        self,
        name: str,
        popen: subprocess.Popen[bytes],
        log: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        attached: bool = True,
    ) -> None:
        self.name = name
        self.popen = popen
        self.log = log
        # How it was started, so the fault tests can start the same command again (respawn).
        self.env, self.cwd, self.attached = env, cwd, attached

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 5.0) -> None:
        if self.alive():
            kill_pid(self.popen.pid, grace, wait=self.popen.wait)
        with _lock, contextlib.suppress(ValueError):
            _live.remove(self)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def kill_pid(pid: int, grace: float, wait: Callable[[float], object] | None = None) -> None:
    """SIGTERM the process group led by pid, SIGKILL it after `grace` seconds."""

    def signal_group(sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)

    signal_group(signal.SIGTERM)
    if wait is not None:
        try:
            wait(grace)
            return
        except subprocess.TimeoutExpired:
            signal_group(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                wait(5.0)
            return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    signal_group(signal.SIGKILL)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return False


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn(
    name: str,
    argv: Sequence[str],
    log: Path,
    *,
    env: dict[str, str] | None = None,
    attached: bool = True,
    cwd: Path | None = None,
) -> Proc:
    """Start argv with stdout+stderr appended to `log`, in its own process group.

    attached=True ties the child's life to this process (the pytest session); the `up` command passes
    False so the cluster outlives the shell command that started it.
    """
    _install_handlers()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        popen = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent if attached else None,
        )
    proc = Proc(name, popen, log, env=env, cwd=cwd, attached=attached)
    if attached:
        with _lock:
            _live.append(proc)
    return proc


def respawn(proc: Proc, grace: float = 5.0) -> Proc:
    """Stop `proc` and start its exact command again (same argv, env and cwd: the same ports, certs
    and data dir), appending to the same log. For the fault tests, which restart a control-plane
    component in place and expect its clients to reconnect."""
    proc.stop(grace)
    argv = [str(a) for a in proc.popen.args] if isinstance(proc.popen.args, list) else [str(proc.popen.args)]
    return spawn(proc.name, argv, proc.log, env=proc.env, attached=proc.attached, cwd=proc.cwd)


def live_procs() -> list[Proc]:
    with _lock:
        return list(_live)


def stop_all() -> None:
    # Reverse start order: clients (kubelet, scheduler) go before the apiserver, the apiserver before etcd.
    for proc in reversed(live_procs()):
        proc.stop()


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    stop_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_handlers() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    atexit.register(stop_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _on_signal)
