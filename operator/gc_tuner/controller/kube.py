"""The operator's Kubernetes I/O with the sync `kubernetes` client, always run in a thread.

Each public coroutine wraps one blocking call in asyncio.to_thread, so a slow apiserver never blocks
the event loop that kopf, the samplers and the other policies' timers share.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from gc_tuner.actuation.envpatch import EnvPlan, KubeWorkloads, plan_env_patch, plan_env_restore
from gc_tuner.model.policy_status import AppliedNote
from gc_tuner.net.errors import (
    AuthError,
    FetchError,
    FetchTimeoutError,
    ProtocolError,
    ResponseTooLargeError,
    UnreachableError,
)

__all__ = ["KubeEnv", "KubeIO", "KubeLogs", "SecretError"]

GROUP, VERSION, PLURAL = "gctuner.io", "v1alpha1", "gcpolicies"


class SecretError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message
        super().__init__(message)


def _api_error(e: Exception, what: str) -> FetchError:
    status = getattr(e, "status", None)
    reason = getattr(e, "reason", "") or type(e).__name__
    if status in (401, 403):
        return AuthError(what, f"HTTP {status}: {reason}", status=status)
    if status is None:
        return UnreachableError(what, f"{type(e).__name__}: {e}")
    if status in (408, 504):
        return FetchTimeoutError(what, f"HTTP {status}: {reason}", status=status)
    return ProtocolError(what, f"HTTP {status}: {reason}", status=status)


TOKEN_OPT_IN_LABEL = "gctuner.io/agent-token"
# Each blocking call the cycle makes to the apiserver gives up after this: a stalled control plane
# must not hold a policy's loop (and with it the Endpoint lease renewals) for longer.
KUBE_TIMEOUT_S = (5.0, 10.0)  # (connect, read)
P = TypeVar("P", EnvPlan, EnvPlan | None)
CONFLICT_RETRIES = 5  # an EnvPatch apply refused for a stale resourceVersion is planned again this often
CONFLICT_PAUSE_S = 0.1  # before the first retry; doubled before each next (3.1 s in all at most)


class KubeIO:
    """Blocking calls the controller needs, bound to one ApiClient."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes import client

        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.workloads = KubeWorkloads(api_client, timeout=KUBE_TIMEOUT_S)

    def _read_secret(self, namespace: str, name: str, key: str) -> str:
        from kubernetes.client.exceptions import ApiException

        try:
            resp: Any = self.core.read_namespaced_secret(
                name, namespace, _preload_content=False, _request_timeout=KUBE_TIMEOUT_S
            )
        except ApiException as e:
            if e.status == 404:
                raise SecretError("SecretNotFound", f"Secret {namespace}/{name} not found") from None
            raise SecretError(
                "SecretUnreadable", f"Secret {namespace}/{name}: HTTP {e.status} {e.reason}"
            ) from None
        except Exception as e:  # no answer at all (apiserver down or stalled): urllib3's many types
            raise SecretError("SecretUnreadable", f"Secret {namespace}/{name}: {type(e).__name__}") from None
        doc = json.loads(resp.data)
        labels = (doc.get("metadata") or {}).get("labels") or {}
        if labels.get(TOKEN_OPT_IN_LABEL) != "true":
            # A policy author may name any Secret of the namespace; its value would be sent as a
            # bearer token to whatever pods the policy matches. Only a Secret its owner marked is used.
            raise SecretError(
                "SecretNotOptedIn",
                f"Secret {namespace}/{name} is not labelled {TOKEN_OPT_IN_LABEL}=true; gc-tuner sends a "
                "Secret's value to pods only when the Secret says it is an agent token",
            )
        data = doc.get("data") or {}
        if key not in data:
            raise SecretError("SecretKeyMissing", f"Secret {namespace}/{name} has no key {key!r}")
        import base64

        return base64.b64decode(data[key]).decode().strip()

    async def secret(self, namespace: str, name: str, key: str) -> str:
        return await asyncio.to_thread(self._read_secret, namespace, name, key)

    def _patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"status": dict(status)},
            _content_type="application/merge-patch+json",
            _request_timeout=KUBE_TIMEOUT_S,
        )

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        await asyncio.to_thread(self._patch_status, namespace, name, status)


