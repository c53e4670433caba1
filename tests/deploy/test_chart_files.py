"""The chart's files, read without helm: the CRD copy, the documentation of every value, the schema's
coverage, and the metric names the dashboard and alerts use against the operator's own metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "gc-tuner"
CRD_NAME = "gcpolicies.gctuner.io.yaml"


def test_chart_crd_is_a_byte_identical_copy_of_crds() -> None:
    source = ROOT / "crds" / CRD_NAME
    copy = CHART / "crds" / CRD_NAME
    assert copy.read_bytes() == source.read_bytes(), (
        f"{copy.relative_to(ROOT)} differs from {source.relative_to(ROOT)} (the source of truth); "
        f"resync it with:  cp crds/{CRD_NAME} charts/gc-tuner/crds/{CRD_NAME}"
    )


def _key_lines(text: str) -> list[tuple[tuple[str, ...], int]]:
    """(path, line index) of every mapping key of a block-style YAML file, from its indentation."""
    stack: list[tuple[int, str]] = []
    found = []
    for i, line in enumerate(text.splitlines()):
        m = re.match(r"^(\s*)([A-Za-z0-9_.-]+):(\s|$)", line)
        if not m:
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m.group(2)))
        found.append((tuple(k for _, k in stack), i))
    return found


def _schema_at(schema: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    node: dict[str, Any] | None = schema
    for key in path:
        if node is None or "properties" not in node:
            return None
        node = node["properties"].get(key)
    return node


def test_every_value_is_commented() -> None:
    text = (CHART / "values.yaml").read_text()
    lines = text.splitlines()
    schema = json.loads((CHART / "values.schema.json").read_text())
    missing = []
    for path, i in _key_lines(text):
        node = _schema_at(schema, path)
        if node is None:
            continue  # inside a free-form value (securityContext, resources, ...) documented as a whole
        if "properties" in node:
            continue  # a group; each of its values carries its own comment
        if not lines[i - 1].lstrip().startswith("#"):
            missing.append(".".join(path))
    assert not missing, f"values without a comment line above them: {missing}"


def _walk(values: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> list[str]:
    problems = []
    props = schema.get("properties", {})
    if schema.get("additionalProperties") is not False:
        problems.append(f"{prefix or '<root>'}: schema must set additionalProperties: false")
    for key, value in values.items():
        if key not in props:
            problems.append(f"{prefix}{key}: in values.yaml but not in the schema")
        elif isinstance(value, dict) and "properties" in props[key]:
            problems += _walk(value, props[key], f"{prefix}{key}.")
    for key in props:
        if key not in values and key != "global":
            problems.append(f"{prefix}{key}: in the schema but has no default in values.yaml")
    return problems


def test_schema_covers_values_and_closes_every_object() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert _walk(values, schema) == []


def _operator_metric_names() -> set[str]:
    from prometheus_client import CollectorRegistry

    from gc_tuner.controller.metrics import OperatorMetrics

    registry = CollectorRegistry()
    OperatorMetrics(registry)
    names = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    for family in registry.collect():
        # A labelled family has no samples until a label set is used: name its series by type.
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


def _gctuner_names(text: str) -> set[str]:
    return set(re.findall(r"\bgctuner_[a-z0-9_]+", text))


@pytest.mark.parametrize(
    "asset", ["dashboards/gc-tuner.json", "templates/prometheusrule.yaml"], ids=["dashboard", "alerts"]
)
def test_observability_assets_use_the_operators_metric_names(asset: str) -> None:
    used = _gctuner_names((CHART / asset).read_text())
    assert used, f"{asset} uses no gc-tuner metric"
    unknown = used - _operator_metric_names()
    assert not unknown, f"{asset} queries metrics the operator does not export: {sorted(unknown)}"


def test_dashboard_shows_gogc_qps_slope_and_pauses_per_policy() -> None:
    dash = json.loads((CHART / "dashboards" / "gc-tuner.json").read_text())
    assert dash["uid"] and dash["title"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "namespace", "policy"} <= variables
    exprs = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in dash["panels"]}
    wanted = {
        "recommended GOGC": "gctuner_recommended_gogc",
        "applied GOGC": "gctuner_applied_gogc",
        "QPS": "gctuner_policy_qps",
        "heap slope": "gctuner_policy_heap_slope_mb_per_second",
        "pauses": "gctuner_policy_stw_pause_p99_seconds",
    }
    for what, metric in wanted.items():
        panels = [t for t, e in exprs.items() if metric in e]
        assert panels, f"no panel shows {what} ({metric})"
        # Per policy: the panel filters on and is legended by the policy.
        for title in panels:
            panel = next(p for p in dash["panels"] if p["title"] == title)
            target = next(t for t in panel["targets"] if metric in t["expr"])
            assert 'policy=~"$policy"' in target["expr"] and "{{policy}}" in target["legendFormat"], title
    for panel in dash["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"


def test_peering_lifetime_value_is_the_operator_flags_default_and_range() -> None:
    from gc_tuner.cli.operator import (
        DEFAULT_PEERING_LIFETIME_S,
        MAX_PEERING_LIFETIME_S,
        MIN_PEERING_LIFETIME_S,
    )

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    node = _schema_at(schema, ("operator", "peering", "lifetimeSeconds"))
    assert node is not None
    # The schema refuses at install time exactly what the operator would refuse when its pod starts.
    assert (node["minimum"], node["maximum"]) == (MIN_PEERING_LIFETIME_S, MAX_PEERING_LIFETIME_S)
    assert values["operator"]["peering"]["lifetimeSeconds"] == DEFAULT_PEERING_LIFETIME_S
    # Passed only with peering (a standalone operator has no keep-alive), next to --peering.
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    branch = helpers[helpers.index("{{- if $op.peering.enabled }}") : helpers.index("- --standalone")]
    assert "- --peering-lifetime={{ $op.peering.lifetimeSeconds }}" in branch
