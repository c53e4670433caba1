"""Two GCPolicies on one target: which one keeps control. Pure; the kopf index supplies the records.

Two policies tuning one container would undo each other's values every interval (Endpoint) or
every cooldown (EnvPatch), and deleting either would restore env the other one set. So exactly one
policy tunes a target: the oldest one (creationTimestamp, then name, so the order is total and
every replica of the operator agrees). The others get Ready=False with reason Conflict, naming it,
and read and write nothing until it is gone or they name another target.

One target is one workload (kind and name) and container. A policy that names no container may end
up on any of them, so it conflicts with every policy of the same workload.

Only Enforce policies tune: a DryRun policy writes nothing and restores nothing, so it never takes a
target from anyone and is never refused one. Recommenders beside the policy in force (another
strategy, other bounds) are how a change is weighed before it is made.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["PolicyRef", "in_control", "overlaps", "policy_ref"]


@dataclass(frozen=True, slots=True)
class PolicyRef:
    """A GCPolicy, reduced to what the conflict rule needs (the kopf index stores these)."""

    name: str
    created: str  # metadata.creationTimestamp, RFC 3339 in UTC: compares as text in time order
    kind: str
    target: str
    container: str | None
    deleting: bool = False
    enforce: bool = True  # spec.mode Enforce (a DryRun policy tunes nothing)

    def describe(self) -> str:
        on = f" container {self.container}" if self.container else ""
        return f"GCPolicy {self.name} (created {self.created}) tunes {self.kind} {self.target}{on}"


def policy_ref(body: Mapping[str, Any]) -> PolicyRef:
    meta = body.get("metadata") or {}
    ref = (body.get("spec") or {}).get("targetRef") or {}
    container = ref.get("container")
    return PolicyRef(
        name=str(meta.get("name")),
        created=str(meta.get("creationTimestamp") or ""),
        kind=str(ref.get("kind") or "Deployment"),
        target=str(ref.get("name") or ""),
        container=str(container) if container else None,
        deleting=meta.get("deletionTimestamp") is not None,
        enforce=(body.get("spec") or {}).get("mode") == "Enforce",
    )


def overlaps(a: PolicyRef, b: PolicyRef) -> bool:
    """Both may tune the same container."""
    if (a.kind, a.target) != (b.kind, b.target):
        return False
    return a.container is None or b.container is None or a.container == b.container


def in_control(me: PolicyRef, others: Iterable[PolicyRef]) -> PolicyRef | None:
    """The policy that tunes `me`'s target instead of `me`, or None when `me` keeps control.

    A policy being deleted gives up its target (its finalizer is restoring it) and counts no more;
    DryRun policies neither hold nor lose a target.
    """
    if not me.enforce:
        return None
    rivals = [o for o in others if o.name != me.name and o.enforce and not o.deleting and overlaps(me, o)]
    if not rivals:
        return None
    first = min([me, *rivals], key=lambda p: (p.created, p.name))
    return None if first.name == me.name else first
