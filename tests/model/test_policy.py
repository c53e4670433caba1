"""The GCPolicy models state the CRD's rules a second time; these tests keep the two in step.

The CRD is walked like the apiserver's defaulting does (an object's `default: {}` materialises it,
then its properties' defaults apply), and the result must equal what the models produce from the
same minimal spec. Bounds, enums and patterns are compared field by field.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from gc_tuner.logic.formula import DEFAULT_FORMULA_PARAMS
from gc_tuner.logic.memlimit import MAX_INT64, parse_gomemlimit, parse_quantity
from gc_tuner.model.policy import (
    FIXED_MAX_BYTES,
    FIXED_MIN_BYTES,
    FIXED_QUANTITY_PATTERN,
    GCPolicySpec,
    PolicyError,
    parse_policy,
)
from gc_tuner.tuning.strategies import desired_memory_limit, formula_params

MiB = 1 << 20

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
        ({"memoryLimit": {"mode": "Fixed", "fixed": "1Mi"}}, "at least 32Mi"),
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
        ({"rollout": {"canary": {"percent": 0}}}, "spec.rollout.canary.percent"),
        ({"rollout": {"canary": {"evaluationSeconds": 5}}}, "spec.rollout.canary.evaluationSeconds"),
        ({"guard": {"maxMemoryPercentOfLimit": 101}}, "spec.guard.maxMemoryPercentOfLimit"),
        (
            {"guard": {"latency": {"histogram": "h", "port": 1, "matchers": {"a-b": "x"}}}},
            "guard.latency.matchers keys",
        ),
        (
            {
                "guard": {
                    "latency": {"histogram": "h", "port": 1, "promql": {"url": "http://p:9090", "query": "q"}}
                }
            },
            "guard.latency needs exactly one of histogram or promql",
        ),
        ({"guard": {"latency": {"port": 1}}}, "guard.latency needs exactly one of histogram or promql"),
        (
            {"guard": {"latency": {"promql": {"url": "ftp://x", "query": "q"}}}},
            "spec.guard.latency.promql.url",
        ),
        ({"paused": "yes"}, "spec.paused"),
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
            {"strategy": {"type": "Cost", "cost": {"cpuPerCoreHourMilli": -40}}},
            "spec.strategy.cost.cpuPerCoreHourMilli",
        ),
        (
            {"strategy": {"type": "Cost", "cost": {"memoryPerGiBHourMilli": 0}}},
            "spec.strategy.cost.memoryPerGiBHourMilli",
        ),
        ({"strategy": {"cost": {"cpuPerCoreHourMilli": 40.5}}}, "spec.strategy.cost.cpuPerCoreHourMilli"),
        ({"strategy": {"cost": {"currency": "usd"}}}, "spec.strategy.cost.currency"),
        ({"strategy": {"cost": {"maxFitErrorPercent": 0}}}, "spec.strategy.cost.maxFitErrorPercent"),
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


# -- memoryLimit.fixed: its range, the same in the model and the CRD's CEL -------------------------------


def _fixed_rules() -> list[dict[str, str]]:
    schema = _crd_schema()["properties"]["memoryLimit"]["properties"]["fixed"]
    return list(schema["x-kubernetes-validations"])


def test_the_crd_states_the_models_fixed_range_and_syntax() -> None:
    syntax, floor, ceiling = (r["rule"] for r in _fixed_rules())
    m = re.search(r"self\.matches\('([^']*)'\)", syntax)
    assert m is not None and m.group(1) == FIXED_QUANTITY_PATTERN
    m = re.search(r"compareTo\(quantity\('([^']*)'\)\) >= 0", floor)
    assert m is not None and parse_quantity(m.group(1)) == FIXED_MIN_BYTES == 32 * MiB
    m = re.search(r"compareTo\(quantity\('([^']*)'\)\) <= 0", ceiling)
    assert m is not None and parse_quantity(m.group(1)) == FIXED_MAX_BYTES == MAX_INT64 - 1


@pytest.mark.parametrize(
    ("fixed", "rule"),
    [
        ("1e400", 2),  # was an OverflowError out of the float arithmetic
        ("16Ei", 2),  # was accepted, then the cycle failed on it
        ("8Ei", 2),
        ("9223372036854775807", 2),  # MaxInt64: Go's "no limit"
        ("9223372036854775806.0000000001", 2),  # rounded up to a nano, as the apiserver does
        ("4Mi", 1),  # was accepted: below the agent's floor, never applicable
        ("33554431", 1),
        ("1e-400", 1),
        ("0", 1),
        ("33554432e4294967296", 0),  # the apiserver would read the exponent as 0
        ("1e0009", 0),
        ("-64Mi", 0),
        ("1Mb", 0),
    ],
)
def test_fixed_out_of_range_is_a_policy_error_naming_the_field_with_the_crds_message(
    fixed: str, rule: int
) -> None:
    doc = {**copy.deepcopy(MINIMAL), "memoryLimit": {"mode": "Fixed", "fixed": fixed}}
    with pytest.raises(PolicyError) as e:
        parse_policy(doc)
    message = _fixed_rules()[rule]["message"]
    assert f"spec.memoryLimit.fixed: Value error, {message}; got {fixed!r}" in str(e.value)


@pytest.mark.parametrize(
    ("fixed", "n"),
    [
        ("32Mi", 32 * MiB),
        (".03125Gi", 32 * MiB),
        ("33554431.9999999999", 32 * MiB),  # the apiserver rounds it up to 32Mi too
        ("1.5Gi", 1536 * MiB),
        ("7Ei", 7 << 60),
        ("9223372036854775806", MAX_INT64 - 1),
        ("9223372036854775805.9999999999", MAX_INT64 - 1),
    ],
)
def test_fixed_within_range_is_accepted_and_renders(fixed: str, n: int) -> None:
    doc = {**copy.deepcopy(MINIMAL), "memoryLimit": {"mode": "Fixed", "fixed": fixed}}
    target = desired_memory_limit(parse_policy(doc), None)
    assert target.bytes == n
    assert target.rendered is not None and parse_gomemlimit(target.rendered) == n


fixed_like = st.one_of(
    st.text(alphabet="0123456789.+-eEinumkKMGTPB", max_size=32),
    st.builds(
        lambda sign, whole, frac, suffix: f"{sign}{whole}{frac}{suffix}"[:32],
        st.sampled_from(["", "+", "-"]),
        st.text(alphabet="0123456789", max_size=20),
        st.one_of(st.just(""), st.text(alphabet="0123456789", max_size=12).map(lambda d: "." + d)),
        st.one_of(
            st.sampled_from(["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", *"numkMGTPE"]),
            st.builds(
                lambda e, sign, n: f"{e}{sign}{n}",
                st.sampled_from("eE"),
                st.sampled_from(["", "+", "-"]),
                st.integers(min_value=0, max_value=99999),
            ),
        ),
    ),
)


@given(fixed_like)
def test_any_fixed_is_refused_with_a_policy_error_or_renders_within_range(fixed: str) -> None:
    doc = {**copy.deepcopy(MINIMAL), "memoryLimit": {"mode": "Fixed", "fixed": fixed}}
    try:
        spec = parse_policy(doc)
    except PolicyError as e:
        assert "spec.memoryLimit.fixed" in str(e)
        return
    target = desired_memory_limit(spec, None)
    assert target.bytes is not None and FIXED_MIN_BYTES <= target.bytes <= FIXED_MAX_BYTES
    assert target.rendered is not None and parse_gomemlimit(target.rendered) == target.bytes


# -- strict types: no coercion, as the CRD's types allow none ---------------------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("sampling.intervalSeconds", True),
        ("sampling.intervalSeconds", "15"),
        ("sampling.intervalSeconds", 15.0),
        ("sampling.sources.agent.port", "8080"),
        ("rollout.cooldownSeconds", False),
        ("rollout.endpoint.port", b"8080"),
        ("memoryLimit.percent", "90"),
        ("memoryLimit.fixed", 1073741824),
        ("targetRef.name", 123),
        ("targetRef.name", b"web"),
        ("qps.counter.name", True),
        ("qps.counter.matchers", {"code": 200}),
        ("strategy.formula.baseGOGC", "100"),
        ("strategy.formula.qpsPivotMilli", True),
        ("leakDetection.minR2Milli", "800"),
    ],
)
def test_values_of_the_wrong_type_are_refused_naming_the_field(path: str, value: Any) -> None:
    doc = copy.deepcopy(MINIMAL)
    node = doc
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    with pytest.raises(PolicyError) as e:
        parse_policy(doc)
    assert f"\n  spec.{path}" in str(e.value)


def test_yaml_parsed_integers_and_strings_still_load() -> None:
    text = """
