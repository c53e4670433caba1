"""EnvPatch rollout: write GOGC / GOMEMLIMIT into one container of a Deployment's pod template.

The planning is pure (Deployment dict in, patch dict out) so every rule is unit-tested without a
cluster; `KubeDeployments` is the thin I/O half, using the sync kubernetes client.

Rules:
- Only the GOGC and GOMEMLIMIT entries of the target container are touched. The patch is a
  strategic merge patch: containers and env merge by `name`, so every other entry is kept.
- An entry that uses `valueFrom` belongs to someone else's wiring (a ConfigMap, the downward API):
  it is never overwritten; the plan reports it in `conflicts`.
- The values in force before gc-tuner's first change are recorded in the Deployment annotation
  `gctuner.io/previous-env` (only once: later changes keep the original record), so deleting the
  GCPolicy can restore them. Every change also records `gctuner.io/applied` (values and time), in
  the same patch, so an operator restarted between patching and writing status knows a change was
  made and when.
- The patch carries the Deployment's resourceVersion: a concurrent edit makes it fail (409) instead
  of recording a stale "previous" value.
- GOMEMLIMIT is checked with the Go-exact validator before it is written: a malformed value would
  crash-loop every pod at startup.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gc_tuner.logic.memlimit import GoMemLimitError, parse_gomemlimit
from gc_tuner.model.policy_status import ANNOTATION_APPLIED, AppliedNote

__all__ = [
    "ANNOTATION_APPLIED",
    "ANNOTATION_PREVIOUS",
    "FIELD_MANAGER",
    "MANAGED_VARS",
    "EnvPatchError",
    "EnvPlan",
    "KubeDeployments",
    "container_env",
    "container_memory_limit",
    "plan_env_patch",
    "plan_env_restore",
    "select_container",
]

FIELD_MANAGER = "gc-tuner"
ANNOTATION_PREVIOUS = "gctuner.io/previous-env"
MANAGED_VARS = ("GOGC", "GOMEMLIMIT")


class EnvPatchError(ValueError):
    """The Deployment cannot be patched as asked (no such container, a malformed value...)."""

    reason = "EnvPatchFailed"


@dataclass(frozen=True, slots=True)
class EnvPlan:
    """What a patch would do. `patch` is None when nothing needs to change."""

    container: str
    patch: dict[str, Any] | None
    changes: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # var: (old, new)
    conflicts: tuple[str, ...] = ()  # vars set through valueFrom, left alone
    previous: dict[str, str | None] = field(default_factory=dict)  # the recorded pre-gc-tuner values


def _containers(deployment: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = spec.get("containers") or []
    if not isinstance(containers, list):
        raise EnvPatchError("spec.template.spec.containers is not a list")
    return containers


def select_container(deployment: Mapping[str, Any], name: str | None) -> dict[str, Any]:
    """The named container of the pod template, or the first one when `name` is None."""
    containers = _containers(deployment)
    dep = (deployment.get("metadata") or {}).get("name", "?")
    if not containers:
        raise EnvPatchError(f"Deployment {dep} has no containers")
    if name is None:
        return containers[0]
    for c in containers:
        if c.get("name") == name:
            return c
    names = ", ".join(str(c.get("name")) for c in containers)
    raise EnvPatchError(f"Deployment {dep} has no container {name!r} (it has: {names})")


def container_env(container: Mapping[str, Any]) -> tuple[dict[str, str], tuple[str, ...]]:
    """(plain values of the managed vars, managed vars set through valueFrom)."""
    values: dict[str, str] = {}
    value_from: list[str] = []
    for entry in container.get("env") or []:
        name = entry.get("name")
        if name not in MANAGED_VARS:
            continue
        if entry.get("valueFrom") is not None:
            value_from.append(name)
        else:
            values[name] = str(entry.get("value") or "")
    return values, tuple(value_from)


def container_memory_limit(container: Mapping[str, Any]) -> str | None:
    """The container's `resources.limits.memory` quantity as written, or None."""
    limits = (container.get("resources") or {}).get("limits") or {}
    value = limits.get("memory")
    return None if value is None else str(value)


def _annotations(deployment: Mapping[str, Any]) -> dict[str, str]:
    return dict((deployment.get("metadata") or {}).get("annotations") or {})


def _read_previous(deployment: Mapping[str, Any]) -> tuple[str | None, dict[str, str | None]]:
    raw = _annotations(deployment).get(ANNOTATION_PREVIOUS)
    if raw is None:
        return None, {}
    try:
        doc = json.loads(raw)
        env = doc["env"]
        if not isinstance(env, dict) or not all(k in MANAGED_VARS for k in env):
            raise ValueError("env")
        return str(doc["container"]), {k: (None if v is None else str(v)) for k, v in env.items()}
    except (ValueError, KeyError, TypeError) as e:
        raise EnvPatchError(f"annotation {ANNOTATION_PREVIOUS} is malformed ({e}): {raw!r}") from None


def _validate(var: str, value: str) -> None:
    if var == "GOGC":
        if not (value.isascii() and value.isdigit()) or int(value) <= 0:
            raise EnvPatchError(f"refusing to write GOGC={value!r}: not a positive decimal integer")
    else:
        try:
            parse_gomemlimit(value)
        except GoMemLimitError as e:
            raise EnvPatchError(f"refusing to write GOMEMLIMIT={value!r}: {e}") from None


