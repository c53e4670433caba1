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

Two paths give the same records and counters. `parse_lines` (and `feed`) take one line at a time.
`parse_stream` reads a binary stream in blocks of complete lines and runs one bytes pattern over each
block, which matches only well-formed gc lines whose numbers are in range by their length; every other
line (application output, runtime noise, interleaved, cut or garbled lines) goes to `feed`, so the
edge cases keep the per-line path's exact handling. `parse` takes the block path for the stream behind
an untouched `iter_lines(stream)`, which is how `gc-tuner analyze` reads, and the per-line path for
any other iterable.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any, BinaryIO

from gc_tuner.model.sample import GCCycle

__all__ = ["MAX_LINE", "SKIP_KINDS", "GCTraceParser", "LineStream", "iter_lines", "parse_gctrace"]

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


def _int(s: str | bytes) -> int:
    v = int(s)
    if v >= _INT_LIMIT:
        raise ValueError(f"{s[:24]!r}: beyond any value the runtime prints")
    return v


def _ms(s: str | bytes) -> float:
    v = float(s)
    if not v <= _MS_MAX:  # also refuses inf, which float() gives for 310 digits
        raise ValueError(f"{s[:24]!r}: beyond any value the runtime prints")
    return v


def _seconds(s: str | bytes) -> float:
    v = float(s)
    if not v <= _S_MAX:
        raise ValueError(f"{s[:24]!r}: beyond any value the runtime prints")
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
        """The records of `lines`, then what `flush` returns. Same results as `parse_lines`; faster on
        an `iter_lines(stream)` no line was taken from, whose stream it reads in blocks."""
        if isinstance(lines, LineStream) and not lines.taken and lines.max_line >= _FAST_LINE_MAX:
            lines.taken = True  # the stream is ours now: nobody may read lines from it alongside
            return self.parse_stream(lines.stream, max_line=lines.max_line)
        return self.parse_lines(lines)

    def parse_stream(self, stream: BinaryIO, *, max_line: int = MAX_LINE) -> Iterator[GCCycle]:
        """The records of a binary stream's lines (as `iter_lines` cuts them), read in blocks.

        Records come out as soon as their block is read (`read1`: a pipe's complete lines at once),
        and memory is bounded by a block and `max_line`, as with `iter_lines`.
        """
        if max_line < _FAST_LINE_MAX:  # a gc line the block pattern accepts would have to be cut
            yield from self.parse_lines(iter_lines(stream, max_line=max_line))
            return
        yield from self._parse_blocks(_blocks(stream, max_line), max_line)
        rec = self.flush()
        if rec is not None:
            yield rec

    def _parse_blocks(self, blocks: Iterable[tuple[bytes, int, int]], max_line: int) -> Iterator[GCCycle]:
        """The lines `buf[start:end].split(b"\\n")` of each block: one `_FAST` row per line.

        A row of a well-formed gc line converts through the bytes memos, as the per-line hot path
        converts the same line, and a line without `gc ` is counted by its prefix, as `_read` counts
        it; any other line, and every line while a record waits for a ` (forced)`, goes to `feed`.
        One generator for all blocks: a `yield from` per block would cost a delegation per record.
        """
        ms, pct_of, roots_of = _MS_B, _PCT_B, _ROOTS_B
        # GCCycle(...) goes through type.__call__ and slot_tp_init, which copy the 20 arguments into
        # a new tuple; allocating and calling the dataclass __init__ directly builds the same record
        # in half the time (GCCycle has no __new__ of its own: `_new_cycle` checks that).
        new, init = _new_cycle, GCCycle.__init__
        queue, skipped, last = self._queue, self.skipped, self._last_n
        for buf, start, end in blocks:
            for row in _FAST.findall(buf, start, end):
                n, t, pu, c1, c2, c3, p1, p2, p3, p4, p5, h0, h1, h2, go, rt, other = row
                if queue and not self._open:
                    # The waiting record is final: `feed` would return it with this line's outcome.
                    # Returned first, the order is the same, and this line can take the fast path.
                    yield queue.popleft()
                if not queue:
                    if n:  # `n` is empty on a row of the catch-all branch
                        # Integers are in range by the pattern (see `_FAST`). int() of the heap sizes
                        # beats a memo of them, whose tens of thousands of keys miss the CPU caches.
                        num = int(n)
                        try:
                            u, leak = pct_of[pu]
                            stacks, globals_, procs, forced = roots_of[rt]
                            cycle = new(GCCycle)
                            init(
                                cycle, num, float(t), u, ms[c1], ms[c2], ms[c3], ms[p1], ms[p2], ms[p3],
                                ms[p4], ms[p5], int(h0), int(h1), int(h2), int(go), stacks, globals_,
                                procs, forced, leak,
                            )  # fmt: skip
                            rec: GCCycle | None = cycle
                        except KeyError:  # a spelling not memoised yet
                            rec = _fast_cycle(num, row)
                        if rec is not None:
                            self.lines += 1
                            if last is not None and num > last + 1:  # `_accept`, inlined
                                self.missing_cycles += num - last - 1
                            self._last_n = last = num
                            yield rec
                            continue
                    elif b"gc " not in other:  # no marker: `_read` would only count the line
                        self.lines += 1
                        skipped[_skip_kind(other)] += 1
                        continue
                # a record waits, a time in ms is refused, or `gc ` is in other text: `feed` decides
                rec = self.feed(_spell(row) if n else other[:max_line])  # the slice: `iter_lines`' cut
                last = self._last_n
                if rec is not None:
                    yield rec

    def parse_lines(self, lines: Iterable[str | bytes]) -> Iterator[GCCycle]:
        """The records of `lines`, one line at a time, then what `flush` returns."""
        # `feed`'s hot path once more, inlined with locals: `gc-tuner analyze` spent its time here.
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


