"""Who owns what in an object, from its `metadata.managedFields` (server-side apply's record).

The apiserver keeps, per field manager and operation, the set of fields that manager last set
(FieldsV1: nested `f:<field>` keys, list items of a list map as `k:{"name":"GOGC"}`). A manager
that changes a field another one owned takes it over: with server-side apply (forced) or an
ordinary update (`kubectl edit`, `kubectl set env`, a client-side `kubectl apply`), the field
leaves the previous owner's set. So "who set GOGC of container app" is the manager whose set holds
`f:spec.f:template.f:spec.f:containers.k:{"name":"app"}.f:env.k:{"name":"GOGC"}.f:value`.

A removed entry leaves no owner behind; the most recent writer of that container's env (or of the
object) is the best name there is, and is reported as such. Pure: the object's dict in, names out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["FieldOwner", "env_value_owners", "field_owners", "latest_env_writer"]


@dataclass(frozen=True, slots=True)
class FieldOwner:
    manager: str
    operation: str  # Apply or Update
    time: str  # RFC 3339, as the apiserver stamps it ("" when absent)


def field_owners(obj: Mapping[str, Any]) -> list[tuple[FieldOwner, Mapping[str, Any]]]:
    """Every main-resource entry of managedFields (a status writer changes no spec) with its fields."""
    out = []
    for m in (obj.get("metadata") or {}).get("managedFields") or []:
        if (
            not isinstance(m, Mapping)
            or m.get("subresource")
            or m.get("fieldsType", "FieldsV1") != "FieldsV1"
        ):
            continue
        fields = m.get("fieldsV1")
        owner = FieldOwner(
            str(m.get("manager") or "?"), str(m.get("operation") or "?"), str(m.get("time") or "")
        )
        out.append((owner, fields if isinstance(fields, Mapping) else {}))
    return out


def _item(fields: Mapping[str, Any], key: str, name: str) -> Mapping[str, Any] | None:
    """The list-map item whose key `key` is `name` (`k:{"name":"GOGC"}`), whatever the key's spacing."""
    for k, v in fields.items():
        if not k.startswith("k:") or not isinstance(v, Mapping):
            continue
        try:
            ident = json.loads(k[2:])
        except ValueError:
            continue
        if isinstance(ident, dict) and ident.get(key) == name:
            return v
    return None


def _path(fields: Mapping[str, Any], steps: Sequence[str]) -> Mapping[str, Any] | None:
    node: Mapping[str, Any] | None = fields
    for step in steps:
        if node is None:
            return None
        child = node.get(step)
        node = child if isinstance(child, Mapping) else None
    return node


def _container_env(fields: Mapping[str, Any], container: str) -> Mapping[str, Any] | None:
    containers = _path(fields, ("f:spec", "f:template", "f:spec", "f:containers"))
    c = _item(containers, "name", container) if containers is not None else None
    return _path(c, ("f:env",)) if c is not None else None


def env_value_owners(obj: Mapping[str, Any], container: str, var: str) -> tuple[str, ...]:
    """The managers that own the value of env entry `var` of `container` in the pod template."""
    names = []
    for owner, fields in field_owners(obj):
        env = _container_env(fields, container)
        entry = _item(env, "name", var) if env is not None else None
        if entry is not None and "f:value" in entry:
            names.append(owner.manager)
    return tuple(sorted(set(names)))


def latest_env_writer(obj: Mapping[str, Any], container: str, *, other_than: str) -> str | None:
    """The manager other than `other_than` that wrote last: among those owning part of the
    container's env if any does, else among all of the object's spec writers."""
    owners = [(o, f) for o, f in field_owners(obj) if o.manager != other_than]
    env_owners = [(o, f) for o, f in owners if _container_env(f, container)]
    pool = env_owners or owners
    if not pool:
        return None
    return max(pool, key=lambda of: of[0].time)[0].manager
