"""From Kubernetes objects to what the loop needs: pods to sample, and the target Deployment's facts.

Pure functions over plain dicts (as kopf hands bodies over), so the controller stays a thin adapter
and the rules (selector matching, readiness, which container) are unit-tested without a cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gc_tuner.actuation.envpatch import container_env, container_memory_limit, select_container
from gc_tuner.tuning.records import PodTarget

__all__ = [
    "PodInfo",
    "SelectorError",
    "WorkloadInfo",
    "deployment_digest",
    "matches_selector",
    "pod_info",
    "targets_for",
    "workload_info",
]


class SelectorError(ValueError):
    pass


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
    memory_limits: tuple[tuple[str, str], ...]  # (container, limits.memory)
    restart_counts: tuple[tuple[str, int], ...]
    # (container, lastState.terminated.reason): OOMKilled, Error, ...; the guard rolls a change back
    # at once when a pod that got it was OOM-killed or crashed.
    last_terminations: tuple[tuple[str, str], ...] = ()

    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


def pod_info(body: Mapping[str, Any]) -> PodInfo:
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    limits = []
    for c in spec.get("containers") or []:
        mem = container_memory_limit(c)
        if mem is not None:
            limits.append((str(c.get("name")), mem))
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
        memory_limits=tuple(limits),
        restart_counts=restarts,
        last_terminations=terminations,
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
    name: str
    container: str
    selector: dict[str, Any]
    memory_limit: str | None
    env: dict[str, str]  # plain values of GOGC / GOMEMLIMIT in the template
    env_value_from: tuple[str, ...]
    annotations: dict[str, str]
    replicas: int
    updated_ready: int
    rollout_complete: bool

    @property
    def template_gogc(self) -> int | None:
        """The template's GOGC as a number; None when unset or not a number (e.g. "off")."""
        v = self.env.get("GOGC")
        return int(v) if v is not None and v.isascii() and v.isdigit() else None


def workload_info(deployment: Mapping[str, Any], container: str | None) -> WorkloadInfo:
    """Raises EnvPatchError when the named container does not exist."""
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    c = select_container(deployment, container)
    env, value_from = container_env(c)
    replicas = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    updated = int(status.get("updatedReplicas") or 0)
    ready = int(status.get("readyReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    total = int(status.get("replicas") or 0)
    complete = (
        int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
        and updated == replicas
        and total == replicas
        and available == replicas
    )
    return WorkloadInfo(
        name=str(meta.get("name")),
        container=str(c.get("name")),
        selector=dict(spec.get("selector") or {}),
        memory_limit=container_memory_limit(c),
        env=env,
        env_value_from=value_from,
        annotations=dict(meta.get("annotations") or {}),
        replicas=replicas,
        updated_ready=min(updated, ready),
        rollout_complete=complete,
    )


def targets_for(pods: Iterable[PodInfo], workload: WorkloadInfo) -> list[PodTarget]:
    """The running pods of the workload (by its selector), as sampling targets, sorted by name."""
    out = []
    for p in pods:
        if p.deleting or p.phase != "Running" or not p.ip:
            continue
        if not matches_selector(workload.selector, p.label_map()):
            continue
        out.append(
            PodTarget(
                name=p.name,
                host=p.ip,
                ready=p.ready,
                restart_count=dict(p.restart_counts).get(workload.container, 0),
                last_termination=dict(p.last_terminations).get(workload.container),
                memory_limit=dict(p.memory_limits).get(workload.container),
            )
        )
    return sorted(out, key=lambda t: t.name)


def deployment_digest(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a Deployment the loop reads, small enough to keep one per Deployment in an index."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    template = (spec.get("template") or {}).get("spec") or {}
    return {
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "generation", "resourceVersion", "annotations")
            if k in meta
        },
        "spec": {
            "replicas": spec.get("replicas"),
            "selector": spec.get("selector") or {},
            "template": {
                "spec": {
                    "containers": [
                        {k: c[k] for k in ("name", "env", "resources") if k in c}
                        for c in template.get("containers") or []
                    ]
                }
            },
        },
        "status": dict(body.get("status") or {}),
    }