class KubeEnv:
    """EnvActuator for one Deployment or StatefulSet: a fresh read (for its resourceVersion), a plan,
    a server-side apply."""

    def __init__(
        self, kube: KubeIO, namespace: str, name: str, container: str | None, kind: str = "Deployment"
    ) -> None:
        self.kube, self.namespace, self.name, self.container = kube, namespace, name, container
        self.kind = kind

    async def read(self) -> dict[str, Any] | None:
        return await asyncio.to_thread(
            self.kube.workloads.read_if_exists, self.namespace, self.name, self.kind
        )

    def _planned(self, plan: Callable[[dict[str, Any]], P]) -> P:
        """Read, plan, apply on that read's resourceVersion. Its controller updates a workload's
        status during any rollout, so a 409 is most often no one's edit: read again and re-plan
        (at most CONFLICT_RETRIES times, pausing a little longer each time: a new Deployment's
        controller writes it several times in its first second), which also re-checks any edit that
        did happen. Runs in a thread, so the pauses block no event loop."""
        import time

        from kubernetes.client.exceptions import ApiException

        attempt = 0
        while True:
            planned = plan(self.kube.workloads.read(self.namespace, self.name, self.kind))
            if planned is None or planned.patch is None:
                return planned
            try:
                self.kube.workloads.apply(self.namespace, self.name, planned.patch)
                return planned
            except ApiException as e:
                if e.status != 409 or attempt >= CONFLICT_RETRIES:
                    raise
            time.sleep(CONFLICT_PAUSE_S * 2**attempt)
            attempt += 1

    def _patch(self, desired: Mapping[str, str], note: AppliedNote) -> EnvPlan:
        return self._planned(lambda obj: plan_env_patch(obj, self.container, desired, applied_note=note))

    async def patch(self, desired: Mapping[str, str], note: AppliedNote) -> EnvPlan:
        return await asyncio.to_thread(self._patch, desired, note)

    def _restore(self) -> EnvPlan | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self._planned(plan_env_restore)
        except ApiException as e:
            if e.status == 404:
                return None  # the workload is gone: nothing left to restore
            raise

    async def restore(self) -> EnvPlan | None:
        return await asyncio.to_thread(self._restore)


class KubeLogs:
    """LogReader over pods/log: what `kubectl logs --since --tail` returns."""

    def __init__(self, kube: KubeIO, namespace: str) -> None:
        self.kube, self.namespace = kube, namespace

    def _read(
        self,
        pod: str,
        container: str | None,
        since_seconds: int,
        tail_lines: int,
        max_bytes: int,
        previous: bool,
    ) -> list[str]:
        from kubernetes.client.exceptions import ApiException

        what = f"pods/{pod}/log" + ("?previous=true" if previous else "")
        try:
            # limitBytes makes the kubelet stop there; one byte more tells a full read from a cut one.
            kwargs: dict[str, Any] = {
                "since_seconds": since_seconds,
                "tail_lines": tail_lines,
                "limit_bytes": max_bytes + 1,
            }
            if container:
                kwargs["container"] = container
            if previous:
                kwargs["previous"] = True
            resp: Any = self.kube.core.read_namespaced_pod_log(
                pod, self.namespace, _preload_content=False, _request_timeout=KUBE_TIMEOUT_S, **kwargs
            )
            data: bytes = resp.data
            if len(data) > max_bytes:
                raise ResponseTooLargeError(
                    what, f"more than {max_bytes} bytes in {tail_lines} lines; raise sampling.maxResponseKiB"
                )
            return [str(line) for line in data.decode("utf-8", "replace").splitlines()]
        except ApiException as e:
            raise _api_error(e, what) from None
        except OSError as e:
            raise UnreachableError(what, str(e)) from None

    async def read(
        self,
        pod: str,
        container: str | None,
        *,
        since_seconds: int,
        tail_lines: int,
        max_bytes: int,
        previous: bool = False,
    ) -> Sequence[str]:
        return await asyncio.to_thread(
            self._read, pod, container, since_seconds, tail_lines, max_bytes, previous
        )
