"""Parse a Prometheus text exposition (a Go service's /metrics) into a `RuntimeSample`.

Parsing is prometheus_client's; this module only picks the series of client_golang's Go collector
(go-gc-facts.md section 5), whichever are present:

    go_memstats_heap_alloc_bytes, go_memstats_next_gc_bytes, go_memstats_sys_bytes,
    go_memstats_alloc_bytes_total (TotalAlloc: the allocation rate when the opt-in series is absent)
    go_gc_duration_seconds{quantile=...} and its _count   pauses, cycles (when nothing better is there)
    go_sched_pauses_total_gc_seconds (opt-in histogram)  pause quantiles the summary lacks (its p99)
    go_gc_gogc_percent, go_gc_gomemlimit_bytes            GOGC off / no limit read as None
    go_info{version=...}, go_memstats_gc_cpu_fraction (old client_golang)
    opt-in runtime/metrics series: go_gc_heap_live_bytes, go_gc_heap_goal_bytes,
    go_gc_cycles_{total,forced}_gc_cycles_total, go_gc_scan_{stack,globals}_bytes,
    go_cpu_classes_{gc_total,gc_mark_idle,total}_cpu_seconds_total, go_sched_gomaxprocs_threads,
    go_gc_heap_allocs_bytes_total, go_memory_classes_heap_released_bytes,
    go_gc_limiter_last_enabled_gc_cycle

plus, when asked, one request counter summed over its series that carry every given label.

`parse_counter` reads only that counter. It hands prometheus_client just the lines of families whose
name starts with the counter's, so a policy whose runtime figures come from the agent does not pay for
parsing a whole Go /metrics page (most of a fleet cycle's CPU otherwise).

`gc_cpu_seconds` is GC total minus idle marking (what gctrace's % counts), so it needs both series.
client_golang's pause summary has quantiles 0, .25, .5, .75 and 1 only; a p99 comes from the opt-in
runtime histogram (each GC stop-the-world pause counted on its own, as the agent counts them) as
the upper bound of the bucket holding the 99th-percentile pause, as the agent computes it: coarse
(the runtime's buckets grow about tenfold), never below the truth.
A malformed exposition raises `SourceFormatError("prometheus", <metric or line>, <what is wrong>)`
and nothing else.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families

from gc_tuner.model.sample import RuntimeSample
from gc_tuner.net.errors import SourceFormatError
from gc_tuner.net.transport import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT, body_text, request, time_bound

__all__ = [
    "fetch_counter",
    "fetch_histogram",
    "fetch_prometheus",
    "parse_counter",
    "parse_histogram",
    "parse_prometheus",
]

# /gc/gomemlimit:bytes reads math.MaxInt64 without a limit and /gc/gogc:percent reads MaxUint64 with
# GC off (9.223372036854776e18 and 1.8446744073709552e19 as float64); with GC off and no limit the
# heap goal is just below MaxInt64. Anything this large (or +Inf) means "none", never a real byte
# count or percentage.
_UNSET = float(2**62)

# A single scalar series per name; the series of one family are keyed by their sample name.
_Series = dict[str, list[tuple[dict[str, str], float]]]


def _fail(field: str, message: str) -> SourceFormatError:
    return SourceFormatError("prometheus", field, message)


def _decoded(text: str | bytes) -> str:
    if isinstance(text, bytes):
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _fail("<exposition>", f"not UTF-8 at byte {e.start}") from None
    return text


def _collect(text: str | bytes) -> tuple[_Series, dict[str, str]]:
    """Every sample by sample name, and each counter family's name by its `_total` sample name."""
    text = _decoded(text)
    series: _Series = {}
    counters: dict[str, str] = {}
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                series.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
            if family.type == "counter":
                counters[family.name + "_total"] = family.name
    except Exception as e:  # the parser's errors are loosely typed (ValueError, IndexError, ...)
        raise _fail("<exposition>", f"not the Prometheus text format: {e}") from None
    return series, counters


def _scalar(series: _Series, name: str) -> float | None:
    """The one value of an unlabelled Go metric; None when absent, NaN or unset (see _UNSET)."""
    found = series.get(name)
    if not found:
        return None
    if len(found) > 1:
        raise _fail(name, f"expected one series, got {len(found)}")
    value = found[0][1]
    if math.isnan(value):
        return None
    if value < 0:
        raise _fail(name, f"negative value {value!r}")
    return None if value >= _UNSET else value


def _as_int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _quantile(series: _Series, name: str, q: str) -> float | None:
    for labels, value in series.get(name, ()):
        if _same_number(labels.get("quantile"), q) and math.isfinite(value):
            if value < 0:
                raise _fail(f'{name}{{quantile="{q}"}}', f"negative value {value!r}")
            return value
    return None


