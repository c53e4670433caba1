"""The GCPolicy's two validators agree on the real apiserver: the CRD (schema + CEL) and the pydantic
model (`gc-tuner local --policy`) accept and refuse the same specs, for the same reason.

memoryLimit.fixed: a quantity from 32Mi (the agent's floor) to MaxInt64 - 1 bytes, compared the way
the apiserver's CEL `quantity()` does (exact, rounded up to a whole nano, a binary quantity above
MaxInt64 capped to it). Types: no coercion, `true` and "15" are not integers, 15 is not a string.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from e2e.operator_support import create_policy, rejected_policy
from gc_tuner.logic.memlimit import parse_quantity, render_gomemlimit
from gc_tuner.model.policy import FIXED_MAX_BYTES, FIXED_MIN_BYTES, PolicyError, parse_policy

pytestmark = pytest.mark.e2e

VALID: dict[str, Any] = {
    "targetRef": {"name": "web"},
    "sampling": {"intervalSeconds": 5, "sources": {"agent": {"port": 8080}}},
    "qps": {"counter": {"name": "http_requests_total", "port": 8080}},
}

SYNTAX = "memoryLimit.fixed must be a quantity"
FLOOR = "memoryLimit.fixed must be at least 32Mi: the gc-tuner agent refuses"
CEILING = "memoryLimit.fixed must be at most 9223372036854775806 bytes"

FIXED_REFUSED = [
    ("1e400", CEILING),  # was an OverflowError in the model, accepted by the old CRD
    ("16Ei", CEILING),  # the apiserver caps it to MaxInt64
    ("8Ei", CEILING),  # 2^63: capped to MaxInt64 as well
    ("9223372036854775807", CEILING),  # MaxInt64 is Go's "no limit"
    ("9223372036854775806.0000000001", CEILING),  # rounded up to a nano: still above
    ("4Mi", FLOOR),  # below the agent's floor: could never be applied
    ("33554431", FLOOR),  # 32Mi - 1 byte
    ("1e-400", FLOOR),
    ("33554432e4294967296", SYNTAX),  # ParseQuantity truncates the exponent to int32: it reads as 32Mi
    ("1e0009", SYNTAX),  # an exponent of at most 3 digits
    ("-64Mi", SYNTAX),
    ("1.5GB", SYNTAX),
]

FIXED_ACCEPTED = [
    "32Mi",
    "33554432",
    ".03125Gi",  # 32Mi
    "33554431.9999999999",  # rounded up to a nano: 32Mi
    "900Mi",
    "1.5Gi",
    "7Ei",
    "9223372036854775806",
    "9223372036854775805.9999999999",  # rounded up to a nano: MaxInt64 - 1
]


@pytest.fixture(scope="module")
def ns(kube: Any, crd: None) -> Iterator[str]:
    """One namespace for the module: these tests only create policies."""
    core = client.CoreV1Api(kube)
    name = f"policy-validation-{uuid.uuid4().hex[:5]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"e2e": "true"})))
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")


def _fixed(value: Any) -> dict[str, Any]:
    return {**copy.deepcopy(VALID), "memoryLimit": {"mode": "Fixed", "fixed": value}}


def _name() -> str:
    return f"p-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize(("fixed", "message"), FIXED_REFUSED, ids=[f for f, _ in FIXED_REFUSED])
def test_fixed_memory_limits_out_of_range_are_refused_by_both_layers(
    kube: Any, ns: str, fixed: str, message: str
) -> None:
    status = rejected_policy(kube, ns, _fixed(fixed))
    assert message in status["message"], status["message"]
    assert any(c.get("field") == "spec.memoryLimit.fixed" for c in status["details"]["causes"]), status
    with pytest.raises(PolicyError) as e:
        parse_policy(_fixed(fixed))
    assert f"spec.memoryLimit.fixed: Value error, {message}" in str(e.value)


@pytest.mark.parametrize("fixed", FIXED_ACCEPTED)
def test_fixed_memory_limits_in_range_are_accepted_by_both_layers(kube: Any, ns: str, fixed: str) -> None:
    obj = create_policy(kube, ns, _name(), _fixed(fixed))
    spec = parse_policy(_fixed(fixed))
    assert obj["spec"] == spec.to_crd()
    # And the cycle can render it: a whole number of bytes within the range, as Go reads it.
    n = parse_quantity(fixed)
    assert FIXED_MIN_BYTES <= n <= FIXED_MAX_BYTES
    render_gomemlimit(n)


STRICT = [
    ("sampling.intervalSeconds", True),
    ("sampling.intervalSeconds", "15"),
    ("sampling.intervalSeconds", 15.5),
    ("sampling.sources.agent.port", "8080"),
    ("rollout.cooldownSeconds", False),
    ("memoryLimit.percent", "90"),
    ("memoryLimit.fixed", 1073741824),
    ("targetRef.name", 123),
    ("qps.counter.name", True),
    ("strategy.formula.baseGOGC", "100"),
]


def _with(path: str, value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(VALID)
    node = spec
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    return spec


@pytest.mark.parametrize(("path", "value"), STRICT, ids=[f"{p}={v!r}" for p, v in STRICT])
def test_values_of_the_wrong_type_are_refused_by_both_layers_not_coerced(
    kube: Any, ns: str, path: str, value: Any
) -> None:
    status = rejected_policy(kube, ns, _with(path, value))
    assert f"spec.{path}" in status["message"], status["message"]
    with pytest.raises(PolicyError) as e:
        parse_policy(_with(path, value))
    assert f"spec.{path}" in str(e.value)
