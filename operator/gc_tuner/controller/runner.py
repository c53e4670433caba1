"""Glue between kopf and the loop: one PolicyRunner per GCPolicy, one shared OperatorContext.

A runner turns what kopf hands over (the live body and a ClusterView of the indexes: pods,
ReplicaSets, the target workload, the namespace's policies) into CycleInputs, runs `run_cycle`,
writes status through the status subresource and posts the cycle's Events. Nothing here decides
anything; the loop and tuning/ do.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from gc_tuner.actuation.canary_deployment import CanaryDeploymentError
from gc_tuner.controller.canary_io import KubeCanary
from gc_tuner.controller.kube import KubeEnv, KubeIO, KubeLogs, SecretError
from gc_tuner.controller.metrics import OperatorMetrics
from gc_tuner.loop.cycle import CycleInputs, run_cycle
from gc_tuner.loop.execute import endpoint_release
from gc_tuner.loop.ports import CycleIO
from gc_tuner.model.policy import GCPolicySpec, PolicyError, SecretKeyRef, parse_policy
from gc_tuner.tuning.canary_pods import canary_deployments, with_canary_pods
from gc_tuner.tuning.conditions import CONDITION_TYPES, build_status, merge_conditions
from gc_tuner.tuning.conflicts import PolicyRef, in_control, policy_ref
from gc_tuner.tuning.containers import source_ports
from gc_tuner.tuning.discovery import (
    PodInfo,
    ReplicaSetInfo,
    TargetError,
    WorkloadInfo,
    method_refusal,
    targets_for,
    workload_info,
)
from gc_tuner.tuning.floor import apply_interval_floor, floor_event, sampling_status
from gc_tuner.tuning.records import FALSE, TRUE, UNKNOWN, LoopEvent, PodFailure, PodTarget, Verdict
from gc_tuner.tuning.signals import policy_signals
from gc_tuner.tuning.state import PolicyState

__all__ = ["ClusterView", "OperatorConfig", "OperatorContext", "PolicyRunner", "promql_refusal"]

INVALID_SPEC_RETRY_S = 30.0
MAX_CONDITIONS = 16  # the CRD's maxItems for status.conditions


@dataclass(frozen=True, slots=True)
class OperatorConfig:
    dry_run: bool = False  # the global kill switch: every policy behaves as DryRun
    min_interval_seconds: int = 1  # the floor under every policy's sampling.intervalSeconds (tuning/floor.py)
    http_timeout_s: float = 10.0
    max_connections: int = 100
    # Where a policy's qps.promql.url may point (URL prefixes); empty: anywhere (--promql-url-prefix).
    promql_url_prefixes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ClusterView:
    """What the kopf indexes hold for one policy this cycle."""

    pods: Sequence[PodInfo] = ()  # every pod of the namespace
    workload: Mapping[str, Any] | None = None  # the target's digest, from the index of its kind
    replicasets: Mapping[str, ReplicaSetInfo] = field(default_factory=dict)  # by uid
    policies: Sequence[PolicyRef] = ()  # every GCPolicy of the namespace


@dataclass
class OperatorContext:
    config: OperatorConfig
    http: httpx.AsyncClient
    kube: KubeIO
    metrics: OperatorMetrics
    runners: dict[str, PolicyRunner] = field(default_factory=dict)

    def runner(self, uid: str, namespace: str, name: str) -> PolicyRunner:
        r = self.runners.get(uid)
        if r is None:
            r = self.runners[uid] = PolicyRunner(namespace, name)
        return r


def _owner(namespace: str, name: str) -> str:
    return f"gc-tuner/{namespace}/{name}"


def promql_refusal(spec: GCPolicySpec, prefixes: Sequence[str]) -> str | None:
    """Why the operator will not query this policy's PromQL URL, or None.

    A policy author chooses qps.promql.url, and the operator sends the query from inside the
    cluster: without an allow-list a policy could make it reach any address it can (a link-local
    metadata service, an internal admin port). The answer is only ever parsed as a PromQL vector,
    but the request itself is made; whoever runs the operator decides where it may go.
    """
    lat = spec.guard.latency
    urls = {
        "qps.promql.url": spec.qps.promql.url if spec.qps.promql else None,
        "guard.latency.promql.url": lat.promql.url if lat is not None and lat.promql is not None else None,
    }
    for field_name, url in urls.items():
        if url is not None and prefixes and not any(url.startswith(p) for p in prefixes):
            return (
                f"{field_name} {url!r} is not under any prefix the operator allows "
                f"(--promql-url-prefix: {', '.join(prefixes)}); nothing is queried"
            )
    return None


def _status_patch(
    new: Mapping[str, Any], old: Mapping[str, Any] | None, live: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A merge patch that also removes the top-level sections the new status no longer has.

    A merge patch replaces the whole conditions list, so the conditions of types gc-tuner does not
    own (another controller's, on the `live` object) are sent back after gc-tuner's own.
    """
    patch = dict(new)
    for k in old or {}:
        if k not in patch:
            patch[k] = None
    theirs = [
        c
        for c in (live or {}).get("conditions") or []
        if isinstance(c, Mapping) and c.get("type") not in CONDITION_TYPES
    ]
    if theirs and patch.get("conditions") is not None:
        patch["conditions"] = [*patch["conditions"], *theirs][:MAX_CONDITIONS]
    return patch


