"""The block path against the per-line path: the same records, field by field, and the same counters.

`parse(iter_lines(stream))` reads the stream in blocks (`parse_stream`); `parse_lines` takes one line at
a time and is the reference. Every corpus here is parsed both ways, with the block path's memos empty
and full (its two conversion branches), and through streams that return a few bytes per read, so block
edges fall inside lines. Real Go output is compared in test_gctrace_realgo.py.
"""

from __future__ import annotations

import io
import random
import tracemalloc
from collections.abc import Iterator
from dataclasses import astuple
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.parse_gctrace import write_log
from gc_tuner.input import gctrace
from gc_tuner.input.gctrace import MAX_LINE, GCTraceParser, iter_lines
from gc_tuner.model.sample import GCCycle
from tests.input.test_gctrace import (
    _HUGE_HEAP,
    _HUGE_N,
    _INF_AT,
    _INF_TIME,
    EXPECTED,
    GO119,
    GO124,
    RUNTIME_NOISE,
    _cycles,
    _render,
)

FUZZ = settings(deadline=None)

Outcome = tuple[list[tuple[tuple[str, str], ...]], int, dict[str, int], int, int | None]


class _Trickle(io.RawIOBase):
    """A stream returning at most `step` bytes per read (a pipe under a slow writer)."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.pos = data, step, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = min(len(b), self.step, len(self.data) - self.pos)
        b[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


def _stream(data: bytes, step: int | None) -> Any:
    return io.BytesIO(data) if step is None else _Trickle(data, step)


def _fields(rec: GCCycle) -> tuple[tuple[str, str], ...]:
    # type and repr of every field: 17 == 17.0 and 0.0 == -0.0 under ==, not here
    return tuple((type(v).__name__, repr(v)) for v in astuple(rec))


def _outcome(p: GCTraceParser, records: Iterator[GCCycle]) -> Outcome:
    recs = [_fields(r) for r in records]
    return recs, p.lines, dict(p.skipped), p.missing_cycles, p.first_garbled


def per_line(data: bytes, max_line: int = MAX_LINE) -> Outcome:
    p = GCTraceParser()
    return _outcome(p, p.parse_lines(iter_lines(io.BytesIO(data), max_line=max_line)))


def by_blocks(data: bytes, max_line: int = MAX_LINE, step: int | None = None, cold: bool = False) -> Outcome:
    if cold:  # the memos are module-wide: empty them to take the branch that fills them
        for memo in (gctrace._MS_B, gctrace._PCT_B, gctrace._ROOTS_B):
            memo.clear()
    p = GCTraceParser()
    return _outcome(p, p.parse_stream(_stream(data, step), max_line=max_line))


def assert_same(data: bytes, max_line: int = MAX_LINE, steps: tuple[int | None, ...] = (None, 7)) -> Outcome:
    """Parse `data` both ways and require identical outcomes; returns the per-line one."""
    expected = per_line(data, max_line)
    for step in steps:
        for cold in (True, False):
            assert by_blocks(data, max_line, step, cold) == expected, f"step={step} cold={cold}"
    return expected


# -- a corpus of every case the per-line tests know ---------------------------------------------------------

_LINES = list(EXPECTED)
CORPUS: list[bytes] = [
    *(line.encode() for line in _LINES),
    *(k.encode() for k in RUNTIME_NOISE),
    *(("app tick " + line).encode() for line in _LINES),  # resync: application text before the marker
    (GO124 + "tick ok").encode(),
    b" (forced)",  # the runtime's suffix pushed to the next line
    (GO119 + "noise (forced)x").encode(),
    GO124.replace("33+0.008", "33+0.0tick ok08").encode(),  # garbled inside
    ("gc 7 @0.1s 5%: 0.01+" + GO124).encode(),  # a broken fragment, then a complete line
    b"gc 1 @0.041s 26%: 0.014+31+0.005 ms clock",  # cut
    GO124.replace("0.016+33", "0.016+3.3.3").encode(),  # float() refuses it
    GO124.replace("0.016+33", "0.016+1.").encode(),
    GO124.replace("0.016+33", "0.016+.5").encode(),
    GO124.replace("gc 2 ", "gc " + "9" * 5000 + " ").encode(),
    GO124.replace("49 MB", "\u0664\u0669 MB").encode(),  # Arabic-Indic digits
    GO124.replace("2 P", "-2 P").encode(),
    *(x.encode() for x in (_HUGE_HEAP, _INF_TIME, _INF_AT, _HUGE_N)),  # out of range
    GO124.replace("74->98", f"{(1 << 44) - 1}->98").encode(),  # 14 digits: the largest that parses
    GO124.replace("74->98", f"{1 << 44}->98").encode(),  # the smallest that does not
    GO124.replace("91 MB goal", "8796093022194 MB goal").encode(),  # GOGC=off
    GO124.replace("0.016+33", "0.016+" + "9" * 30).encode(),  # a time in ms beyond the 24 the pattern takes
    GO124.replace("0.016+33", "0.016+" + "9" * 20).encode(),  # 1e20 ms: in the pattern, out of range
    GO124.replace("@0.078s", "@9999999999.000s").encode(),  # t beyond the int64 clock
    GO124.replace("@0.078s", "@1s").encode(),  # no decimals
    GO124.replace("@0.078s", "@0.0781s").encode(),
    GO124.replace("gc 2 ", "gc 0002 ").encode(),  # leading zeros
    (GO124 + "\r").encode(),  # CRLF
    b"",
    b"\r",
    b"\xff\xfe gc 1 @ not utf-8",
    "caf\u00e9 gc ".encode(),
    b"gc ",
    b"gc 3 @",
    (GO124 + "x" * (MAX_LINE + 50)).encode(),  # longer than MAX_LINE: cut, then a resync
    b"y" * (MAX_LINE + 10),
]


def test_the_corpus_in_order_and_shuffled() -> None:
    data = b"\n".join(CORPUS)
    recs, lines, skipped, _, first_garbled = assert_same(data, steps=(None, 7, 4096))
    assert lines == len(CORPUS) and len(recs) > 20
    assert skipped["garbled"] > 5 and skipped["resync"] > 5 and first_garbled is not None
    rng = random.Random(7)
    for _ in range(20):
        lines_ = CORPUS[:]
        rng.shuffle(lines_)
        assert_same(b"\n".join(lines_) + rng.choice((b"", b"\n")), steps=(None, 61))


def test_every_corpus_line_alone() -> None:
    for line in CORPUS:
        assert_same(line, steps=(None,))
        assert_same(line + b"\n", steps=(None,))


def test_a_line_just_over_the_cut() -> None:
    # With max_line 1024 the per-line path cuts this gc line inside its numbers; so must the block path.
    line = GO124.replace("0.016+33", "0.016+" + "1" * 24).replace("74->98", "7" * 13 + "->98")
    long = (line + " " * (1100 - len(line))).encode()
    for cut in (len(line) - 3, len(line), 1024):
        assert_same(long[:cut] + b"\n" + long, max_line=1024)


def test_the_bench_log(tmp_path: Path) -> None:
    log = tmp_path / "gctrace.log"
    write_log(log, 20_000, seed=5)
    recs, lines, skipped, missing, _ = assert_same(log.read_bytes(), steps=(None, 4099))
    assert lines == 20_000 and len(recs) > 16_000 and skipped["resync"] > 100 and missing == 0


def test_parse_takes_the_block_path_only_for_an_untouched_iter_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = GCTraceParser.parse_stream

    def spy(self: GCTraceParser, stream: Any, *, max_line: int = MAX_LINE) -> Iterator[GCCycle]:
        calls.append(max_line)
        return real(self, stream, max_line=max_line)

    monkeypatch.setattr(GCTraceParser, "parse_stream", spy)
    data = (GO119 + "\n" + GO124 + "\n").encode()
    assert list(GCTraceParser().parse(iter_lines(io.BytesIO(data)))) == [EXPECTED[GO119], EXPECTED[GO124]]
    assert calls == [MAX_LINE]
    lines = iter_lines(io.BytesIO(data))
    assert next(lines) == GO119.encode()  # a line was taken: the rest goes line by line
    assert list(GCTraceParser().parse(lines)) == [EXPECTED[GO124]]
    small = iter_lines(io.BytesIO(data), max_line=100)  # a cut inside gc lines: line by line
    assert len(list(GCTraceParser().parse(small))) == 0
    assert list(GCTraceParser().parse([GO119])) == [EXPECTED[GO119]]
    assert calls == [MAX_LINE]


# -- generated mixes ------------------------------------------------------------------------------------

_gc_line = st.one_of(_cycles.map(_render), st.sampled_from(_LINES))
_big = st.sampled_from(["9" * 14, "9" * 20, "1" * 25, str(1 << 44), "1.2.3", ".", "00000000000001"])


@st.composite
def _line(draw: st.DrawFn) -> bytes:
    gc = draw(_gc_line)
    text = draw(st.text(max_size=40))
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(max_size=60))  # anything, newlines included
    if kind == 1:
        return draw(st.sampled_from(list(RUNTIME_NOISE))).encode()
    if kind == 2:  # cut, with text inserted at the cut or not
        cut = draw(st.integers(0, len(gc)))
        return (gc[:cut] + draw(st.sampled_from(["", text, "\n"])) + gc[cut:]).encode()
    if kind == 3:
        return (text + gc).encode()
    if kind == 4:
        return (gc + text + draw(st.sampled_from(["", " (forced)"]))).encode()
    if kind == 5:
        return (" (forced)" + text).encode()
    if kind == 6:  # one number replaced by one no runtime prints, or float() refuses
        numbers = [i for i, c in enumerate(gc) if c.isdigit() and (i == 0 or not gc[i - 1].isdigit())]
        i = draw(st.sampled_from(numbers))
        j = i
        while j < len(gc) and (gc[j].isdigit() or gc[j] == "."):
            j += 1
        return (gc[:i] + draw(_big) + gc[j:]).encode()
    if kind == 7:
        return (gc + draw(st.sampled_from(["\r", " ", "  P"]))).encode()
    return gc.encode()


@settings(FUZZ, max_examples=300)
@given(
    st.lists(_line(), max_size=25),
    st.sampled_from([b"", b"\n", b"\r\n"]),
    st.sampled_from([None, 1, 3, 50, 333]),
    st.sampled_from([MAX_LINE, 1024]),
    st.booleans(),
)
def test_generated_mixes(lines: list[bytes], end: bytes, step: int | None, max_line: int, cold: bool) -> None:
    data = b"\n".join(lines) + end
    assert by_blocks(data, max_line, step, cold) == per_line(data, max_line)


@settings(FUZZ, max_examples=200)
@given(st.binary(max_size=3000), st.sampled_from([None, 1, 2, 17, 700]), st.integers(1, 80))
def test_blocks_are_the_lines_of_iter_lines(data: bytes, step: int | None, max_line: int) -> None:
    got: list[bytes] = []
    for buf, start, end in gctrace._blocks(_stream(data, step), max_line):
        got.extend(line[:max_line] for line in buf[start:end].split(b"\n"))
    assert got == list(iter_lines(io.BytesIO(data), max_line=max_line))


# -- the pieces the equality rests on ---------------------------------------------------------------------


@FUZZ
@given(_gc_line)
def test_a_matched_line_is_spelled_back_exactly(line: str) -> None:
    # `feed` gets a refused gc row as this spelling, so it must be the line itself.
    (row,) = gctrace._FAST.findall(line.encode())
    assert row[0] and gctrace._spell(row) == line.encode()


def test_no_line_the_block_pattern_takes_is_long_enough_to_be_cut() -> None:
    d, ms = "9" * 13, "9" * 24
    longest = (
        f"gc {d} @{'9' * 9}.{'9' * 24}s {d}% (checking for goroutine leaks): {ms}+{ms}+{ms} ms clock, "
        f"{ms}+{ms}/{ms}/{ms}+{ms} ms cpu, {d}->{d}->{d} MB, {d} MB goal, {d} MB stacks, {d} MB globals, "
        f"{d} P (forced)"
    ).encode()
    (row,) = gctrace._FAST.findall(longest)
    assert row[0] and len(longest) < gctrace._FAST_LINE_MAX
    assert gctrace._FAST.findall(longest.replace(b"@9", b"@99"))[0][0] == b""  # one digit more: refused


def test_memory_stays_flat_on_the_block_path() -> None:
    def peak(lines: int) -> int:
        stream = io.BufferedReader(_Generated(lines))  # produced on demand, never held
        tracemalloc.start()
        try:
            n = sum(1 for _ in GCTraceParser().parse(iter_lines(stream)))
            _, top = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert n == lines
        return top

    small, large = peak(5_000), peak(40_000)
    assert large < small * 1.5 + 256 * 1024, (small, large)
    assert large < 4 << 20


class _Generated(io.RawIOBase):
    """`lines` distinct gc lines, generated as they are read."""

    def __init__(self, lines: int) -> None:
        self.left, self.n, self.pending = lines, 0, b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while len(self.pending) < len(b) and self.left:
            self.n += 1
            self.left -= 1
            line = GO124.replace("gc 2 ", f"gc {self.n} ").replace("74->98", f"{self.n % 5000}->98")
            self.pending += line.encode() + b"\n"
        n = min(len(b), len(self.pending))
        b[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n


def test_block_memos_stay_bounded_and_hold_only_checked_values() -> None:
    cap = gctrace._MEMO_CAP
    lines = (GO124.replace("0.016+33", f"{k}.5+33").replace("0.016", f"0.{k}") for k in range(cap + 500))
    data = "\n".join(lines).encode()
    p = GCTraceParser()
    assert sum(1 for _ in p.parse_stream(io.BytesIO(data))) == cap + 500
    assert len(gctrace._MS_B) <= cap
    too_big = b"9" * 20  # 1e20 ms: beyond the int64 clock, so refused and never memoised
    line = GO124.replace("0.016+33", "0.016+" + too_big.decode()).encode()
    assert by_blocks(line + b"\n" + line) == per_line(line + b"\n" + line)
    assert too_big not in gctrace._MS_B
