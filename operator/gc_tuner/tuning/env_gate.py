"""When an EnvPatch write waits, or stops: the workload's own rollout, a pause, someone else's change.

Pure rules over the target as read this cycle (TemplateFacts: a fresh GET of the Deployment or
StatefulSet, managedFields included), each a row of tests/tuning/test_rollout.py:

- ExternalChange. gc-tuner's last write (the policy's applied GOGC, and GOMEMLIMIT when it set
  one) is no longer what the template's env holds: someone changed or removed it since (a GitOps
  tool self-healing to the manifest in git, a person with kubectl). Writing it back would start a
  rollout every cooldown, each undone by the other side's next one. So gc-tuner stops: no further
  write, Applied=False with reason ExternalChange, and a failure that names the field manager that
  now owns the value (managedFields; for a removed entry, the latest writer of the container's
  env). It resumes by itself once the env holds its values again, or when the policy's spec
  changes (a new generation): the template's values are then adopted as the values in force and
  the decision starts from them.
- DeploymentPaused. A paused Deployment (`spec.paused`) does not roll out; a write would only pile
  up in its template. Wait, and say so.
- RolloutInProgress. The workload's controller has not yet observed its newest generation, or not
  every pod runs the newest template and is available: someone's rollout (ours included) is under
  way. A write now would start another before this one finished. Wait.
- StatefulSet. RollingUpdate with a partition P updates only the pods at ordinals ≥ P: the rollout
  is done when those are, and the pods below P keep their values (Partitioned). OnDelete updates no
  pod at all: the value lands as each pod is recreated (PendingRecreate), so a write never waits
  for it, and gc-tuner never deletes a pod to hurry it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gc_tuner.actuation.envpatch import (
    FIELD_MANAGER,
    MANAGED_VARS,
    container_env,
    select_container,
    written_vars,
)
from gc_tuner.actuation.managed_fields import env_value_owners, latest_env_writer
from gc_tuner.tuning.records import FALSE, AppliedState, PodFailure, Verdict

__all__ = [
    "EnvHalt",
    "ExternalCheck",
    "TemplateFacts",
    "check_external",
    "drift",
    "in_progress",
    "rollout_wait",
    "statefulset_verdict",
    "template_facts",
]


@dataclass(frozen=True, slots=True)
class TemplateFacts:
    """The target workload as read this cycle: its rollout and the tuned container's env."""

    kind: str
    name: str
    container: str
    generation: int
    observed_generation: int
    replicas: int  # spec.replicas
    current: int  # status.replicas: pods of every revision
    updated: int
    available: int
    paused: bool = False
    strategy: str = "RollingUpdate"  # Deployment: RollingUpdate or Recreate; StatefulSet: or OnDelete
    partition: int = 0  # StatefulSet RollingUpdate
    stalled: str | None = None  # the Deployment's Progressing condition message, once its deadline passed
    env: Mapping[str, str] = field(default_factory=dict)  # plain values of GOGC / GOMEMLIMIT
    value_from: tuple[str, ...] = ()  # of those, the ones set through valueFrom
    written: tuple[str, ...] = ()  # the vars gc-tuner has written (its previous-env record)
    value_owners: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # var -> field managers
    last_writer: str | None = None  # the latest writer of the container's env other than gc-tuner

    @property
    def ref(self) -> str:
        return f"{self.kind.lower()}/{self.name}"


def _int(v: Any, default: int = 0) -> int:
    return int(v) if isinstance(v, int) and not isinstance(v, bool) else default


def _stalled(status: Mapping[str, Any]) -> str | None:
    for c in status.get("conditions") or []:
        if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded":
            return str(c.get("message") or "ProgressDeadlineExceeded")
    return None


