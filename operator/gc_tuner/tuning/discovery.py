"""From Kubernetes objects to what the loop needs: the pods to sample, and the target workload's facts.

Pure functions over plain dicts (as kopf hands bodies over), so the controller stays a thin adapter
and the rules are unit-tested without a cluster:

- A pod belongs to the target by its owner chain, never by labels: pod -> ReplicaSet -> Deployment,
  pod -> StatefulSet, pod -> DaemonSet (controller ownerReferences, matched by uid). A canary
  Deployment, a debug pod or another workload whose labels overlap the selector is not touched.
- The tuned container is chosen explicitly or by the policy's ports (tuning/containers.py); its
  name goes with every pod (logs, restarts, memory limit) and with the workload (env writes).
- A pod's memory limit is its own container's, not the template's: the lower of the limit in its
  spec and the one its kubelet reports in force (an in-place resize, a VPA-set limit).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gc_tuner.actuation.envpatch import container_env
from gc_tuner.model.quantity import parse_quantity
from gc_tuner.tuning.containers import choose_container, container_ports
from gc_tuner.tuning.records import PodTarget

__all__ = [
    "ENVPATCH_KINDS",
    "WORKLOAD_KINDS",
    "OwnerRef",
    "PodInfo",
    "ReplicaSetInfo",
    "SelectorError",
    "TargetError",
    "WorkloadInfo",
    "container_memory_limit",
    "controller_ref",
    "matches_selector",
    "method_refusal",
    "owned_by",
    "pod_info",
    "replicaset_info",
    "targets_for",
    "workload_digest",
    "workload_info",
]

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
# The kinds whose pod template the EnvPatch rollout can write (actuation/envpatch.py).
ENVPATCH_KINDS = ("Deployment", "StatefulSet")


class SelectorError(ValueError):
    pass


class TargetError(ValueError):
    """The target cannot be tuned as named: no such container, or no way to tell which one."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class OwnerRef:
    kind: str
    name: str
    uid: str


def controller_ref(meta: Mapping[str, Any]) -> OwnerRef | None:
    """The ownerReference with `controller: true` (at most one per object), or None."""
    for o in meta.get("ownerReferences") or []:
        if isinstance(o, Mapping) and o.get("controller") is True:
            return OwnerRef(str(o.get("kind")), str(o.get("name")), str(o.get("uid") or ""))
    return None


@dataclass(frozen=True, slots=True)
class ReplicaSetInfo:
    """A ReplicaSet, reduced to the link from its pods to its Deployment (the kopf index stores these)."""

    name: str
    uid: str
    owner: OwnerRef | None


def replicaset_info(body: Mapping[str, Any]) -> ReplicaSetInfo:
    meta = body.get("metadata") or {}
    return ReplicaSetInfo(str(meta.get("name")), str(meta.get("uid") or ""), controller_ref(meta))


@dataclass(frozen=True, slots=True)
class PodInfo:
    """A pod, reduced to what discovery needs (the kopf index stores these, not whole bodies)."""

    name: str
    namespace: str
    labels: tuple[tuple[str, str], ...]
    ip: str | None
    phase: str
    ready: bool
    deleting: bool
    containers: tuple[str, ...]
    memory_limits: tuple[tuple[str, str], ...]  # (container, limits.memory in force)
    restart_counts: tuple[tuple[str, int], ...]
    # (container, lastState.terminated.reason): OOMKilled, Error, ...; the guard rolls a change back
    # at once when a pod that got it was OOM-killed or crashed.
    last_terminations: tuple[tuple[str, str], ...] = ()
    owner: OwnerRef | None = None  # the controller ownerReference

    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


def container_memory_limit(container: Mapping[str, Any]) -> str | None:
    """`resources.limits.memory` of a container (spec) or a container status, as written, or None."""
    value = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    return None if value is None else str(value)


def _lower_limit(spec_limit: str | None, status_limit: str | None) -> str | None:
    """The lower of two limits: during an in-place resize the spec holds the new limit and the
    status the one in force; a decrease is followed at once (the heap must shrink for the kubelet
    to apply it), an increase once it is in force. An unreadable quantity never wins."""
    if spec_limit is None or status_limit is None:
        return spec_limit or status_limit
    try:
        return status_limit if parse_quantity(status_limit) < parse_quantity(spec_limit) else spec_limit
    except ValueError:
        return spec_limit


