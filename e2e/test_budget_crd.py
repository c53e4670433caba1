"""The `Budget` strategy in the GCPolicy CRD, on the real apiserver: defaults, CEL and status fields."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes import client

from e2e.operator_support import (
    GROUP,
    PLURAL,
    VERSION,
    create_policy,
    rejected_policy,
)
from gc_tuner.model.policy import parse_policy
from gc_tuner.model.sample import RuntimeSample
from gc_tuner.tuning.records import PodFit
from gc_tuner.tuning.strategies import desired_memory_limit, recommend

pytestmark = pytest.mark.e2e

BUDGET: dict[str, Any] = {
    "targetRef": {"name": "web"},
    "sampling": {"intervalSeconds": 5, "sources": {"agent": {"port": 8080}}},
    "qps": {"counter": {"name": "http_requests_total", "port": 8080}},
    "strategy": {"type": "Budget"},
    "memoryLimit": {"mode": "FromContainerLimit", "percent": 85},
}


def test_a_budget_policy_is_accepted_and_defaulted_like_the_model(
    namespace: str, kube: Any, crd: None
) -> None:
    from gc_tuner.model.policy import parse_policy

    obj = create_policy(kube, namespace, "budget", copy.deepcopy(BUDGET))
    assert obj["spec"] == parse_policy(copy.deepcopy(BUDGET)).to_crd()
    assert obj["spec"]["strategy"]["budget"] == {
        "minNonHeapMiB": 16,
        "leakMinSpanSeconds": 60,
        "leakMaxTimeToBudgetSeconds": 3600,
    }


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"memoryLimit": {"mode": "Off"}}, "strategy.type Budget needs memoryLimit.mode"),
        ({"memoryLimit": {}}, "strategy.type Budget needs memoryLimit.mode"),  # the default is Off
        ({"strategy": {"type": "Budget", "budget": {"leakMinSpanSeconds": -1}}}, "spec.strategy.budget"),
        ({"strategy": {"type": "Budget", "budget": {"horizonSeconds": 90000}}}, "spec.strategy.budget"),
        ({"strategy": {"type": "Guess"}}, "spec.strategy.type"),
    ],
)
def test_invalid_budget_policies_are_rejected_naming_the_field(
    namespace: str, kube: Any, crd: None, patch: dict[str, Any], message: str
) -> None:
    assert message in rejected_policy(kube, namespace, {**copy.deepcopy(BUDGET), **patch})["message"]


def test_budget_inputs_survive_in_status(namespace: str, kube: Any, crd: None) -> None:
    # Status is pruned to the schema: every input the Budget strategy reports must be declared.
    create_policy(kube, namespace, "budget", copy.deepcopy(BUDGET))
    api = client.CustomObjectsApi(kube)
    spec = parse_policy(copy.deepcopy(BUDGET))
    sample = RuntimeSample(
        t=1.0,
        source="agent",
        live_heap_bytes=150 << 20,
        heap_goal_bytes=300 << 20,
        total_memory_bytes=330 << 20,
        stacks_bytes=1 << 20,
        globals_bytes=1 << 20,
    )
    fit = PodFit(pod="a", qps=10.0, heap_slope_mb_per_s=0.5, r2=0.2, samples=5, sample=sample, heap_span_s=60)
    rec = recommend(spec, 10.0, 0.5, pod_fits=[fit], memory=desired_memory_limit(spec, "1Gi"))
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
    api.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, "budget", body)
    stored = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "budget")
    assert stored["status"]["recommendation"]["inputs"] == pytest.approx(rec.inputs)
    assert {"liveBytes", "predictedLiveBytes", "nonHeapBytes", "budgetBytes", "timeToBudgetSeconds"} <= set(
        stored["status"]["recommendation"]["inputs"]
    )