def template_facts(obj: Mapping[str, Any], container: str) -> TemplateFacts:
    """The facts of a Deployment or StatefulSet read from the apiserver. EnvPatchError when the
    container is not in its template."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    kind = str(obj.get("kind") or "Deployment")
    c = select_container(obj, container)
    env, value_from = container_env(c)
    strategy = spec.get("updateStrategy" if kind == "StatefulSet" else "strategy") or {}
    ready = _int(status.get("readyReplicas"))
    return TemplateFacts(
        kind=kind,
        name=str(meta.get("name")),
        container=container,
        generation=_int(meta.get("generation")),
        observed_generation=_int(status.get("observedGeneration")),
        replicas=_int(spec.get("replicas"), 1),
        current=_int(status.get("replicas")),
        updated=_int(status.get("updatedReplicas")),
        # A StatefulSet before 1.22 reports no availableReplicas: ready stands in.
        available=_int(status.get("availableReplicas"), ready) if "availableReplicas" in status else ready,
        paused=spec.get("paused") is True,
        strategy=str(strategy.get("type") or "RollingUpdate"),
        partition=_int((strategy.get("rollingUpdate") or {}).get("partition")),
        stalled=_stalled(status) if kind == "Deployment" else None,
        env=env,
        value_from=value_from,
        written=written_vars(obj),
        value_owners={v: env_value_owners(obj, container, v) for v in MANAGED_VARS},
        last_writer=latest_env_writer(obj, container, other_than=FIELD_MANAGER),
    )


# -- someone else's change --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnvHalt:
    """gc-tuner stopped writing at this generation of the policy, after someone changed its values."""

    generation: int


@dataclass(frozen=True, slots=True)
class ExternalCheck:
    """The outcome of the ExternalChange rule: the halt from now on, and what to do this cycle."""

    halt: EnvHalt | None
    adopted: AppliedState | None = None  # resumed: the template's values are the ones in force
    stop: Verdict | None = None  # stopped: no write this cycle
    failure: PodFailure | None = None


def drift(ours: AppliedState | None, t: TemplateFacts) -> dict[str, tuple[str, str | None]]:
    """var -> (gc-tuner's last written value, the template's now) where they differ."""
    if ours is None or ours.method != "EnvPatch":
        return {}
    wrote = {"GOGC": str(ours.gogc) if ours.gogc is not None else None, "GOMEMLIMIT": ours.gomemlimit}
    # A var that was always set through valueFrom was never written (ValueFromConflict says so).
    never = {v for v in t.value_from if v not in t.written}
    return {
        var: (v, t.env.get(var))
        for var, v in wrote.items()
        if v is not None and var not in never and t.env.get(var) != v
    }


def _changed_by(changed: Mapping[str, tuple[str, str | None]], t: TemplateFacts) -> str:
    owners = sorted({m for var in changed for m in t.value_owners.get(var, ()) if m != FIELD_MANAGER})
    if owners:
        return "field manager " + ", ".join(f'"{m}"' for m in owners)
    if t.last_writer is not None:
        return f'field manager "{t.last_writer}" (the latest writer of the container\'s env)'
    return "an unknown writer (no field manager records it)"


def check_external(
    ours: AppliedState | None, t: TemplateFacts, halt: EnvHalt | None, generation: int, *, at: float
) -> ExternalCheck:
    """Stop while the template no longer holds gc-tuner's last write, unless the policy changed since
    the stop (then adopt the template's values); clear the stop once the values match again."""
    changed = drift(ours, t)
    if not changed:
        return ExternalCheck(None)
    if halt is not None and halt.generation != generation:
        gogc = t.env.get("GOGC")
        adopted = AppliedState(
            int(gogc) if gogc is not None and gogc.isascii() and gogc.isdigit() else None,
            t.env.get("GOMEMLIMIT"),
            "EnvPatch",
            at,
        )
        return ExternalCheck(None, adopted=adopted)
    what = ", ".join(
        f"{var} {ours_v} -> {now or 'removed'}" for var, (ours_v, now) in sorted(changed.items())
    )
    message = (
        f"{t.ref} container {t.container}: {what}, changed by {_changed_by(changed, t)}, not gc-tuner; "
        "no further patches until the GCPolicy's spec changes or the env holds gc-tuner's values again"
    )
    return ExternalCheck(
        halt or EnvHalt(generation),
        stop=Verdict(FALSE, "ExternalChange", message),
        failure=PodFailure(t.name, "apply", "ExternalChange", message),
    )


# -- the workload's rollout ---------------------------------------------------------------------------


def _wanted_updates(t: TemplateFacts) -> int:
    if t.kind == "StatefulSet" and t.strategy == "RollingUpdate":
        return max(0, t.replicas - t.partition)
    return t.replicas


def in_progress(t: TemplateFacts) -> bool:
    """A rollout is under way: the controller has not observed the newest generation, or not every
    pod it should update runs the newest template and is available (OnDelete: only the former)."""
    if t.observed_generation < t.generation:
        return True
    if t.kind == "StatefulSet" and t.strategy == "OnDelete":
        return False
    extra = t.kind != "StatefulSet" and t.current > t.replicas  # old pods still running beside new ones
    return t.updated < _wanted_updates(t) or t.available < t.replicas or extra


def rollout_wait(t: TemplateFacts, pending: str) -> Verdict | None:
    """Why a write of `pending` (e.g. "GOGC 80") must wait this cycle, or None."""
    if t.paused:
        return Verdict(FALSE, "DeploymentPaused", f"{t.ref} is paused (spec.paused); {pending} waits for it")
    if not in_progress(t):
        return None
    if t.observed_generation < t.generation:
        what = f"not yet observed at generation {t.generation} by its controller"
    else:
        stalled = f" ({t.stalled})" if t.stalled else ""
        what = (
            f"rolling out: {t.updated}/{_wanted_updates(t)} pods updated, "
            f"{t.available}/{t.replicas} available{stalled}"
        )
    return Verdict(FALSE, "RolloutInProgress", f"{t.ref} is {what}; {pending} waits until it finishes")


def statefulset_verdict(t: TemplateFacts, in_force: str) -> Verdict | None:
    """Where a StatefulSet's update strategy leaves the template's values (`in_force`, e.g.
    "GOGC 80") short of every pod, once its controller is done; None when it does not."""
    if t.kind != "StatefulSet" or t.observed_generation < t.generation:
        return None
    if t.strategy == "OnDelete" and t.updated < t.replicas:
        return Verdict(
            FALSE,
            "PendingRecreate",
            f"{t.ref} updates pods OnDelete: {in_force} is in the template and reaches each pod when it "
            f"is recreated ({t.updated}/{t.replicas} updated so far); gc-tuner never deletes pods",
        )
    if t.strategy == "RollingUpdate" and t.partition > 0 and t.updated >= _wanted_updates(t):
        below = min(t.partition, t.replicas)
        return Verdict(
            FALSE,
            "Partitioned",
            f"{in_force} in force on the {t.updated} pod(s) at ordinal {t.partition} or above; the "
            f"{below} pod(s) below the partition of {t.ref} keep their values until it is lowered",
        )
    return None
