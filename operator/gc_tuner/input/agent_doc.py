"""Parser of the gc-tuner agent's JSON (agent/README.md): GET state, and POST/DELETE results.

The agent reports runtime/metrics by their full names, so each `RuntimeSample` field comes from
exactly one metric and nothing is estimated. A metric the agent's Go version lacks is left None.
Anything else malformed raises `SourceFormatError("agent", <field path>, ...)`.
"""

from __future__ import annotations

import math
import reprlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from gc_tuner.model.sample import RuntimeSample
from gc_tuner.net.errors import SourceFormatError
from gc_tuner.net.transport import (
    DEFAULT_MAX_BYTES,
    DEFAULT_TIMEOUT,
    join_url,
    json_body,
    request,
    time_bound,
)

__all__ = [
    "AGENT_PATH",
    "GOGC_OFF",
    "NO_LIMIT",
    "AgentBounds",
    "AgentLease",
    "AgentSettings",
    "AgentStatus",
    "fetch_agent",
    "parse_agent",
    "parse_lease",
    "parse_settings",
]

SOURCE = "agent"
AGENT_PATH = "/debug/gctuner"  # where the agent library serves its endpoint by default
GOGC_OFF = -1  # the agent reports GOGC=off as -1, like debug.SetGCPercent
NO_LIMIT = (1 << 63) - 1  # math.MaxInt64: no memory limit
_UINT64_MAX = (1 << 64) - 1  # nothing the agent reports is larger (runtime/metrics are uint64)

# RuntimeSample field <- runtime/metrics name (integer-valued metrics).
_UINT_METRICS = {
    "gc_cycles": "/gc/cycles/total:gc-cycles",
    "forced_gc_cycles": "/gc/cycles/forced:gc-cycles",
    "live_heap_bytes": "/gc/heap/live:bytes",
    "heap_goal_bytes": "/gc/heap/goal:bytes",
    "heap_alloc_bytes": "/memory/classes/heap/objects:bytes",
    "stacks_bytes": "/gc/scan/stack:bytes",
    "globals_bytes": "/gc/scan/globals:bytes",
    "total_memory_bytes": "/memory/classes/total:bytes",
    "heap_allocs_bytes_total": "/gc/heap/allocs:bytes",
    "heap_released_bytes": "/memory/classes/heap/released:bytes",
    "limiter_last_enabled_cycle": "/gc/limiter/last-enabled:gc-cycle",
}
_GC_CPU = "/cpu/classes/gc/total:cpu-seconds"
_GC_IDLE_CPU = "/cpu/classes/gc/mark/idle:cpu-seconds"
_TOTAL_CPU = "/cpu/classes/total:cpu-seconds"


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """The two knobs. None means GOGC=off / no memory limit."""

    gogc: int | None
    memory_limit_bytes: int | None


@dataclass(frozen=True, slots=True)
class AgentLease:
    owner: str
    expires_at: datetime  # timezone-aware UTC
    remaining_seconds: float


@dataclass(frozen=True, slots=True)
class AgentBounds:
    """What the agent accepts; a write outside gets 422."""

    min_gogc: int
    max_gogc: int
    min_memory_limit_bytes: int
    max_lease_seconds: int


@dataclass(frozen=True, slots=True)
class AgentStatus:
    """The control-plane half of a GET: who controls the knobs and within which bounds."""

    go_version: str
    gomaxprocs: int
    current: AgentSettings
    startup: AgentSettings  # what a lease expiry or DELETE restores
    lease: AgentLease | None
    bounds: AgentBounds
    writes_enabled: bool

    @property
    def gogc(self) -> int | None:
        return self.current.gogc

    @property
    def memory_limit_bytes(self) -> int | None:
        return self.current.memory_limit_bytes