targetRef: {name: web, container: app}
mode: Enforce
rollout: {cooldownSeconds: 600, minGOGCChange: 5}
sampling: {intervalSeconds: 15, windowSeconds: 300, sources: {agent: {port: 8080}, gctrace: {tailLines: 500}}}
qps: {counter: {name: http_requests_total, port: 8080, matchers: {code: "200"}}}
strategy: {type: Budget, formula: {qpsPivotMilli: 1000000000}}
bounds: {minGOGC: 50, maxGOGC: 400}
memoryLimit: {mode: Fixed, fixed: 900Mi}
"""
    spec = parse_policy(yaml.safe_load(text))
    assert spec.sampling.interval_seconds == 15
    assert spec.rollout.cooldown_seconds == 600
    assert spec.strategy.formula.qps_pivot_milli == 1_000_000_000
    assert spec.memory_limit.fixed == "900Mi"
    assert spec.qps.counter is not None and spec.qps.counter.matchers == {"code": "200"}
    # What the apiserver hands back (JSON) reads the same way.
    assert parse_policy(json.loads(json.dumps(spec.to_crd()))) == spec


def test_latency_from_promql_needs_no_port() -> None:
    doc = copy.deepcopy(MINIMAL)
    doc["sampling"]["sources"] = {"agent": {"port": 8080}}
    doc["qps"] = {"agent": {}}
    doc["guard"] = {
        "latency": {"promql": {"url": "http://prom:9090", "query": "sum by (pod, le) (x_bucket)"}}
    }
    lat = parse_policy(doc).guard.latency
    assert (
        lat is not None and lat.promql is not None and lat.promql.pod_label == "pod" and lat.histogram is None
    )


def test_a_latency_histogram_needs_a_port_without_the_prometheus_source() -> None:
    doc = copy.deepcopy(MINIMAL)
    doc["sampling"]["sources"] = {"agent": {"port": 8080}}
    doc["qps"] = {"agent": {}}
    doc["guard"] = {"latency": {"histogram": "http_request_duration_seconds"}}
    with pytest.raises(PolicyError, match=r"guard\.latency\.port is required unless"):
        parse_policy(doc)
    doc["guard"]["latency"]["port"] = 9090
    assert parse_policy(doc).guard.latency is not None
