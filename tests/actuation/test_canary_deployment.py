"""The EnvPatch canary Deployment's manifest (actuation/canary_deployment.py), from a target's."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gc_tuner.actuation.canary_deployment import (
    CANARY_LABEL,
    canary_manifest,
    canary_name,
    canary_step,
    canary_values,
)
from gc_tuner.actuation.envpatch import EnvPatchError
from gc_tuner.tuning.discovery import matches_selector


def target() -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "shop", "uid": "u-web", "resourceVersion": "7"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
                "spec": {
                    "containers": [
                        {"name": "proxy", "image": "envoy", "env": [{"name": "GOGC", "value": "50"}]},
                        {
                            "name": "app",
                            "image": "web:1",
                            "env": [
                                {"name": "A", "value": "1"},
                                {"name": "GOGC", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
                            ],
                        },
                    ]
                },
            },
        },
    }


def test_the_canary_copies_the_template_with_the_candidate_in_the_chosen_container() -> None:
    env = {"GOGC": "80", "GOMEMLIMIT": "900MiB"}
    m = canary_manifest(target(), policy="web", policy_uid="u-pol", container="app", env=env, replicas=2)
    assert m["metadata"]["name"] == "web-gctuner-canary" and m["metadata"]["namespace"] == "shop"
    assert m["metadata"]["ownerReferences"] == [
        {"apiVersion": "gctuner.io/v1alpha1", "kind": "GCPolicy", "name": "web", "uid": "u-pol"}
    ]
    assert m["spec"]["replicas"] == 2
    proxy, app = m["spec"]["template"]["spec"]["containers"]
    assert proxy["env"] == [{"name": "GOGC", "value": "50"}]  # another container is left alone
    assert app["env"] == [
        {"name": "A", "value": "1"},
        {"name": "GOGC", "value": "80"},
        {"name": "GOMEMLIMIT", "value": "900MiB"},
    ]
    assert canary_values(m) == (env, 2)
    # The canary's pods carry the target's labels (a Service sends them traffic) and the canary's,
    # which alone is its selector: its ReplicaSet never counts the target's pods.
    labels = m["spec"]["template"]["metadata"]["labels"]
    assert labels == {"app": "web", CANARY_LABEL: "web"}
    assert matches_selector(m["spec"]["selector"], labels)
    assert not matches_selector(m["spec"]["selector"], target()["spec"]["template"]["metadata"]["labels"])
    # The target's own template is not modified through the copy.
    assert target()["spec"]["template"]["spec"]["containers"][1]["env"][1]["valueFrom"]


def test_a_missing_container_is_refused() -> None:
    with pytest.raises(EnvPatchError):
        canary_manifest(
            target(), policy="web", policy_uid="u", container="nope", env={"GOGC": "80"}, replicas=1
        )


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("web", "web-gctuner-canary"),
        ("a" * 60, "a" * 31 + "-gctuner-canary"),
        ("ab-" + "c" * 28 + "-x", None),
    ],
)
def test_the_canary_name_leaves_room_for_pod_names(name: str, want: str | None) -> None:
    got = canary_name(name)
    assert len(got) <= 46 and not got.startswith("-") and "--" not in got.replace("-gctuner-canary", "")
    if want is not None:
        assert got == want


@pytest.mark.parametrize(
    ("existing", "want"),
    [
        (None, "create"),
        (
            {
                "metadata": {"annotations": {"gctuner.io/canary-values": json.dumps({"GOGC": "80"})}},
                "spec": {"replicas": 1},
            },
            "keep",
        ),
        (
            {
                "metadata": {"annotations": {"gctuner.io/canary-values": json.dumps({"GOGC": "70"})}},
                "spec": {"replicas": 1},
            },
            "replace",
        ),
        (
            {
                "metadata": {"annotations": {"gctuner.io/canary-values": json.dumps({"GOGC": "80"})}},
                "spec": {"replicas": 2},
            },
            "replace",
        ),
        (
            {"metadata": {"annotations": {"gctuner.io/canary-values": "not json"}}, "spec": {"replicas": 1}},
            "replace",
        ),
        ({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}, "wait"),
    ],
)
def test_what_ensure_does_with_the_canary_it_finds(existing: dict[str, Any] | None, want: str) -> None:
    assert canary_step(existing, {"GOGC": "80"}, 1) == want