# -- the block path -----------------------------------------------------------------------------------
# One bytes pattern per block of lines: `findall` returns a row per line. The first branch matches a
# well-formed gc line whose integers have at most 13 digits (below 2^44 by their length) and whose
# `@t` has at most 9 integer digits (within the int64 clock), so those need no range check; times in
# ms are captured like the per-line pattern's and checked where they are memoised. The branch groups
# what repeats together: the CPU share with the leak-check mark, and stacks, globals, P and
# ` (forced)`, which stay the same for a process. The catch-all branch (the last group) returns any
# other line whole, for `feed`. Both branches stop at a newline, so each line yields exactly one row.
_FAST = re.compile(
    (
        rb"^(?:gc <D> @(\d{1,9}+\.\d{1,24}+)s (\d{1,13}+%(?: \(checking for goroutine leaks\))?): "
        rb"<T>\+<T>\+<T> ms clock, <T>\+<T>/<T>/<T>\+<T> ms cpu, <D>-><D>-><D> MB, <D> MB goal, "
        rb"((?:\d{1,13}+ MB stacks, \d{1,13}+ MB globals, )?\d{1,13}+ P(?: \(forced\))?)$|(.*))"
    )
    .replace(b"<D>", rb"(\d{1,13}+)")
    .replace(b"<T>", rb"([\d.]{1,24}+)"),
    re.MULTILINE,
)
_FAST_LINE_MAX = 1024
"""Longer than any line `_FAST`'s first branch matches (about 700 bytes), so it never needs a cut."""
# The text of a matched gc line, rebuilt from its row: the literals are those of `_FAST`.
_SPELLING = b"gc %b @%bs %b: %b+%b+%b ms clock, %b+%b/%b/%b+%b ms cpu, %b->%b->%b MB, %b MB goal, %b"
_PCT = re.compile(rb"(\d+)%( \(checking for goroutine leaks\))?")
_ROOTS = re.compile(rb"(?:(\d+) MB stacks, (\d+) MB globals, )?(\d+) P( \(forced\))?")

# Memos of the block path, keyed by the bytes the pattern captures (the per-line memos are keyed by
# str). Capped like those; a key is at most about 60 bytes by the pattern, so no length test is needed.
_MS_B: dict[bytes, float] = {}
_PCT_B: dict[bytes, tuple[int, bool]] = {}
_ROOTS_B: dict[bytes, tuple[int | None, int | None, int, bool]] = {}


def _ms_b(key: bytes) -> float:
    v = _MS_B.get(key)
    if v is None:
        v = _ms(key)  # raises ValueError for a spelling float() refuses or out of range
        if len(_MS_B) < _MEMO_CAP:
            _MS_B[key] = v
    return v


def _pct(key: bytes) -> tuple[int, bool]:
    m = _PCT.fullmatch(key)
    assert m is not None  # `_FAST` matched it
    return int(m[1]), m[2] is not None


def _roots(key: bytes) -> tuple[int | None, int | None, int, bool]:
    m = _ROOTS.fullmatch(key)
    assert m is not None  # `_FAST` matched it
    stacks, globals_ = (None, None) if m[1] is None else (int(m[1]), int(m[2]))
    return stacks, globals_, int(m[3]), m[4] is not None