def parse_agent(doc: object, *, t: float) -> tuple[RuntimeSample, AgentStatus]:
    """Parse a GET body (already JSON-decoded) taken at unix time `t`."""
    root = _obj(doc, "body")
    status = AgentStatus(
        go_version=_str(root, "goVersion"),
        gomaxprocs=_int(root, "gomaxprocs", minimum=1),
        current=_settings(root, ""),
        startup=parse_settings(root.get("startup"), "startup"),
        lease=parse_lease(root.get("lease"), "lease"),
        bounds=_bounds(_obj(root.get("bounds"), "bounds")),
        writes_enabled=_bool(root, "writesEnabled"),
    )
    metrics = _obj(root.get("metrics"), "metrics")
    pauses = _obj(root.get("pauses"), "pauses")
    m = {name: _metric_int(metrics, key) for name, key in _UINT_METRICS.items()}
    gc_cpu, idle, total = (_metric_float(metrics, k) for k in (_GC_CPU, _GC_IDLE_CPU, _TOTAL_CPU))
    # Idle marking only uses otherwise idle Ps, so it is not a cost (go-gc-facts.md section 3). Never
    # below zero, as for Prometheus: idle marking is part of the GC total.
    gc_busy = max(0.0, gc_cpu - idle) if gc_cpu is not None and idle is not None else None
    sample = RuntimeSample(
        t=t,
        source="agent",
        gogc=status.current.gogc,
        memory_limit_bytes=status.current.memory_limit_bytes,
        gc_cpu_seconds=gc_busy,
        total_cpu_seconds=total,
        # At most 1, the GC being part of all CPU time (a tiny total would otherwise make it inf).
        gc_cpu_fraction=min(1.0, gc_busy / total) if gc_busy is not None and total else None,
        pause_p50_s=_opt_float(pauses, "p50Seconds", "pauses"),
        pause_p99_s=_opt_float(pauses, "p99Seconds", "pauses"),
        pause_max_s=_opt_float(pauses, "maxSeconds", "pauses"),
        pause_buckets=_pause_buckets(pauses),
        go_version=status.go_version,
        gomaxprocs=status.gomaxprocs,
        gc_cycles=m["gc_cycles"],
        forced_gc_cycles=m["forced_gc_cycles"],
        live_heap_bytes=m["live_heap_bytes"],
        heap_goal_bytes=m["heap_goal_bytes"],
        heap_alloc_bytes=m["heap_alloc_bytes"],
        stacks_bytes=m["stacks_bytes"],
        globals_bytes=m["globals_bytes"],
        total_memory_bytes=m["total_memory_bytes"],
        heap_allocs_bytes_total=m["heap_allocs_bytes_total"],
        heap_released_bytes=m["heap_released_bytes"],
        limiter_last_enabled_cycle=m["limiter_last_enabled_cycle"],
        # Only when the application registered its counter (agent.WithRequestCounter).
        requests_total=float(_int(root, "requestsTotal")) if root.get("requestsTotal") is not None else None,
    )
    _int(pauses, "count", prefix="pauses")
    return sample, status


def parse_settings(doc: object, field: str) -> AgentSettings:
    """`{"gogc": int, "memoryLimitBytes": int}` as found in startup, previous and new."""
    return _settings(_obj(doc, field), field)


def parse_lease(doc: object, field: str) -> AgentLease | None:
    """A lease object, or None for JSON null."""
    if doc is None:
        return None
    obj = _obj(doc, field)
    raw = _str(obj, "expiresAt", prefix=field)
    try:
        expires = datetime.fromisoformat(raw)
    except ValueError:
        raise SourceFormatError(SOURCE, f"{field}.expiresAt", f"not an RFC 3339 time: {raw!r}") from None
    if expires.tzinfo is None:
        raise SourceFormatError(SOURCE, f"{field}.expiresAt", f"time without a zone: {raw!r}")
    return AgentLease(
        owner=_str(obj, "owner", prefix=field),
        expires_at=expires,
        remaining_seconds=_float(obj, "remainingSeconds", field),
    )


def _settings(obj: Mapping[str, Any], prefix: str) -> AgentSettings:
    gogc = _int(obj, "gogc", prefix=prefix, minimum=GOGC_OFF)
    limit = _int(obj, "memoryLimitBytes", prefix=prefix, minimum=0)
    if limit > NO_LIMIT:
        raise SourceFormatError(SOURCE, _path(prefix, "memoryLimitBytes"), f"{limit} exceeds int64")
    return AgentSettings(
        gogc=None if gogc == GOGC_OFF else gogc,
        memory_limit_bytes=None if limit == NO_LIMIT else limit,
    )


def _bounds(obj: Mapping[str, Any]) -> AgentBounds:
    return AgentBounds(
        min_gogc=_int(obj, "minGOGC", prefix="bounds", minimum=0),
        max_gogc=_int(obj, "maxGOGC", prefix="bounds", minimum=0),
        min_memory_limit_bytes=_int(obj, "minMemoryLimitBytes", prefix="bounds", minimum=0),
        max_lease_seconds=_int(obj, "maxLeaseSeconds", prefix="bounds", minimum=1),
    )


def _show(value: object) -> str:
    return reprlib.repr(value)  # bounded: a malformed value may be a huge number or array


