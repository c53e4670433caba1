"""EnvPatch planning: a server-side apply configuration naming only GOGC/GOMEMLIMIT of the target
container and gc-tuner's annotations, never a valueFrom entry, the previous values recorded once,
and a restore that puts them back without touching what someone else changed since."""

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
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "resourceVersion": "42",
            "annotations": annotations or {},
        },
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


class Applier:
    """Enough of server-side apply for gc-tuner's part of an object: env entries and annotations
    merge by name, and an entry or annotation the manager named before and no longer names goes.
    (The real apiserver's behaviour is e2e/test_envpatch_apply.py.)"""

    def __init__(self) -> None:
        self.env: set[str] = set()
        self.annotations: set[str] = set()

    def __call__(self, obj: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(obj)
        ann = out["metadata"].setdefault("annotations", {})
        named = config["metadata"].get("annotations", {})
        for k in self.annotations - set(named):
            ann.pop(k, None)
        ann.update(named)
        self.annotations = set(named)
        (pc,) = config["spec"]["template"]["spec"]["containers"]
        (c,) = [c for c in out["spec"]["template"]["spec"]["containers"] if c["name"] == pc["name"]]
        env = c.setdefault("env", [])
        values = {e["name"]: e["value"] for e in pc.get("env", [])}
        env[:] = [e for e in env if e["name"] in values or e["name"] not in self.env]
        for name, value in values.items():
            same = [e for e in env if e["name"] == name]
            if same:
                same[0].clear()
                same[0].update({"name": name, "value": value})
            else:
                env.append({"name": name, "value": value})
        self.env = set(values)
        return out


def env_of(d: dict[str, Any], container: str = "app") -> list[dict[str, Any]]:
    (c,) = [c for c in d["spec"]["template"]["spec"]["containers"] if c["name"] == container]
    return list(c.get("env", []))


def test_the_apply_names_only_the_container_its_managed_vars_and_the_annotations() -> None:
    d = deployment(
        [
            {"name": "PORT", "value": "8080"},
            {"name": "GOGC", "value": "100"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ]
    )
    plan = plan_env_patch(d, "app", {"GOGC": "80", "GOMEMLIMIT": "900MiB"}, applied_note={"gogc": 80})
    assert plan.changes == {"GOGC": ("100", "80"), "GOMEMLIMIT": (None, "900MiB")}
    previous = json.dumps({"container": "app", "env": {"GOGC": "100", "GOMEMLIMIT": None}}, sort_keys=True)
    assert plan.patch == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "resourceVersion": "42",
            "annotations": {ANNOTATION_PREVIOUS: previous, ANNOTATION_APPLIED: '{"gogc": 80}'},
        },
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "env": [
                                {"name": "GOGC", "value": "80"},
                                {"name": "GOMEMLIMIT", "value": "900MiB"},
                            ],
                        }
                    ]
                }
            }
        },
    }
    after = Applier()(d, plan.patch)
    assert env_of(after) == [
        {"name": "PORT", "value": "8080"},
        {"name": "GOGC", "value": "80"},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "GOMEMLIMIT", "value": "900MiB"},
    ]
    assert env_of(after, "sidecar") == [{"name": "GOGC", "value": "400"}]


def test_a_statefulset_is_applied_as_one() -> None:
    d = {**deployment([]), "apiVersion": "apps/v1", "kind": "StatefulSet"}
    plan = plan_env_patch(d, "app", {"GOGC": "80"})
    assert plan.patch is not None
    assert (plan.patch["apiVersion"], plan.patch["kind"]) == ("apps/v1", "StatefulSet")


def test_value_from_entry_is_never_named_and_is_reported() -> None:
    d = deployment([{"name": "GOGC", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "gogc"}}}])
    plan = plan_env_patch(d, "app", {"GOGC": "80", "GOMEMLIMIT": "1GiB"})
    assert plan.conflicts == ("GOGC",)
    assert set(plan.changes) == {"GOMEMLIMIT"}
    assert plan.patch is not None
    (pc,) = plan.patch["spec"]["template"]["spec"]["containers"]
    assert pc["env"] == [{"name": "GOMEMLIMIT", "value": "1GiB"}]
    after = Applier()(d, plan.patch)
    assert {"name": "GOGC", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "gogc"}}} in env_of(after)
    only_gogc = plan_env_patch(d, "app", {"GOGC": "80"})
    assert only_gogc.patch is None and only_gogc.conflicts == ("GOGC",)


