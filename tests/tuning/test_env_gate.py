"""TemplateFacts from a workload as the apiserver returns it: the rollout's figures, the strategy,
the tuned container's env, and who owns its values."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gc_tuner.actuation.envpatch import ANNOTATION_PREVIOUS, EnvPatchError
from gc_tuner.tuning.env_gate import in_progress, template_facts


def workload(kind: str = "Deployment", **spec: Any) -> dict[str, Any]:
    env = [
        {"name": "GOGC", "value": "80"},
        {"name": "GOMEMLIMIT", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
    ]
    managed = {
        "f:spec": {
            "f:template": {
                "f:spec": {
                    "f:containers": {'k:{"name":"app"}': {"f:env": {'k:{"name":"GOGC"}': {"f:value": {}}}}}
                }
            }
        }
    }
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {
            "name": "web",
            "generation": 7,
            "annotations": {ANNOTATION_PREVIOUS: json.dumps({"container": "app", "env": {"GOGC": "100"}})},
            "managedFields": [
                {
                    "manager": "gc-tuner",
                    "operation": "Apply",
                    "time": "2026-01-01T00:00:00Z",
                    "fieldsV1": managed,
                },
                {
                    "manager": "kubectl-edit",
                    "operation": "Update",
                    "time": "2026-01-02T00:00:00Z",
                    "fieldsV1": {},
                },
            ],
        },
        "spec": {
            "replicas": 4,
            "template": {"spec": {"containers": [{"name": "sidecar"}, {"name": "app", "env": env}]}},
            **spec,
        },
        "status": {
            "observedGeneration": 6,
            "replicas": 5,
            "updatedReplicas": 2,
            "readyReplicas": 3,
            "availableReplicas": 3,
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": "timed out",
                }
            ],
        },
    }


def test_a_deployments_facts() -> None:
    t = template_facts(workload(paused=True, strategy={"type": "Recreate"}), "app")
    assert (t.kind, t.name, t.container, t.ref) == ("Deployment", "web", "app", "deployment/web")
    assert (t.generation, t.observed_generation, t.replicas, t.current, t.updated, t.available) == (
        7,
        6,
        4,
        5,
        2,
        3,
    )
    assert (t.paused, t.strategy, t.partition, t.stalled) == (True, "Recreate", 0, "timed out")
    assert t.env == {"GOGC": "80"} and t.value_from == ("GOMEMLIMIT",) and t.written == ("GOGC",)
    assert t.value_owners == {"GOGC": ("gc-tuner",), "GOMEMLIMIT": ()}
    assert t.last_writer == "kubectl-edit"
    assert in_progress(t)


def test_a_statefulsets_update_strategy_and_no_paused_or_progress_deadline() -> None:
    sts = workload(
        "StatefulSet",
        updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
        paused=True,
    )
    del sts["status"]["availableReplicas"]  # older StatefulSets report none: ready stands in
    t = template_facts(sts, "app")
    assert (t.strategy, t.partition, t.available, t.stalled) == ("RollingUpdate", 2, 3, None)
    assert t.ref == "statefulset/web"
    done = {**sts, "status": {**sts["status"], "observedGeneration": 7, "readyReplicas": 4}}
    assert not in_progress(template_facts(done, "app"))  # 2 of 4 updated is all a partition of 2 asks


def test_an_ondelete_statefulset_is_never_in_progress_once_observed() -> None:
    sts = workload("StatefulSet", updateStrategy={"type": "OnDelete"})
    assert in_progress(template_facts(sts, "app"))  # generation 7 not observed yet
    sts["status"]["observedGeneration"] = 7
    assert not in_progress(template_facts(sts, "app"))


def test_a_missing_container_is_an_error() -> None:
    with pytest.raises(EnvPatchError, match="no container 'nope'"):
        template_facts(workload(), "nope")
