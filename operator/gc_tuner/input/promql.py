"""QPS from a Prometheus server: one instant PromQL query, read as per-pod rates.

The query is the user's (`spec.qps.promql.query`), e.g.
`sum by (pod) (rate(http_requests_total{namespace="shop"}[1m]))`. Each series of the resulting
vector names its pod in the `pod_label` label; a lone series without that label is a value that
applies to every pod (keyed None). Anything else the API returns is a SourceFormatError naming
the field, and transport failures map to the FetchError tree of net/errors.py.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Mapping
from typing import Any

import httpx

from gc_tuner.net.errors import SourceFormatError
from gc_tuner.net.transport import DEFAULT_MAX_BYTES, json_body, request, time_bound

__all__ = ["fetch_promql", "parse_promql_buckets", "parse_promql_vector", "query_promql"]

MAX_BUCKETS = 200  # per pod: client_golang's default has 11; native conversions stay far below this


def _vector(doc: Any) -> list[tuple[int, Mapping[str, Any], Any]]:
    """The (index, metric, value) of each series of an instant-vector answer."""
    if not isinstance(doc, Mapping):
        raise SourceFormatError("promql", "$", "response is not a JSON object")
    if doc.get("status") != "success":
        raise SourceFormatError("promql", "status", f"query failed: {doc.get('error', doc.get('status'))!r}")
    data = doc.get("data")
    if not isinstance(data, Mapping):
        raise SourceFormatError("promql", "data", "missing or not an object")
    if data.get("resultType") != "vector":
        raise SourceFormatError(
            "promql", "data.resultType", f"expected an instant vector, got {data.get('resultType')!r}"
        )
    result = data.get("result")
    if not isinstance(result, list):
        raise SourceFormatError("promql", "data.result", "not a list")
    out = []
    for i, series in enumerate(result):
        metric = series.get("metric") if isinstance(series, Mapping) else None
        value = series.get("value") if isinstance(series, Mapping) else None
        if not isinstance(metric, Mapping) or not isinstance(value, list) or len(value) != 2:
            raise SourceFormatError("promql", f"data.result[{i}]", "expected {metric: {...}, value: [t, v]}")
        out.append((i, metric, value[1]))
    return out


def parse_promql_buckets(doc: Any, pod_label: str) -> dict[str, tuple[tuple[float, float], ...]]:
    """Per-pod cumulative histogram buckets ((le, count), ascending le) from an instant vector with
    one series per pod and `le` (as `sum by (pod, le) (x_bucket{...})` returns)."""
    per_pod: dict[str, dict[float, float]] = {}
    for i, metric, raw in _vector(doc):
        pod, le = metric.get(pod_label), metric.get("le")
        if pod is None or le is None:
            missing = pod_label if pod is None else "le"
            raise SourceFormatError(
                "promql",
                f"data.result[{i}].metric.{missing}",
                f"no {missing} label; aggregate by ({pod_label}, le)",
            )
        bound = _le(le, f"data.result[{i}].metric.le")
        buckets = per_pod.setdefault(str(pod), {})
        if bound in buckets:
            raise SourceFormatError(
                "promql", f"data.result[{i}]", f"two series for {pod} le={le}; aggregate by ({pod_label}, le)"
            )
        if len(buckets) >= MAX_BUCKETS:
            raise SourceFormatError(
                "promql", f"data.result[{i}]", f"more than {MAX_BUCKETS} buckets for {pod}"
            )
        buckets[bound] = _number(raw, f"data.result[{i}].value[1]")
    return {pod: tuple(sorted(b.items())) for pod, b in per_pod.items()}


def _le(v: Any, fieldname: str) -> float:
    if v == "+Inf":
        return math.inf
    x = _number(v, fieldname)
    return x


def parse_promql_vector(doc: Any, pod_label: str) -> dict[str | None, float]:
    """Per-pod values from a /api/v1/query response document."""
    if not isinstance(doc, Mapping):
        raise SourceFormatError("promql", "$", "response is not a JSON object")
    if doc.get("status") != "success":
        raise SourceFormatError("promql", "status", f"query failed: {doc.get('error', doc.get('status'))!r}")
    data = doc.get("data")
    if not isinstance(data, Mapping):
        raise SourceFormatError("promql", "data", "missing or not an object")
    rtype = data.get("resultType")
    result = data.get("result")
    if rtype == "scalar" and isinstance(result, list) and len(result) == 2:
        return {None: _number(result[1], "data.result[1]")}
    if rtype != "vector":
        raise SourceFormatError("promql", "data.resultType", f"expected an instant vector, got {rtype!r}")
    if not isinstance(result, list):
        raise SourceFormatError("promql", "data.result", "not a list")
    out: dict[str | None, float] = {}
    for i, series in enumerate(result):
        if not isinstance(series, Mapping):
            raise SourceFormatError("promql", f"data.result[{i}]", "not an object")
        metric = series.get("metric") or {}
        value = series.get("value")
        if not isinstance(metric, Mapping) or not isinstance(value, list) or len(value) != 2:
            raise SourceFormatError("promql", f"data.result[{i}]", "expected {metric: {...}, value: [t, v]}")
        pod = metric.get(pod_label)
        key = str(pod) if pod is not None else None
        if key in out:
            raise SourceFormatError(
                "promql",
                f"data.result[{i}].metric.{pod_label}",
                f"two series for {key or 'the unlabelled value'}; aggregate the query by {pod_label}",
            )
        out[key] = _number(value[1], f"data.result[{i}].value[1]")
    return out


def _number(v: Any, fieldname: str) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a JSON integer beyond float64
        raise SourceFormatError("promql", fieldname, f"not a number: {reprlib.repr(v)}") from None
    if not math.isfinite(x):
        raise SourceFormatError("promql", fieldname, f"not a finite number: {v!r}")
    return x


async def query_promql(
    client: httpx.AsyncClient, base_url: str, query: str, *, timeout: float, max_bytes: int
) -> Any:
    """The JSON document of an instant query against `base_url` (e.g. http://127.0.0.1:9090)."""
    url = base_url.rstrip("/") + "/api/v1/query"
    # The one mapping of the error tree (net/transport.py): 400/422 (a bad query, Prometheus's message
    # kept) are RejectedError, 401/403 AuthError, transport failures Unreachable/Timeout.
    async with time_bound(url, timeout):
        resp = await request(
            client, "GET", url, params={"query": query}, timeout=timeout, max_bytes=max_bytes
        )
    return json_body(resp, "promql")


async def fetch_promql(
    client: httpx.AsyncClient,
    base_url: str,
    query: str,
    *,
    pod_label: str = "pod",
    timeout: float = 5.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> dict[str | None, float]:
    """Run an instant query against `base_url` and parse the vector (per-pod values)."""
    doc = await query_promql(client, base_url, query, timeout=timeout, max_bytes=max_bytes)
    return parse_promql_vector(doc, pod_label)
