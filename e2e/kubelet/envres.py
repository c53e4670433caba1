"""Resolve a container's environment the way the kubelet does, for the sources pods here use:
`value` (with $(VAR) expansion), `valueFrom.fieldRef`, `valueFrom.resourceFieldRef`,
`valueFrom.secretKeyRef`, `valueFrom.configMapKeyRef`, and `envFrom`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from e2e.kubelet.quantity import parse_quantity, scaled_ceil

__all__ = ["EnvError", "expand", "field_value", "resolve_env", "resource_value"]

Obj = dict[str, Any]
# Fetches a namespaced object ("secrets"/"configmaps", name); returns None when it does not exist.
Fetch = Callable[[str, str], Awaitable[Obj | None]]


class EnvError(ValueError):
    """A container's env cannot be built; the pod shows it as CreateContainerConfigError."""


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: Mapping[str, str]) -> str:
    """$(VAR) expands to an earlier variable, $$ escapes, unknown references stay as written."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _VAR.sub(sub, value)


_LABEL_REF = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")


def field_value(pod: Obj, path: str) -> str:
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": status.get("podIP"),
        "status.podIPs": ",".join(p["ip"] for p in status.get("podIPs", [])),
        "status.hostIP": status.get("hostIP"),
        "status.hostIPs": ",".join(p["ip"] for p in status.get("hostIPs", [])),
    }
    if path in simple:
        return str(simple[path] or "")
    m = _LABEL_REF.match(path)
    if m:
        return str(meta.get(m.group(1), {}).get(m.group(2), ""))
    raise EnvError(f"unsupported fieldRef fieldPath {path!r}")


def resource_value(pod: Obj, container: Obj, ref: Obj, node_allocatable: Mapping[str, str]) -> str:
    name = ref.get("containerName") or container["name"]
    target = next((c for c in pod["spec"]["containers"] if c["name"] == name), None)
    if target is None:
        raise EnvError(f"resourceFieldRef names container {name!r}, which the pod does not have")
    resource = ref["resource"]
    kind, _, res = resource.partition(".")
    if kind not in ("limits", "requests") or res not in ("cpu", "memory", "ephemeral-storage"):
        raise EnvError(f"unsupported resourceFieldRef resource {resource!r}")
    resources = target.get("resources", {})
    raw = resources.get(kind, {}).get(res)
    if raw is None and kind == "requests":
        raw = resources.get("limits", {}).get(res)
    if raw is None:
        # No limit set: the kubelet reports the node's allocatable, as a real one does.
        raw = node_allocatable.get(res, "0")
    try:
        value = parse_quantity(raw)
        # The apiserver defaults an unset divisor to "0", which means 1.
        divisor = parse_quantity(ref.get("divisor") or "1") or parse_quantity("1")
        return str(scaled_ceil(value, divisor))
    except ValueError as e:
        raise EnvError(f"resourceFieldRef {resource}: {e}") from e


async def _key_ref(fetch: Fetch, kind: str, ref: Obj, ns: str) -> str | None:
    obj = await fetch(kind, ref["name"])
    label = "secret" if kind == "secrets" else "configmap"
    optional = bool(ref.get("optional"))
    if obj is None:
        if optional:
            return None
        raise EnvError(f'{label} "{ref["name"]}" not found')
    key = ref["key"]
    if kind == "secrets":
        data = obj.get("data") or {}
        if key in data:
            return base64.b64decode(data[key]).decode()
    else:
        data = obj.get("data") or {}
        if key in data:
            return str(data[key])
    if optional:
        return None
    kind_name = "Secret" if kind == "secrets" else "ConfigMap"
    raise EnvError(f"couldn't find key {key} in {kind_name} {ns}/{ref['name']}")


async def _env_from(fetch: Fetch, sources: list[Obj], env: dict[str, str]) -> None:
    for src in sources:
        prefix = src.get("prefix", "")
        for kind, field in (("configmaps", "configMapRef"), ("secrets", "secretRef")):
            ref = src.get(field)
            if ref is None:
                continue
            obj = await fetch(kind, ref["name"])
            if obj is None:
                if ref.get("optional"):
                    continue
                label = "secret" if kind == "secrets" else "configmap"
                raise EnvError(f'{label} "{ref["name"]}" not found')
            for k, v in (obj.get("data") or {}).items():
                env[prefix + k] = base64.b64decode(v).decode() if kind == "secrets" else str(v)


async def resolve_env(
    pod: Obj, container: Obj, fetch: Fetch, node_allocatable: Mapping[str, str]
) -> dict[str, str]:
    ns = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    await _env_from(fetch, container.get("envFrom", []), env)
    for item in container.get("env", []):
        name = item["name"]
        if "valueFrom" not in item:
            env[name] = expand(item.get("value", ""), env)
            continue
        src = item["valueFrom"]
        value: str | None
        if "fieldRef" in src:
            value = field_value(pod, src["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in src:
            value = resource_value(pod, container, src["resourceFieldRef"], node_allocatable)
        elif "secretKeyRef" in src:
            value = await _key_ref(fetch, "secrets", src["secretKeyRef"], ns)
        elif "configMapKeyRef" in src:
            value = await _key_ref(fetch, "configmaps", src["configMapKeyRef"], ns)
        else:
            raise EnvError(f"env {name}: unsupported valueFrom {sorted(src)}")
        if value is not None:
            env[name] = value
    return env
