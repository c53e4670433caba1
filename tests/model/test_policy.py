"""The GCPolicy models state the CRD's rules a second time; these tests keep the two in step.

The CRD is walked like the apiserver's defaulting does (an object's `default: {}` materialises it,
then its properties' defaults apply), and the result must equal what the models produce from the
same minimal spec. Bounds, enums and patterns are compared field by field.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from gc_tuner.logic.formula import DEFAULT_FORMULA_PARAMS
from gc_tuner.model.policy import GCPolicySpec, PolicyError, parse_policy
from gc_tuner.tuning.strategies import formula_params

CRD = Path(__file__).resolve().parents[2] / "crds" / "gcpolicies.gctuner.io.yaml"

MINIMAL: dict[str, Any] = {
    "targetRef": {"name": "web"},
    "sampling": {
        "sources": {
            "agent": {"port": 8080},
            "expvar": {"port": 8080},
            "prometheus": {"port": 8080},
            "gctrace": {},
        }
    },
    "qps": {"counter": {"name": "http_requests_total"}},
    "rollout": {"endpoint": {"port": 8080, "tokenSecretRef": {"name": "tok"}}},
}


def _crd_schema() -> dict[str, Any]:
    doc = yaml.safe_load(CRD.read_text())
    (version,) = doc["spec"]["versions"]
    return dict(version["schema"]["openAPIV3Schema"]["properties"]["spec"])


def _apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Structural-schema defaulting: fill absent properties that have a default, recursively."""
    if schema.get("type") == "object" and isinstance(value, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = _apply_defaults(sub, value[name])
    return value


def _walk(schema: dict[str, Any], path: str = "spec") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, schema)]
    for name, sub in (schema.get("properties") or {}).items():
        out.extend(_walk(sub, f"{path}.{name}"))
    return out


def _model_field(path: str) -> Any:
    """The pydantic FieldInfo for a CRD path like spec.rollout.cooldownSeconds (via aliases)."""
    model: type[BaseModel] = GCPolicySpec
    info = None
    for part in path.split(".")[1:]:
        fields = {f.alias or n: f for n, f in model.model_fields.items()}
        assert part in fields, f"{path}: the model has no field {part!r}"
        info = fields[part]
        ann = info.annotation
        for arg in getattr(ann, "__args__", (ann,)):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                model = arg
                break
    return info


def test_crd_defaults_equal_model_defaults() -> None:
    by_crd = _apply_defaults(_crd_schema(), copy.deepcopy(MINIMAL))
    by_model = parse_policy(copy.deepcopy(MINIMAL)).to_crd()
    assert by_model == by_crd


def test_every_crd_field_exists_in_the_model_with_the_same_bounds() -> None:
    checked = 0
    for path, sub in _walk(_crd_schema()):
        if path == "spec" or path.endswith(".matchers"):
            continue
        info = _model_field(path)
        meta = {type(m).__name__: m for m in info.metadata}
        if "minimum" in sub:
            assert meta["Ge"].ge == sub["minimum"], path
        if "maximum" in sub:
            assert meta["Le"].le == sub["maximum"], path
        if "maxLength" in sub:
            assert meta["MaxLen"].max_length == sub["maxLength"], path
        if "pattern" in sub:
            assert any(getattr(m, "pattern", None) == sub["pattern"] for m in info.metadata), path
        if "enum" in sub:
            assert set(getattr(info.annotation, "__args__", ())) == set(sub["enum"]), path
        if "default" in sub and sub["default"] != {}:
            assert info.default == sub["default"], path
        checked += 1
    assert checked > 50  # the walk really covered the schema


def test_every_field_of_the_crd_is_bounded() -> None:
    for path, sub in _walk(_crd_schema()):
        t = sub.get("type")
        if t == "integer":
            assert "minimum" in sub and "maximum" in sub, f"{path}: integer without bounds"
        elif t == "string" and "enum" not in sub:
            assert "maxLength" in sub, f"{path}: string without maxLength"
        elif t == "object" and "additionalProperties" in sub:
            assert "maxProperties" in sub, f"{path}: map without maxProperties"
        assert t != "number", f"{path}: floats do not belong in spec"


