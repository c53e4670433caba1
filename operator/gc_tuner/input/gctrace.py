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

A number no runtime can print makes the line `garbled` too: an integer of 2^44 or more (MB values are
floor(uint64 bytes / 2^20), cycle numbers uint32, P int32, the CPU share at most 100), or a time beyond
an int64 count of nanoseconds (the runtime's clock), which also keeps every float finite: a 400-digit
"time" would otherwise parse as inf and reach the table, the JSON and the sums.

Memory is bounded: a line is at most `MAX_LINE` bytes (`iter_lines` drops the excess), the parser
keeps at most two records between calls, and its number memos are capped.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any, BinaryIO

from gc_tuner.model.sample import GCCycle

__all__ = ["MAX_LINE", "SKIP_KINDS", "GCTraceParser", "iter_lines", "parse_gctrace"]

MAX_LINE = 64 * 1024
"""Longest line kept, in bytes; a gc line is under 300. The rest of a longer line is dropped."""

SKIP_KINDS = ("gc_forced", "scav", "pacer", "scan", "checkfinalizers", "app", "garbled", "resync")
"""Keys of `GCTraceParser.skipped`. `resync` counts recovered records, not dropped lines."""

# The numbers are captured loosely (`[\d.]`, ASCII digits only) and float()/int() decide: "1.2.3"
# fails there and the line counts as garbled. int() refuses digit strings over 4300 characters, so
# the conversions catch ValueError; so do out-of-range numbers (see `_int`, `_ms`, `_seconds`).
# Possessive `++` (no backtracking state; every number is followed
# by a character it cannot contain, so the match is the same) saves a tenth of the match time.
_I = r"(\d++)"
_F = r"([\d.]++)"
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
_ANY_RUNTIME_PREFIX = tuple(prefix for prefix, _ in _RUNTIME_PREFIXES)

# Memos of number spellings. Clock and CPU times have two significant digits and a process's heap
# sizes stay in a narrow band, so a long log repeats the same few thousand spellings, and a plain dict
# hit costs a fraction of int() or float(). Bounded, so memory stays flat on any input. `None` (the
# absent stacks/globals of a pre-1.18 line) maps to itself so the hot path needs no test for it.
_MEMO_CAP = 16384
_FLOAT_OF: dict[str, float] = {}
_INT_OF: dict[Any, Any] = {None: None}  # str -> int, None -> None


# Bounds of what the runtime can print (module docstring). They are what keeps the analysis exact: the
# table stores integers in int64 columns and adds up to three MB values, and sums of times (the STW
# pause, the mark CPU) must stay finite, so every value is checked once, where it is converted.
_INT_LIMIT = 1 << 44
_NS_MAX = float((1 << 63) - 1)  # the runtime's clock: int64 nanoseconds
_MS_MAX = _NS_MAX / 1e6
_S_MAX = _NS_MAX / 1e9


def _int(s: str) -> int:
    v = int(s)
    if v >= _INT_LIMIT:
        raise ValueError(f"{s[:24]}: beyond any value the runtime prints")
    return v


def _ms(s: str) -> float:
    v = float(s)
    if not v <= _MS_MAX:  # also refuses inf, which float() gives for 310 digits
        raise ValueError(f"{s[:24]}: beyond any value the runtime prints")
    return v


def _seconds(s: str) -> float:
    v = float(s)
    if not v <= _S_MAX:
        raise ValueError(f"{s[:24]}: beyond any value the runtime prints")
    return v


def _memo(memo: dict[Any, Any], convert: Callable[[str], Any], s: str) -> Any:
    v = memo.get(s)
    if v is None:
        v = convert(s)
        if len(memo) < _MEMO_CAP and len(s) <= 24:
            memo[s] = v
    return v


def _memo_float(s: str) -> float:
    v: float = _memo(_FLOAT_OF, _ms, s)
    return v


def _memo_int(s: str | None) -> Any:
    return None if s is None else _memo(_INT_OF, _int, s)


def _cycle(g: tuple[Any, ...], forced: bool) -> GCCycle | None:
    """The record of a matched line; None when a number is not one (`1.2.3`) or out of range."""
    n, t, util, leak, c1, c2, c3, p1, p2, p3, p4, p5, h0, h1, h2, goal, stacks, globals_, procs = g[:19]
    f, i = _FLOAT_OF, _INT_OF
    try:
        num, sec = _int(n), _seconds(t)  # not memoised: both change on every line
    except ValueError:
        return None
    try:  # the memos hold only checked values, so a hit needs no check
        return GCCycle(
            num, sec, i[util], f[c1], f[c2], f[c3], f[p1], f[p2], f[p3], f[p4], f[p5],
            i[h0], i[h1], i[h2], i[goal], i[stacks], i[globals_], i[procs], forced, leak is not None,
        )  # fmt: skip
    except KeyError:
        pass
    try:  # a spelling not memoised yet (or a bad number): convert one by one
        fl, it = _memo_float, _memo_int
        return GCCycle(
            num, sec, it(util), fl(c1), fl(c2), fl(c3), fl(p1), fl(p2), fl(p3), fl(p4), fl(p5),
            it(h0), it(h1), it(h2), it(goal), it(stacks), it(globals_), it(procs), forced, leak is not None,
        )  # fmt: skip
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
        self.first_garbled: int | None = None  # line number (1-based) of the first `garbled` line, for errors
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
        # `feed`'s hot path once more, inlined with locals: `gc-tuner analyze` spends its time here.
        match, f, i, queue = _GC_LINE.match, _FLOAT_OF, _INT_OF, self._queue
        for line in lines:
            self.lines += 1
            text = (line.decode("utf-8", "replace") if isinstance(line, bytes) else line).rstrip("\r\n")
            if not queue and text.startswith("gc "):
                m = match(text)
                if m is not None:
                    g = m.groups()
                    n, t, u, lk, c1, c2, c3, p1, p2, p3, p4, p5, h0, h1, h2, go, st, gl, ps, fo, tail = g
                    if not tail:
                        try:
                            num, sec = int(n), float(t)
                            if num >= _INT_LIMIT or not sec <= _S_MAX:  # _int/_seconds, inlined
                                raise ValueError(n)
                            rec: GCCycle | None = GCCycle(
                                num, sec, i[u], f[c1], f[c2], f[c3], f[p1], f[p2], f[p3], f[p4],
                                f[p5], i[h0], i[h1], i[h2], i[go], i[st], i[gl], i[ps], fo is not None,
                                lk is not None,
                            )  # fmt: skip
                        except (KeyError, ValueError):
                            rec = _cycle(g, fo is not None)
                            num = 0 if rec is None else rec.n
                        if rec is not None:
                            last = self._last_n
                            if last is not None and num > last + 1:
                                self.missing_cycles += num - last - 1
                            self._last_n = num
                            yield rec
                            continue
            rec = self._slow(text)
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

    def _garbled(self) -> None:
        self.skipped["garbled"] += 1
        if self.first_garbled is None:
            self.first_garbled = self.lines

    def _read(self, text: str) -> None:
        """The slow path: anything but a clean gc line. Queues a record or counts a skip."""
        garbled = False
        markers = _MARKER.finditer(text) if "gc " in text else ()  # the substring test is the cheap one
        for marker in markers:
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
                self._garbled()
            self._accept(rec)
            interleaved = marker.start() > 0 or bool(tail)
            if interleaved:
                self.skipped["resync"] += 1
            self._queue.append(rec)
            self._open = interleaved and not forced
            return
        if garbled:
            self._garbled()
            return
        if text.startswith(_ANY_RUNTIME_PREFIX):
            for prefix, kind in _RUNTIME_PREFIXES:
                if text.startswith(prefix):
                    self.skipped[kind] += 1
                    return
        self.skipped["app"] += 1


def parse_gctrace(lines: Iterable[str | bytes]) -> Iterator[GCCycle]:
    """Parse gctrace lines with a fresh parser; use `GCTraceParser` to read the skip counters."""
    return GCTraceParser().parse(lines)


_CHUNK = 64 * 1024


def iter_lines(stream: BinaryIO, *, max_line: int = MAX_LINE) -> Iterator[bytes]:
    """Lines of a binary stream without their newline, each cut to `max_line` bytes.

    The stream is read in chunks of at most 64 KiB with `read1` (one system call, returning what is
    there), so a pipe yields each line as soon as it is complete, and at most a chunk plus `max_line`
    bytes are held: a stream without newlines (a binary file, a runaway stdin) costs that much memory,
    not its length.
    """
    read = getattr(stream, "read1", None) or stream.read
    head = b""  # the start of the current line, at most max_line bytes
    cut = False  # the current line is longer than max_line; the excess is being dropped
    while True:
        chunk = read(_CHUNK)
        if not chunk:
            break
        parts = chunk.split(b"\n")
        last = parts.pop()
        if parts:
            first = parts[0]
            if head or cut:
                first = head if cut else (head + first)
            yield first[:max_line]
            for line in parts[1:]:
                yield line if len(line) <= max_line else line[:max_line]
            head, cut = b"", False
        if not cut:
            head += last
            if len(head) > max_line:
                head, cut = head[:max_line], True
    if head or cut:
        yield head  # the last line, without a newline
