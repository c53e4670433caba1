"""The pods of a policy's EnvPatch canary Deployment, sampled beside the target's own.

They are found the same way as the target's pods, by owner chain (pod -> ReplicaSet -> the canary
Deployment `<target>-gctuner-canary`), and flagged `PodTarget.canary`: the guard judges them against
the target's pods (tuning/safety.py), and the fit leaves them out (they run the candidate).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from gc_tuner.actuation.canary_deployment import canary_name
from gc_tuner.model.policy import GCPolicySpec
from gc_tuner.tuning.discovery import PodInfo, ReplicaSetInfo, WorkloadInfo, targets_for
from gc_tuner.tuning.records import PodTarget

__all__ = ["canary_deployments", "with_canary_pods"]


def canary_deployments(spec: GCPolicySpec) -> bool:
    """Whether the policy's guard runs EnvPatch candidates on a canary Deployment."""
    return spec.rollout.method == "EnvPatch" and spec.target_ref.kind == "Deployment" and spec.guard.enabled


def with_canary_pods(
    spec: GCPolicySpec,
    pods: Iterable[PodInfo],
    workload: WorkloadInfo,
    replicasets: Mapping[str, ReplicaSetInfo],
    targets: Sequence[PodTarget],
) -> list[PodTarget]:
    """`targets` (the target's pods) and the canary Deployment's running pods, sorted by name."""
    if not canary_deployments(spec):
        return list(targets)
    # Matched by name only: the canary is made and deleted by the operator, its uid changes each trial.
    canary = dataclasses.replace(workload, name=canary_name(workload.name), uid="")
    extra = [dataclasses.replace(t, canary=True) for t in targets_for(pods, canary, replicasets)]
    return sorted([*targets, *extra], key=lambda t: t.name)