def _histogram_quantile(series: _Series, name: str, q: float) -> float | None:
    """Upper bound of the bucket holding the q-quantile of a cumulative histogram (for the +Inf
    bucket, its lower bound); None when the histogram is absent or empty."""
    buckets: list[tuple[float, float]] = []
    for labels, count in series.get(f"{name}_bucket", ()):
        try:
            bound = float(labels["le"])
        except (KeyError, ValueError):
            raise _fail(f"{name}_bucket", f"bucket without a numeric le label: {labels}") from None
        if not bound >= 0:  # negative or NaN: no bound of a histogram of durations
            raise _fail(f"{name}_bucket", f"bucket bound le={labels['le']} is not a duration")
        if not math.isfinite(count) or count < 0:
            raise _fail(f"{name}_bucket", f"bucket le={labels['le']} has count {count!r}")
        buckets.append((bound, count))
    if not buckets:
        return None
    buckets.sort()
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total))
    lower = 0.0
    for bound, count in buckets:
        if count >= rank:
            return bound if math.isfinite(bound) else lower
        lower = max(lower, bound) if math.isfinite(bound) else lower
    return lower


def _pause_quantile(series: _Series, q: str) -> float | None:
    value = _quantile(series, "go_gc_duration_seconds", q)
    if value is None:
        value = _histogram_quantile(series, "go_sched_pauses_total_gc_seconds", float(q))
    return value


def _same_number(label: str | None, q: str) -> bool:
    try:
        return label is not None and float(label) == float(q)  # "1" and "1.0" are one quantile
    except ValueError:
        return False


def _go_version(series: _Series) -> str | None:
    for labels, _ in series.get("go_info", ()):
        if "version" in labels:
            return labels["version"]
    return None


def _requests(series: _Series, counters: dict[str, str], counter: str, matchers: Mapping[str, str]) -> float:
    # prometheus_client names a counter family without `_total` and its sample with it; a policy may
    # spell the counter either way. An untyped series keeps its exposed name.
    total, matched = 0.0, 0
    for sample_name, found in series.items():
        if sample_name != counter and counters.get(sample_name) != counter:
            continue
        for labels, value in found:
            if all(labels.get(k) == v for k, v in matchers.items()):
                if not math.isfinite(value) or value < 0:
                    raise _fail(counter, f"series {labels} has value {value!r}, not a counter value")
                total += value
                matched += 1
    if matched == 0:
        wanted = f" with labels {dict(matchers)}" if matchers else ""
        raise _fail(counter, f"no series of counter {counter!r}{wanted}")
    if not math.isfinite(total):  # finite series whose sum is beyond float64
        raise _fail(counter, f"the sum of its {matched} series is beyond float64")
    return total


def parse_prometheus(
    text: str | bytes,
    *,
    t: float,
    counter: str | None = None,
    matchers: Mapping[str, str] | None = None,
) -> RuntimeSample:
    """One sample from a text exposition scraped at unix time `t`.

    `counter` names the request counter (`http_requests_total` or `http_requests`); its series that
    carry every label in `matchers` are summed into `requests_total`. Without `counter`,
    `requests_total` is None and `matchers` is unused.
    """
    series, counters = _collect(text)
    gc_total = _scalar(series, "go_cpu_classes_gc_total_cpu_seconds_total")
    gc_idle = _scalar(series, "go_cpu_classes_gc_mark_idle_cpu_seconds_total")
    cycles = _scalar(series, "go_gc_cycles_total_gc_cycles_total")
    if cycles is None:
        cycles = _scalar(series, "go_gc_duration_seconds_count")  # one observation per cycle
    goal = _scalar(series, "go_gc_heap_goal_bytes")
    if goal is None:
        goal = _scalar(series, "go_memstats_next_gc_bytes")
    gogc = _scalar(series, "go_gc_gogc_percent")
    return RuntimeSample(
        t=t,
        source="prometheus",
        gc_cycles=_as_int(cycles),
        forced_gc_cycles=_as_int(_scalar(series, "go_gc_cycles_forced_gc_cycles_total")),
        live_heap_bytes=_as_int(_scalar(series, "go_gc_heap_live_bytes")),
        heap_goal_bytes=_as_int(goal),
        heap_alloc_bytes=_as_int(_scalar(series, "go_memstats_heap_alloc_bytes")),
        stacks_bytes=_as_int(_scalar(series, "go_gc_scan_stack_bytes")),
        globals_bytes=_as_int(_scalar(series, "go_gc_scan_globals_bytes")),
        total_memory_bytes=_as_int(_scalar(series, "go_memstats_sys_bytes")),
        gogc=_as_int(gogc),
        memory_limit_bytes=_as_int(_scalar(series, "go_gc_gomemlimit_bytes")),
        gc_cpu_seconds=None if gc_total is None or gc_idle is None else max(0.0, gc_total - gc_idle),
        total_cpu_seconds=_scalar(series, "go_cpu_classes_total_cpu_seconds_total"),
        gc_cpu_fraction=_scalar(series, "go_memstats_gc_cpu_fraction"),
        pause_p50_s=_pause_quantile(series, "0.5"),
        pause_p99_s=_pause_quantile(series, "0.99"),
        pause_max_s=_quantile(series, "go_gc_duration_seconds", "1"),
        requests_total=None if counter is None else _requests(series, counters, counter, matchers or {}),
        go_version=_go_version(series),
        gomaxprocs=_as_int(_scalar(series, "go_sched_gomaxprocs_threads")),
        heap_allocs_bytes_total=_as_int(_allocated(series)),
        heap_released_bytes=_as_int(_scalar(series, "go_memory_classes_heap_released_bytes")),
        limiter_last_enabled_cycle=_as_int(_scalar(series, "go_gc_limiter_last_enabled_gc_cycle")),
    )


