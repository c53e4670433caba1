"""EnvPatch planning: only GOGC/GOMEMLIMIT of the target container, never a valueFrom entry, the
previous values recorded once, and a restore patch that puts them back."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from gc_tuner.actuation.envpatch import (
    ANNOTATION_APPLIED,
    ANNOTATION_PREVIOUS,
    EnvPatchError,
    plan_env_patch,
    plan_env_restore,
)


def deployment(env: list[dict[str, Any]], *, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "resourceVersion": "42", "annotations": annotations or {}},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "sidecar", "env": [{"name": "GOGC", "value": "400"}]},
                        {"name": "app", "env": env, "resources": {"limits": {"memory": "1Gi"}}},
                    ]
                }
            }
        },
    }


def smp_apply(obj: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Enough of strategic merge (containers and env merge by name, $patch: delete, null deletes
    a map key) to check what a patch does to a Deployment."""
    out = copy.deepcopy(obj)
    ann = patch.get("metadata", {}).get("annotations", {})
    for k, v in ann.items():
        if v is None:
            out["metadata"]["annotations"].pop(k, None)
        else:
            out["metadata"]["annotations"][k] = v
    for pc in patch.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
        (c,) = [c for c in out["spec"]["template"]["spec"]["containers"] if c["name"] == pc["name"]]
        env = c.setdefault("env", [])
        for pe in pc.get("env", []):
            idx = [i for i, e in enumerate(env) if e["name"] == pe["name"]]
            if pe.get("$patch") == "delete":
                for i in reversed(idx):
                    del env[i]
            elif idx:
                env[idx[0]].update(pe)
            else:
                env.append(dict(pe))
    return out


def env_of(d: dict[str, Any], container: str = "app") -> list[dict[str, Any]]:
    (c,) = [c for c in d["spec"]["template"]["spec"]["containers"] if c["name"] == container]
    return list(c.get("env", []))


def test_patch_sets_only_managed_vars_and_keeps_others() -> None:
    d = deployment(
        [
            {"name": "PORT", "value": "8080"},
            {"name": "GOGC", "value": "100"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ]
    )
    plan = plan_env_patch(d, "app", {"GOGC": "80", "GOMEMLIMIT": "900MiB"}, applied_note={"gogc": 80})
    assert plan.changes == {"GOGC": ("100", "80"), "GOMEMLIMIT": (None, "900MiB")}
    assert plan.patch is not None
    assert plan.patch["metadata"]["resourceVersion"] == "42"
    (pc,) = plan.patch["spec"]["template"]["spec"]["containers"]
    assert pc == {
        "name": "app",
        "env": [{"name": "GOGC", "value": "80"}, {"name": "GOMEMLIMIT", "value": "900MiB"}],
    }
    after = smp_apply(d, plan.patch)
    assert env_of(after) == [
        {"name": "PORT", "value": "8080"},
        {"name": "GOGC", "value": "80"},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "GOMEMLIMIT", "value": "900MiB"},
    ]
    assert env_of(after, "sidecar") == [{"name": "GOGC", "value": "400"}]
    prev = json.loads(after["metadata"]["annotations"][ANNOTATION_PREVIOUS])
    assert prev == {"container": "app", "env": {"GOGC": "100", "GOMEMLIMIT": None}}
    assert json.loads(after["metadata"]["annotations"][ANNOTATION_APPLIED]) == {"gogc": 80}


def test_value_from_entry_is_never_overwritten_and_is_reported() -> None:
    d = deployment([{"name": "GOGC", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "gogc"}}}])
    plan = plan_env_patch(d, "app", {"GOGC": "80", "GOMEMLIMIT": "1GiB"})
    assert plan.conflicts == ("GOGC",)
    assert set(plan.changes) == {"GOMEMLIMIT"}
    assert plan.patch is not None
    after = smp_apply(d, plan.patch)
    assert {"name": "GOGC", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "gogc"}}} in env_of(after)
    only_gogc = plan_env_patch(d, "app", {"GOGC": "80"})
    assert only_gogc.patch is None and only_gogc.conflicts == ("GOGC",)


def test_previous_values_are_recorded_once_across_changes() -> None:
    d = deployment([{"name": "GOGC", "value": "100"}])
    first = plan_env_patch(d, "app", {"GOGC": "80"})
    assert first.patch is not None
    d2 = smp_apply(d, first.patch)
    second = plan_env_patch(d2, "app", {"GOGC": "60", "GOMEMLIMIT": "512MiB"})
    assert second.patch is not None
    d3 = smp_apply(d2, second.patch)
    prev = json.loads(d3["metadata"]["annotations"][ANNOTATION_PREVIOUS])
    assert prev["env"] == {"GOGC": "100", "GOMEMLIMIT": None}  # the original, not 80


def test_no_change_no_patch() -> None:
    d = deployment([{"name": "GOGC", "value": "80"}])
    assert plan_env_patch(d, "app", {"GOGC": "80"}).patch is None


def test_restore_puts_back_values_and_removes_added_entries() -> None:
    d = deployment([{"name": "PORT", "value": "1"}, {"name": "GOGC", "value": "100"}])
    p = plan_env_patch(d, "app", {"GOGC": "70", "GOMEMLIMIT": "900MiB"})
    assert p.patch is not None
    tuned = smp_apply(d, p.patch)
    restore = plan_env_restore(tuned)
    assert restore is not None and restore.patch is not None
    back = smp_apply(tuned, restore.patch)
    assert env_of(back) == env_of(d)
    assert ANNOTATION_PREVIOUS not in back["metadata"]["annotations"]
    assert plan_env_restore(back) is None


def test_default_container_is_the_first_and_unknown_container_is_an_error() -> None:
    d = deployment([])
    assert plan_env_patch(d, None, {"GOGC": "50"}).container == "sidecar"
    with pytest.raises(EnvPatchError, match=r"no container .nope.*sidecar, app"):
        plan_env_patch(d, "nope", {"GOGC": "50"})


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("GOMEMLIMIT", "100MB"),
        ("GOMEMLIMIT", "1.5GiB"),
        ("GOMEMLIMIT", "1gib"),
        ("GOMEMLIMIT", ""),
        ("GOGC", "off"),
        ("GOGC", "-1"),
        ("GOGC", "1e3"),
        ("HOME", "/"),
    ],
)
def test_malformed_values_are_refused(var: str, value: str) -> None:
    with pytest.raises(EnvPatchError):
        plan_env_patch(deployment([]), "app", {var: value})


def test_malformed_annotation_is_an_error_not_a_guess() -> None:
    d = deployment([], annotations={ANNOTATION_PREVIOUS: "{not json"})
    with pytest.raises(EnvPatchError, match=ANNOTATION_PREVIOUS):
        plan_env_restore(d)
