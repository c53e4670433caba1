"""Loopback pod IPs: each pod gets its own 127.0.B.N, reused after the pod is gone.

Several test clusters may run on one machine at once (several engineers, CI), so each kubelet first
claims a whole block B by holding an flock on a file named after it; the lock dies with the process, so
a crashed kubelet never leaks its block. Blocks start at 1: 127.0.0.x is left to the control plane
(127.0.0.1) and to tests that run fake pods on 127.0.0.N without a cluster. N runs from 2 to 254.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

__all__ = ["IpAllocator", "IpExhaustedError"]

_LOCK_DIR = Path(os.environ.get("E2E_IPAM_DIR", "/tmp/gc-tuner-ipam-locks"))


class IpExhaustedError(RuntimeError):
    pass


class IpAllocator:
    def __init__(self, first_block: int = 1, lock_dir: Path = _LOCK_DIR) -> None:
        self._fh: IO[str] | None = None
        self.block = self._claim(first_block, lock_dir)
        self._used: set[int] = set()

    def _claim(self, first: int, lock_dir: Path) -> int:
        lock_dir.mkdir(parents=True, exist_ok=True)
        for block in range(first, 256):
            fh = (lock_dir / f"block-{block}.lock").open("w")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            fh.write(str(os.getpid()))
            fh.flush()
            self._fh = fh
            return block
        raise IpExhaustedError(f"every loopback block 127.0.{first}-255.x is held by another kubelet")

    def allocate(self) -> str:
        for n in range(2, 255):
            if n not in self._used:
                self._used.add(n)
                return f"127.0.{self.block}.{n}"
        raise IpExhaustedError(f"all 253 pod IPs of 127.0.{self.block}.0/24 are in use")

    def release(self, ip: str) -> None:
        self._used.discard(int(ip.rsplit(".", 1)[1]))

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