def _path(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _obj(doc: object, field: str) -> Mapping[str, Any]:
    if not isinstance(doc, dict):
        raise SourceFormatError(SOURCE, field, f"expected an object, got {type(doc).__name__}")
    return doc


def _str(obj: Mapping[str, Any], key: str, *, prefix: str = "") -> str:
    v = obj.get(key)
    if not isinstance(v, str) or not v:
        raise SourceFormatError(SOURCE, _path(prefix, key), f"expected a non-empty string, got {_show(v)}")
    return v


def _bool(obj: Mapping[str, Any], key: str) -> bool:
    v = obj.get(key)
    if not isinstance(v, bool):
        raise SourceFormatError(SOURCE, key, f"expected true or false, got {_show(v)}")
    return v


def _int(obj: Mapping[str, Any], key: str, *, prefix: str = "", minimum: int = 0) -> int:
    v = obj.get(key)
    # bool is an int subclass in Python; JSON true is never a count.
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        message = f"expected an integer >= {minimum}, got {_show(v)}"
        raise SourceFormatError(SOURCE, _path(prefix, key), message)
    if v > _UINT64_MAX:  # JSON integers have no bound, Go's do; beyond float64, it would not even convert
        raise SourceFormatError(SOURCE, _path(prefix, key), f"{_show(v)} exceeds uint64")
    return v


def _float(obj: Mapping[str, Any], key: str, prefix: str) -> float:
    v = obj.get(key)
    number = None
    if isinstance(v, int | float) and not isinstance(v, bool):
        try:
            number = float(v)
        except OverflowError:  # an integer beyond float64: no duration or CPU time
            number = None
    if number is None or not math.isfinite(number):
        raise SourceFormatError(SOURCE, _path(prefix, key), f"expected a finite number, got {_show(v)}")
    return number


MAX_PAUSE_BUCKETS = 128  # as the agent sends at most (agent/state.go maxPauseBuckets)


def _pause_buckets(pauses: Mapping[str, Any]) -> tuple[tuple[float, float], ...] | None:
    """`pauses.buckets`: the non-empty pause buckets, [bound seconds, count], ascending bounds."""
    raw = pauses.get("buckets")
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) > MAX_PAUSE_BUCKETS:
        raise SourceFormatError(
            SOURCE,
            "pauses.buckets",
            f"expected at most {MAX_PAUSE_BUCKETS} [bound, count] pairs, got {_show(raw)}",
        )
    out: list[tuple[float, float]] = []
    for i, pair in enumerate(raw):
        field = f"pauses.buckets[{i}]"
        if not isinstance(pair, list) or len(pair) != 2:
            raise SourceFormatError(SOURCE, field, f"expected [bound, count], got {_show(pair)}")
        numbers = [float(v) if isinstance(v, int | float) and not isinstance(v, bool) else -1.0 for v in pair]
        bound, count = numbers
        if not all(math.isfinite(v) and v >= 0 for v in numbers) or (out and bound <= out[-1][0]):
            raise SourceFormatError(
                SOURCE, field, f"expected [bound, count] >= 0, bounds ascending, got {_show(pair)}"
            )
        out.append((bound, count))
    return tuple(out)


def _opt_float(obj: Mapping[str, Any], key: str, prefix: str) -> float | None:
    if obj.get(key) is None:
        return None
    v = _float(obj, key, prefix)
    if v < 0:
        raise SourceFormatError(SOURCE, _path(prefix, key), f"negative duration {_show(v)}")
    return v


def _metric_int(metrics: Mapping[str, Any], name: str) -> int | None:
    return _int(metrics, name, prefix="metrics") if name in metrics else None


def _metric_float(metrics: Mapping[str, Any], name: str) -> float | None:
    if name not in metrics:
        return None
    v = _float(metrics, name, "metrics")
    if v < 0:
        raise SourceFormatError(SOURCE, f"metrics.{name}", f"negative CPU time {_show(v)}")
    return v


async def fetch_agent(
    client: httpx.AsyncClient,
    base_url: str,
    path: str = AGENT_PATH,
    token: str | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[RuntimeSample, AgentStatus]:
    """GET the agent's state: one `RuntimeSample` (source "agent") and the `AgentStatus`."""
    url = join_url(base_url, path)
    async with time_bound(url, timeout):
        response = await request(client, "GET", url, token=token, timeout=timeout, max_bytes=max_bytes)
    t = time.time()
    doc = json_body(response, "agent")
    return parse_agent(doc, t=t)
