"""A pod's and a container's securityContext, resolved as the kubelet and the container runtime resolve
them (the container's fields win over the pod's; the image's USER fills in what neither sets), into
what the runtime spec needs: user, groups, capabilities, no_new_privs, read-only root, seccomp."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from e2e.image.runc_spec import DEFAULT_CAPABILITIES

__all__ = ["ProcessSecurity", "SecurityContextError", "resolve_security"]

Obj = dict[str, Any]


class SecurityContextError(ValueError):
    """The container cannot be started as asked (what the kubelet reports as CreateContainerConfigError)."""


@dataclass(frozen=True)
class ProcessSecurity:
    uid: int
    gid: int
    groups: tuple[int, ...]
    capabilities: tuple[str, ...]
    no_new_privileges: bool
    read_only_root: bool
    seccomp: str  # "RuntimeDefault" or "Unconfined"


def _cap(name: str) -> str:
    return name if name.startswith("CAP_") else f"CAP_{name}"


def _capabilities(caps: Obj) -> tuple[str, ...]:
    drop = {_cap(c) for c in caps.get("drop") or []}
    kept = [] if "CAP_ALL" in drop else [c for c in DEFAULT_CAPABILITIES if c not in drop]
    added = [_cap(c) for c in caps.get("add") or [] if _cap(c) not in kept]
    return (*kept, *added)


def _image_user(user: str) -> tuple[int | None, int | None]:
    name, _, group = user.partition(":")
    uid = int(name) if name.isdigit() else (0 if not name else None)
    gid = int(group) if group.isdigit() else None
    return uid, gid


def _seccomp(pod_sc: Obj, sc: Obj) -> str:
    profile = sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {"type": "Unconfined"}
    kind = profile.get("type")
    if kind not in ("RuntimeDefault", "Unconfined"):
        raise SecurityContextError(f"seccompProfile type {kind!r} is not supported by the runc runner")
    return str(kind)


def resolve_security(pod_sc: Obj, sc: Obj, image_user: str) -> ProcessSecurity:
    """Raises SecurityContextError where a kubelet refuses to start the container."""
    img_uid, img_gid = _image_user(image_user)
    uid = sc.get("runAsUser", pod_sc.get("runAsUser", img_uid))
    if uid is None:
        raise SecurityContextError(f"image USER {image_user!r} is not numeric and no runAsUser is set")
    gid = sc.get("runAsGroup", pod_sc.get("runAsGroup", img_gid))
    gid = 0 if gid is None else gid  # neither the pod nor the image names a group: root's, as runc does
    if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) and uid == 0:
        raise SecurityContextError("container has runAsNonRoot and image will run as root")
    groups = [*pod_sc.get("supplementalGroups", [])]
    if pod_sc.get("fsGroup") is not None:
        groups.append(pod_sc["fsGroup"])
    return ProcessSecurity(
        uid=int(uid),
        gid=int(gid),
        groups=tuple(int(g) for g in groups),
        capabilities=_capabilities(sc.get("capabilities") or {}),
        no_new_privileges=sc.get("allowPrivilegeEscalation", True) is False,
        read_only_root=bool(sc.get("readOnlyRootFilesystem", False)),
        seccomp=_seccomp(pod_sc, sc),
    )
