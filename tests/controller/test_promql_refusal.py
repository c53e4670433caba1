"""--promql-url-prefix: the operator queries only Prometheus URLs it is allowed to (controller/runner.py),
for QPS and for the guard's latency alike."""

from __future__ import annotations

from typing import Any

import pytest

from gc_tuner.controller.runner import promql_refusal
from gc_tuner.model.policy import parse_policy


def spec(qps_url: str | None = None, latency_url: str | None = None) -> Any:
    doc: dict[str, Any] = {
        "targetRef": {"name": "web"},
        "sampling": {"sources": {"agent": {"port": 8080}}},
        "qps": {"promql": {"url": qps_url, "query": "q"}} if qps_url else {"agent": {}},
    }
    if latency_url:
        doc["guard"] = {"latency": {"promql": {"url": latency_url, "query": "q"}}}
    return parse_policy(doc)


ALLOWED = ["http://prometheus.monitoring:9090"]


@pytest.mark.parametrize(
    ("qps", "latency", "refused"),
    [
        (None, None, None),
        ("http://prometheus.monitoring:9090", None, None),
        ("http://169.254.169.254", None, "qps.promql.url"),
        (None, "http://prometheus.monitoring:9090/", None),
        (None, "http://169.254.169.254", "guard.latency.promql.url"),
        ("http://prometheus.monitoring:9090", "http://10.0.0.1:8080", "guard.latency.promql.url"),
    ],
)
def test_each_promql_url_must_be_under_an_allowed_prefix(
    qps: str | None, latency: str | None, refused: str | None
) -> None:
    why = promql_refusal(spec(qps, latency), ALLOWED)
    if refused is None:
        assert why is None
    else:
        assert why is not None and why.startswith(refused) and "--promql-url-prefix" in why, why
    assert promql_refusal(spec(qps, latency), []) is None  # no prefixes given: any URL
