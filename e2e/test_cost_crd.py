"""The `Cost` strategy in the GCPolicy CRD, on the real apiserver: defaults, refusals and status fields."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes import client

from e2e.operator_support import GROUP, PLURAL, VERSION, create_policy, rejected_policy
from gc_tuner.model.policy import PolicyError, parse_policy
from gc_tuner.model.sample import RuntimeSample
from gc_tuner.tuning.records import PodFit
from gc_tuner.tuning.strategies import PodHistory, desired_memory_limit, recommend

pytestmark = pytest.mark.e2e

MiB = 1 << 20

COST: dict[str, Any] = {
    "targetRef": {"name": "web"},
    "sampling": {"intervalSeconds": 5, "sources": {"agent": {"port": 8080}}},
    "qps": {"agent": {}},
    "strategy": {"type": "Cost"},
    "bounds": {"minGOGC": 25, "maxGOGC": 1000},
}


def test_a_cost_policy_is_accepted_and_defaulted_like_the_model(namespace: str, kube: Any, crd: None) -> None:
    obj = create_policy(kube, namespace, "cost", copy.deepcopy(COST))
    assert obj["spec"] == parse_policy(copy.deepcopy(COST)).to_crd()
    assert obj["spec"]["strategy"]["cost"] == {
        "cpuPerCoreHourMilli": 40,
        "memoryPerGiBHourMilli": 4,
        "currency": "USD",
        "maxFitErrorPercent": 10,
    }


@pytest.mark.parametrize(
    ("cost", "message"),
    [
        ({"cpuPerCoreHourMilli": -40}, "spec.strategy.cost.cpuPerCoreHourMilli"),
        ({"memoryPerGiBHourMilli": -4}, "spec.strategy.cost.memoryPerGiBHourMilli"),
        ({"memoryPerGiBHourMilli": 0}, "spec.strategy.cost.memoryPerGiBHourMilli"),
        ({"currency": "usd"}, "spec.strategy.cost.currency"),
        ({"maxFitErrorPercent": 0}, "spec.strategy.cost.maxFitErrorPercent"),
        ({"horizonSeconds": 90000}, "spec.strategy.cost.horizonSeconds"),
    ],
)
def test_invalid_cost_policies_are_rejected_by_both_naming_the_field(
    namespace: str, kube: Any, crd: None, cost: dict[str, Any], message: str
) -> None:
    doc = {**copy.deepcopy(COST), "strategy": {"type": "Cost", "cost": cost}}
    assert message in rejected_policy(kube, namespace, copy.deepcopy(doc))["message"]
    with pytest.raises(PolicyError, match=message.replace(".", r"\.")):
        parse_policy(doc)


def test_cost_inputs_survive_in_status(namespace: str, kube: Any, crd: None) -> None:
    # Status is pruned to the schema: every input the Cost strategy reports must be declared.
    create_policy(kube, namespace, "cost", copy.deepcopy(COST))
    api = client.CustomObjectsApi(kube)
    spec = parse_policy({**copy.deepcopy(COST), "memoryLimit": {"mode": "Fixed", "fixed": "256Mi"}})
    samples = tuple(
        RuntimeSample(
            t=1000.0 + i,
            source="agent",
            gc_cycles=i,
            gc_cpu_seconds=i * 0.02 * (1.1 if i % 2 else 1.0),
            requests_total=100.0 * i * (1 + i / 20),
            heap_allocs_bytes_total=i * 50 * MiB,
            live_heap_bytes=30 * MiB,
            stacks_bytes=MiB,
            globals_bytes=MiB,
            gogc=100,
        )
        for i in range(10)
    )
    fit = PodFit(pod="a", qps=100.0, heap_slope_mb_per_s=0.0, r2=0.1, samples=10, sample=samples[-1])
    rec = recommend(
        spec,
        100.0,
        0.0,
        pod_fits=[fit],
        memory=desired_memory_limit(spec, None),
        histories={"a": PodHistory(samples=samples)},
    )
    assert {"budgetCapGOGC", "fitRelativeError", "forecastQPS"} <= set(rec.inputs)
    body = {
        "status": {
            "recommendation": {
                "gogc": rec.gogc,
                "strategy": rec.strategy,
                "explanation": rec.explanation,
                "inputs": rec.inputs,
            }
        }
    }
    api.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, "cost", body)
    stored = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "cost")
    assert stored["status"]["recommendation"]["inputs"] == pytest.approx(rec.inputs)
