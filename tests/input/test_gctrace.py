"""The gctrace parser on the facts sheet's real lines, interleaving, garbage and unbounded input.

Real-program checks (the parser against the runtime's own report) are in test_gctrace_realgo.py.
"""

from __future__ import annotations

import io
import tracemalloc
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gc_tuner.input.gctrace import MAX_LINE, SKIP_KINDS, GCTraceParser, iter_lines, parse_gctrace
from gc_tuner.model.sample import GCCycle

# The real lines of go-gc-facts.md section 1, with what each must parse to.
GO119 = (
    "gc 1 @0.041s 26%: 0.014+31+0.005 ms clock, 0.029+22/17/19+0.011 ms cpu, "
    "30->32->27 MB, 32 MB goal, 7 MB stacks, 32 MB globals, 2 P"
)
GO124 = (
    "gc 2 @0.078s 21%: 0.016+33+0.008 ms clock, 0.032+3.3/19/15+0.016 ms cpu, "
    "74->98->49 MB, 91 MB goal, 3 MB stacks, 32 MB globals, 2 P"
)
FORCED = (
    "gc 3 @0.181s 12%: 0.025+14+0.008 ms clock, 0.051+0/1.0/23+0.017 ms cpu, "
    "96->96->25 MB, 134 MB goal, 3 MB stacks, 32 MB globals, 2 P (forced)"
)
LEAK = (
    "gc 5 @0.030s 1% (checking for goroutine leaks): 0.19+0.18+0.002 ms clock, "
    "0.38+0/0.14/0.10+0.005 ms cpu, 5->5->0 MB, 8 MB goal, 0 MB stacks, 0 MB globals, 2 P (forced)"
)
PRE118 = (
    "gc 46 @1573.417s 0%: 0.18+24+0.029 ms clock, 1.4+0.27/49/121+0.23 ms cpu, "
    "259->262->125 MB, 265 MB goal, 8 P"
)

EXPECTED = {
    GO119: GCCycle(
        1, 0.041, 26, 0.014, 31, 0.005, 0.029, 22, 17, 19, 0.011, 30, 32, 27, 32, 7, 32, 2, False
    ),
    GO124: GCCycle(
        2, 0.078, 21, 0.016, 33, 0.008, 0.032, 3.3, 19, 15, 0.016, 74, 98, 49, 91, 3, 32, 2, False
    ),
    FORCED: GCCycle(
        3, 0.181, 12, 0.025, 14, 0.008, 0.051, 0, 1.0, 23, 0.017, 96, 96, 25, 134, 3, 32, 2, True
    ),
    LEAK: GCCycle(
        5, 0.030, 1, 0.19, 0.18, 0.002, 0.38, 0, 0.14, 0.10, 0.005, 5, 5, 0, 8, 0, 0, 2, True, True
    ),
    PRE118: GCCycle(
        46, 1573.417, 0, 0.18, 24, 0.029, 1.4, 0.27, 49, 121, 0.23, 259, 262, 125, 265, None, None, 8, False
    ),
}

# Fuzzing checks correctness, not speed (bench/ measures speed): no per-example deadline.
FUZZ = settings(deadline=None)


@pytest.mark.parametrize("line", list(EXPECTED), ids=["go1.19", "go1.24", "forced", "leak-check", "pre-1.18"])
def test_every_real_line_of_the_facts_sheet(line: str) -> None:
    p = GCTraceParser()
    assert p.feed(line) == EXPECTED[line]
    assert p.feed(line.encode() + b"\n") == EXPECTED[line]  # bytes with their newline, too
    assert p.skipped_total == 0 and p.lines == 2


def test_derived_values_of_a_real_line() -> None:
    c = EXPECTED[GO124]
    assert c.stw_ms == pytest.approx(0.016 + 0.008)  # sweep termination + mark termination
    assert c.assist_share == pytest.approx(3.3 / (3.3 + 19 + 15))
    assert c.reclaimed_fraction == pytest.approx((74 - 49) / 74)
    assert c.effective_gogc == pytest.approx((91 - 49) / (49 + 3 + 32) * 100)
    pre = EXPECTED[PRE118]
    assert pre.effective_gogc == pytest.approx((265 - 125) / 125 * 100)  # no roots before 1.18


