"""Scenario 5b, QPS from PromQL: a real Prometheus server (Debian's `prometheus`, started here on
loopback) scrapes the workload pods' /metrics; a policy reading QPS through a PromQL query agrees
with one reading the pods' counter directly, within 10%."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client

from e2e.cluster.manifests import WORKLOAD_PORT, workload_deployment
from e2e.cluster.waits import wait_for
from e2e.operator_support import (
    OperatorProc,
    create_policy,
    get_policy,
    wait_ready,
)
from e2e.prometheus_server import Prometheus

pytestmark = pytest.mark.e2e

INTERVAL = 2
QPS = 150.0
QUERY = 'sum by (pod) (rate(http_requests_total{handler="work"}[10s]))'


@pytest.fixture
def deployed(namespace: str, kube: Any) -> list[Any]:
    client.AppsV1Api(kube).create_namespaced_deployment(
        namespace, workload_deployment("web", replicas=2, env={"WORKLOAD_QPS": str(QPS)})
    )
    return wait_ready(kube, namespace, "web", 2)


@pytest.fixture
def prometheus(deployed: list[Any], tmp_path: Path) -> Iterator[Prometheus]:
    prom = Prometheus(tmp_path, {p.metadata.name: f"{p.status.pod_ip}:{WORKLOAD_PORT}" for p in deployed})
    try:
        yield prom
    finally:
        prom.stop()


def test_promql_qps_agrees_with_the_pod_counter(
    namespace: str, kube: Any, operator: OperatorProc, prometheus: Prometheus
) -> None:
    def spec(qps: dict[str, Any]) -> dict[str, Any]:
        return {
            "targetRef": {"name": "web"},
            "sampling": {
                "intervalSeconds": INTERVAL,
                "windowSeconds": 30,
                "sources": {"agent": {"port": 8080}},
            },
            "qps": qps,
        }

    create_policy(
        kube,
        namespace,
        "by-counter",
        spec({"counter": {"name": "http_requests_total", "matchers": {"handler": "work"}, "port": 8080}}),
    )

    # rate() over [10s] divides by the whole range: a series younger than that reads low. Start the
    # PromQL policy once Prometheus holds a full range for both pods.
    def full_range() -> bool:
        q = 'count_over_time(http_requests_total{handler="work"}[12s]) >= 10'
        r = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": q}, timeout=5).json()
        return len(r["data"]["result"]) == 2

    wait_for(full_range, 60, "12 s of scrapes of both pods in Prometheus")
    create_policy(kube, namespace, "by-promql", spec({"promql": {"url": prometheus.url, "query": QUERY}}))

    def fit(name: str) -> dict[str, Any] | None:
        f = (get_policy(kube, namespace, name).get("status") or {}).get("fit") or {}
        return f if f.get("samples", 0) >= 10 and f.get("pods") == 2 else None

    by_counter = wait_for(lambda: fit("by-counter"), 60, "the counter fit")
    by_promql = wait_for(lambda: fit("by-promql"), 60, "the PromQL fit")
    assert by_promql["qpsSource"] == "PromQL" and by_counter["qpsSource"] == "Counter"
    seen = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": QUERY}, timeout=5).json()
    health = httpx.get(f"{prometheus.url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
    why = (by_promql, by_counter, seen, [(t["labels"], t["health"], t["lastError"]) for t in health])
    assert by_promql["qps"] == pytest.approx(by_counter["qps"], rel=0.10), why
    assert by_promql["qps"] == pytest.approx(QPS, rel=0.15)
    rec = get_policy(kube, namespace, "by-promql")["status"]["recommendation"]
    assert rec["inputs"]["qps"] == pytest.approx(by_promql["qps"], rel=0.10)
