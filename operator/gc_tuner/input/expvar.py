"""Parse a Go program's expvar document (`GET /debug/vars`) into a `RuntimeSample`.

Only `memstats` (a `runtime.MemStats`) is read; see go-gc-facts.md section 4.

- MemStats has no live-heap field. The estimate is `NextGC / (1 + GOGC/100)`, the pacer's goal
  solved for the live heap while ignoring its roots (stacks and globals, which the Go 1.18+ pacer
  adds to the goal's base), so it reads high by about `(stacks + globals) * GOGC/100 / (1 + GOGC/100)`
  and is flagged `live_heap_estimated`. It is also wrong when the memory limit sets the goal.
- With GC off and no limit NextGC is near MaxInt64: the sample then has no goal and no estimate.
- Pauses come from the `PauseNs` ring: 256 entries, the newest at `(NumGC + 255) % 256`. The pauses
  new since the previous sample are the last `NumGC - previous.gc_cycles` (at most 256: older ones
  were overwritten). With no previous sample, or after a restart (NumGC dropped), every pause the
  ring still holds counts as new.

A malformed document raises `SourceFormatError("expvar", <field path>, <what is wrong>)` and nothing
else.
"""

from __future__ import annotations

import json
import math
import reprlib
from collections.abc import Mapping, Sequence

import httpx

from gc_tuner.model.sample import RuntimeSample
from gc_tuner.net.errors import SourceFormatError
from gc_tuner.net.transport import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT, request, time_bound

__all__ = [
    "PAUSE_RING",
    "fetch_expvar",
    "new_pauses",
    "parse_expvar",
    "pause_quantile",
]

PAUSE_RING = 256
_UINT64_MAX = (1 << 64) - 1  # every MemStats integer is a uint64
_DEFAULT_GOGC = 100
# With GC off and no memory limit NextGC sits just below MaxInt64: no goal at all.
_NO_GOAL = 1 << 62


def _fail(field: str, message: str) -> SourceFormatError:
    return SourceFormatError("expvar", field, message)


def _show(value: object) -> str:
    return reprlib.repr(value)  # bounded: a malformed value may be a huge array


def _uint(mem: Mapping[str, object], key: str) -> int:
    if key not in mem:
        raise _fail(f"memstats.{key}", "missing")
    return _uint_value(mem[key], f"memstats.{key}")


def _uint_value(value: object, field: str) -> int:
    # bool is an int subclass in Python, but JSON true is no byte count
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _fail(field, f"expected a non-negative integer, got {_show(value)}")
    # JSON integers have no bound, Go's uint64 does (beyond float64 a pause would not even convert)
    if value > _UINT64_MAX:
        raise _fail(field, f"{_show(value)} exceeds uint64")
    return value


def _optional_uint(mem: Mapping[str, object], key: str) -> int | None:
    return _uint(mem, key) if key in mem else None


def _fraction(mem: Mapping[str, object], key: str) -> float:
    if key not in mem:
        raise _fail(f"memstats.{key}", "missing")
    value = mem[key]
    number = _finite(value)
    if number is None or number < 0:
        raise _fail(f"memstats.{key}", f"expected a finite non-negative number, got {_show(value)}")
    return number