def test_goal_of_gc_off_is_a_big_integer() -> None:
    line = GO124.replace("91 MB goal", "8796093022194 MB goal")
    (c,) = parse_gctrace([line])
    assert c.goal_mb == 8796093022194


def test_crlf_and_trailing_newlines_are_ignored() -> None:
    assert list(parse_gctrace([GO124 + "\r\n"])) == [EXPECTED[GO124]]


RUNTIME_NOISE = {
    "GC forced": "gc_forced",
    "scav 0 KiB work, 0 KiB total, 99% util": "scav",  # 1.19
    "scav 16 KiB work (bg), 0 KiB work (eager), 1312 KiB now, 99% util (forced)": "scav",  # 1.21+
    "pacer: assist ratio=+1.0e+000 (scan 0 MB in 4->4 MB) workers=1++0.000000e+000": "pacer",
    "pacer: sweep done at heap size 4MB; allocated 0MB during sweep; swept 12 pages at +0e+000 pages/byte": (
        "pacer"
    ),
    "scan: total 1234 objs": "scan",
    "scan: class 16B 12 objs": "scan",
    "checkfinalizers: queue: 0 finalizers + 0 cleanups": "checkfinalizers",
    "2024/01/02 03:04:05 listening on :8080": "app",
    '{"level":"info","msg":"gc done"}': "app",
    "": "app",
}


def test_runtime_and_application_lines_are_skipped_and_counted_by_kind() -> None:
    p = GCTraceParser()
    lines = [GO119, *RUNTIME_NOISE, GO124]
    assert list(p.parse(lines)) == [EXPECTED[GO119], EXPECTED[GO124]]
    expected: dict[str, int] = {}
    for kind in RUNTIME_NOISE.values():
        expected[kind] = expected.get(kind, 0) + 1
    assert dict(p.skipped) == expected
    assert p.skipped_total == len(RUNTIME_NOISE)
    assert p.lines == len(lines)


def test_resync_when_application_output_precedes_the_gc_line() -> None:
    p = GCTraceParser()
    recs = list(p.parse(["app tick " + GO119, "{partial json gc 9 " + GO124]))
    assert recs == [EXPECTED[GO119], EXPECTED[GO124]]
    assert p.skipped["resync"] == 2
    assert p.skipped_total == 0  # resync counts recovered records, not dropped lines


def test_a_gc_line_broken_by_application_output_is_dropped_and_counted() -> None:
    broken = GO124.replace("33+0.008", "33+0.0tick ok08")
    p = GCTraceParser()
    recs = list(p.parse([GO119, broken, "ms clock, 0.032+3.3/19/15+0.016 ms cpu", FORCED]))
    assert recs == [EXPECTED[GO119], EXPECTED[FORCED]]
    assert p.skipped["garbled"] == 1
    assert p.skipped["app"] == 1  # the rest of the broken line
    assert p.missing_cycles == 1  # cycle 2 is missing between 1 and 3


def test_a_broken_fragment_before_a_complete_gc_line_on_one_line() -> None:
    # Two processes sharing stderr can do this; the complete line is kept, the fragment counted.
    p = GCTraceParser()
    assert list(p.parse(["gc 7 @0.1s 5%: 0.01+" + GO124])) == [EXPECTED[GO124]]
    assert p.skipped["garbled"] == 1 and p.skipped["resync"] == 1


def test_text_after_the_procs_is_ignored_and_a_forced_on_the_same_line_kept() -> None:
    p = GCTraceParser()
    forced_after_noise = GO124 + "tick-42 ok (forced)"
    assert list(p.parse([forced_after_noise])) == [replace(EXPECTED[GO124], forced=True)]
    assert p.skipped["resync"] == 1