def _metadata(deployment: Mapping[str, Any], annotations: dict[str, str | None]) -> dict[str, Any]:
    meta: dict[str, Any] = {"annotations": annotations}
    rv = (deployment.get("metadata") or {}).get("resourceVersion")
    if rv:
        meta["resourceVersion"] = rv
    return meta


def _note_json(note: AppliedNote | Mapping[str, Any]) -> str:
    if isinstance(note, AppliedNote):
        return note.annotation()
    return json.dumps(dict(note), sort_keys=True)


def plan_env_patch(
    deployment: Mapping[str, Any],
    container: str | None,
    desired: Mapping[str, str],
    *,
    applied_note: AppliedNote | Mapping[str, Any] | None = None,
) -> EnvPlan:
    """The patch that sets `desired` (a subset of GOGC/GOMEMLIMIT -> value) in the container's env.

    `applied_note` (an AppliedNote, or a mapping like {"gogc": 80, "time": "..."}) is recorded in the
    applied annotation.
    """
    unknown = set(desired) - set(MANAGED_VARS)
    if unknown:
        raise EnvPatchError(f"gc-tuner only manages {', '.join(MANAGED_VARS)}, not {sorted(unknown)}")
    for var, value in desired.items():
        _validate(var, value)
    c = select_container(deployment, container)
    cname = str(c.get("name"))
    values, value_from = container_env(c)
    recorded_for, recorded = _read_previous(deployment)
    if recorded_for is not None and recorded_for != cname:
        raise EnvPatchError(
            f"annotation {ANNOTATION_PREVIOUS} records container {recorded_for!r}, not {cname!r}; "
            "restore it (delete the GCPolicy) before targeting another container"
        )
    conflicts = tuple(v for v in desired if v in value_from)
    changes: dict[str, tuple[str | None, str | None]] = {
        var: (values.get(var), value)
        for var, value in desired.items()
        if var not in value_from and values.get(var) != value
    }
    previous = dict(recorded)
    for var in changes:
        previous.setdefault(var, values.get(var))
    if not changes:
        return EnvPlan(cname, None, {}, conflicts, previous)
    annotations: dict[str, str | None] = {
        ANNOTATION_PREVIOUS: json.dumps({"container": cname, "env": previous}, sort_keys=True),
    }
    if applied_note is not None:
        annotations[ANNOTATION_APPLIED] = _note_json(applied_note)
    patch = {
        "metadata": _metadata(deployment, annotations),
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": cname,
                            "env": [{"name": var, "value": new} for var, (_, new) in sorted(changes.items())],
                        }
                    ]
                }
            }
        },
    }
    return EnvPlan(cname, patch, changes, conflicts, previous)


def plan_env_restore(deployment: Mapping[str, Any]) -> EnvPlan | None:
    """The patch that puts back the values recorded before gc-tuner's first change; None if none recorded.

    A var that was absent is removed; one that was set gets its old value back. An entry someone
    has since switched to valueFrom is left alone (reported in `conflicts`).
    """
    cname, previous = _read_previous(deployment)
    if cname is None:
        return None
    c = select_container(deployment, cname)
    values, value_from = container_env(c)
    env_patch: list[dict[str, Any]] = []
    changes: dict[str, tuple[str | None, str | None]] = {}
    for var, old in sorted(previous.items()):
        if var in value_from:
            continue
        current = values.get(var)
        if current == old:
            continue
        changes[var] = (current, old)
        env_patch.append({"name": var, "$patch": "delete"} if old is None else {"name": var, "value": old})
    annotations: dict[str, str | None] = {ANNOTATION_PREVIOUS: None, ANNOTATION_APPLIED: None}
    patch: dict[str, Any] = {"metadata": _metadata(deployment, annotations)}
    if env_patch:
        patch["spec"] = {"template": {"spec": {"containers": [{"name": cname, "env": env_patch}]}}}
    conflicts = tuple(v for v in previous if v in value_from)
    return EnvPlan(cname, patch, changes, conflicts, previous)


class KubeDeployments:
    """Read and patch Deployments with the sync kubernetes client, as the `gc-tuner` field manager.

    Blocking: callers on an event loop run these in a thread (asyncio.to_thread).
    """

    def __init__(self, api_client: Any) -> None:
        from kubernetes import client  # deferred: `gc-tuner local` never needs it

        self._apps = client.AppsV1Api(api_client)

    def read(self, namespace: str, name: str) -> dict[str, Any]:
        # Raw JSON: the loop works on plain dicts, as kopf hands them over.
        resp: Any = self._apps.read_namespaced_deployment(name, namespace, _preload_content=False)
        doc: dict[str, Any] = json.loads(resp.data)
        return doc

    def patch(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        resp: Any = self._apps.patch_namespaced_deployment(
            name,
            namespace,
            dict(patch),
            field_manager=FIELD_MANAGER,
            _content_type="application/strategic-merge-patch+json",
            _preload_content=False,
        )
        doc: dict[str, Any] = json.loads(resp.data)
        return doc
