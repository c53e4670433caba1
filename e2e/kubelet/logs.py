"""Container logs: one file per container run, one line per output line, each stamped with the time the
kubelet read it and its stream, like the CRI log format. Followers are woken on every write."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ContainerLog", "LogLine", "format_ts", "parse_ts"]


@dataclass(frozen=True)
class LogLine:
    ts: str  # RFC 3339 with nanoseconds, UTC
    stream: str
    text: str

    def render(self, timestamps: bool) -> bytes:
        return ((self.ts + " ") if timestamps else "").encode() + self.text.encode() + b"\n"

    def time(self) -> dt.datetime:
        return parse_ts(self.ts)


def format_ts(ns: int | None = None) -> str:
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 10**9)
    base = dt.datetime.fromtimestamp(secs, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z"


def parse_ts(ts: str) -> dt.datetime:
    # Python parses at most microseconds; drop the extra digits.
    head, _, frac = ts.rstrip("Z").partition(".")
    return dt.datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00")


def _parse_line(raw: str) -> LogLine | None:
    parts = raw.rstrip("\n").split(" ", 2)
    if len(parts) < 2:
        return None
    return LogLine(parts[0], parts[1], parts[2] if len(parts) > 2 else "")


class ContainerLog:
    """The log of one run of one container."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("a", encoding="utf-8")
        self._partial: dict[str, str] = {}
        self._changed = asyncio.Event()
        self.closed = False

    def _wake(self) -> None:
        ev, self._changed = self._changed, asyncio.Event()
        ev.set()

    def write(self, stream: str, data: bytes) -> None:
        text = self._partial.pop(stream, "") + data.decode("utf-8", errors="replace")
        *lines, rest = text.split("\n")
        if rest:
            self._partial[stream] = rest
        ts = format_ts()
        for line in lines:
            self._fh.write(f"{ts} {stream} {line}\n")
        if lines:
            self._fh.flush()
            self._wake()

    def close(self) -> None:
        """The process exited and its pipes are drained: flush partial lines, end followers."""
        if self.closed:
            return
        ts = format_ts()
        for stream, rest in self._partial.items():
            self._fh.write(f"{ts} {stream} {rest}\n")
        self._partial.clear()
        self._fh.close()
        self.closed = True
        self._wake()

    def read(self, since: dt.datetime | None = None, tail: int | None = None) -> tuple[list[LogLine], int]:
        """Lines so far (filtered), and the file offset to follow from."""
        with self.path.open("r", encoding="utf-8") as fh:
            data = fh.read()
        end = data.rfind("\n") + 1
        lines = [ln for ln in (_parse_line(r) for r in data[:end].splitlines()) if ln is not None]
        if since is not None:
            lines = [ln for ln in lines if ln.time() >= since]
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        return lines, len(data[:end].encode())

    async def follow(self, offset: int) -> AsyncIterator[LogLine]:
        """Lines written after `offset`, until the run ends."""
        while True:
            waiter = self._changed
            closed = self.closed
            with self.path.open("rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
            end = chunk.rfind(b"\n") + 1
            offset += end
            for raw in chunk[:end].decode("utf-8", errors="replace").splitlines():
                line = _parse_line(raw)
                if line is not None:
                    yield line
            if closed:
                return
            await waiter.wait()
