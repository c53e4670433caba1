"""Typed records shared by every source: one GC cycle from gctrace, one runtime sample from a pod.

Every parser in input/ produces these, and model/ consumes nothing else, so a source can be swapped
without touching the fit or the strategies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MiB = 1 << 20

SourceName = Literal["agent", "expvar", "prometheus", "gctrace"]


# Not frozen: a frozen dataclass pays object.__setattr__ per field, about a third of the parse cost of a
# gctrace line, and the parser builds one per GC cycle on logs of millions of lines.
@dataclass(slots=True)
class GCCycle:
    """One `gc N @T s P%: ...` line of GODEBUG=gctrace=1 output (see go-gc-facts.md, section 1).

    MB fields are the runtime's floor(bytes / 2^20), i.e. MiB. `stacks_mb` and `globals_mb` are None
    on pre-1.18 lines, which lack them.
    """

    n: int
    t: float  # seconds since runtime init, cycle start
    cpu_pct: int  # cumulative GC CPU share since program start (NOT heap growth)
    clock_sweep_term_ms: float  # STW sweep termination
    clock_mark_ms: float  # concurrent mark/scan
    clock_mark_term_ms: float  # STW mark termination
    cpu_stw1_ms: float
    cpu_assist_ms: float
    cpu_background_ms: float  # dedicated + fractional mark workers
    cpu_idle_ms: float
    cpu_stw2_ms: float
    heap_start_mb: int
    heap_end_mb: int
    live_mb: int
    goal_mb: int
    stacks_mb: int | None
    globals_mb: int | None
    procs: int
    forced: bool
    leak_check: bool = False  # Go 1.26+ "(checking for goroutine leaks)" cycle

    @property
    def stw_ms(self) -> float:
        """Stop-the-world pause of the cycle: sweep termination + mark termination (wall clock)."""
        return self.clock_sweep_term_ms + self.clock_mark_term_ms

    @property
    def mark_cpu_ms(self) -> float:
        return self.cpu_assist_ms + self.cpu_background_ms + self.cpu_idle_ms

    @property
    def assist_share(self) -> float | None:
        """Mutator assists as a share of all mark CPU; None when the cycle did no mark work."""
        total = self.mark_cpu_ms
        return self.cpu_assist_ms / total if total > 0 else None

    @property
    def reclaimed_fraction(self) -> float | None:
        """(heap_start - live) / heap_start; None for an empty heap."""
        if self.heap_start_mb <= 0:
            return None
        return (self.heap_start_mb - self.live_mb) / self.heap_start_mb

    @property
    def effective_gogc(self) -> float | None:
        """GOGC reverse-derived from the goal: (goal - live) / (live + stacks + globals) * 100.

        Pre-1.18 lines lack roots, so the older pacer's form (goal - live) / live is used there.
        Wrong when the memory limit is binding (the goal is then below the GOGC goal).
        """
        roots = (self.stacks_mb or 0) + (self.globals_mb or 0)
        base = self.live_mb + roots
        if base <= 0:
            return None
        return (self.goal_mb - self.live_mb) / base * 100.0


@dataclass(frozen=True, slots=True)
class RuntimeSample:
    """What one scrape of one pod tells about its Go runtime. None means "this source cannot say".

    `t` is the wall-clock time (unix seconds) the sample was taken by gc-tuner. Counters
    (`gc_cycles`, `requests_total`, the CPU seconds) are cumulative since process start; a drop
    means the process restarted and model/ splits the series there.
    """

    t: float
    source: SourceName
    gc_cycles: int | None = None
    forced_gc_cycles: int | None = None
    live_heap_bytes: int | None = None
    live_heap_estimated: bool = False  # True when derived (expvar: NextGC / (1 + GOGC/100))
    heap_goal_bytes: int | None = None
    heap_alloc_bytes: int | None = None
    stacks_bytes: int | None = None
    globals_bytes: int | None = None
    total_memory_bytes: int | None = None  # /memory/classes/total or MemStats.Sys
    gogc: int | None = None  # None when GC is off or the source cannot say
    memory_limit_bytes: int | None = None  # None when no limit (math.MaxInt64) or unknown
    gc_cpu_seconds: float | None = None  # cumulative, idle marking excluded
    total_cpu_seconds: float | None = None  # cumulative /cpu/classes/total
    gc_cpu_fraction: float | None = None  # cumulative 0..1 (MemStats.GCCPUFraction)
    pause_p50_s: float | None = None
    pause_p99_s: float | None = None
    pause_max_s: float | None = None
    new_pauses_s: tuple[float, ...] = ()  # pauses since the previous sample (expvar ring)
    # The pause histogram's non-empty buckets (bound seconds, count) since start (the agent's).
    pause_buckets: tuple[tuple[float, float], ...] | None = None
    requests_total: float | None = None  # the policy's request counter, summed over its series
    go_version: str | None = None
    gomaxprocs: int | None = None
    heap_allocs_bytes_total: int | None = None  # cumulative bytes allocated (/gc/heap/allocs): alloc rate
    heap_released_bytes: int | None = None  # heap memory returned to the OS (/memory/classes/heap/released)
    limiter_last_enabled_cycle: int | None = None  # GC CPU limiter last engaged in this cycle; 0 = never
    # The guard's request-latency histogram (spec.guard.latency): (le seconds, cumulative count), ascending.
    latency_buckets: tuple[tuple[float, float], ...] | None = None
