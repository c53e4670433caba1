"""Reverse-derive the pacer from a gctrace log: per-cycle rows, a summary, anomalies, a recommendation.

Feed cycles one at a time (`TraceAnalyzer.add`) straight from the streaming parser; per-cycle rows are
kept in compact typed columns (17 columns of 8 bytes, about 140 bytes a cycle) because the table and
the JSON need them all.

Effective GOGC. The goal printed on line N is the goal in force during cycle N, which the runtime set
at the end of cycle N-1 from that cycle's live heap, stacks and globals. So gc-tuner derives it as
(goal_N - live_{N-1}) / (live_{N-1} + stacks_{N-1} + globals_{N-1}) × 100; with a growing heap the
same-line form (goal_N - live_N) / (...) reads low. The first cycle of a process uses its own line.
Cycles whose base (live + roots) is under 4 MB are left out of the median: the runtime's minimum goal
(4 MiB × GOGC/100) decides their goal, and MB rounding dominates.

Memory limit binding. A binding GOMEMLIMIT only lowers the goal, so a cycle is limit-bound when its
effective GOGC is below 80% of the reference GOGC even after allowing for MB rounding (goal and live
are each floored to a MiB, so the derived value can read up to 2 MB / base × 100 low). The reference
is the `gogc` the caller knows, else the 90th percentile of the effective GOGC over the log; a limit
that binds in every cycle is only visible with a known GOGC. The log "binds" when at least 10% of
the reliable cycles (and at least 2) are limit-bound.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from gc_tuner.logic.fit import InsufficientData, TrendFit, fit_segments
from gc_tuner.logic.formula import DEFAULT_FORMULA_PARAMS, FormulaParams, formula_gogc
from gc_tuner.model.sample import GCCycle

__all__ = [
    "Analysis",
    "Anomaly",
    "CycleTable",
    "Summary",
    "TraceAnalyzer",
    "TraceRecommendation",
    "analyze_cycles",
]

# Thresholds of the anomaly rules (the first three are the article's).
ASSIST_SHARE_MAX = 0.40
GOAL_LIVE_RATIO_MAX = 2.0
GOAL_PERSISTENT_SHARE = 0.8  # "persistently": in at least this share of (eligible) cycles
LOW_RECLAIM = 0.10
LOW_RECLAIM_STREAK = 3
LEAK_R2_MIN = 0.8
FORCED_MIN = 3
FORCED_SHARE_MAX = 0.10
STW_P99_MAX_MS = 0.1
LIMIT_BOUND_RATIO = 0.8  # effective GOGC below this share of the reference: limit-bound
RELIABLE_BASE_MB = 4
SLOPE_MIN_SAMPLES = 4
SLOPE_MIN_SPAN_S = 1.0  # a trace of a few seconds already has dozens of cycles

_FORCED, _LEAK_CHECK, _RELIABLE = 1, 2, 4
_NONE = -1  # stacks/globals absent (pre-1.18 lines)


class CycleTable:
    """Per-cycle rows in typed columns: bounded per-row cost, cheap numpy views for the summary.

    Rows are buffered as tuples and moved into the columns a batch at a time (one C-level extend per
    column instead of a Python call per field), which keeps `append` cheap on logs of a million
    cycles; every reader flushes the buffer first.
    """

    _INT = ("n", "cpu_pct", "heap_start_mb", "heap_end_mb", "live_mb", "goal_mb", "stacks_mb",
            "globals_mb", "procs", "segment", "flags", "base_mb")
    _FLOAT = ("t", "stw_ms", "effective_gogc", "assist_share", "reclaimed_fraction")
    _BATCH = 4096

    def __init__(self) -> None:
        self._cols: dict[str, array[Any]] = {name: array("q") for name in self._INT}
        self._cols.update({name: array("d") for name in self._FLOAT})
        self._order = [self._cols[name] for name in (*self._INT, *self._FLOAT)]
        self._pending: list[tuple[Any, ...]] = []

    @property
    def cols(self) -> dict[str, array[Any]]:
        self._flush()
        return self._cols

    def _flush(self) -> None:
        if self._pending:
            for col, values in zip(self._order, zip(*self._pending, strict=True), strict=True):
                col.extend(values)
            self._pending.clear()

    def __len__(self) -> int:
        return len(self._cols["n"]) + len(self._pending)

    def append(
        self, c: GCCycle, *, segment: int, effective_gogc: float | None, base_mb: int, reliable: bool
    ) -> None:
        share, reclaimed = c.assist_share, c.reclaimed_fraction
        flags = (_FORCED if c.forced else 0) | (_LEAK_CHECK if c.leak_check else 0)
        flags |= _RELIABLE if reliable else 0
        self._pending.append((
            c.n, c.cpu_pct, c.heap_start_mb, c.heap_end_mb, c.live_mb, c.goal_mb,
            _NONE if c.stacks_mb is None else c.stacks_mb,
            _NONE if c.globals_mb is None else c.globals_mb,
            c.procs, segment,
            flags, base_mb,  # the live + roots the goal was derived from
            c.t, c.stw_ms,
            math.nan if effective_gogc is None else effective_gogc,
            math.nan if share is None else share,
            math.nan if reclaimed is None else reclaimed,
        ))  # fmt: skip
        if len(self._pending) >= self._BATCH:
            self._flush()

    def np(self, name: str) -> np.ndarray:
        col = self.cols[name]
        return np.frombuffer(col, dtype=np.int64 if col.typecode == "q" else np.float64)

    def row(self, i: int) -> dict[str, Any]:
        """One cycle as the JSON contract's `cycles[]` entry."""
        c = self.cols
        return _row(tuple(c[name][i] for name in _ROW_COLUMNS))

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every row as `row` gives it, converted a chunk at a time (memory stays bounded)."""
        c = self.cols
        n = len(self)
        for start in range(0, n, self._BATCH):
            chunk = [c[name][start : start + self._BATCH].tolist() for name in _ROW_COLUMNS]
            yield from map(_row, zip(*chunk, strict=True))


_ROW_COLUMNS = ("n", "t", "cpu_pct", "heap_start_mb", "heap_end_mb", "live_mb", "goal_mb", "stacks_mb",
                "globals_mb", "procs", "flags", "stw_ms", "effective_gogc", "assist_share",
                "reclaimed_fraction", "segment")


def _row(v: tuple[Any, ...]) -> dict[str, Any]:
    n, t, cpu, start, end, live, goal, stacks, globals_, procs, flags, stw, eff, share, reclaimed, seg = v
    return {
        "n": n,
        "t": t,
        "cpu_pct": cpu,
        "heap_start_mb": start,
        "heap_end_mb": end,
        "live_mb": live,
        "goal_mb": goal,
        "stacks_mb": None if stacks == _NONE else stacks,
        "globals_mb": None if globals_ == _NONE else globals_,
        "procs": procs,
        "forced": bool(flags & _FORCED),
        "stw_ms": round(stw, 6),
        "effective_gogc": None if eff != eff else round(eff, 1),  # NaN: not derivable
        "assist_share": None if share != share else round(share, 4),
        "reclaimed_fraction": None if reclaimed != reclaimed else round(reclaimed, 4),
        "leak_check": bool(flags & _LEAK_CHECK),
        "segment": seg,
    }


@dataclass(frozen=True, slots=True)
class Summary:
    cycles: int
    forced: int
    skipped_lines: int
    stw_p50_ms: float | None
    stw_p99_ms: float | None
    stw_max_ms: float | None
    gc_cpu_pct: int | None  # the last line's cumulative GC CPU %
    live_slope_mb_per_s: float | None  # None when the fit had too little data (see live_slope_note)
    effective_gogc_median: float | None
    live_slope_r2: float | None
    live_slope_note: str
    assist_share: float | None  # all mark CPU over the log: assist / (assist + background + idle)
    memory_limit_binding: bool
    memory_limit_bound_cycles: int
    reference_gogc: float | None
    reference_gogc_source: Literal["given", "p90", "none"]
    segments: int  # processes in the log (a cycle number going down starts a new one)
    span_s: float


@dataclass(frozen=True, slots=True)
class Anomaly:
    rule: str
    evidence: str
    suggested_action: str
    source: Literal["article", "gc-tuner"]  # whose rule it is
    fact_note: str | None = None  # where the facts sheet contradicts the article, in one line


@dataclass(frozen=True, slots=True)
class TraceRecommendation:
    gogc: int
    qps_factor: float
    slope_factor: float
    explanation: str
    qps: float
    qps_assumed: bool
    heap_slope_mb_per_s: float
    heap_slope_assumed: bool
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Analysis:
    table: CycleTable
    summary: Summary
    anomalies: tuple[Anomaly, ...]
    recommendation: TraceRecommendation

    def as_dict(self, *, cycles: bool = True) -> dict[str, Any]:
        """The `gc-tuner analyze --format json` contract (docs/analyze.md); without `cycles[]` when
        the caller streams the rows itself (`table.rows()`)."""
        rec = asdict(self.recommendation)
        rec["notes"] = list(self.recommendation.notes)
        doc: dict[str, Any] = {"cycles": list(self.table.rows())} if cycles else {}
        doc["summary"] = asdict(self.summary)
        doc["anomalies"] = [asdict(a) for a in self.anomalies]
        doc["recommendation"] = rec
        return doc


class TraceAnalyzer:
    """Accumulates cycles from one gctrace stream; `result()` computes summary, anomalies, advice."""

    def __init__(self) -> None:
        self.table = CycleTable()
        self._segment = 0
        self._prev: GCCycle | None = None
        self._assist_ms = 0.0
        self._mark_ms = 0.0

    def add(self, c: GCCycle) -> None:
        prev = self._prev
        if prev is not None and (c.n <= prev.n or c.t < prev.t):
            self._segment += 1  # a new process (restart, or concatenated logs)
            prev = None
        if prev is None or c.n != prev.n + 1:
            # The goal on line N was set from cycle N-1's live heap and roots. The first goal of a
            # process comes from the runtime's minimum heap, and after a lost line the previous cycle
            # is unknown, so fall back to the single-line form and keep it out of the median.
            eff, reliable = c.effective_gogc, False
            base = c.live_mb + (c.stacks_mb or 0) + (c.globals_mb or 0)
        else:
            base = prev.live_mb + (prev.stacks_mb or 0) + (prev.globals_mb or 0)
            eff = (c.goal_mb - prev.live_mb) / base * 100.0 if base > 0 else None
            reliable = base >= RELIABLE_BASE_MB
        self.table.append(c, segment=self._segment, effective_gogc=eff, base_mb=base, reliable=reliable)
        self._assist_ms += c.cpu_assist_ms
        self._mark_ms += c.mark_cpu_ms
        self._prev = c

    def result(
        self,
        *,
        skipped_lines: int = 0,
        qps: float | None = None,
        gogc: float | None = None,
        params: FormulaParams = DEFAULT_FORMULA_PARAMS,
    ) -> Analysis:
        summary, bound = self._summary(skipped_lines, gogc)
        anomalies = tuple(self._anomalies(summary))
        return Analysis(self.table, summary, anomalies, _recommend(summary, bound, qps, params))

    # -- summary ------------------------------------------------------------------------------------

    def _summary(self, skipped_lines: int, gogc: float | None) -> tuple[Summary, bool]:
        tb = self.table
        n = len(tb)
        if n == 0:
            note = "no GC cycles"
            return Summary(0, 0, skipped_lines, None, None, None, None, None, None, None, note, None,
                           False, 0, gogc, "given" if gogc is not None else "none", 0, 0.0), False
        flags = tb.np("flags")
        stw = tb.np("stw_ms")
        eff = tb.np("effective_gogc")
        reliable = (flags & _RELIABLE).astype(bool) & np.isfinite(eff)
        eff_ok = eff[reliable] if reliable.any() else eff[np.isfinite(eff)]
        median = float(np.median(eff_ok)) if len(eff_ok) else None

        ref_source: Literal["given", "p90", "none"] = "given"
        ref = gogc
        if ref is None:
            ref_source, ref = ("p90", float(np.percentile(eff_ok, 90))) if len(eff_ok) else ("none", None)
        bound_cycles = 0
        if ref is not None:
            rounding = 2.0 / tb.np("base_mb")[reliable] * 100.0
            bound_cycles = int(np.sum(eff[reliable] + rounding < LIMIT_BOUND_RATIO * ref))
        binding = bound_cycles >= max(2, math.ceil(0.1 * int(reliable.sum())))

        fit = self._live_fit()
        slope = fit.slope if isinstance(fit, TrendFit) else None
        note = (f"Theil–Sen over {fit.n} cycles, {fit.span_s:.1f}s" if isinstance(fit, TrendFit)
                else f"insufficient data: {fit.reason}")
        t = tb.np("t")
        seg = tb.np("segment")
        span = float(sum(t[seg == s].max() - t[seg == s].min() for s in np.unique(seg)))
        summary = Summary(
            cycles=n,
            forced=int(np.count_nonzero(flags & _FORCED)),
            skipped_lines=skipped_lines,
            stw_p50_ms=round(float(np.percentile(stw, 50)), 6),
            stw_p99_ms=round(float(np.percentile(stw, 99)), 6),
            stw_max_ms=round(float(stw.max()), 6),
            gc_cpu_pct=int(tb.cols["cpu_pct"][-1]),
            live_slope_mb_per_s=None if slope is None else round(slope, 6),
            effective_gogc_median=None if median is None else round(median, 1),
            live_slope_r2=round(fit.r2, 4) if isinstance(fit, TrendFit) else None,
            live_slope_note=note,
            assist_share=round(self._assist_ms / self._mark_ms, 4) if self._mark_ms > 0 else None,
            memory_limit_binding=binding,
            memory_limit_bound_cycles=bound_cycles,
            reference_gogc=None if ref is None else round(ref, 1),
            reference_gogc_source=ref_source,
            segments=int(seg[-1]) + 1,
            span_s=round(span, 3),
        )
        return summary, binding

    def _live_fit(self) -> TrendFit | InsufficientData:
        tb = self.table
        t, live, seg = tb.np("t"), tb.np("live_mb").astype(float), tb.np("segment")
        segs = [(t[seg == s], live[seg == s]) for s in np.unique(seg)]
        return fit_segments(segs, min_samples=SLOPE_MIN_SAMPLES, min_span_s=SLOPE_MIN_SPAN_S)

    # -- anomalies ----------------------------------------------------------------------------------

    def _anomalies(self, s: Summary) -> Iterator[Anomaly]:
        if s.cycles == 0:
            return
        yield from self._article_rules(s)
        slope, r2 = s.live_slope_mb_per_s, s.live_slope_r2
        if slope is not None and slope > 0 and r2 is not None and r2 >= LEAK_R2_MIN:
            yield Anomaly(
                "live_heap_leak",
                f"live heap grows {slope:.3g} MB/s with r² {r2:.2f} ({s.live_slope_note})",
                "Compare heap profiles (/debug/pprof/heap) taken minutes apart; no GOGC value fixes a leak, "
                "and GOMEMLIMIT only postpones the OOM kill.",
                "gc-tuner",
            )
        if s.forced >= FORCED_MIN and s.forced / s.cycles >= FORCED_SHARE_MAX:
            yield Anomaly(
                "frequent_forced_gc",
                f"{s.forced} of {s.cycles} cycles were forced ({s.forced / s.cycles:.0%})",
                "Something calls runtime.GC() or debug.FreeOSMemory() often; each call is a full "
                "collection that blocks its caller. Remove the calls; GOMEMLIMIT returns memory "
                "without them.",
                "gc-tuner",
            )
        if s.stw_p99_ms is not None and s.stw_p99_ms > STW_P99_MAX_MS:
            yield Anomaly(
                "stw_p99_over_100us",
                f"STW pause p99 {s.stw_p99_ms * 1000:.0f} µs (p50 {s.stw_p50_ms or 0:.3f} ms, "
                f"max {s.stw_max_ms or 0:.3f} ms) exceeds 100 µs",
                "Pauses track CPU availability and goroutine count more than GOGC: check CPU throttling "
                "of the container and GOMAXPROCS against its CPU limit.",
                "gc-tuner",
                "Facts: the STW pause is a + c of `a+b+c ms clock` (sweep termination + mark termination); "
                "b is the concurrent mark, not a pause.",
            )

    def _article_rules(self, s: Summary) -> Iterator[Anomaly]:
        tb = self.table
        flags = tb.np("flags")
        unforced = (flags & _FORCED) == 0
        share = tb.np("assist_share")
        if s.assist_share is not None and s.assist_share > ASSIST_SHARE_MAX:
            over = int(np.sum(share[np.isfinite(share)] > ASSIST_SHARE_MAX))
            yield Anomaly(
                "assist_share_over_40pct",
                f"mutator assists did {s.assist_share:.0%} of all mark CPU; "
                f"{over} of {s.cycles} cycles above 40%",
                "Article's suggestion: raise GOGC so background marking finishes before allocation "
                "forces goroutines to assist.",
                "article",
            )
        live = tb.np("live_mb")
        goal = tb.np("goal_mb")
        eligible = unforced & (live > 0)
        if int(eligible.sum()) >= LOW_RECLAIM_STREAK:
            over = goal[eligible] > GOAL_LIVE_RATIO_MAX * live[eligible]
            if over.mean() >= GOAL_PERSISTENT_SHARE:
                ratio = float(np.median(goal[eligible] / live[eligible]))
                yield Anomaly(
                    "goal_over_2x_live",
                    f"goal > 2× live in {int(over.sum())} of {int(eligible.sum())} unforced cycles "
                    f"(median goal/live {ratio:.2f})",
                    "Article's suggestion: lower GOGC, or set GOMEMLIMIT, to cut the memory held above the "
                    "live heap.",
                    "article",
                    "Facts: since Go 1.18 goal = live + (live + stacks + globals) × GOGC/100, so at GOGC=100 "
                    f"the goal exceeds 2× live whenever stacks or globals are non-zero; the effective GOGC "
                    f"(median {s.effective_gogc_median}) is the figure to judge.",
                )
        streak = self._longest_low_reclaim()
        if streak[0] >= LOW_RECLAIM_STREAK:
            length, first, last = streak
            bound = " while the memory limit binds" if s.memory_limit_binding else ""
            yield Anomaly(
                "low_reclaim_streak",
                f"{length} consecutive cycles (gc {first}..{last}) reclaimed < 10% of the heap{bound}",
                "Article's suggestion: the heap is nearly all live; look for a leak, or give the process "
                "more memory.",
                "article",
                "Facts: in `A->B->C MB`, A is the heap at GC start and C the live heap marked (not "
                "live->scan->idle); gc-tuner computes reclaimed = (A - C) / A.",
            )

    def _longest_low_reclaim(self) -> tuple[int, int, int]:
        # Forced cycles are skipped, not counted: a runtime.GC() right after a GC reclaims little by design.
        tb = self.table
        best = (0, 0, 0)
        run, first = 0, 0
        flags, reclaimed = tb.cols["flags"], tb.cols["reclaimed_fraction"]
        ns, seg = tb.cols["n"], tb.cols["segment"]
        last_seg = -1
        for i in range(len(tb)):
            if seg[i] != last_seg:
                run, last_seg = 0, seg[i]
            if flags[i] & _FORCED:
                continue
            r = reclaimed[i]
            if not math.isnan(r) and r < LOW_RECLAIM:
                if run == 0:
                    first = ns[i]
                run += 1
                if run > best[0]:
                    best = (run, first, ns[i])
            else:
                run = 0
        return best


def _recommend(
    s: Summary, limit_binding: bool, qps: float | None, params: FormulaParams
) -> TraceRecommendation:
    notes: list[str] = []
    qps_assumed = qps is None
    q = params.qps_pivot if qps is None else qps
    if qps_assumed:
        notes.append(f"a gctrace log has no request rate: assumed {q:g} QPS (the formula's neutral point); "
                     "pass --qps")
    slope_assumed = s.live_slope_mb_per_s is None
    slope = 0.0 if s.live_slope_mb_per_s is None else s.live_slope_mb_per_s
    if slope_assumed:
        notes.append(f"live-heap slope unknown ({s.live_slope_note}): assumed 0 MB/s")
    if limit_binding:
        notes.append("the memory limit binds: GOGC changes matter little until the limit is raised")
    r = formula_gogc(q, slope, params)
    return TraceRecommendation(r.gogc, r.qps_factor, r.slope_factor, r.explanation, q, qps_assumed, slope,
                          slope_assumed, tuple(notes))


def analyze_cycles(
    cycles: Iterable[GCCycle],
    *,
    skipped_lines: int = 0,
    qps: float | None = None,
    gogc: float | None = None,
    params: FormulaParams = DEFAULT_FORMULA_PARAMS,
) -> Analysis:
    """Analyse an iterable of cycles (consumed once, streaming)."""
    a = TraceAnalyzer()
    for c in cycles:
        a.add(c)
    return a.result(skipped_lines=skipped_lines, qps=qps, gogc=gogc, params=params)
