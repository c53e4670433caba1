"""The typed status model states the CRD's status schema a second time; these tests keep the two equal,
and show that what gc-tuner writes reads back the same (restart safety depends on it)."""

from __future__ import annotations

import copy
import types
import typing
from enum import Enum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from gc_tuner.model.policy_status import AppliedNote, ConditionStatus, PolicyStatus
from gc_tuner.tuning.records import AppliedState, FitSummary, Verdict
from gc_tuner.tuning.state import PolicyState

CRD = Path(__file__).resolve().parents[2] / "crds" / "gcpolicies.gctuner.io.yaml"
_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean"}


def _crd_status() -> dict[str, Any]:
    doc = yaml.safe_load(CRD.read_text())
    (version,) = doc["spec"]["versions"]
    return dict(version["schema"]["openAPIV3Schema"]["properties"]["status"])


def _inner(annotation: Any) -> Any:
    """The one non-None type of `X | None`."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        (only,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return only
    return annotation


def _unwrap(info: FieldInfo) -> tuple[Any, int | None]:
    """The field's type and its max_length, also where both hide in `Annotated[...] | None`."""
    t, metadata = _inner(info.annotation), list(info.metadata)
    if typing.get_origin(t) is typing.Annotated:
        t, *extra = typing.get_args(t)
        metadata += [m for e in extra for m in getattr(e, "metadata", [e])]
    bound = next((m.max_length for m in metadata if getattr(m, "max_length", None) is not None), None)
    return t, bound


def _compare(schema: dict[str, Any], model: type[BaseModel], path: str = "status") -> list[str]:
    """Every difference between a CRD object schema and a pydantic model, as "path: what"."""
    diffs: list[str] = []
    fields = {f.alias or n: f for n, f in model.model_fields.items()}
    props = schema.get("properties") or {}
    diffs += [f"{path}.{k}: in the model, not in the CRD" for k in sorted(set(fields) - set(props))]
    diffs += [f"{path}.{k}: in the CRD, not in the model" for k in sorted(set(props) - set(fields))]
    for key in sorted(set(fields) & set(props)):
        diffs += _compare_field(props[key], fields[key], f"{path}.{key}")
    return diffs


def _compare_field(sub: dict[str, Any], info: FieldInfo, path: str) -> list[str]:
    t, bound = _unwrap(info)
    if sub.get("type") == "array":
        if sub.get("maxItems") != bound:
            return [f"{path}: maxItems {sub.get('maxItems')} in the CRD, {bound} in the model"]
        (item,) = typing.get_args(t)
        if isinstance(item, type) and issubclass(item, BaseModel):
            return _compare(sub["items"], item, f"{path}[]")
        return _compare_field(sub["items"], FieldInfo.from_annotation(item), f"{path}[]")
    if isinstance(t, type) and issubclass(t, BaseModel):
        return _compare(sub, t, path) if sub.get("type") == "object" else [f"{path}: not an object"]
    if isinstance(t, type) and issubclass(t, Enum):
        same = sorted(sub.get("enum") or []) == sorted(e.value for e in t)
        return [] if same else [f"{path}: enum {sub.get('enum')} vs {[e.value for e in t]}"]
    kind = _JSON_TYPES.get(t)
    if kind != sub.get("type"):
        return [f"{path}: {sub.get('type')} in the CRD, {kind} in the model"]
    if sub.get("maxLength") != bound:
        return [f"{path}: maxLength {sub.get('maxLength')} in the CRD, {bound} in the model"]
    return []


def test_the_status_model_equals_the_crd_status_schema() -> None:
    assert _compare(_crd_status(), PolicyStatus) == []


def test_the_comparison_finds_a_difference() -> None:
    schema = _crd_status()
    broken = copy.deepcopy(schema)
    del broken["properties"]["fit"]["properties"]["r2"]
    broken["properties"]["applied"]["properties"]["gomemlimit"]["maxLength"] = 64
    broken["properties"]["pods"]["properties"]["extra"] = {"type": "integer"}
    broken["properties"]["conditions"]["items"]["properties"]["status"]["enum"] = ["True", "False"]
    assert _compare(broken, PolicyStatus) == [
        "status.applied.gomemlimit: maxLength 64 in the CRD, 32 in the model",
        "status.conditions[].status: enum ['True', 'False'] vs ['True', 'False', 'Unknown']",
        "status.fit.r2: in the model, not in the CRD",
        "status.pods.extra: in the CRD, not in the model",
    ]


def test_condition_status_is_an_enum_that_reads_as_the_api_spells_it() -> None:
    v = Verdict("True", "Ready")
    assert v.status is ConditionStatus.TRUE and v.status == "True" and v.true
    assert not Verdict(ConditionStatus.UNKNOWN, "x").true