def test_forced_pushed_to_the_next_line_by_application_output() -> None:
    # The runtime printed "... 2 P", the application wrote "tick ok\n", then the runtime " (forced)\n".
    p = GCTraceParser()
    assert p.feed(GO124 + "tick ok") is None  # waits: a " (forced)" may follow
    assert p.feed(" (forced)") == replace(EXPECTED[GO124], forced=True)
    assert p.flush() is None


def test_a_waiting_record_keeps_the_stream_in_order() -> None:
    p = GCTraceParser()
    out = [p.feed(GO119 + "noise"), p.feed(GO124), p.feed("app line"), p.feed(FORCED + "more noise")]
    out.append(p.flush())
    # FORCED already carries its " (forced)", so nothing can follow it and it is not held back
    assert out == [None, EXPECTED[GO119], EXPECTED[GO124], EXPECTED[FORCED], None]
    recs = list(GCTraceParser().parse([GO119 + "noise", GO124, FORCED + " (forced)x"]))
    assert recs == [EXPECTED[GO119], EXPECTED[GO124], EXPECTED[FORCED]]


def test_missing_cycles_reset_at_a_new_process() -> None:
    p = GCTraceParser()
    # cycles 1, 3, 6 (2, 4 and 5 missing), then a new process: 1, 2
    lines = [GO119, FORCED, GO119.replace("gc 1 ", "gc 6 "), GO119, GO124]
    assert [c.n for c in p.parse(lines)] == [1, 3, 6, 1, 2]
    assert p.missing_cycles == 3


@pytest.mark.parametrize(
    "line",
    [
        "gc 1 @0.041s 26%: 0.014+31+0.005 ms clock",  # truncated
        GO124.replace("0.016+33", "0.016+3.3.3"),  # not a number
        GO124.replace("gc 2 ", "gc " + "9" * 5000 + " "),  # beyond int()'s digit limit
        GO124.replace("49 MB", "\u0664\u0669 MB"),  # Arabic-Indic digits are not Go's output
        GO124.replace("2 P", "-2 P"),
    ],
    ids=["truncated", "bad-number", "huge-number", "unicode-digits", "negative"],
)
def test_malformed_gc_lines_are_garbled_not_errors(line: str) -> None:
    p = GCTraceParser()
    assert p.feed(line) is None
    assert p.skipped == {"garbled": 1}


def _render(c: GCCycle) -> str:
    """A gc line as the runtime prints it (runtime/mgc.go, gcMarkTermination)."""

    def ms(v: float) -> str:
        return str(int(v)) if v.is_integer() else repr(v)

    leak = " (checking for goroutine leaks)" if c.leak_check else ""
    roots = "" if c.stacks_mb is None else f"{c.stacks_mb} MB stacks, {c.globals_mb} MB globals, "
    return (
        f"gc {c.n} @{c.t:.3f}s {c.cpu_pct}%{leak}: "
        f"{ms(c.clock_sweep_term_ms)}+{ms(c.clock_mark_ms)}+{ms(c.clock_mark_term_ms)} ms clock, "
        f"{ms(c.cpu_stw1_ms)}+{ms(c.cpu_assist_ms)}/{ms(c.cpu_background_ms)}/{ms(c.cpu_idle_ms)}"
        f"+{ms(c.cpu_stw2_ms)} ms cpu, "
        f"{c.heap_start_mb}->{c.heap_end_mb}->{c.live_mb} MB, {c.goal_mb} MB goal, {roots}{c.procs} P"
        + (" (forced)" if c.forced else "")
    )


