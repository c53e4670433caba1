"""kopf handlers: discovery indexes, one timer (a daemon) per GCPolicy, the finalizer, lifecycle.

Thin on purpose: every handler hands over to controller/runner.py, which hands over to the loop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import kopf

from gc_tuner.controller.kube import GROUP, PLURAL, VERSION, KubeIO
from gc_tuner.controller.metrics import OperatorMetrics
from gc_tuner.controller.runner import ClusterView, OperatorConfig, OperatorContext
from gc_tuner.net.bounded import BoundedTransport
from gc_tuner.tuning.conflicts import PolicyRef, policy_ref
from gc_tuner.tuning.discovery import PodInfo, ReplicaSetInfo, pod_info, replicaset_info, workload_digest
from gc_tuner.tuning.records import LoopEvent

__all__ = ["FINALIZER", "pod_client"]

Logger = logging.Logger | logging.LoggerAdapter[Any]

FINALIZER = "gctuner.io/finalizer"


def _poster(body: Any) -> Any:
    def post(ev: LoopEvent) -> None:
        kopf.event(body, type=ev.type, reason=ev.reason, message=ev.message)

    return post


def _items(index: Any, namespace: str) -> list[Any]:
    store = index.get(namespace)
    return list(store) if store is not None else []


_WORKLOAD_INDEX = {
    "Deployment": "gctuner_deployments",
    "StatefulSet": "gctuner_statefulsets",
    "DaemonSet": "gctuner_daemonsets",
}


def _view(indexes: dict[str, Any], namespace: str, body: Any) -> ClusterView:
    """What the indexes hold for this policy: its namespace's pods, ReplicaSets and policies, and
    its target workload (looked up in the index of its kind)."""
    ref = (body.get("spec") or {}).get("targetRef") or {}
    index = indexes.get(_WORKLOAD_INDEX.get(str(ref.get("kind") or "Deployment"), ""), {})
    store = index.get((namespace, ref.get("name")))
    replicasets: list[ReplicaSetInfo] = _items(indexes.get("gctuner_replicasets", {}), namespace)
    return ClusterView(
        pods=_items(indexes.get("gctuner_pods", {}), namespace),
        workload=next(iter(store), None) if store is not None else None,
        replicasets={rs.uid: rs for rs in replicasets},
        policies=tuple(_items(indexes.get("gctuner_policies", {}), namespace)),
    )


def pod_client(config: OperatorConfig) -> httpx.AsyncClient:
    """The client every policy's samplers and writes share.

    config.max_connections caps the exchanges in flight before httpcore's pool (BoundedTransport:
    the policies together want more at once than the cap, and httpcore's own queue wedged at 2,000
    pods). No keep-alive: every pod is its own host, so an idle connection is almost never reused,
    and each one kept costs a check on every request (as in `gc-tuner local`).
    """
    pool = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=None, max_keepalive_connections=0))
    return httpx.AsyncClient(
        timeout=config.http_timeout_s,
        trust_env=False,
        transport=BoundedTransport(pool, config.max_connections),
    )


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: Any, logger: Logger, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="gctuner.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="gctuner.io")
    settings.posting.level = logging.WARNING  # the loop posts its own Events; kopf only its problems
    config: OperatorConfig = memo.get("config") or OperatorConfig()
    from kubernetes import client

    memo.ctx = OperatorContext(
        config=config,
        http=pod_client(config),
        kube=KubeIO(client.ApiClient()),
        metrics=memo.get("metrics") or OperatorMetrics(),
    )
    if config.dry_run:
        logger.warning("--dry-run: every GCPolicy only recommends; nothing is applied")
    if config.min_interval_seconds > 1:
        logger.info(
            f"--min-interval-seconds: no GCPolicy is sampled more often than every "
            f"{config.min_interval_seconds} s"
        )


@kopf.on.cleanup()
async def cleanup(memo: Any, **_: Any) -> None:
    ctx: OperatorContext | None = memo.get("ctx")
    if ctx is not None:
        await ctx.http.aclose()


@kopf.on.login()
def login(**kwargs: Any) -> Any:
    # The kubernetes client's own configuration (kubeconfig or in-cluster), the same one KubeIO uses.
    return kopf.login_via_client(**kwargs)


@kopf.index("pods")
def gctuner_pods(body: kopf.Body, namespace: str | None, **_: Any) -> dict[str, PodInfo]:
    return {namespace or "": pod_info(body)}


# The target workloads, one index per kind; the owner chain pod -> ReplicaSet -> Deployment through
# the ReplicaSets' index; every policy's target, for the rule that one policy tunes one container.
@kopf.index("deployments")
def gctuner_deployments(
    body: kopf.Body, namespace: str | None, name: str, **_: Any
) -> dict[tuple[str, str], Any]:
    return {(namespace or "", name): workload_digest(body)}


@kopf.index("statefulsets")
def gctuner_statefulsets(
    body: kopf.Body, namespace: str | None, name: str, **_: Any
) -> dict[tuple[str, str], Any]:
    return {(namespace or "", name): workload_digest(body)}


@kopf.index("daemonsets")
def gctuner_daemonsets(
    body: kopf.Body, namespace: str | None, name: str, **_: Any
) -> dict[tuple[str, str], Any]:
    return {(namespace or "", name): workload_digest(body)}


@kopf.index("replicasets")
def gctuner_replicasets(body: kopf.Body, namespace: str | None, **_: Any) -> dict[str, ReplicaSetInfo]:
    return {namespace or "": replicaset_info(body)}


@kopf.index(GROUP, VERSION, PLURAL)
def gctuner_policies(body: kopf.Body, namespace: str | None, **_: Any) -> dict[str, PolicyRef]:
    return {namespace or "": policy_ref(body)}


@kopf.daemon(GROUP, VERSION, PLURAL, id="tune", initial_delay=0, cancellation_timeout=10.0)
async def tune(
    body: kopf.Body,
    uid: str,
    name: str,
    namespace: str | None,
    stopped: kopf.DaemonStopped,
    memo: Any,
    logger: Logger,
    **kwargs: Any,
) -> None:
    """The policy's timer: a cycle every spec.sampling.intervalSeconds (re-read each time)."""
    ctx: OperatorContext = memo.ctx
    ns = namespace or ""
    runner = ctx.runner(uid, ns, name)
    loop = asyncio.get_running_loop()
    while not stopped:
        started = loop.time()
        try:
            interval = await runner.once(ctx, body, _view(kwargs, ns, body), _poster(body), logger)
        except Exception as e:  # a bug in one cycle must not end the policy's timer
            logger.exception(f"tuning cycle failed: {e}")
            interval = 15.0
        # The interval runs from the cycle's start, as in `gc-tuner local`: sleeping a whole interval
        # after the cycle stretched every period by the cycle's own duration (seconds at 100+ pods).
        await stopped.wait(max(0.0, interval - (loop.time() - started)))


@kopf.on.delete(GROUP, VERSION, PLURAL, id="restore")
async def restore(
    body: kopf.Body, uid: str, name: str, namespace: str | None, memo: Any, **kwargs: Any
) -> None:
    """Finalizer: put back what the policy changed (EnvPatch: the env; Endpoint: release the leases)."""
    ctx: OperatorContext = memo.ctx
    ns = namespace or ""
    runner = ctx.runner(uid, ns, name)
    events = await runner.finalize(ctx, body, _view(kwargs, ns, body))
    post = _poster(body)
    for ev in events:
        post(ev)
    ctx.runners.pop(uid, None)


@kopf.on.probe(id="policies")
def policies(memo: Any, **_: Any) -> int:
    ctx: OperatorContext | None = memo.get("ctx")
    return len(ctx.runners) if ctx is not None else 0