def _finite(value: object) -> float | None:
    """A JSON number as a finite float; None for anything else (an integer beyond float, NaN, bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _pause_ring(mem: Mapping[str, object]) -> list[int]:
    if "PauseNs" not in mem:
        raise _fail("memstats.PauseNs", "missing")
    ring = mem["PauseNs"]
    if not isinstance(ring, Sequence) or isinstance(ring, str | bytes) or len(ring) != PAUSE_RING:
        got = f"{len(ring)} entries" if isinstance(ring, Sequence) else _show(ring)
        raise _fail("memstats.PauseNs", f"expected an array of {PAUSE_RING} integers, got {got}")
    for i, v in enumerate(ring):
        _uint_value(v, f"memstats.PauseNs[{i}]")
    return list(ring)


def _load(doc: bytes | str | Mapping[str, object]) -> Mapping[str, object]:
    if isinstance(doc, bytes | str):
        try:
            parsed: object = json.loads(doc)
        except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
            raise _fail("<document>", f"not JSON: {e}") from None
    else:
        parsed = doc
    if not isinstance(parsed, Mapping):
        raise _fail("<document>", f"expected a JSON object, got {type(parsed).__name__}")
    return parsed


def new_pauses(ring: Sequence[int], num_gc: int, previous_num_gc: int | None) -> tuple[int, ...]:
    """The pauses (ns, oldest first) of the cycles after `previous_num_gc`, as far as the ring holds them."""
    restarted = previous_num_gc is None or num_gc < previous_num_gc
    # A first sample or a restarted process: everything the ring holds is new.
    count = num_gc if restarted or previous_num_gc is None else num_gc - previous_num_gc
    count = min(count, PAUSE_RING)
    return tuple(ring[(num_gc - 1 - i) % PAUSE_RING] for i in reversed(range(count)))


def pause_quantile(pauses: Sequence[float], q: float) -> float | None:
    """Nearest-rank quantile (no interpolation: the result is a pause that happened); None if empty."""
    if not pauses:
        return None
    ordered = sorted(pauses)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def parse_expvar(
    doc: bytes | str | Mapping[str, object],
    *,
    t: float,
    previous: RuntimeSample | None = None,
    gogc: int | None = None,
) -> RuntimeSample:
    """One sample from an expvar document taken at unix time `t`.

    `previous` is this pod's previous expvar sample (for the pauses new since then). `gogc` is the
    GOGC the process runs with, if known, for the live-heap estimate; unknown means the default 100,
    negative (GC off) means no estimate. The sample's `gogc` stays None: expvar cannot tell.
    """
    top = _load(doc)
    if "memstats" not in top:
        raise _fail("memstats", "missing")
    mem = top["memstats"]
    if not isinstance(mem, Mapping):
        raise _fail("memstats", f"expected an object, got {type(mem).__name__}")

    num_gc = _uint(mem, "NumGC")
    forced = _uint(mem, "NumForcedGC")
    next_gc = _uint(mem, "NextGC")
    heap_alloc = _uint(mem, "HeapAlloc")
    sys_bytes = _uint(mem, "Sys")
    cpu_fraction = _fraction(mem, "GCCPUFraction")
    ring = _pause_ring(mem)
    if forced > num_gc:
        raise _fail("memstats.NumForcedGC", f"{forced} forced cycles exceed NumGC {num_gc}")

    pct = _DEFAULT_GOGC if gogc is None else gogc
    goal = None if next_gc >= _NO_GOAL else next_gc
    # Before the first cycle nothing has been marked, and with GC off the goal says nothing of the heap.
    live = None if num_gc == 0 or pct < 0 or goal is None else round(goal / (1 + pct / 100))
    prev_cycles = previous.gc_cycles if previous is not None else None
    pauses = tuple(ns / 1e9 for ns in new_pauses(ring, num_gc, prev_cycles))
    return RuntimeSample(
        t=t,
        source="expvar",
        gc_cycles=num_gc,
        forced_gc_cycles=forced,
        live_heap_bytes=live,
        live_heap_estimated=live is not None,
        heap_goal_bytes=goal,
        heap_alloc_bytes=heap_alloc,
        total_memory_bytes=sys_bytes,
        gc_cpu_fraction=cpu_fraction,
        pause_p50_s=pause_quantile(pauses, 0.5),
        pause_p99_s=pause_quantile(pauses, 0.99),
        pause_max_s=max(pauses) if pauses else None,
        new_pauses_s=pauses,
        heap_allocs_bytes_total=_optional_uint(mem, "TotalAlloc"),
        heap_released_bytes=_optional_uint(mem, "HeapReleased"),
    )


async def fetch_expvar(
    client: httpx.AsyncClient,
    url: str,
    *,
    t: float,
    previous: RuntimeSample | None = None,
    gogc: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> RuntimeSample:
    """GET /debug/vars and parse it (see gc_tuner.input.expvar for what is estimated)."""
    async with time_bound(url, timeout):
        response = await request(client, "GET", url, timeout=timeout, max_bytes=max_bytes)
    return parse_expvar(response.content, t=t, previous=previous, gogc=gogc)
