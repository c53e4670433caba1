"""Small helpers the e2e tests share: polling with a deadline, and finding a pod's real processes."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

__all__ = ["WaitTimeoutError", "pod_pids", "wait_for"]

T = TypeVar("T")


class WaitTimeoutError(AssertionError):
    pass


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    """Call `check` until it returns something truthy; fail naming `what` and the last error."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = check()
            if result:
                return result
            last = result
        except Exception as e:  # the thing is not there yet; keep the error for the message
            last = e
        if time.monotonic() >= deadline:
            raise WaitTimeoutError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def pod_pids(pod_name: str) -> list[int]:
    """PIDs of live processes the test kubelet started for `pod_name` (it sets HOSTNAME=<pod name>)."""
    want = f"HOSTNAME={pod_name}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(") ", 1)[1][:1]
        except OSError:
            continue
        if want in env and state != "Z" and int(entry.name) != os.getpid():
            pids.append(int(entry.name))
    return sorted(pids)