_ms = st.one_of(
    st.integers(10, 10**6).map(float),  # >= 10 ms prints as an integer
    st.integers(1, 99).map(lambda d: d / 10),  # 2 significant digits
    st.integers(1, 99).map(lambda d: d / 1000),
    st.just(0.0),
)
_mb = st.integers(0, 2**43)
_cycles = st.builds(
    GCCycle,
    n=st.integers(1, 2**32),
    t=st.integers(0, 10**9).map(lambda ms: ms / 1000),
    cpu_pct=st.integers(0, 100),
    clock_sweep_term_ms=_ms,
    clock_mark_ms=_ms,
    clock_mark_term_ms=_ms,
    cpu_stw1_ms=_ms,
    cpu_assist_ms=_ms,
    cpu_background_ms=_ms,
    cpu_idle_ms=_ms,
    cpu_stw2_ms=_ms,
    heap_start_mb=_mb,
    heap_end_mb=_mb,
    live_mb=_mb,
    goal_mb=_mb,
    stacks_mb=st.none() | st.integers(0, 4096),
    globals_mb=st.integers(0, 4096),
    procs=st.integers(1, 1024),
    forced=st.booleans(),
    leak_check=st.booleans(),
).map(lambda c: c if c.stacks_mb is not None else replace(c, globals_mb=None))


@FUZZ
@given(_cycles)
def test_every_rendered_cycle_parses_back_exactly(c: GCCycle) -> None:
    assert list(parse_gctrace([_render(c)])) == [c]


@FUZZ
@given(st.lists(_cycles, min_size=1, max_size=4))
def test_feed_and_parse_agree_on_new_and_repeated_spellings(cycles: list[GCCycle]) -> None:
    # The second round finds every number spelling memoised: the fast path must give the same records.
    lines = [_render(c) for c in cycles] * 2
    assert list(GCTraceParser().parse(lines)) == cycles * 2
    p = GCTraceParser()
    assert [p.feed(line) for line in lines] == cycles * 2


def test_number_memos_stay_bounded() -> None:
    from gc_tuner.input import gctrace

    lines = (GO124.replace("74->98->49", f"74->98->{10**6 + k}").replace("0.016+33", f"{k}.5+33") for k in
             range(gctrace._MEMO_CAP + 500))  # fmt: skip
    assert sum(1 for _ in parse_gctrace(lines)) == gctrace._MEMO_CAP + 500
    assert len(gctrace._INT_OF) <= gctrace._MEMO_CAP and len(gctrace._FLOAT_OF) <= gctrace._MEMO_CAP


@FUZZ
@given(st.lists(st.binary(max_size=300), max_size=30))
def test_arbitrary_bytes_never_raise(lines: list[bytes]) -> None:
    p = GCTraceParser()
    recs = list(p.parse(lines))
    assert p.lines == len(lines)
    assert len(recs) + p.skipped_total <= len(lines)
    assert set(p.skipped) <= set(SKIP_KINDS)


@FUZZ
@given(st.lists(st.text(max_size=200), max_size=30), st.data())
def test_gc_lines_cut_and_mixed_with_text_never_raise(noise: list[str], data: st.DataObject) -> None:
    real = list(EXPECTED)
    lines: list[str] = []
    for text in noise:
        line = data.draw(st.sampled_from(real))
        cut = data.draw(st.integers(0, len(line)))
        lines.append(data.draw(st.sampled_from([text + line, line[:cut] + text + line[cut:], text])))
    p = GCTraceParser()
    recs = list(p.parse(lines))
    assert all(isinstance(r, GCCycle) for r in recs)
    assert len(recs) <= len(lines)


class _Endless(io.RawIOBase):
    """`size` bytes of one byte value without any newline, produced on demand (never held in memory)."""

    def __init__(self, size: int, tail: bytes) -> None:
        self.left = size
        self.tail = tail

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:
        if self.left > 0:
            n = min(len(b), self.left)
            b[:n] = b"x" * n
            self.left -= n
            return n
        n = min(len(b), len(self.tail))
        b[:n] = self.tail[:n]
        self.tail = self.tail[n:]
        return n


