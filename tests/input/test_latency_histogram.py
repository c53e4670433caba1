"""The guard's latency signal: a client_golang histogram read from /metrics (input/prometheus.py
parse_histogram) and its windowed p99 (tuning/guard_signals.py bucket_quantile), on crafted
expositions and on the reference workload's real one."""

from __future__ import annotations

import math
import time
from pathlib import Path

import httpx
import pytest

from gc_tuner.input.prometheus import parse_histogram
from gc_tuner.model.sample import RuntimeSample
from gc_tuner.net.errors import SourceFormatError
from gc_tuner.tuning.guard_signals import LATENCY, MIN_REQUESTS, bucket_quantile, window_values

EXPO = """# HELP http_request_duration_seconds Time to serve an HTTP request, by handler.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{code="200",handler="work",method="get",le="0.001"} 10
http_request_duration_seconds_bucket{code="200",handler="work",method="get",le="0.01"} 90
http_request_duration_seconds_bucket{code="200",handler="work",method="get",le="+Inf"} 100
http_request_duration_seconds_sum{code="200",handler="work",method="get"} 0.5
http_request_duration_seconds_count{code="200",handler="work",method="get"} 100
http_request_duration_seconds_bucket{code="500",handler="work",method="get",le="0.001"} 0
http_request_duration_seconds_bucket{code="500",handler="work",method="get",le="0.01"} 0
http_request_duration_seconds_bucket{code="500",handler="work",method="get",le="+Inf"} 4
http_request_duration_seconds_sum{code="500",handler="work",method="get"} 2
http_request_duration_seconds_count{code="500",handler="work",method="get"} 4
http_request_duration_seconds_bucket{code="200",handler="healthz",method="get",le="0.001"} 50
http_request_duration_seconds_bucket{code="200",handler="healthz",method="get",le="0.01"} 50
http_request_duration_seconds_bucket{code="200",handler="healthz",method="get",le="+Inf"} 50
http_request_duration_seconds_sum{code="200",handler="healthz",method="get"} 0.01
http_request_duration_seconds_count{code="200",handler="healthz",method="get"} 50
# TYPE http_requests_total counter
http_requests_total{code="200",handler="work",method="get"} 100
"""


def test_buckets_are_summed_over_the_matching_series() -> None:
    assert parse_histogram(EXPO, "http_request_duration_seconds", {"handler": "work"}) == (
        (0.001, 10.0),
        (0.01, 90.0),
        (math.inf, 104.0),
    )
    assert parse_histogram(EXPO, "http_request_duration_seconds")[-1] == (math.inf, 154.0)


@pytest.mark.parametrize(
    ("text", "matchers", "what"),
    [
        (EXPO, {"handler": "nope"}, "no histogram"),
        ("# TYPE x counter\nx_total 1\n", None, "no histogram"),
        (EXPO.replace('le="+Inf"', 'le="1"'), None, "up to le"),
        ('h_bucket{le="nan"} 1\nh_bucket{le="+Inf"} 1\n', None, "has count"),
        ('h_bucket{x="1"} 1\n', None, "numeric le"),
    ],
)
def test_what_is_not_a_histogram_is_a_clear_error(
    text: str, matchers: dict[str, str] | None, what: str
) -> None:
    name = "h" if text.startswith("h_") else "http_request_duration_seconds"
    with pytest.raises(SourceFormatError, match=what):
        parse_histogram(text, name, matchers)


BUCKETS = (0.001, 0.01, 0.1, math.inf)


def hist(*counts: float) -> tuple[tuple[float, float], ...]:
    return tuple(zip(BUCKETS, counts, strict=True))


@pytest.mark.parametrize(
    ("before", "after", "p99"),
    [
        # 100 new requests, 99 under 10 ms: p99 at the top of the 1-10 ms bucket.
        (hist(0, 0, 0, 0), hist(10, 99, 100, 100), 0.01),
        # Only the window counts: the history before it is taken away.
        (hist(1000, 1000, 1000, 1000), hist(1010, 1099, 1100, 1100), 0.01),
        # Interpolated inside the bucket: rank 99 of 100, 50 below 10 ms, 50 in (10 ms, 100 ms].
        (hist(0, 0, 0, 0), hist(0, 50, 100, 100), 0.01 + 0.09 * (49 / 50)),
        # In the +Inf bucket: its lower bound.
        (hist(0, 0, 0, 0), hist(0, 0, 0, 100), 0.1),
        (hist(0, 0, 0, 0), hist(1, 1, 1, MIN_REQUESTS - 1), None),  # too few requests
        (hist(5, 5, 5, 5), hist(0, 0, 0, 100), None),  # a restarted process
        (hist(0, 0, 0, 0), ((0.001, 1.0), (math.inf, 100.0)), None),  # other buckets
    ],
)
def test_window_p99(
    before: tuple[tuple[float, float], ...], after: tuple[tuple[float, float], ...], p99: float | None
) -> None:
    got = bucket_quantile(0.99, before, after)
    assert got == (pytest.approx(p99) if p99 is not None else None)


def test_the_window_carries_the_latency_p99() -> None:
    a = RuntimeSample(t=0, source="prometheus", gc_cycles=1, latency_buckets=hist(0, 0, 0, 0))
    b = RuntimeSample(t=5, source="prometheus", gc_cycles=2, latency_buckets=hist(10, 99, 100, 100))
    assert window_values(a, b, limit_bytes=None)[LATENCY] == pytest.approx(0.01)


@pytest.mark.go
def test_the_reference_workloads_latency_histogram_reads_and_windows(tmp_path: Path) -> None:
    from tests.integration.workload import Workload, workload_binary

    with Workload(workload_binary(), "127.0.0.21", {"WORKLOAD_LOAD": "steady", "WORKLOAD_QPS": "400"}) as w:
        url = f"{w.base_url}/metrics"
        first = parse_histogram(
            httpx.get(url, timeout=5).content, "http_request_duration_seconds", {"handler": "work"}
        )
        time.sleep(2)
        second = parse_histogram(
            httpx.get(url, timeout=5).content, "http_request_duration_seconds", {"handler": "work"}
        )
    p99 = bucket_quantile(0.99, first, second)
    assert second[-1][1] - first[-1][1] > 400  # about 400 requests a second
    assert p99 is not None and 0 < p99 < 1.0, p99