def _fast_cycle(num: int, row: tuple[bytes, ...]) -> GCCycle | None:
    """The record of a `_FAST` row with a spelling not memoised yet, memoising it; None when a time in
    ms is not a number (`1.2.3`) or out of range (what `_cycle` refuses)."""
    _, t, pu, c1, c2, c3, p1, p2, p3, p4, p5, h0, h1, h2, go, rt = row[:16]
    pct = _PCT_B.get(pu) or _pct(pu)
    roots = _ROOTS_B.get(rt) or _roots(rt)
    if len(_PCT_B) < _MEMO_CAP:
        _PCT_B[pu] = pct
    if len(_ROOTS_B) < _MEMO_CAP:
        _ROOTS_B[rt] = roots
    f = _ms_b
    try:
        return GCCycle(
            num, float(t), pct[0], f(c1), f(c2), f(c3), f(p1), f(p2), f(p3), f(p4), f(p5),
            int(h0), int(h1), int(h2), int(go), roots[0], roots[1], roots[2], roots[3], pct[1],
        )  # fmt: skip
    except ValueError:
        return None


_new_cycle = object.__new__
assert GCCycle.__new__ is _new_cycle, "GCCycle got a __new__: build records with GCCycle(...) again"

_RUNTIME_PREFIXES_B = tuple((prefix.encode(), kind) for prefix, kind in _RUNTIME_PREFIXES)
_ANY_RUNTIME_PREFIX_B = tuple(prefix for prefix, _ in _RUNTIME_PREFIXES_B)


def _skip_kind(line: bytes) -> str:
    """`_read`'s count of a line without `gc `, on its bytes: the prefixes are ASCII, and decoding
    (with replacement) keeps every ASCII byte, so a prefix test gives the same answer on both."""
    if line.startswith(_ANY_RUNTIME_PREFIX_B):
        for prefix, kind in _RUNTIME_PREFIXES_B:
            if line.startswith(prefix):
                return kind
    return "app"


def _spell(row: tuple[bytes, ...]) -> bytes:
    """The line a gc row of `_FAST` was matched on (for `feed`, when the row cannot be used)."""
    return _SPELLING % row[:16]


_BLOCK = 64 * 1024  # bytes per read of the block path: about 600 lines, 0.5 MB of rows (measured best)


def _blocks(stream: BinaryIO, max_line: int) -> Iterator[tuple[bytes, int, int]]:
    """`(buf, start, end)`: the stream's lines are `buf[start:end].split(b"\\n")` over the blocks, the
    same lines as `iter_lines` (up to their cut, which the caller makes) with the same memory bound."""
    read = getattr(stream, "read1", None) or stream.read
    head = b""  # the start of a line the last read did not finish, at most max_line bytes
    cut = False  # that line is longer than max_line; the excess is being dropped
    while chunk := read(_BLOCK):
        first = chunk.find(b"\n")
        if first < 0:
            if not cut:
                head += chunk
                if len(head) > max_line:
                    head, cut = head[:max_line], True
            continue
        start = 0
        if head or cut:  # the carried line ends here: a block of its own
            line = head if cut else (head + chunk[:first])[:max_line]
            yield line, 0, len(line)
            start = first + 1
        last = chunk.rfind(b"\n")
        if last >= start:
            yield chunk, start, last
        head, cut = chunk[last + 1 :], False
        if len(head) > max_line:
            head, cut = head[:max_line], True
    if head or cut:
        yield head, 0, len(head)  # the last line, without a newline


class LineStream(Iterator[bytes]):
    """What `iter_lines` returns: the lines, and the stream for `GCTraceParser.parse`'s block path.

    `taken` turns true once a line has been asked for (or `parse` took the stream), so the block
    path never reads a stream whose lines are already being consumed one by one.
    """

    def __init__(self, stream: BinaryIO, max_line: int) -> None:
        self.stream = stream
        self.max_line = max_line
        self.taken = False
        self._lines = _iter_lines(stream, max_line)

    def __iter__(self) -> Iterator[bytes]:
        self.taken = True
        return self._lines  # the generator itself: a for loop then pays no Python call per line

    def __next__(self) -> bytes:
        self.taken = True
        return next(self._lines)


_CHUNK = 64 * 1024


def iter_lines(stream: BinaryIO, *, max_line: int = MAX_LINE) -> LineStream:
    """Lines of a binary stream without their newline, each cut to `max_line` bytes.

    The stream is read in chunks of at most 64 KiB with `read1` (one system call, returning what is
    there), so a pipe yields each line as soon as it is complete, and at most a chunk plus `max_line`
    bytes are held: a stream without newlines (a binary file, a runaway stdin) costs that much memory,
    not its length. `GCTraceParser.parse` reads the stream itself, in blocks, when given the result
    before any line was taken from it.
    """
    return LineStream(stream, max_line)


def _iter_lines(stream: BinaryIO, max_line: int) -> Iterator[bytes]:
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