def test_a_10_mib_line_without_newline_costs_one_line_of_memory() -> None:
    stream = io.BufferedReader(_Endless(10 << 20, b"\n" + GO124.encode() + b"\n"))
    tracemalloc.start()
    try:
        p = GCTraceParser()
        recs = list(p.parse(iter_lines(stream)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert recs == [EXPECTED[GO124]]  # the parser resumes at the next line
    assert p.skipped == {"app": 1} and p.lines == 2
    assert peak < 8 * MAX_LINE, f"peak {peak} bytes for a 10 MiB line"


def test_iter_lines_cuts_long_lines_and_keeps_the_last_line_without_newline() -> None:
    long = b"y" * (MAX_LINE + 10)
    lines = list(iter_lines(io.BytesIO(b"a\n" + long + b"\nb\r\nc")))
    assert lines == [b"a", long[:MAX_LINE], b"b\r", b"c"]
    exact = b"z" * MAX_LINE
    assert list(iter_lines(io.BytesIO(exact + b"\n" + exact))) == [exact, exact]
    assert list(iter_lines(io.BytesIO(b""))) == []


@settings(FUZZ, max_examples=50)
@given(st.binary(max_size=2000), st.integers(1, 64))
def test_iter_lines_never_exceeds_its_cap(data: bytes, cap: int) -> None:
    lines = list(iter_lines(io.BytesIO(data), max_line=cap))
    assert all(len(line) <= cap and b"\n" not in line for line in lines)
    assert len(lines) == len(data.split(b"\n")) - (1 if data.endswith(b"\n") or not data else 0)


# -- numbers no runtime prints: skipped as garbled, never a crash downstream ---------------------------
# Regressions: a heap of 2^63 MB or more overflowed the analysis's int64 columns (OverflowError), and a
# 400-digit time parsed as inf, which reached the table as `inf` and crashed the JSON output.

_HUGE_HEAP = GO124.replace("74->98->49", "99999999999999999999->98->49")
_INF_TIME = GO124.replace("0.016+33+0.008", "9" * 400 + "+33+0.008")
_INF_AT = GO124.replace("@0.078s", "@" + "9" * 400 + ".000s")
_HUGE_N = GO124.replace("gc 2 ", "gc 99999999999999999999 ")


@pytest.mark.parametrize(
    "line", [_HUGE_HEAP, _INF_TIME, _INF_AT, _HUGE_N], ids=["heap-2^66", "ms-inf", "t-inf", "n-2^66"]
)
def test_out_of_range_numbers_are_garbled_on_every_path(line: str) -> None:
    lines = [GO119, line, GO124]
    p = GCTraceParser()
    assert list(p.parse(lines)) == [EXPECTED[GO119], EXPECTED[GO124]]  # the inlined hot path
    assert p.skipped == {"garbled": 1} and p.first_garbled == 2
    fed = GCTraceParser()
    assert [fed.feed(x) for x in lines] == [EXPECTED[GO119], None, EXPECTED[GO124]]  # `feed`'s path
    assert fed.skipped == {"garbled": 1}
    slow = GCTraceParser()  # the slow path: application text before the marker
    assert list(slow.parse(["app: " + line])) == [] and slow.skipped == {"garbled": 1}


def test_out_of_range_spellings_never_enter_the_memos() -> None:
    # The hot path trusts memoised values without a check, so a refused spelling must not be memoised.
    from gc_tuner.input import gctrace

    too_big = str(1 << 44)
    line = GO124.replace("74->98->49", f"{too_big}->98->49")
    for _ in range(2):
        assert list(parse_gctrace([line])) == []
    assert too_big not in gctrace._INT_OF


def test_the_largest_values_the_runtime_prints_still_parse() -> None:
    # GOGC=off with no limit prints an 8796093022194 MB goal; MB values stay below 2^44 (uint64 bytes).
    line = GO124.replace("91 MB goal", "8796093022194 MB goal").replace("74->98", f"{(1 << 44) - 1}->98")
    (c,) = parse_gctrace([line])
    assert c.goal_mb == 8796093022194 and c.heap_start_mb == (1 << 44) - 1
    year_ms = 365 * 86400 * 1000  # a process up for a century with a year-long phase still parses
    long_run = GO124.replace("@0.078s", "@3155760000.000s").replace("0.016+33", f"0.016+{year_ms}")
    (c,) = parse_gctrace([long_run])
    assert c.t == 3155760000.0 and c.clock_mark_ms == year_ms
