"""parse_prometheus on the exposition of a real client_golang registry, and on broken or arbitrary text.

tests/goprogs/promexpo prints what a scrape of a Go service with client_golang returns: the default Go
and process collectors (optionally with the runtime/metrics GC series) and a labelled
http_requests_total whose values the test chooses.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gc_tuner.input.prometheus import parse_counter, parse_prometheus
from gc_tuner.model.sample import MiB
from gc_tuner.net.errors import SourceFormatError
from tests.input.goprogs import build, system_toolchain

REQUESTS = "method=GET,code=200:5;method=POST,code=500:2;method=GET,code=500:1.5"

# Fuzzing checks correctness, not speed (bench/ measures speed): no per-example deadline.
FUZZ = settings(deadline=None)


@pytest.fixture(scope="module")
def promexpo() -> Path:
    return build("promexpo", system_toolchain())


def scrape(binary: Path, *args: str, env: dict[str, str] | None = None) -> str:
    base = {k: v for k, v in os.environ.items() if k not in {"GOGC", "GOMEMLIMIT"}}
    proc = subprocess.run(
        [str(binary), "-requests", REQUESTS, *args], env={**base, **(env or {})},
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def default_text(promexpo: Path) -> str:
    return scrape(promexpo)


@pytest.fixture(scope="module")
def runtime_text(promexpo: Path) -> str:
    return scrape(promexpo, "-runtime-metrics")


def value_of(text: str, series: str) -> float:
    """The value of one series, read with a plain line match (independent of the parser under test)."""
    m = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    assert m, f"{series} not in the exposition"
    return float(m.group(1))


@pytest.mark.go
def test_default_go_collector(default_text: str) -> None:
    s = parse_prometheus(default_text, t=5.0)
    assert s.source == "prometheus" and s.t == 5.0
    assert s.heap_alloc_bytes == value_of(default_text, "go_memstats_heap_alloc_bytes")
    assert s.heap_goal_bytes == value_of(default_text, "go_memstats_next_gc_bytes")
    assert s.total_memory_bytes == value_of(default_text, "go_memstats_sys_bytes")
    assert s.gc_cycles == value_of(default_text, "go_gc_duration_seconds_count") >= 3
    assert s.pause_p50_s == value_of(default_text, 'go_gc_duration_seconds{quantile="0.5"}')
    assert s.pause_max_s == value_of(default_text, 'go_gc_duration_seconds{quantile="1"}')
    assert s.pause_p99_s is None  # client_golang's summary has no 0.99 quantile
    assert s.gogc == 100 and s.memory_limit_bytes is None  # MaxInt64 means no limit
    assert s.go_version is not None and s.go_version.startswith("go1.")
    # only the opt-in runtime/metrics series carry these
    assert s.live_heap_bytes is None and s.gc_cpu_seconds is None and s.forced_gc_cycles is None
    assert s.requests_total is None
    # the allocation counter falls back on MemStats.TotalAlloc (the Cost strategy's allocation rate)
    assert s.heap_allocs_bytes_total == value_of(default_text, "go_memstats_alloc_bytes_total") > 0


@pytest.mark.go
def test_runtime_metrics_series(runtime_text: str) -> None:
    s = parse_prometheus(runtime_text.encode(), t=0.0)
    v = lambda name: value_of(runtime_text, name)  # noqa: E731
    assert s.live_heap_bytes == v("go_gc_heap_live_bytes") and not s.live_heap_estimated
    assert s.heap_goal_bytes == v("go_gc_heap_goal_bytes")
    assert s.gc_cycles == v("go_gc_cycles_total_gc_cycles_total")
    assert s.forced_gc_cycles == v("go_gc_cycles_forced_gc_cycles_total") == 3  # the program's runtime.GC()s
    assert s.stacks_bytes == v("go_gc_scan_stack_bytes") and s.globals_bytes == v("go_gc_scan_globals_bytes")
    gc = v("go_cpu_classes_gc_total_cpu_seconds_total") - v("go_cpu_classes_gc_mark_idle_cpu_seconds_total")
    assert s.gc_cpu_seconds == pytest.approx(gc) and s.gc_cpu_seconds is not None and s.gc_cpu_seconds > 0
    assert s.total_cpu_seconds == v("go_cpu_classes_total_cpu_seconds_total")
    assert s.gomaxprocs == v("go_sched_gomaxprocs_threads")
    assert s.heap_allocs_bytes_total == v("go_gc_heap_allocs_bytes_total")
    assert s.heap_released_bytes == v("go_memory_classes_heap_released_bytes")
    assert s.limiter_last_enabled_cycle == v("go_gc_limiter_last_enabled_gc_cycle")
    assert s.live_heap_bytes is not None and s.live_heap_bytes >= 16 * MiB  # the program holds 16 MiB
    # The summary has no 0.99 quantile; the runtime histogram gives the bound of the p99 bucket.
    bucket_line = r'^go_sched_pauses_total_gc_seconds_bucket\{le="([^"]+)"\} (\S+)$'
    buckets = sorted((float(le), float(n)) for le, n in re.findall(bucket_line, runtime_text, re.M))
    total = buckets[-1][1]
    assert total >= 6  # two pauses per cycle, at least the program's three runtime.GC()s
    assert s.pause_p99_s == next(le for le, n in buckets if n >= math.ceil(0.99 * total))
    assert s.pause_p50_s == v('go_gc_duration_seconds{quantile="0.5"}')  # the summary still wins


def test_pause_p99_from_the_runtime_histogram() -> None:
    text = (
        "# TYPE go_sched_pauses_total_gc_seconds histogram\n"
        'go_sched_pauses_total_gc_seconds_bucket{le="1e-05"} 90\n'
        'go_sched_pauses_total_gc_seconds_bucket{le="0.0001"} 98\n'
        'go_sched_pauses_total_gc_seconds_bucket{le="0.001"} 99\n'
        'go_sched_pauses_total_gc_seconds_bucket{le="+Inf"} 100\n'
        "go_sched_pauses_total_gc_seconds_sum 0.01\ngo_sched_pauses_total_gc_seconds_count 100\n"
    )
    s = parse_prometheus(text, t=0.0)
    assert (s.pause_p50_s, s.pause_p99_s) == (1e-05, 0.001)
    overflow = text.replace(' 99\n', ' 98\n')  # the 99th pause is in the +Inf bucket: its lower bound
    assert parse_prometheus(overflow, t=0.0).pause_p99_s == 0.001
    empty = re.sub(r"\} \d+", "} 0", text)
    assert parse_prometheus(empty, t=0.0).pause_p99_s is None


@pytest.mark.go
@pytest.mark.parametrize(
    ("counter", "matchers", "total"),
    [
        ("http_requests_total", None, 8.5),
        ("http_requests", None, 8.5),  # prometheus_client's family name, without _total
        ("http_requests_total", {"method": "GET"}, 6.5),
        ("http_requests_total", {"method": "GET", "code": "500"}, 1.5),
        ("http_requests", {"code": "500"}, 3.5),
    ],
)
def test_request_counter_summed_over_matching_series(
    runtime_text: str, counter: str, matchers: dict[str, str] | None, total: float
) -> None:
    assert parse_prometheus(runtime_text, t=0.0, counter=counter, matchers=matchers).requests_total == total


@pytest.mark.go
@pytest.mark.parametrize(
    ("counter", "matchers"),
    [
        ("http_requests_total", {"code": "404"}),
        ("http_requests_total", {"handler": "/"}),
        ("grpc_requests_total", None),
        ("http_requests_created", None),  # the _created sample is no request count
    ],
)
def test_a_counter_without_matching_series_is_an_error_naming_it(
    runtime_text: str, counter: str, matchers: dict[str, str] | None
) -> None:
    with pytest.raises(SourceFormatError) as e:
        parse_prometheus(runtime_text, t=0.0, counter=counter, matchers=matchers)
    assert e.value.source == "prometheus" and e.value.field == counter


@pytest.mark.go
@pytest.mark.parametrize(
    ("env", "gogc", "limit"),
    [({"GOGC": "50", "GOMEMLIMIT": "64MiB"}, 50, 64 * MiB), ({"GOGC": "off"}, None, None)],
    ids=["GOGC=50,GOMEMLIMIT=64MiB", "GOGC=off"],
)
def test_gogc_and_memory_limit(
    promexpo: Path, env: dict[str, str], gogc: int | None, limit: int | None
) -> None:
    text = scrape(promexpo, env=env)
    s = parse_prometheus(text, t=0.0)
    assert s.gogc == gogc and s.memory_limit_bytes == limit
    if gogc is None:  # the runtime reads GOGC=off as MaxUint64 and client_golang exports it as is
        assert value_of(text, "go_gc_gogc_percent") == 2.0**64
        assert value_of(text, "go_memstats_next_gc_bytes") > 2.0**62  # no goal without GC and limit
        assert s.heap_goal_bytes is None
    else:
        assert s.heap_goal_bytes == value_of(text, "go_memstats_next_gc_bytes")


def _replace_line(text: str, prefix: str, line: str) -> str:
    out = re.sub(rf"^{re.escape(prefix)}.*$", line, text, count=1, flags=re.MULTILINE)
    assert out != text
    return out


_OK200 = 'http_requests_total{code="200",method="GET"'
BREAKAGES = [
    ("go_goroutines ", "go_goroutines many", "<exposition>"),
    ("go_goroutines ", 'go_goroutines{a="b} 1', "<exposition>"),
    ("go_memstats_heap_alloc_bytes ", "go_memstats_heap_alloc_bytes -5", "go_memstats_heap_alloc_bytes"),
    (
        "go_memstats_sys_bytes ",
        'go_memstats_sys_bytes{pod="a"} 1\ngo_memstats_sys_bytes{pod="b"} 2',
        "go_memstats_sys_bytes",
    ),
    (_OK200, _OK200 + "} NaN", "http_requests_total"),
    (_OK200, _OK200 + "} -3", "http_requests_total"),
]


@pytest.mark.go
@pytest.mark.parametrize(
    ("prefix", "line", "field"),
    BREAKAGES,
    ids=["bad-value", "bad-labels", "negative", "two-series", "nan-counter", "negative-counter"],
)
def test_a_broken_real_exposition_names_what_is_wrong(
    runtime_text: str, prefix: str, line: str, field: str
) -> None:
    with pytest.raises(SourceFormatError) as e:
        parse_prometheus(_replace_line(runtime_text, prefix, line), t=0.0, counter="http_requests_total")
    assert e.value.source == "prometheus" and e.value.field == field, e.value


def test_not_utf8() -> None:
    with pytest.raises(SourceFormatError) as e:
        parse_prometheus(b"go_goroutines 1\n\xff\xfe\n", t=0.0)
    assert e.value.field == "<exposition>" and "UTF-8" in e.value.message


def test_nan_gauges_and_quantiles_read_as_unknown() -> None:
    text = (
        "# TYPE go_gc_duration_seconds summary\n"
        'go_gc_duration_seconds{quantile="0.5"} NaN\ngo_gc_duration_seconds{quantile="1.0"} 0.002\n'
        "go_gc_duration_seconds_sum 0\ngo_gc_duration_seconds_count 0\n"
        "go_memstats_heap_alloc_bytes NaN\n"
    )
    s = parse_prometheus(text + "go_memstats_next_gc_bytes +Inf\n", t=0.0)
    assert s.pause_p50_s is None and s.pause_max_s == 0.002 and s.gc_cycles == 0
    assert s.heap_alloc_bytes is None and s.heap_goal_bytes is None


def test_empty_exposition_is_a_sample_that_knows_nothing() -> None:
    s = parse_prometheus("", t=3.0)
    assert s.gc_cycles is None and s.heap_goal_bytes is None and s.requests_total is None
    with pytest.raises(SourceFormatError):
        parse_prometheus("", t=3.0, counter="http_requests_total")


_names = st.sampled_from(["http_requests_total", "http_requests", "x", "go_goroutines", ""])


@FUZZ
@given(st.binary(max_size=1500), _names)
def test_arbitrary_bytes_raise_only_the_typed_error(text: bytes, counter: str) -> None:
    with contextlib.suppress(SourceFormatError):
        parse_prometheus(text, t=0.0, counter=counter or None)


@FUZZ
@given(st.text(max_size=1500), _names, st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2))
def test_arbitrary_text_raises_only_the_typed_error(
    text: str, counter: str, matchers: dict[str, str]
) -> None:
    with contextlib.suppress(SourceFormatError):
        parse_prometheus(text, t=0.0, counter=counter or None, matchers=matchers)


@pytest.mark.go
@settings(FUZZ, suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=100)
@given(st.data())
def test_real_exposition_with_random_damage(runtime_text: str, data: st.DataObject) -> None:
    lines = runtime_text.splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(lines) - 1))
        cut = data.draw(st.integers(0, len(lines[i])))
        special = st.sampled_from(["{", "}", '"', " ", "\\", "#", "NaN", "-1e400", "\n# TYPE x counter\n"])
        junk = data.draw(st.text(max_size=12) | special)
        lines[i] = lines[i][:cut] + junk + lines[i][cut:]
    try:
        s = parse_prometheus("\n".join(lines) + "\n", t=0.0, counter="http_requests_total")
    except SourceFormatError:
        return
    assert s.requests_total is not None and math.isfinite(s.requests_total)


@pytest.mark.go
@pytest.mark.parametrize(
    ("counter", "matchers"),
    [
        ("http_requests_total", None),
        ("http_requests", None),
        ("http_requests_total", {"method": "GET"}),
        ("http_requests", {"code": "500"}),
        ("http_requests_total", {"code": "404"}),
        ("grpc_requests_total", None),
        ("http_requests_created", None),
    ],
)
def test_counter_only_parse_agrees_with_the_full_parse(
    runtime_text: str, counter: str, matchers: dict[str, str] | None
) -> None:
    try:
        full: float | str | None = parse_prometheus(
            runtime_text, t=0.0, counter=counter, matchers=matchers
        ).requests_total
    except SourceFormatError as e:
        full = str(e)
    try:
        only: float | str = parse_counter(runtime_text.encode(), counter, matchers)
    except SourceFormatError as e:
        only = str(e)
    assert only == full


def test_counter_only_parse_ignores_other_families_but_not_its_own_damage() -> None:
    text = (
        "# TYPE go_goroutines gauge\ngo_goroutines{ broken\n"
        "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n"
        '  http_requests_total{code="200"} 7\nhttp_requests_in_flight 3\n'
    )
    assert parse_counter(text, "http_requests_total") == 7.0
    with pytest.raises(SourceFormatError, match="not the Prometheus text format"):
        parse_counter(text.replace("} 7", "} seven"), "http_requests_total")
    with pytest.raises(SourceFormatError, match="not UTF-8"):
        parse_counter(b"\xff\xfe", "http_requests_total")
    with pytest.raises(SourceFormatError, match="no series of counter 'http_requests_total'"):
        parse_counter("<html>nope</html>", "http_requests_total")


@FUZZ
@given(st.text(max_size=1500), _names, st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2))
def test_counter_only_parse_raises_only_the_typed_error_and_agrees_when_both_parse(
    text: str, counter: str, matchers: dict[str, str]
) -> None:
    if not counter:
        return
    try:
        only = parse_counter(text, counter, matchers)
    except SourceFormatError:
        return
    with contextlib.suppress(SourceFormatError):
        assert parse_prometheus(text, t=0.0, counter=counter, matchers=matchers).requests_total == only
