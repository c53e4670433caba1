"""The EnvPatch canary: a second Deployment, `<target>-gctuner-canary`, that runs the candidate GOGC /
GOMEMLIMIT beside the target's own pods while the guard judges it.

Why a second Deployment and not a partitioned rollout of the target: a Deployment has no partition,
so "roll one pod, then hold" means changing the target's strategy and pausing it mid-rollout, which
races the Deployment controller and rewrites fields a GitOps tool owns. A second Deployment leaves
the target untouched until the candidate is promoted, so a rollback costs no rollout at all: the
canary Deployment is deleted and the target never changed.

The canary is a copy of the target's pod template with three differences:
- the target container's GOGC / GOMEMLIMIT are the candidate's (plain values; a `valueFrom` entry
  is replaced in the copy only, the target keeps its wiring);
- the pods carry the label `gctuner.io/canary: <policy>`, and the canary's selector is that label
  alone, so its ReplicaSet never claims the target's pods. The target's own labels are kept, so a
  Service in front of the target sends the canary its share of real traffic;
- the Deployment is owned by the GCPolicy (ownerReferences): deleting the policy garbage-collects it.

Pure: the target's Deployment in, the canary's manifest out. `KubeCanaryDeployments` is the blocking
I/O half, run in a thread by the controller.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any, Literal

from gc_tuner.actuation.envpatch import FIELD_MANAGER, EnvPatchError, KubeDeployments, select_container

__all__ = [
    "CANARY_LABEL",
    "VALUES_ANNOTATION",
    "CanaryDeploymentError",
    "KubeCanaryDeployments",
    "canary_manifest",
    "canary_name",
    "canary_step",
    "canary_values",
]

CANARY_LABEL = "gctuner.io/canary"  # value: the policy's name
VALUES_ANNOTATION = "gctuner.io/canary-values"  # the env the canary runs, JSON
_NAME_ROOM = 46  # a pod's name adds "-<10-char hash>-<5 chars>" and must stay within 63


class CanaryDeploymentError(Exception):
    """The canary Deployment could not be made or removed (the apiserver refused or did not answer)."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason, self.message = reason, message
        super().__init__(message)


def canary_name(target: str) -> str:
    return f"{target[: _NAME_ROOM - len('-gctuner-canary')].rstrip('-.')}-gctuner-canary"


def _with_env(container: dict[str, Any], env: Mapping[str, str]) -> None:
    kept = [e for e in container.get("env") or [] if e.get("name") not in env]
    container["env"] = [*kept, *({"name": k, "value": v} for k, v in sorted(env.items()))]


def canary_manifest(
    deployment: Mapping[str, Any],
    *,
    policy: str,
    policy_uid: str,
    container: str | None,
    env: Mapping[str, str],
    replicas: int,
) -> dict[str, Any]:
    """The canary Deployment for `deployment` running `env` in `container` (None: the first).
    Raises EnvPatchError when the container does not exist."""
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    target = str(meta.get("name"))
    chosen = str(select_container(deployment, container).get("name"))
    template = copy.deepcopy(dict(spec.get("template") or {}))
    tmeta = template.setdefault("metadata", {})
    tmeta["labels"] = {**(tmeta.get("labels") or {}), CANARY_LABEL: policy}
    for c in (template.get("spec") or {}).get("containers") or []:
        if c.get("name") == chosen:
            _with_env(c, env)
    if not (template.get("spec") or {}).get("containers"):
        raise EnvPatchError(f"Deployment {target} has no containers")
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": canary_name(target),
            "namespace": meta.get("namespace"),
            "labels": {CANARY_LABEL: policy, "app.kubernetes.io/managed-by": FIELD_MANAGER},
            "annotations": {VALUES_ANNOTATION: json.dumps(dict(env), sort_keys=True)},
            "ownerReferences": [
                {"apiVersion": "gctuner.io/v1alpha1", "kind": "GCPolicy", "name": policy, "uid": policy_uid}
            ],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {CANARY_LABEL: policy}},
            "template": template,
            "revisionHistoryLimit": 0,
        },
    }


def canary_values(canary: Mapping[str, Any]) -> tuple[dict[str, str], int]:
    """The env and replicas an existing canary Deployment was made with ({} when unreadable)."""
    meta = canary.get("metadata") or {}
    raw = (meta.get("annotations") or {}).get(VALUES_ANNOTATION, "{}")
    try:
        env = json.loads(raw)
    except ValueError:
        env = {}
    if not isinstance(env, dict):
        env = {}
    replicas = (canary.get("spec") or {}).get("replicas")
    return {str(k): str(v) for k, v in env.items()}, int(replicas) if isinstance(replicas, int) else 1


def canary_step(
    existing: Mapping[str, Any] | None, env: Mapping[str, str], replicas: int
) -> Literal["create", "keep", "replace", "wait"]:
    """What `ensure` does with the canary Deployment found (None: none). One with other values is
    deleted and made again next cycle ("replace"); one being deleted is waited for."""
    if existing is None:
        return "create"
    if (existing.get("metadata") or {}).get("deletionTimestamp"):
        return "wait"
    have_env, have_replicas = canary_values(existing)
    return "keep" if have_env == dict(env) and have_replicas == replicas else "replace"


class KubeCanaryDeployments(KubeDeployments):
    """Read the target, and create, read and delete canary Deployments, with the sync kubernetes
    client. Blocking: run in a thread (asyncio.to_thread)."""

    def create(self, namespace: str, body: Mapping[str, Any]) -> None:
        manifest: Any = dict(body)  # a plain dict; the client serialises it as it is
        self._apps.create_namespaced_deployment(
            namespace,
            manifest,
            field_manager=FIELD_MANAGER,
            _preload_content=False,
            _request_timeout=self._timeout,
        )

    def delete(self, namespace: str, name: str) -> bool:
        """False when it was already gone. Foreground: the canary pods go before the Deployment does,
        so no pod of an old canary is judged as part of a new one."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            self._apps.delete_namespaced_deployment(
                name,
                namespace,
                body=client.V1DeleteOptions(propagation_policy="Foreground"),
                _request_timeout=self._timeout,
            )
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return True