STATUS = {
    "observedGeneration": 4,
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Ready",
            "message": "tuning",
            "lastTransitionTime": "2026-12-06T10:00:00Z",
            "observedGeneration": 4,
        }
    ],
    "pods": {"matched": 2, "ready": 2, "sampled": 2, "failing": 0, "failures": []},
    "fit": {
        "qps": 120.5,
        "qpsSource": "Agent",
        "heapSlopeMBPerSec": 0.25,
        "r2": 0.9,
        "samples": 20,
        "pods": 2,
        "windowSeconds": 300.0,
    },
    "recommendation": {
        "gogc": 80,
        "gomemlimit": "900MiB",
        "strategy": "Formula",
        "explanation": "x",
        "inputs": {"qps": 120.5, "qpsFactor": 1.19, "memoryLimitBytes": 943718400},
        "time": "2026-12-06T10:00:00Z",
    },
    "decision": {"action": "Apply", "code": "Applied", "reason": "y", "time": "2026-12-06T10:00:00Z"},
    "applied": {
        "gogc": 80,
        "gomemlimit": "900MiB",
        "method": "Endpoint",
        "time": "2026-12-06T10:00:00Z",
        "pods": 2,
    },
    "sampling": {"intervalSeconds": 15, "windowSeconds": 300},
    "gctrace": {"cycles": 40, "stwP99Ms": 0.12, "pods": 2},
    "rollout": {
        "phase": "Canary",
        "candidate": {"gogc": 50, "gomemlimit": "900MiB"},
        "lastGood": {"gogc": 80, "gomemlimit": "900MiB"},
        "wasGOGC": 80,
        "canaryPods": ["web-1"],
        "beforeAfter": False,
        "startedAt": "2026-12-06T10:05:00Z",
        "until": "2026-12-06T10:10:00Z",
        "backoff": [{"gogc": 30, "until": "2026-12-06T11:00:00Z"}],
        "message": "judging",
    },
    "lastRollback": {
        "time": "2026-12-06T10:00:00Z",
        "gogc": 30,
        "restoredGOGC": 80,
        "reason": "gcCPU",
        "message": "gcCPU: 0.04 -> 0.12 (+200 %), p=0.004",
        "pValue": 0.004,
        "changed": 0.12,
        "baseline": 0.04,
    },
    "history": [
        {
            "time": "2026-12-06T10:00:00Z",
            "fromGOGC": 80,
            "toGOGC": 30,
            "reason": "gcCPU",
            "verdict": "RolledBack",
        }
    ],
}


def test_a_stored_status_reads_back_unchanged() -> None:
    assert PolicyStatus.read(STATUS).doc() == STATUS


def test_a_section_that_does_not_parse_is_dropped_and_the_rest_kept() -> None:
    edited = {**STATUS, "fit": {"qps": "lots"}, "unknownSection": 1}
    back = PolicyStatus.read(edited).doc()
    assert "fit" not in back and "unknownSection" not in back
    assert back["applied"] == STATUS["applied"] and back["recommendation"] == STATUS["recommendation"]


def test_long_strings_are_cut_to_the_crd_bound_not_refused() -> None:
    long = {**STATUS["decision"], "reason": "r" * 5000}  # type: ignore[dict-item]
    assert len(PolicyStatus.read({"decision": long}).doc()["decision"]["reason"]) == 512


def test_the_applied_annotation_round_trips_and_a_hand_edit_is_ignored() -> None:
    note = AppliedNote(gogc=60, gomemlimit=None, time="2026-12-06T10:00:00Z", policy="gc-tuner/ns/web")
    raw = note.annotation()
    assert (
        raw == '{"gogc": 60, "gomemlimit": null, "policy": "gc-tuner/ns/web", "time": "2026-12-06T10:00:00Z"}'
    )
    assert AppliedNote.read(raw) == note
    assert AppliedNote.read("{garbage") is None and AppliedNote.read(None) is None


def test_a_restart_restores_what_status_and_the_annotation_remember() -> None:
    # What build_status wrote for an Endpoint policy, read back by a fresh state after a restart.
    state = PolicyState(60.0)
    state.restore(
        STATUS, {"gctuner.io/applied": AppliedNote(gogc=70, time="2026-12-06T09:00:00Z").annotation()}
    )
    assert state.applied == AppliedState(80, "900MiB", "Endpoint", state.last_change_at or 0.0, 2)
    assert state.last_change_at == 1796551200.0  # 2026-12-06T10:00:00Z, the newer of the two


def test_fit_summary_round_trip_through_status() -> None:
    from gc_tuner.tuning.conditions import build_status
    from tests.tuning.test_status import outcome

    status = build_status(
        outcome(
            time=1e9, mode="DryRun", method="Endpoint", fit=FitSummary(1.0, "Agent", 0.5, None, 3, 1, 30.0)
        ),
        None,
        generation=1,
    )
    assert PolicyStatus.read(status).doc() == status
