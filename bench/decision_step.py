"""Cost of one tuning decision for one pod: both window fits, the formula and the decision step.

Usage: .venv/bin/python bench/decision_step.py [--window 300] [--interval 15] [--repeat 2000]

Target: <= 5 ms per decision for a 300 s window scraped every 15 s (21 samples). The samples are a
live heap growing 1.5 MB/s with jitter and a request counter at ~800 req/s with one restart in the
window, so the fits take the reset-split path the operator takes after a pod restart. Also prints the
cost of `gc-tuner analyze`'s in-process work (parse + analysis) per 10,000 gctrace cycles.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from gc_tuner.input.gctrace import GCTraceParser
from gc_tuner.logic.analysis import TraceAnalyzer
from gc_tuner.logic.decision import decide
from gc_tuner.logic.fit import TrendFit, fit_heap_slope, fit_qps
from gc_tuner.logic.formula import formula_gogc
from gc_tuner.model.sample import MiB, RuntimeSample
from gc_tuner.model.window import PodWindow


def _window(window_s: float, interval_s: float, rng: random.Random) -> PodWindow:
    w = PodWindow(window_s)
    n = int(window_s // interval_s) + 1
    restart_at = n // 2
    for i in range(n):
        t = 1_700_000_000.0 + i * interval_s
        since = (i - restart_at) if i >= restart_at else i + 1000
        w.add(
            RuntimeSample(
                t=t,
                source="agent",
                gc_cycles=10 + since,
                live_heap_bytes=int((200 + 1.5 * i * interval_s) * MiB + rng.gauss(0, 2 * MiB)),
                requests_total=800.0 * since * interval_s + rng.gauss(0, 50),
            )
        )
    return w


def _decision(w: PodWindow) -> int:
    heap, qps = fit_heap_slope(w), fit_qps(w)
    slope = heap.slope if isinstance(heap, TrendFit) else 0.0
    rate = qps.slope if isinstance(qps, TrendFit) else 0.0
    rec = formula_gogc(rate, slope)
    return decide(
        rec.gogc,
        current=100,
        min_gogc=50,
        max_gogc=200,
        min_change=10,
        cooldown_s=300,
        last_applied_at=None,
        now=0.0,
    ).gogc


def _gc_lines(n: int) -> list[str]:
    return [
        f"gc {i} @{i * 0.05:.3f}s 3%: 0.021+1.2+0.004 ms clock, 0.042+0.3/1.1/0.9+0.008 ms cpu, "
        f"{60 + i % 7}->{61 + i % 7}->{30 + i // 100} MB, {62 + i % 7} MB goal, "
        "1 MB stacks, 0 MB globals, 2 P"
        for i in range(1, n + 1)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window", type=float, default=300.0)
    ap.add_argument("--interval", type=float, default=15.0)
    ap.add_argument("--repeat", type=int, default=2000)
    args = ap.parse_args()

    w = _window(args.window, args.interval, random.Random(1))
    _decision(w)  # warm up imports and caches
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        _decision(w)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    segments = len(w.segments())
    print(f"decision (fit heap + fit qps + formula + decide), {len(w)} samples in {segments} segments:")
    print(
        f"  median {statistics.median(times):.3f} ms, p99 {times[int(len(times) * 0.99) - 1]:.3f} ms, "
        f"max {times[-1]:.3f} ms  (target <= 5 ms)"
    )

    lines = _gc_lines(10_000)
    t0 = time.perf_counter()
    analyzer = TraceAnalyzer()
    for c in GCTraceParser().parse(lines):
        analyzer.add(c)
    result = analyzer.result()
    elapsed = time.perf_counter() - t0
    print(
        f"analyze 10,000 cycles (parse + rows + summary + anomalies): {elapsed * 1000:.0f} ms "
        f"({result.summary.cycles} cycles)"
    )


if __name__ == "__main__":
    main()