def test_previous_values_are_recorded_once_across_changes() -> None:
    apply = Applier()
    d = deployment([{"name": "GOGC", "value": "100"}])
    first = plan_env_patch(d, "app", {"GOGC": "80"})
    assert first.patch is not None
    d2 = apply(d, first.patch)
    second = plan_env_patch(d2, "app", {"GOGC": "60", "GOMEMLIMIT": "512MiB"})
    assert second.patch is not None
    d3 = apply(d2, second.patch)
    prev = json.loads(d3["metadata"]["annotations"][ANNOTATION_PREVIOUS])
    assert prev["env"] == {"GOGC": "100", "GOMEMLIMIT": None}  # the original, not 80


def test_every_var_written_before_stays_named_so_the_apply_keeps_it() -> None:
    """Server-side apply drops what its manager stops naming: a GOGC-only change must still name the
    GOMEMLIMIT gc-tuner wrote earlier, at its value, or the apiserver would remove it."""
    apply = Applier()
    d = apply(
        deployment([]),
        plan_env_patch(deployment([]), "app", {"GOGC": "80", "GOMEMLIMIT": "1GiB"}).patch or {},
    )
    plan = plan_env_patch(d, "app", {"GOGC": "60"}, applied_note={"gogc": 60})
    assert plan.patch is not None
    (pc,) = plan.patch["spec"]["template"]["spec"]["containers"]
    assert pc["env"] == [{"name": "GOGC", "value": "60"}, {"name": "GOMEMLIMIT", "value": "1GiB"}]
    assert env_of(apply(d, plan.patch)) == [
        {"name": "GOGC", "value": "60"},
        {"name": "GOMEMLIMIT", "value": "1GiB"},
    ]


def test_no_change_no_patch() -> None:
    d = deployment([{"name": "GOGC", "value": "80"}])
    assert plan_env_patch(d, "app", {"GOGC": "80"}).patch is None


def test_restore_puts_back_values_and_removes_added_entries() -> None:
    apply = Applier()
    d = deployment([{"name": "PORT", "value": "1"}, {"name": "GOGC", "value": "100"}])
    p = plan_env_patch(
        d,
        "app",
        {"GOGC": "70", "GOMEMLIMIT": "900MiB"},
        applied_note={"gogc": 70, "gomemlimit": "900MiB", "time": "2026-01-01T00:00:00Z"},
    )
    assert p.patch is not None
    tuned = apply(d, p.patch)
    restore = plan_env_restore(tuned)
    assert restore is not None and restore.patch is not None
    assert restore.changes == {"GOGC": ("70", "100"), "GOMEMLIMIT": ("900MiB", None)}
    back = apply(tuned, restore.patch)
    assert env_of(back) == env_of(d)
    assert back["metadata"]["annotations"] == {}
    assert plan_env_restore(back) is None


def test_restore_leaves_alone_what_someone_else_changed_since() -> None:
    """Someone set GOGC to 120 after gc-tuner wrote 70: restoring does not touch it (it is theirs
    now); the GOMEMLIMIT gc-tuner added, still as written, goes."""
    apply = Applier()
    d = deployment([{"name": "GOGC", "value": "100"}])
    note = {"gogc": 70, "gomemlimit": "900MiB", "time": "2026-01-01T00:00:00Z"}
    tuned = apply(
        d, plan_env_patch(d, "app", {"GOGC": "70", "GOMEMLIMIT": "900MiB"}, applied_note=note).patch or {}
    )
    (c,) = [c for c in tuned["spec"]["template"]["spec"]["containers"] if c["name"] == "app"]
    c["env"][0]["value"] = "120"
    restore = plan_env_restore(tuned)
    assert restore is not None and restore.patch is not None
    assert restore.changes == {"GOMEMLIMIT": ("900MiB", None)}
    (pc,) = restore.patch["spec"]["template"]["spec"]["containers"]
    assert "env" not in pc  # GOGC not named: gc-tuner gives it up, its new owner keeps it
    assert ANNOTATION_PREVIOUS not in restore.patch["metadata"].get("annotations", {})


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