class PolicyRunner:
    def __init__(self, namespace: str, name: str) -> None:
        self.namespace, self.name = namespace, name
        self.state: PolicyState | None = None
        self.status: dict[str, Any] | None = None
        self.deleted = False
        self.tokens: dict[SecretKeyRef, str] = {}  # the last token read from each Secret

    async def _token(
        self, ctx: OperatorContext, ref: SecretKeyRef | None
    ) -> tuple[str | None, PodFailure | None]:
        if ref is None:
            return None, None
        try:
            token = await ctx.kube.secret(self.namespace, ref.name, ref.key)
        except SecretError as e:
            failure = PodFailure("-", "token", e.reason, e.message)
            # The apiserver did not answer: the token read last time still holds, so the leases
            # keep being renewed while the control plane is away (a refused Secret is not reused).
            kept = self.tokens.get(ref) if e.reason == "SecretUnreadable" else None
            return kept, failure
        self.tokens[ref] = token
        return token, None

    async def once(
        self,
        ctx: OperatorContext,
        body: Mapping[str, Any],
        view: ClusterView,
        post_event: Any,
        logger: logging.Logger | logging.LoggerAdapter[Any],
    ) -> float:
        """One cycle; returns the seconds until the next."""
        if self.deleted:
            return INVALID_SPEC_RETRY_S
        meta = body.get("metadata") or {}
        generation = int(meta.get("generation") or 0)
        previous = self.status if self.status is not None else dict(body.get("status") or {})
        try:
            spec = parse_policy(dict(body.get("spec") or {}))
        except PolicyError as e:
            invalid = self._invalid_status(previous, str(e), generation)
            await self._write(ctx, invalid, previous, logger, live=body.get("status"))
            return INVALID_SPEC_RETRY_S
        refusal = promql_refusal(spec, ctx.config.promql_url_prefixes)
        if refusal is not None:
            refused = self._invalid_status(previous, refusal, generation, reason="PromQLNotAllowed")
            await self._write(ctx, refused, previous, logger, live=body.get("status"))
            return INVALID_SPEC_RETRY_S
        rival = in_control(policy_ref(body), view.policies)
        if rival is not None:
            if self.state is not None:
                self.state.reads.cancel()
            conflict = self._invalid_status(previous, _conflict_message(rival), generation, reason="Conflict")
            await self._write(ctx, conflict, previous, logger, live=body.get("status"))
            return float(spec.sampling.interval_seconds)
        floored = apply_interval_floor(spec, ctx.config.min_interval_seconds)
        spec = floored.spec  # from here on, the cadence in force
        if self.state is None:
            self.state = PolicyState(float(spec.sampling.window_seconds))
            annotations = ((view.workload or {}).get("metadata") or {}).get("annotations") or {}
            self.state.restore(previous, annotations)
        inputs = await self._inputs(ctx, spec, view, generation)
        container = inputs.workload.container if inputs.workload is not None else spec.target_ref.container
        io = CycleIO(
            http=ctx.http,
            env=KubeEnv(ctx.kube, self.namespace, spec.target_ref.name, container, spec.target_ref.kind),
            canary=self._canary(ctx, spec, meta, container),
            logs=KubeLogs(ctx.kube, self.namespace),
            metrics=ctx.metrics,
        )
        outcome = await run_cycle(spec, self.state, inputs, io)
        ctx.metrics.signals(self.namespace, self.name, policy_signals(outcome))
        status = build_status(outcome, previous, generation=generation)
        status["sampling"] = sampling_status(floored)
        await self._write(ctx, status, previous, logger, live=body.get("status"))
        raised = floor_event(floored, previous)
        for ev in (*outcome.events, *([raised] if raised is not None else [])):
            post_event(ev)
        return float(spec.sampling.interval_seconds)

    @staticmethod
    def _targets(spec: GCPolicySpec, view: ClusterView, workload: WorkloadInfo | None) -> list[PodTarget]:
        """The target's pods, and its EnvPatch canary Deployment's (tuning/canary_pods.py)."""
        if workload is None:
            return []
        own = targets_for(view.pods, workload, view.replicasets)
        return with_canary_pods(spec, view.pods, workload, view.replicasets, own)

    async def _inputs(
        self, ctx: OperatorContext, spec: GCPolicySpec, view: ClusterView, generation: int
    ) -> CycleInputs:
        """What the cycle needs from the cluster: the target's pods and workload, the tokens."""
        workload, target_error = self._workload(spec, view.workload)
        src = spec.sampling.sources
        agent_ref = (src.agent.token_secret_ref if src.agent else None) or (
            spec.rollout.endpoint.token_secret_ref if spec.rollout.endpoint else None
        )
        endpoint_ref = spec.rollout.endpoint.token_secret_ref if spec.rollout.endpoint else None
        agent_token, agent_err = await self._token(ctx, agent_ref)
        endpoint_token, endpoint_err = (
            (agent_token, agent_err) if endpoint_ref == agent_ref else await self._token(ctx, endpoint_ref)
        )
        extra = [f for f in (agent_err, endpoint_err) if f is not None]
        return CycleInputs(
            pods=self._targets(spec, view, workload),
            owner=_owner(self.namespace, self.name),
            workload=workload,
            target_error=target_error,
            agent_token=agent_token,
            endpoint_token=endpoint_token,
            kill_switch=ctx.config.dry_run,
            extra_failures=tuple(dict.fromkeys(extra)),
            generation=generation,
        )

    def _workload(
        self, spec: GCPolicySpec, body: Mapping[str, Any] | None
    ) -> tuple[WorkloadInfo | None, Verdict | None]:
        ref = spec.target_ref
        refused = method_refusal(ref.kind, spec.rollout.method)
        if refused is not None:
            return None, Verdict(TRUE, "UnsupportedTarget", refused)
        if body is None:
            return None, Verdict(TRUE, "TargetNotFound", f"{ref.kind} {self.namespace}/{ref.name} not found")
        try:
            return workload_info(body, ref.container, source_ports(spec), kind=ref.kind), None
        except TargetError as e:
            return None, Verdict(TRUE, e.reason, e.message)

    def _invalid_status(
        self, previous: Mapping[str, Any], message: str, generation: int, *, reason: str = "InvalidSpec"
    ) -> dict[str, Any]:
        import time

        bad = Verdict(FALSE, reason, message)
        verdicts = {t: bad for t in ("Ready", "Sampling", "Recommending", "Applied")}
        verdicts["LeakSuspected"] = Verdict(UNKNOWN, reason, message)
        verdicts["Degraded"] = Verdict(TRUE, reason, message)
        status = dict(previous)
        status["observedGeneration"] = generation
        status["conditions"] = merge_conditions(
            previous.get("conditions"), verdicts, now=time.time(), generation=generation
        )
        return status

    async def _write(
        self,
        ctx: OperatorContext,
        status: dict[str, Any],
        previous: Mapping[str, Any] | None,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        *,
        live: Mapping[str, Any] | None = None,
    ) -> None:
        """Write `status`; `live` is the object's status as last seen (kopf keeps the body current)."""
        try:
            patch = _status_patch(status, previous, live)
            await ctx.kube.patch_status(self.namespace, self.name, patch)
        except Exception as e:  # the next cycle writes the whole status again
            logger.warning(f"writing status of {self.namespace}/{self.name} failed: {e}")
            return
        self.status = status

    def _canary(
        self, ctx: OperatorContext, spec: GCPolicySpec, meta: Mapping[str, Any], container: str | None
    ) -> KubeCanary | None:
        if not canary_deployments(spec):
            return None
        return KubeCanary(
            ctx.kube.api_client,
            self.namespace,
            policy=self.name,
            policy_uid=str(meta.get("uid") or ""),
            target=spec.target_ref.name,
            container=container,
        )

    async def finalize(
        self, ctx: OperatorContext, body: Mapping[str, Any], view: ClusterView
    ) -> list[LoopEvent]:
        """Undo what the policy put in force: restore the env, or release the agents' leases.

        A policy that lost its target to an older one (Conflict) put nothing in force: restoring
        would undo the other policy's values, so nothing is done.
        """
        self.deleted = True
        ctx.metrics.forget(self.namespace, self.name)
        if self.state is not None:
            self.state.reads.cancel()
        try:
            spec = parse_policy(dict(body.get("spec") or {}))
        except PolicyError:
            return []  # an invalid policy never applied anything
        if in_control(policy_ref(body), view.policies) is not None:
            return []
        if spec.rollout.method == "EnvPatch":
            workload, _ = self._workload(spec, view.workload)
            container = workload.container if workload is not None else spec.target_ref.container
            canary = self._canary(ctx, spec, body.get("metadata") or {}, container)
            if canary is not None:
                with contextlib.suppress(CanaryDeploymentError):
                    await canary.remove()  # else the garbage collector does it (the policy owns it)
            env = KubeEnv(ctx.kube, self.namespace, spec.target_ref.name, container, spec.target_ref.kind)
            plan = await env.restore()  # API errors propagate: kopf retries, the finalizer stays
            if plan is None or not plan.changes:
                return []
            changes = ", ".join(f"{k} {new or 'unset'}" for k, (_, new) in sorted(plan.changes.items()))
            kind = spec.target_ref.kind.lower()
            return [LoopEvent("Normal", "EnvRestored", f"{kind}/{spec.target_ref.name}: {changes}")]
        workload, _ = self._workload(spec, view.workload)
        targets = targets_for(view.pods, workload, view.replicasets) if workload is not None else []
        token, _err = await self._token(
            ctx, spec.rollout.endpoint.token_secret_ref if spec.rollout.endpoint else None
        )
        res = await endpoint_release(
            ctx.http, targets, spec, token=token, owner=_owner(self.namespace, self.name)
        )
        events = []
        if res.acked:
            events.append(LoopEvent("Normal", "LeaseReleased", f"released on {len(res.acked)} pod(s)"))
        for f in res.failures:
            # Not fatal: an unreleased lease lapses by itself within leaseSeconds.
            events.append(LoopEvent("Warning", "ReleaseFailed", f"{f.pod}: {f.reason}: {f.message}"))
        return events


def _conflict_message(rival: PolicyRef) -> str:
    return (
        f"{rival.describe()}, and the older policy keeps control: this one reads and writes nothing "
        "until that one is deleted or this one names another target"
    )
