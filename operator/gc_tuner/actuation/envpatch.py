"""EnvPatch rollout: write GOGC / GOMEMLIMIT into one container of a workload's pod template
(a Deployment or a StatefulSet), with server-side apply under the field manager `gc-tuner`.

The planning is pure (the object's dict in, an apply configuration out) so every rule is
unit-tested without a cluster; `KubeWorkloads` is the thin I/O half, using the sync kubernetes client.

Rules:
- The apply configuration names only the container (by name) and its GOGC / GOMEMLIMIT entries,
  plus gc-tuner's two annotations. Containers and env are list maps keyed by name, so the
  apiserver merges by key: every other entry, and every other field, keeps its owner and value.
  gc-tuner owns exactly what it names; a GitOps tool or a person that changes one of those values
  takes it over, and `metadata.managedFields` says who (actuation/managed_fields.py).
- Server-side apply drops a field its manager stops naming, so every apply names every entry
  gc-tuner has written (the vars in the previous-env record), at its new or its current value.
- An entry that uses `valueFrom` belongs to someone else's wiring (a ConfigMap, the downward API):
  it is never overwritten; the plan reports it in `conflicts`.
- The values in force before gc-tuner's first change are recorded in the annotation
  `gctuner.io/previous-env` (only once: later changes keep the original record), so deleting the
  GCPolicy can restore them. Every change also records `gctuner.io/applied` (values and time), in
  the same apply, so an operator restarted between applying and writing status knows a change was
  made and when, and a later cycle can tell whether the env still holds it.
- The apply carries the object's resourceVersion: a concurrent edit makes it fail (409) instead
  of recording a stale "previous" value. It is forced: the first write takes GOGC over from
  whoever created the object. That is why gc-tuner never writes over a value someone else changed
  after it (tuning/env_gate.py stops first).
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
    "WRITABLE_KINDS",
    "EnvPatchError",
    "EnvPlan",
    "KubeDeployments",
    "KubeWorkloads",
    "container_env",
    "container_memory_limit",
    "plan_env_patch",
    "plan_env_restore",
    "select_container",
    "written_vars",
]

FIELD_MANAGER = "gc-tuner"
ANNOTATION_PREVIOUS = "gctuner.io/previous-env"
MANAGED_VARS = ("GOGC", "GOMEMLIMIT")
_API_NAMES = {"Deployment": "deployment", "StatefulSet": "stateful_set"}  # AppsV1Api's method names
WRITABLE_KINDS = tuple(_API_NAMES)  # the kinds whose pod template EnvPatch writes


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


def written_vars(obj: Mapping[str, Any]) -> tuple[str, ...]:
    """The vars gc-tuner has changed in this object (its previous-env record); () when none, or
    when the record is malformed (plan_env_patch refuses that one with a clear error)."""
    try:
        return tuple(sorted(_read_previous(obj)[1]))
    except EnvPatchError:
        return ()


def _validate(var: str, value: str) -> None:
    if var == "GOGC":
        if not (value.isascii() and value.isdigit()) or int(value) <= 0:
            raise EnvPatchError(f"refusing to write GOGC={value!r}: not a positive decimal integer")
    else:
        try:
            parse_gomemlimit(value)
        except GoMemLimitError as e:
            raise EnvPatchError(f"refusing to write GOMEMLIMIT={value!r}: {e}") from None


def _apply_config(
    obj: Mapping[str, Any],
    container: str,
    env: Mapping[str, str],
    annotations: Mapping[str, str],
) -> dict[str, Any]:
    """An apply configuration holding only what gc-tuner owns: the container's entries in `env` and
    the annotations. The resourceVersion makes the apply conditional on the object read."""
    meta = obj.get("metadata") or {}
    metadata: dict[str, Any] = {"name": meta.get("name")}
    if meta.get("namespace"):
        metadata["namespace"] = meta["namespace"]
    if meta.get("resourceVersion"):
        metadata["resourceVersion"] = meta["resourceVersion"]
    if annotations:
        metadata["annotations"] = dict(annotations)
    entry: dict[str, Any] = {"name": container}
    if env:
        entry["env"] = [{"name": var, "value": value} for var, value in sorted(env.items())]
    return {
        "apiVersion": str(obj.get("apiVersion") or "apps/v1"),
        "kind": str(obj.get("kind") or "Deployment"),
        "metadata": metadata,
        "spec": {"template": {"spec": {"containers": [entry]}}},
    }


def _note_json(note: AppliedNote | Mapping[str, Any]) -> str:
    if isinstance(note, AppliedNote):
        return note.annotation()
    return json.dumps(dict(note), sort_keys=True)


def plan_env_patch(
    obj: Mapping[str, Any],
    container: str | None,
    desired: Mapping[str, str],
    *,
    applied_note: AppliedNote | Mapping[str, Any] | None = None,
) -> EnvPlan:
    """The apply that sets `desired` (a subset of GOGC/GOMEMLIMIT -> value) in the container's env.

    `obj` is the Deployment or StatefulSet as read (its apiVersion and kind are kept).
    `applied_note` (an AppliedNote, or a mapping like {"gogc": 80, "time": "..."}) is recorded in the
    applied annotation.
    """
    unknown = set(desired) - set(MANAGED_VARS)
    if unknown:
        raise EnvPatchError(f"gc-tuner only manages {', '.join(MANAGED_VARS)}, not {sorted(unknown)}")
    for var, value in desired.items():
        _validate(var, value)
    c = select_container(obj, container)
    cname = str(c.get("name"))
    values, value_from = container_env(c)
    recorded_for, recorded = _read_previous(obj)
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
    # Every entry gc-tuner has written stays named (at its current value when not changing now).
    env = {var: values[var] for var in previous if var in values and var not in value_from}
    env.update({var: new for var, (_, new) in changes.items() if new is not None})
    annotations = {ANNOTATION_PREVIOUS: json.dumps({"container": cname, "env": previous}, sort_keys=True)}
    note = _note_json(applied_note) if applied_note is not None else _annotations(obj).get(ANNOTATION_APPLIED)
    if note is not None:
        annotations[ANNOTATION_APPLIED] = note
    return EnvPlan(cname, _apply_config(obj, cname, env, annotations), changes, conflicts, previous)


def plan_env_restore(obj: Mapping[str, Any]) -> EnvPlan | None:
    """The apply that puts back the values recorded before gc-tuner's first change; None if none
    recorded.

    A var that was absent is no longer named, so the apiserver removes the entry gc-tuner alone
    owns; one that was set gets its old value back; the annotations are dropped. Only entries that
    still hold what gc-tuner last wrote are touched: one someone has since changed, removed or
    switched to valueFrom is theirs now and left alone (a valueFrom one is reported in `conflicts`).
    """
    cname, previous = _read_previous(obj)
    if cname is None:
        return None
    c = select_container(obj, cname)
    values, value_from = container_env(c)
    note = AppliedNote.read(_annotations(obj).get(ANNOTATION_APPLIED))
    ours = _note_env(note)
    env: dict[str, str] = {}
    changes: dict[str, tuple[str | None, str | None]] = {}
    for var, old in sorted(previous.items()):
        current = values.get(var)
        if var in value_from or (note is not None and var in ours and current != ours[var]):
            continue  # someone else's now
        if old is not None:
            env[var] = old
        if current != old:
            changes[var] = (current, old)
    conflicts = tuple(v for v in previous if v in value_from)
    return EnvPlan(cname, _apply_config(obj, cname, env, {}), changes, conflicts, previous)


def _note_env(note: AppliedNote | None) -> dict[str, str]:
    """The env a note says gc-tuner wrote."""
    if note is None:
        return {}
    env = {"GOGC": str(note.gogc)} if note.gogc is not None else {}
    if note.gomemlimit is not None:
        env["GOMEMLIMIT"] = note.gomemlimit
    return env


class KubeWorkloads:
    """Read Deployments and StatefulSets, and apply gc-tuner's part of them as the `gc-tuner` field
    manager (server-side apply).

    Blocking: callers on an event loop run these in a thread (asyncio.to_thread).
    """

    def __init__(self, api_client: Any, *, timeout: tuple[float, float] | None = None) -> None:
        from kubernetes import client  # deferred: `gc-tuner local` never needs it

        self._apps = client.AppsV1Api(api_client)
        self._timeout = timeout  # (connect, read) seconds per call; None: the client's default

    def _call(self, verb: str, kind: str) -> Any:
        if kind not in WRITABLE_KINDS:
            raise EnvPatchError(f"EnvPatch writes a {' or a '.join(WRITABLE_KINDS)}, not a {kind}")
        return getattr(self._apps, f"{verb}_namespaced_{_API_NAMES[kind]}")

    def read(self, namespace: str, name: str, kind: str = "Deployment") -> dict[str, Any]:
        # Raw JSON: the loop works on plain dicts, as kopf hands them over (managedFields included).
        resp: Any = self._call("read", kind)(
            name, namespace, _preload_content=False, _request_timeout=self._timeout
        )
        doc: dict[str, Any] = json.loads(resp.data)
        return doc

    def read_if_exists(self, namespace: str, name: str, kind: str = "Deployment") -> dict[str, Any] | None:
        """`read`, with None for a workload that does not exist (HTTP 404)."""
        from kubernetes.client.exceptions import ApiException

        try:
            return self.read(namespace, name, kind)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def apply(
        self, namespace: str, name: str, config: Mapping[str, Any], *, force: bool = True
    ) -> dict[str, Any]:
        resp: Any = self._call("patch", str(config.get("kind") or "Deployment"))(
            name,
            namespace,
            dict(config),
            field_manager=FIELD_MANAGER,
            force=force,
            _content_type="application/apply-patch+yaml",
            _preload_content=False,
            _request_timeout=self._timeout,
        )
        doc: dict[str, Any] = json.loads(resp.data)
        return doc


class KubeDeployments(KubeWorkloads):
    """Deployments only."""

    def read(self, namespace: str, name: str, kind: str = "Deployment") -> dict[str, Any]:
        return super().read(namespace, name, "Deployment")
