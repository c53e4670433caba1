"""A streaming parser for GODEBUG=gctrace=1 output: one `GCCycle` per `gc N @...` line.

Every line format of go-gc-facts.md section 1 is accepted: pre-1.18 lines without stacks/globals,
1.19-1.27 lines, the 1.26+ `(checking for goroutine leaks)` form and the ` (forced)` suffix. Other
runtime lines (`GC forced`, `scav ...`, `pacer: ...`, `scan: ...`, `checkfinalizers: ...`) and
application output are skipped and counted by kind in `GCTraceParser.skipped`.

The runtime prints a gc line with many write(2) calls after restarting the world, so application
stderr interleaves with it. The parser recovers what is exactly recoverable:

- text before `gc N @` on the same line (the application's unfinished line): parsed from the marker;
- text after ` P` (an application write before the runtime's newline): ignored, and a ` (forced)`
  that follows it, on the same line or at the start of the next line, still marks the cycle forced;
- anything inside the line breaks its syntax: the line is dropped and counted `garbled`, and the gap
  in cycle numbers shows in `missing_cycles`.

A write made only of digits that lands next to a number of the gc line is indistinguishable from that
number; no parser can detect it. Go's fmt and log packages write whole messages, so it takes a
program printing bare numbers to stderr in separate writes.

Memory is bounded: a line is at most `MAX_LINE` bytes (`iter_lines` drops the excess) and the parser
keeps at most two records between calls.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any, BinaryIO

from gc_tuner.input.sample import GCCycle

__all__ = ["MAX_LINE", "SKIP_KINDS", "GCTraceParser", "iter_lines", "parse_gctrace"]

MAX_LINE = 64 * 1024
"""Longest line kept, in bytes; a gc line is under 300. The rest of a longer line is dropped."""

SKIP_KINDS = ("gc_forced", "scav", "pacer", "scan", "checkfinalizers", "app", "garbled", "resync")
"""Keys of `GCTraceParser.skipped`. `resync` counts recovered records, not dropped lines."""

# `\d+\.?\d*` is the fastest form that only matches what float() accepts; re.ASCII keeps Unicode
# digits out. int() refuses digit strings over 4300 characters, so _cycle catches ValueError.
_I = r"(\d+)"
_F = r"(\d+\.?\d*)"
_GC_LINE = re.compile(
    rf"gc {_I} @{_F}s {_I}%( \(checking for goroutine leaks\))?: "
    rf"{_F}\+{_F}\+{_F} ms clock, "
    rf"{_F}\+{_F}/{_F}/{_F}\+{_F} ms cpu, "
    rf"{_I}->{_I}->{_I} MB, {_I} MB goal, "
    rf"(?:{_I} MB stacks, {_I} MB globals, )?"
    rf"{_I} P( \(forced\))?(.*)",
    re.ASCII | re.DOTALL,
)
_MARKER = re.compile(r"gc [0-9]+ @", re.ASCII)
_FORCED = " (forced)"
_RUNTIME_PREFIXES = (
    ("GC forced", "gc_forced"),
    ("scav ", "scav"),
    ("pacer: ", "pacer"),
    ("scan: ", "scan"),
    ("checkfinalizers: ", "checkfinalizers"),
)


class _Memo(dict[str, Any]):
    """A bounded str -> number memo. Clock and CPU times have two significant digits and a process's
    heap sizes stay in a narrow band, so a long log repeats the same few thousand spellings; a dict
    hit costs a fraction of int() or float()."""

    __slots__ = ("_convert",)
    _CAP = 16384

    def __init__(self, convert: Callable[[str], Any]) -> None:
        super().__init__()
        self._convert = convert

    def __missing__(self, key: str) -> Any:
        value = self._convert(key)
        if len(self) < self._CAP and len(key) <= 24:  # bounded: memory stays flat on any input
            self[key] = value
        return value


_FLOATS = _Memo(float)
_INTS = _Memo(int)


def _cycle(g: tuple[Any, ...], forced: bool) -> GCCycle | None:
    """The record of a matched line; None when a number is beyond what int() accepts."""
    n, t, util, leak, c1, c2, c3, p1, p2, p3, p4, p5, h0, h1, h2, goal, stacks, globals_, procs = g[:19]
    f, i = _FLOATS, _INTS
    try:
        return GCCycle(
            int(n),
            float(t),
            i[util],
            f[c1],
            f[c2],
            f[c3],
            f[p1],
            f[p2],
            f[p3],
            f[p4],
            f[p5],
            i[h0],
            i[h1],
            i[h2],
            i[goal],
            None if stacks is None else i[stacks],
            None if globals_ is None else i[globals_],
            i[procs],
            forced,
            leak is not None,
        )
    except ValueError:
        return None


class GCTraceParser:
    """Feed lines one at a time (`feed`) or as an iterable (`parse`); read the counters afterwards.

    `feed` returns at most one record per line. After a line that shows interleaved application
    output and ends in ` P`, the record waits one line, because the runtime's ` (forced)` may have
    been pushed to the next line; `flush` returns what is still waiting at the end of the stream
    (`parse` calls it).
    """

    def __init__(self) -> None:
        self.skipped: Counter[str] = Counter()
        self.lines = 0
        self.missing_cycles = 0  # cycle numbers absent between consecutive records of one process
        self._queue: deque[GCCycle] = deque()
        self._open = False  # the last queued record may still receive a ` (forced)` line
        self._last_n: int | None = None

    @property
    def skipped_total(self) -> int:
        """Lines that produced no record (`resync` counts records, so it is not included)."""
        return sum(v for k, v in self.skipped.items() if k != "resync")

    def feed(self, line: str | bytes) -> GCCycle | None:
        self.lines += 1
        text = (line.decode("utf-8", "replace") if isinstance(line, bytes) else line).rstrip("\r\n")
        if text.startswith("gc ") and not self._queue:  # the hot path, inlined: a clean gc line
            m = _GC_LINE.match(text)
            if m is not None:
                g = m.groups()
                if not g[20]:
                    rec = _cycle(g, g[19] is not None)
                    if rec is not None:
                        last, n = self._last_n, rec.n
                        if last is not None and n > last + 1:
                            self.missing_cycles += n - last - 1
                        self._last_n = n
                        return rec
        return self._slow(text)

    def flush(self) -> GCCycle | None:
        """The record still waiting for a possible ` (forced)` line, at the end of the stream."""
        self._open = False
        return self._queue.popleft() if self._queue else None

    def parse(self, lines: Iterable[str | bytes]) -> Iterator[GCCycle]:
        for line in lines:
            rec = self.feed(line)
            if rec is not None:
                yield rec
        rec = self.flush()
        if rec is not None:
            yield rec

    def _accept(self, rec: GCCycle) -> GCCycle:
        last = self._last_n
        if last is not None and rec.n > last + 1:
            self.missing_cycles += rec.n - last - 1
        self._last_n = rec.n
        return rec

    def _slow(self, text: str) -> GCCycle | None:
        if self._queue:
            if self._open and text.startswith(_FORCED):
                self._queue[-1] = replace(self._queue[-1], forced=True)
                self._open = False
                return self._queue.popleft()
            self._open = False
            self._read(text)
            return self._queue.popleft()
        self._read(text)
        if self._queue and not self._open:
            return self._queue.popleft()
        return None

    def _read(self, text: str) -> None:
        """The slow path: anything but a clean gc line. Queues a record or counts a skip."""
        garbled = False
        for marker in _MARKER.finditer(text):
            m = _GC_LINE.match(text, marker.start())
            rec = None
            if m is not None:
                tail = m.group(21)
                forced = m.group(20) is not None or _FORCED in tail
                rec = _cycle(m.groups(), forced)
            if rec is None:
                garbled = True
                continue
            if garbled:
                self.skipped["garbled"] += 1
            self._accept(rec)
            interleaved = marker.start() > 0 or bool(tail)
            if interleaved:
                self.skipped["resync"] += 1
            self._queue.append(rec)
            self._open = interleaved and not forced
            return
        if garbled:
            self.skipped["garbled"] += 1
            return
        for prefix, kind in _RUNTIME_PREFIXES:
            if text.startswith(prefix):
                self.skipped[kind] += 1
                return
        self.skipped["app"] += 1


def parse_gctrace(lines: Iterable[str | bytes]) -> Iterator[GCCycle]:
    """Parse gctrace lines with a fresh parser; use `GCTraceParser` to read the skip counters."""
    return GCTraceParser().parse(lines)


def iter_lines(stream: BinaryIO, *, max_line: int = MAX_LINE) -> Iterator[bytes]:
    """Lines of a binary stream without their newline, each cut to `max_line` bytes.

    `readline` with a limit never buffers more than the limit, so a stream without newlines (a binary
    file, a runaway stdin) costs `max_line` bytes of memory, not its length. A pipe yields each line as
    soon as it is complete.
    """
    while True:
        line = stream.readline(max_line + 1)
        if not line:
            return
        if line.endswith(b"\n"):
            yield line[:-1]
            continue
        if len(line) <= max_line:  # the last line, without a newline
            yield line
            return
        while True:  # drop the rest of the over-long line
            rest = stream.readline(max_line)
            if not rest or rest.endswith(b"\n"):
                break
        yield line[:max_line]