def _allocated(series: _Series) -> float | None:
    """Cumulative bytes allocated: /gc/heap/allocs (opt-in), else the default collector's TotalAlloc."""
    value = _scalar(series, "go_gc_heap_allocs_bytes_total")
    return value if value is not None else _scalar(series, "go_memstats_alloc_bytes_total")


def _family_lines(text: str, prefix: str) -> str:
    """The sample, HELP and TYPE lines of every family whose name starts with `prefix`, in order
    (leading blanks allowed, as prometheus_client allows them)."""
    found = re.findall(rf"^[ \t]*(?:# (?:HELP|TYPE) )?{re.escape(prefix)}.*$", text, re.MULTILINE)
    return "\n".join(found) + "\n" if found else ""


def parse_counter(text: str | bytes, counter: str, matchers: Mapping[str, str] | None = None) -> float:
    """The request counter `counter` (`http_requests_total` or `http_requests`) summed over its series
    that carry every label in `matchers`; errors as `parse_prometheus` raises them."""
    prefix = counter.removesuffix("_total")
    series, counters = _collect(_family_lines(_decoded(text), prefix))
    return _requests(series, counters, counter, matchers or {})


def parse_histogram(
    text: str | bytes, histogram: str, matchers: Mapping[str, str] | None = None
) -> tuple[tuple[float, float], ...]:
    """A client_golang histogram's buckets `(le, cumulative count)`, ascending, summed over its series
    that carry every label in `matchers` (e.g. every handler's latency, or one handler's). Raises
    SourceFormatError when the histogram has no such series or a bucket is not a bucket."""
    series, _ = _collect(_family_lines(_decoded(text), histogram))
    name = f"{histogram}_bucket"
    sums: dict[float, float] = {}
    for labels, count in series.get(name, ()):
        if not all(labels.get(k) == v for k, v in (matchers or {}).items()):
            continue
        try:
            bound = float(labels["le"])
        except (KeyError, ValueError):
            raise _fail(name, f"bucket without a numeric le label: {labels}") from None
        if math.isnan(bound) or not math.isfinite(count) or count < 0:
            raise _fail(name, f"bucket le={labels['le']} has count {count!r}")
        sums[bound] = sums.get(bound, 0.0) + count
    if not sums or math.inf not in sums:
        wanted = f" with labels {dict(matchers)}" if matchers else ""
        raise _fail(histogram, f'no histogram {histogram!r}{wanted} (its _bucket series, up to le="+Inf")')
    return tuple(sorted(sums.items()))


async def fetch_histogram(
    client: httpx.AsyncClient,
    url: str,
    histogram: str,
    *,
    matchers: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[tuple[float, float], ...]:
    """GET a Prometheus text exposition and read one histogram's buckets (see `parse_histogram`)."""
    response = await _get_exposition(client, url, timeout, max_bytes)
    return parse_histogram(response.content, histogram, matchers)


async def fetch_prometheus(
    client: httpx.AsyncClient,
    url: str,
    *,
    t: float,
    counter: str | None = None,
    matchers: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> RuntimeSample:
    """GET a Prometheus text exposition (/metrics) and parse it."""
    response = await _get_exposition(client, url, timeout, max_bytes)
    return parse_prometheus(body_text(response), t=t, counter=counter, matchers=matchers)


async def _get_exposition(
    client: httpx.AsyncClient, url: str, timeout: float, max_bytes: int
) -> httpx.Response:
    async with time_bound(url, timeout):
        return await request(
            client, "GET", url, headers={"Accept": "text/plain"}, timeout=timeout, max_bytes=max_bytes
        )


async def fetch_counter(
    client: httpx.AsyncClient,
    url: str,
    counter: str,
    *,
    matchers: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> float:
    """GET a Prometheus text exposition and read only the request counter (see `parse_counter`)."""
    response = await _get_exposition(client, url, timeout, max_bytes)
    return parse_counter(response.content, counter, matchers)
