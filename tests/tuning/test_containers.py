"""Which container is tuned (tuning/containers.py): named, the only one, or the one the policy's ports
reach; otherwise refused naming the containers. And a container that answers nothing Go-shaped."""

from __future__ import annotations

from typing import Any

import pytest

from gc_tuner.model.policy import parse_policy
from gc_tuner.model.sample import RuntimeSample
from gc_tuner.tuning.containers import choose_container, container_ports, not_go, source_ports
from gc_tuner.tuning.records import PodReading, PodTarget

PROXY = ("istio-proxy", frozenset({15001, 15090}))
APP = ("app", frozenset({8080}))
SHIPPER = ("logs", frozenset())


@pytest.mark.parametrize(
    ("containers", "explicit", "ports", "want"),
    [
        # named: taken as named, whatever the ports say
        ([PROXY, APP], "app", {15090}, ("app", "")),
        ([PROXY, APP], "istio-proxy", {8080}, ("istio-proxy", "")),
        ([PROXY, APP], "web", {8080}, (None, "ContainerNotFound")),
        # one container: that one, even without a declared port
        ([SHIPPER], None, {8080}, ("logs", "")),
        # a sidecar injected first: the container that serves the policy's port, not the first
        ([PROXY, APP], None, {8080}, ("app", "")),
        ([PROXY, APP, SHIPPER], None, {8080, 9090}, ("app", "")),
        # no port of the policy declared anywhere, or by two containers: ambiguous
        ([PROXY, SHIPPER], None, {8080}, (None, "AmbiguousContainer")),
        ([PROXY, APP], None, set(), (None, "AmbiguousContainer")),
        ([PROXY, APP], None, {8080, 15090}, (None, "AmbiguousContainer")),
        ([], None, {8080}, (None, "ContainerNotFound")),
    ],
)
def test_choose_container(
    containers: list[tuple[str, frozenset[int]]], explicit: str | None, ports: set[int], want: tuple[Any, str]
) -> None:
    c = choose_container(containers, explicit, ports, owner="Deployment web")
    assert (c.name, c.reason) == want
    if c.name is None:
        assert "Deployment web" in c.message


def test_ambiguity_names_every_container_and_what_to_set() -> None:
    c = choose_container([PROXY, APP], None, {8080, 15090}, owner="Deployment web")
    assert "istio-proxy, app" in c.message and "8080, 15090" in c.message
    assert "spec.targetRef.container" in c.message
    none = choose_container([PROXY, SHIPPER], None, {8080}, owner="Deployment web")
    assert "none of them declares" in none.message


def test_container_ports_reads_declared_ports_in_order() -> None:
    template = [
        {"name": "proxy", "ports": [{"containerPort": 15001}, {"containerPort": 15090, "name": "m"}]},
        {"name": "app", "ports": [{"containerPort": 8080}]},
        {"name": "bare"},
        {"name": "odd", "ports": [{"containerPort": "8080"}, "x"]},  # not a port: ignored
    ]
    assert container_ports(template) == [
        ("proxy", frozenset({15001, 15090})),
        ("app", frozenset({8080})),
        ("bare", frozenset()),
        ("odd", frozenset()),
    ]


def test_source_ports_are_every_port_the_policy_reads_or_writes() -> None:
    spec = parse_policy(
        {
            "targetRef": {"name": "web"},
            "mode": "Enforce",
            "rollout": {"method": "Endpoint", "endpoint": {"port": 7070}},
            "sampling": {"sources": {"agent": {"port": 8080}, "prometheus": {"port": 9090}}},
            "qps": {"counter": {"name": "http_requests_total", "port": 9100}},
            "guard": {"latency": {"histogram": "h", "port": 9200}},
        }
    )
    assert source_ports(spec) == {7070, 8080, 9090, 9100, 9200}
    traced = parse_policy(
        {
            "targetRef": {"name": "web"},
            "sampling": {"sources": {"gctrace": {}}},
            "qps": {"promql": {"url": "http://p:9090", "query": "q"}},
        }
    )
    assert source_ports(traced) == frozenset()


POD = PodTarget("web-1", "127.0.0.2", container="app")


@pytest.mark.parametrize(
    ("reading", "traced_before", "is_go"),
    [
        # an exporter that is not Go's: a counter, process series, no go_ series
        (
            PodReading(
                POD, RuntimeSample(t=1, source="prometheus", requests_total=5.0), sources_ok=("prometheus",)
            ),
            False,
            False,
        ),
        # one Go figure is enough
        (
            PodReading(POD, RuntimeSample(t=1, source="prometheus", gc_cycles=3), sources_ok=("prometheus",)),
            False,
            True,
        ),
        (
            PodReading(
                POD, RuntimeSample(t=1, source="prometheus", go_version="go1.26"), sources_ok=("prometheus",)
            ),
            False,
            True,
        ),
        # every source failed: nothing is known, the failures say why
        (PodReading(POD, None, sources_ok=()), False, True),
        # gctrace alone cannot tell a quiet Go process from another program
        (PodReading(POD, None, sources_ok=("gctrace",)), False, True),
        # gctrace lines seen before: a Go process that has not collected this interval
        (
            PodReading(POD, RuntimeSample(t=1, source="prometheus"), sources_ok=("prometheus", "gctrace")),
            True,
            True,
        ),
    ],
)
def test_not_go_only_when_an_answer_holds_nothing_go_shaped(
    reading: PodReading, traced_before: bool, is_go: bool
) -> None:
    why = not_go(reading, traced_before=traced_before)
    assert (why is None) == is_go
    if why is not None:
        assert "container app" in why and "prometheus" in why
