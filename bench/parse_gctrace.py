"""Throughput and memory of the gctrace parser on a large synthetic log (target: <= 3 s per 1M lines).

Usage: .venv/bin/python bench/parse_gctrace.py [--lines N] [--seed S]

The log mixes every gc line format gc-tuner accepts (1.19-1.27 with stacks/globals, pre-1.18,
`(forced)`, the 1.26+ goroutine-leak form) with the runtime lines the parser skips (`scav`, `pacer:`,
`GC forced`, `scan:`), application output and interleaved lines. It is written to a temporary file
and read back through `iter_lines`, the path `gc-tuner analyze` takes. Memory must stay flat: the
parser keeps no per-line state, so the peak RSS after all lines must match the one after a tenth.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

from gc_tuner.input.gctrace import GCTraceParser, iter_lines

_CLOCK = ("0.014", "0.19", "1.2", "31")


def _gc_line(rng: random.Random, n: int, t: float) -> str:
    live = rng.randint(1, 4000)
    start = live + rng.randint(0, 4000)
    goal = live * 2 + rng.randint(0, 64)
    kind = rng.random()
    leak = " (checking for goroutine leaks)" if kind < 0.01 else ""
    roots = "" if 0.01 <= kind < 0.2 else f"{rng.randint(0, 64)} MB stacks, {rng.randint(0, 64)} MB globals, "
    forced = " (forced)" if kind < 0.01 or rng.random() < 0.05 else ""
    return (
        f"gc {n} @{t:.3f}s {rng.randint(0, 40)}%{leak}: "
        f"{rng.choice(_CLOCK)}+{rng.randint(0, 400)}+0.0{rng.randint(1, 99)} ms clock, "
        f"0.029+{rng.choice(('0', '3.3', '22'))}/17/19+0.011 ms cpu, "
        f"{start}->{start + rng.randint(0, 64)}->{live} MB, {goal} MB goal, {roots}{rng.choice((2, 8, 64))} P"
        f"{forced}"
    )


_NOISE = (
    "scav 0 KiB work (bg), 0 KiB work (eager), 1312 KiB now, 99% util",
    "pacer: assist ratio=+1.0e+000 (scan 0 MB in 4->4 MB) workers=1++0.000000e+000",
    "GC forced",
    "scan: total 1234 objs",
    '{"level":"info","msg":"served request","status":200,"latency_ms":3}',
    "2024/01/02 03:04:05 listening on :8080",
)


def write_log(path: Path, lines: int, seed: int) -> None:
    rng = random.Random(seed)
    n, t = 1, 0.0
    with path.open("w") as f:
        for _ in range(lines):
            r = rng.random()
            if r < 0.85:
                t += rng.random() * 0.5
                line = _gc_line(rng, n, t)
                if r < 0.01:  # interleaved: the application's unfinished line precedes the gc line
                    line = "app tick " + line
                n += 1
            else:
                line = rng.choice(_NOISE)
            f.write(line + "\n")


def reference_s() -> float:
    """CPU seconds for 1M float('0.014') calls: a yardstick to compare figures across machines
    (CPython on a current desktop CPU takes about 0.05 s)."""
    text, convert = "0.014", float
    start = time.process_time()
    for _ in range(1_000_000):
        convert(text)
    return time.process_time() - start


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gctrace.log"
        write_log(path, args.lines, args.seed)
        size_mib = path.stat().st_size / (1 << 20)
        parser = GCTraceParser()
        checkpoint = max(1, args.lines // 10)
        rss_early = 0.0
        records = 0
        start, start_cpu = time.perf_counter(), time.process_time()
        with path.open("rb") as f:
            for rec in parser.parse(iter_lines(f)):
                records += rec.n > 0
                if not rss_early and parser.lines >= checkpoint:
                    rss_early = max_rss_mib()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    rss_end = max_rss_mib()
    print(f"lines:        {parser.lines:,} ({size_mib:.0f} MiB)")
    print(f"records:      {records:,}")
    print(f"skipped:      {dict(sorted(parser.skipped.items()))}")
    print(f"elapsed:      {elapsed:.2f} s wall, {cpu:.2f} s CPU")
    print(f"throughput:   {parser.lines / elapsed:,.0f} lines/s wall, {parser.lines / cpu:,.0f} lines/s CPU")
    print(f"yardstick:    1M float() calls take {reference_s():.2f} s CPU on this machine")
    print(f"peak RSS:     {rss_end:.1f} MiB (after {checkpoint:,} lines: {rss_early:.1f} MiB)")
    flat = rss_end - rss_early < 5
    print(f"memory flat:  {'yes' if flat else 'NO'} (growth {rss_end - rss_early:+.1f} MiB)")
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