def _memory_limits(spec: Mapping[str, Any], status: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    reported = {
        str(cs.get("name")): container_memory_limit(cs)
        for cs in status.get("containerStatuses") or []
        if isinstance(cs, Mapping)
    }
    limits = []
    for c in spec.get("containers") or []:
        name = str(c.get("name"))
        mem = _lower_limit(container_memory_limit(c), reported.get(name))
        if mem is not None:
            limits.append((name, mem))
    return tuple(limits)


def pod_info(body: Mapping[str, Any]) -> PodInfo:
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    restarts = tuple(
        (str(cs.get("name")), int(cs.get("restartCount") or 0))
        for cs in status.get("containerStatuses") or []
    )
    terminations = tuple(
        (str(cs.get("name")), str(reason))
        for cs in status.get("containerStatuses") or []
        if (reason := ((cs.get("lastState") or {}).get("terminated") or {}).get("reason"))
    )
    return PodInfo(
        name=str(meta.get("name")),
        namespace=str(meta.get("namespace")),
        labels=tuple(sorted((meta.get("labels") or {}).items())),
        ip=status.get("podIP") or None,
        phase=str(status.get("phase") or "Unknown"),
        ready=conds.get("Ready") == "True",
        deleting=meta.get("deletionTimestamp") is not None,
        containers=tuple(str(c.get("name")) for c in spec.get("containers") or []),
        memory_limits=_memory_limits(spec, status),
        restart_counts=restarts,
        last_terminations=terminations,
        owner=controller_ref(meta),
    )


def matches_selector(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics: matchLabels AND every matchExpression; empty matches nothing.

    An empty selector matching every pod in the namespace is never what a GCPolicy means.
    """
    ml = selector.get("matchLabels") or {}
    exprs = selector.get("matchExpressions") or []
    if not ml and not exprs:
        return False
    if any(labels.get(k) != v for k, v in ml.items()):
        return False
    for e in exprs:
        key, op, values = e.get("key"), e.get("operator"), set(e.get("values") or [])
        if op == "In":
            ok = key in labels and labels[key] in values
        elif op == "NotIn":
            ok = key not in labels or labels[key] not in values
        elif op == "Exists":
            ok = key in labels
        elif op == "DoesNotExist":
            ok = key not in labels
        else:
            raise SelectorError(f"unknown label selector operator {op!r}")
        if not ok:
            return False
    return True


@dataclass(frozen=True, slots=True)
class WorkloadInfo:
    """The target workload (Deployment, StatefulSet, DaemonSet) and its chosen container."""

    name: str
    container: str  # the tuned container (tuning/containers.py); EnvPatch writes its env
    selector: dict[str, Any]
    memory_limit: str | None  # the template's limit for that container
    env: dict[str, str]  # plain values of GOGC / GOMEMLIMIT in the template
    env_value_from: tuple[str, ...]
    annotations: dict[str, str]
    replicas: int
    updated_ready: int
    rollout_complete: bool
    kind: str = "Deployment"
    uid: str = ""  # matched against the pods' owner chain; "" matches by name only

    @property
    def template_gogc(self) -> int | None:
        """The template's GOGC as a number; None when unset or not a number (e.g. "off")."""
        v = self.env.get("GOGC")
        return int(v) if v is not None and v.isascii() and v.isdigit() else None


def _rollout(
    kind: str, meta: Mapping[str, Any], spec: Mapping[str, Any], status: Mapping[str, Any]
) -> tuple[int, int, bool]:
    """(replicas wanted, updated and ready, rollout complete) as each controller reports them."""
    observed = int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
    if kind == "DaemonSet":
        wanted = int(status.get("desiredNumberScheduled") or 0)
        updated = int(status.get("updatedNumberScheduled") or 0)
        ready = int(status.get("numberReady") or 0)
        available = int(status.get("numberAvailable") or 0)
        return wanted, min(updated, ready), observed and updated == wanted and available == wanted
    replicas = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    updated = int(status.get("updatedReplicas") or 0)
    ready = int(status.get("readyReplicas") or 0)
    total = int(status.get("replicas") or 0)
    # A controller that omits availableReplicas (a StatefulSet at 0 available): ready stands in.
    available = int(status.get("availableReplicas") or 0) if "availableReplicas" in status else ready
    complete = observed and updated == replicas and total == replicas and available == replicas
    if kind == "StatefulSet" and status.get("updateRevision"):
        complete = complete and status.get("currentRevision") == status.get("updateRevision")
    return replicas, min(updated, ready), complete


def workload_info(
    body: Mapping[str, Any], container: str | None, ports: Collection[int] = (), *, kind: str | None = None
) -> WorkloadInfo:
    """The workload's facts for the chosen container; TargetError when none can be chosen."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    kind = kind or str(body.get("kind") or "Deployment")
    template = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    if not isinstance(template, list):
        raise TargetError("ContainerNotFound", "spec.template.spec.containers is not a list")
    owner = f"{kind} {meta.get('name', '?')}"
    choice = choose_container(container_ports(template), container, ports, owner=owner)
    if choice.name is None:
        raise TargetError(choice.reason, choice.message)
    c = next(x for x in template if str(x.get("name")) == choice.name)
    env, value_from = container_env(c)
    replicas, updated_ready, complete = _rollout(kind, meta, spec, body.get("status") or {})
    return WorkloadInfo(
        name=str(meta.get("name")),
        container=choice.name,
        selector=dict(spec.get("selector") or {}),
        memory_limit=container_memory_limit(c),
        env=env,
        env_value_from=value_from,
        annotations=dict(meta.get("annotations") or {}),
        replicas=replicas,
        updated_ready=updated_ready,
        rollout_complete=complete,
        kind=kind,
        uid=str(meta.get("uid") or ""),
    )


def method_refusal(kind: str, method: str) -> str | None:
    """Why the policy's rollout method cannot tune this kind of workload, or None."""
    if method == "EnvPatch" and kind not in ENVPATCH_KINDS:
        return (
            f"rollout.method EnvPatch writes the pod template of a {' or '.join(ENVPATCH_KINDS)} only; "
            f"use rollout.method Endpoint for a {kind}"
        )
    return None


def owned_by(pod: PodInfo, workload: WorkloadInfo, replicasets: Mapping[str, ReplicaSetInfo]) -> bool:
    """The pod is the workload's: pod -> ReplicaSet -> Deployment, pod -> StatefulSet or DaemonSet.

    `replicasets` maps a ReplicaSet's uid to it. Uids are compared where known, so a workload
    deleted and created again under the same name does not claim the orphans of the old one.
    """
    o = pod.owner
    if o is None:
        return False
    if workload.kind == "Deployment":
        if o.kind != "ReplicaSet":
            return False
        rs = replicasets.get(o.uid)
        o = rs.owner if rs is not None and rs.name == o.name else None
        if o is None:
            return False
    return (
        o.kind == workload.kind
        and o.name == workload.name
        and (not workload.uid or not o.uid or o.uid == workload.uid)
    )


def targets_for(
    pods: Iterable[PodInfo], workload: WorkloadInfo, replicasets: Mapping[str, ReplicaSetInfo]
) -> list[PodTarget]:
    """The running pods the workload owns, as sampling targets for its container, sorted by name."""
    out = []
    for p in pods:
        if p.deleting or p.phase != "Running" or not p.ip:
            continue
        if not owned_by(p, workload, replicasets):
            continue
        out.append(
            PodTarget(
                name=p.name,
                host=p.ip,
                ready=p.ready,
                restart_count=dict(p.restart_counts).get(workload.container, 0),
                last_termination=dict(p.last_terminations).get(workload.container),
                memory_limit=dict(p.memory_limits).get(workload.container),
                container=workload.container,
            )
        )
    return sorted(out, key=lambda t: t.name)


def workload_digest(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a workload the loop reads, small enough to keep one per workload in an index."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    template = (spec.get("template") or {}).get("spec") or {}
    return {
        "kind": body.get("kind"),
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "generation", "resourceVersion", "annotations")
            if k in meta
        },
        "spec": {
            "replicas": spec.get("replicas"),
            "selector": spec.get("selector") or {},
            "template": {
                "spec": {
                    "containers": [
                        {k: c[k] for k in ("name", "env", "resources", "ports") if k in c}
                        for c in template.get("containers") or []
                    ]
                }
            },
        },
        "status": dict(body.get("status") or {}),
    }