def test_formula_defaults_are_the_articles() -> None:
    spec = parse_policy(copy.deepcopy(MINIMAL))
    assert formula_params(spec) == DEFAULT_FORMULA_PARAMS


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"bounds": {"minGOGC": 300, "maxGOGC": 200}}, "bounds.minGOGC must be <= bounds.maxGOGC"),
        ({"rollout": {"method": "Endpoint"}}, "rollout.endpoint.port is required"),
        ({"memoryLimit": {"mode": "FromContainerLimit", "percent": 40}}, "spec.memoryLimit.percent"),
        ({"memoryLimit": {"mode": "Fixed"}}, "memoryLimit.fixed is required"),
        ({"memoryLimit": {"mode": "Fixed", "fixed": "100MB!"}}, "memoryLimit.fixed must be a quantity"),
        ({"memoryLimit": {"mode": "Fixed", "fixed": "1Mi"}}, "at least 4Mi"),
        ({"qps": {}}, "exactly one of qps.counter, qps.promql or qps.agent"),
        ({"qps": {"agent": {}, "counter": {"name": "x", "port": 1}}}, "exactly one"),
        (
            {"qps": {"agent": {}}, "sampling": {"sources": {"prometheus": {"port": 1}}}},
            "qps.agent needs sampling.sources.agent",
        ),
        (
            {"qps": {"counter": {"name": "x"}, "promql": {"url": "http://p:9090", "query": "up"}}},
            "exactly one",
        ),
        ({"mode": "Auto"}, "spec.mode"),
        (
            {"sampling": {"intervalSeconds": 0, "sources": {"agent": {"port": 1}}}},
            "spec.sampling.intervalSeconds",
        ),
        (
            {"sampling": {"intervalSeconds": 10, "windowSeconds": 20, "sources": {"agent": {"port": 1}}}},
            "windowSeconds must be at least 3",
        ),
        ({"sampling": {"sources": {}}}, "needs at least one of agent"),
        ({"targetRef": {"name": "Web_1"}}, "spec.targetRef.name"),
        ({"strategy": {"type": "Magic"}}, "spec.strategy.type"),
        ({"strategy": {"type": "Budget"}}, "strategy.type Budget needs memoryLimit.mode"),
        (
            {"strategy": {"type": "Budget", "budget": {"leakMinSpanSeconds": -1}}},
            "spec.strategy.budget.leakMinSpanSeconds",
        ),
        (
            {"strategy": {"formula": {"slopeCoefficientMilli": 0.2}}},
            "spec.strategy.formula.slopeCoefficientMilli",
        ),
        ({"qps": {"counter": {"name": "r", "matchers": {"bad-label": "x"}}}}, "matchers keys"),
        ({"unknownField": 1}, "spec.unknownField"),
    ],
)
def test_invalid_policies_name_the_field(patch: dict[str, Any], field: str) -> None:
    doc = {**copy.deepcopy(MINIMAL), **patch}
    with pytest.raises(PolicyError) as e:
        parse_policy(doc)
    assert field in str(e.value)


def test_errors_are_labelled_by_their_path_under_spec() -> None:
    doc = {**copy.deepcopy(MINIMAL), "qps": {"agent": {}}, "bounds": {"minGOGC": 0}}
    doc["sampling"] = {"sources": {"prometheus": {"port": 1}}}
    with pytest.raises(PolicyError) as e:
        parse_policy(doc)
    assert "\n  spec.bounds.minGOGC: " in str(e.value)  # a field
    doc["bounds"] = {}
    with pytest.raises(PolicyError) as e:
        parse_policy(doc)
    assert "\n  spec: Value error, qps.agent needs" in str(e.value)  # a rule across fields: spec itself


def test_counter_without_port_needs_the_prometheus_source() -> None:
    doc = copy.deepcopy(MINIMAL)
    del doc["sampling"]["sources"]["prometheus"]
    with pytest.raises(PolicyError, match=r"qps\.counter\.port is required"):
        parse_policy(doc)
    doc["qps"]["counter"]["port"] = 9090
    assert parse_policy(doc).qps.counter is not None


def test_lease_must_outlive_the_interval_when_enforcing_through_the_endpoint() -> None:
    doc = copy.deepcopy(MINIMAL)
    doc["mode"] = "Enforce"
    doc["rollout"] = {"method": "Endpoint", "endpoint": {"port": 8080}, "leaseSeconds": 15}
    with pytest.raises(PolicyError, match="leaseSeconds must be greater"):
        parse_policy(doc)


def test_whole_object_and_yaml_off() -> None:
    text = """
apiVersion: gctuner.io/v1alpha1
kind: GCPolicy
metadata: {name: web}
spec:
  targetRef: {name: web}
  sampling: {sources: {agent: {port: 8080}}}
  qps: {counter: {name: http_requests_total, port: 8080}}
  memoryLimit: {mode: Off}
"""
    spec = parse_policy(yaml.safe_load(text))
    assert spec.memory_limit.mode == "Off"
    with pytest.raises(PolicyError, match="kind: expected GCPolicy"):
        parse_policy({"kind": "Pod", "spec": {}})
